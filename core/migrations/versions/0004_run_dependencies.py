"""run dependencies

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_dependencies",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("depends_on_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "depends_on_id"),
    )
    with op.batch_alter_table("run_dependencies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_dependencies_depends_on_id"), ["depends_on_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("run_dependencies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_dependencies_depends_on_id"))
    op.drop_table("run_dependencies")
