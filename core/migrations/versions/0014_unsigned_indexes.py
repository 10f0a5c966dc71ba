"""partial indexes on unsigned runs and attempts, for the sealing pass

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

UNSIGNED = sa.text("hmac IS NULL")


def upgrade() -> None:
    op.create_index("ix_runs_unsigned", "runs", ["status"], sqlite_where=UNSIGNED, postgresql_where=UNSIGNED)
    op.create_index(
        "ix_run_attempts_unsigned", "run_attempts", ["finished_at"], sqlite_where=UNSIGNED, postgresql_where=UNSIGNED
    )


def downgrade() -> None:
    op.drop_index("ix_run_attempts_unsigned", table_name="run_attempts")
    op.drop_index("ix_runs_unsigned", table_name="runs")
