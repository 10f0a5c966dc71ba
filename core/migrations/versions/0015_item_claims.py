"""item claims: an item being processed by one attempt is skipped by a concurrent run

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "item_claims",
        sa.Column("scope", sa.String(length=250), nullable=False),
        sa.Column("key", sa.String(length=500), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("series", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key"),
    )


def downgrade() -> None:
    op.drop_table("item_claims")
