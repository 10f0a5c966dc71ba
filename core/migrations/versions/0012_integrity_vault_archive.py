"""record HMACs, the secret vault, archived runs

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SIGNED_TABLES = ("runs", "run_attempts", "audit_log")


def upgrade() -> None:
    for table in SIGNED_TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("hmac", sa.String(length=64), nullable=True))
    op.create_table(
        "vault_secrets",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("previous_ciphertext", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "archived_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("domain", sa.String(length=100), nullable=True),
        sa.Column("triggered_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("archive_file", sa.String(length=1000), nullable=False),
        sa.Column("imported_at", sa.DateTime(), nullable=False),
        sa.Column("imported_by_run", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_archived_runs_created_at", "archived_runs", ["created_at"])
    op.create_index("ix_archived_runs_type_created_at", "archived_runs", ["type", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_archived_runs_type_created_at", table_name="archived_runs")
    op.drop_index("ix_archived_runs_created_at", table_name="archived_runs")
    op.drop_table("archived_runs")
    op.drop_table("vault_secrets")
    for table in SIGNED_TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("hmac")
