"""certificate inventory and domain validation records

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "certificates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("serial", sa.String(length=100), nullable=False),
        sa.Column("sans", sa.JSON(), nullable=False),
        sa.Column("not_before", sa.DateTime(), nullable=False),
        sa.Column("not_after", sa.DateTime(), nullable=False),
        sa.Column("is_ca", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=1000), nullable=False),
        sa.Column("imported_at", sa.DateTime(), nullable=False),
        sa.Column("imported_by_run", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint_sha256"),
    )
    op.create_index("ix_certificates_not_after", "certificates", ["not_after"])
    op.create_table(
        "validated_domains",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("validated_by", sa.String(length=10), nullable=False),
        sa.Column("validated_by_name", sa.String(length=200), nullable=False),
        sa.Column("valid_until", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_validated_domains_valid_until", "validated_domains", ["valid_until"])


def downgrade() -> None:
    op.drop_index("ix_validated_domains_valid_until", table_name="validated_domains")
    op.drop_table("validated_domains")
    op.drop_index("ix_certificates_not_after", table_name="certificates")
    op.drop_table("certificates")
