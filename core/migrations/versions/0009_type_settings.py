"""type settings (report recipients)

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "type_settings",
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("report_to", sa.JSON(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("type"),
    )


def downgrade() -> None:
    op.drop_table("type_settings")
