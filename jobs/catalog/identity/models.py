"""SQL tables of identity provisioning (seed 003, 002).

Tables owned here:
- ``scim_targets``             the SCIM 2.0 services Jobyard provisions to or reads from: a unique ``name``, its
                               ``role`` (``domain``: hosts domain users, as Google Workspace does; ``idp``: the
                               identity provider holding single sign-on users), its ``base_url``. The bearer
                               token lives in the vault under ``scim-target:<name>`` (targets.py), never here.
- ``identities``               the identities Jobyard manages: ``user_name`` (unique ignoring case, through
                               ``user_name_folded``), names and address, the
                               ``identity_type`` (seed 003's table, identities.py), the ``platform`` (a domain
                               target's name, or a free platform name), ``status`` (``pending`` until every
                               provisioning operation is done, then ``provisioned``), ``disabled``, where it came
                               from (``source``: ``manual``, ``bulk``, ``directory:<source>``), its vault
                               credential (``credential_secret``: the secret's name) and password expiry.
- ``provisioning_operations``  what provisioning an identity takes: one row per (identity, operation, target)
                               with the run doing it (``run_id``), the account it made there (``remote_id``),
                               ``done_at`` once done, and the last error. An identity is provisioned when all
                               its rows are done; a row whose run failed makes it show as failed.
- ``directory_users``, ``directory_groups``  the local copy of a directory source (Directory sync): one row
                               per user or group of a source, keyed by (``source``, ``external_key``), with
                               ``removed_at`` set once the source no longer lists it.
- ``identity_uploads``         CSV files uploaded for Bulk import, kept in SQL so that any worker can read them.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime

TARGET_ROLES = ("domain", "idp")


class ScimTarget(Base):
    __tablename__ = "scim_targets"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    base_url: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(200))


class Identity(Base):
    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_name: Mapped[str] = mapped_column(String(200))
    # lower(user_name), unique: SCIM compares userName case-insensitively, so "Ada" and "ada" are one user,
    # and two transactions creating both at once must not both succeed.
    user_name_folded: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    identity_type: Mapped[str] = mapped_column(String(32))
    platform: Mapped[str | None] = mapped_column(String(100))
    department: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(200))
    credential_secret: Mapped[str | None] = mapped_column(String(200))
    password_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    provisioned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ProvisioningOperation(Base):
    __tablename__ = "provisioning_operations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"), index=True)
    operation: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(100))
    run_id: Mapped[str | None] = mapped_column(String(32), index=True)
    remote_id: Mapped[str | None] = mapped_column(String(200))
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("identity_id", "operation", "target", name="uq_provisioning_operations_identity_op_target"),
    )


class DirectoryUser(Base):
    __tablename__ = "directory_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(200))
    external_key: Mapped[str] = mapped_column(String(500))
    user_name: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    department: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean)
    groups: Mapped[list[str]] = mapped_column(JSON)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("source", "external_key", name="uq_directory_users_source_key"),)


class DirectoryGroup(Base):
    __tablename__ = "directory_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(200))
    external_key: Mapped[str] = mapped_column(String(500))
    display_name: Mapped[str] = mapped_column(String(200))
    members: Mapped[list[str]] = mapped_column(JSON)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("source", "external_key", name="uq_directory_groups_source_key"),)


class IdentityUpload(Base):
    __tablename__ = "identity_uploads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    filename: Mapped[str] = mapped_column(String(255))
    content: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    uploaded_by: Mapped[str] = mapped_column(String(200))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime)


scim_targets_table = cast(Table, ScimTarget.__table__)
identities_table = cast(Table, Identity.__table__)
operations_table = cast(Table, ProvisioningOperation.__table__)
directory_users_table = cast(Table, DirectoryUser.__table__)
directory_groups_table = cast(Table, DirectoryGroup.__table__)
uploads_table = cast(Table, IdentityUpload.__table__)
