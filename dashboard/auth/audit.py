"""The audit trail (table ``audit_log``): who did what to which object, and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from core import defaults, integrity
from core.crypto import SecretKeyMissing, secret_key_of
from core.db import utcnow
from dashboard.auth.models import audit_table as audit

ACTIONS = (
    "login", "login_failed", "logout", "start", "retry", "cancel", "run_again", "notify", "schedule_set",
    "schedule_enable", "schedule_disable", "schedule_delete", "run_now", "user_add", "user_set_role", "user_disable",
    "user_enable", "user_password", "user_grant", "user_revoke", "token_create", "token_revoke", "enqueue",
    "identity_create", "identity_import", "target_save", "target_remove",
)  # fmt: skip


def record(
    bind: Engine | Connection,
    actor: str,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    remote_addr: str | None = None,
) -> None:
    """Appends one entry, signed (core/integrity.py); pass the caller's connection to make it part of the
    change it describes."""
    assert action in ACTIONS, action
    entry: dict[str, Any] = {
        "at": utcnow(), "actor": actor, "action": action, "target": target, "detail": detail,
        "remote_addr": remote_addr,
    }  # fmt: skip
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            _append(conn, entry)
    else:
        _append(bind, entry)


def _append(conn: Connection, entry: dict[str, Any]) -> None:
    entry_id = conn.execute(insert(audit).values(**entry).returning(audit.c.id)).scalar_one()
    try:
        key = integrity.records_key(secret_key_of(conn.engine))
    except SecretKeyMissing:
        return  # left unsigned: Verify HMAC counts it, Recompute Upgrade HMAC signs it
    mac = integrity.sign_row(key, "audit_log", {**entry, "id": entry_id})
    conn.execute(update(audit).where(audit.c.id == entry_id).values(hmac=mac))


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any] | None
    remote_addr: str | None
    hmac: str | None = None  # core/integrity.py; None when written without a key


def entries(
    engine: Engine,
    *,
    actor: str | None = None,
    action: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditRow]:
    """Newest first; `before_id` pages on."""
    query = select(audit).order_by(audit.c.id.desc()).limit(limit)
    if actor:
        query = query.where(audit.c.actor == actor)
    if action:
        query = query.where(audit.c.action == action)
    if before_id is not None:
        query = query.where(audit.c.id < before_id)
    with engine.connect() as conn:
        return [AuditRow(**r._mapping) for r in conn.execute(query)]


def recent_failures(engine: Engine, username: str, remote_addr: str | None) -> int:
    """Failed logins for `username` from `remote_addr` within the lockout window. Per address too, so
    that a stranger guessing cannot lock the account's owner out."""
    since = utcnow() - timedelta(seconds=defaults.LOGIN_FAILURE_WINDOW_S)
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(audit)
                .where(
                    audit.c.actor == username,
                    audit.c.remote_addr == remote_addr,
                    audit.c.action == "login_failed",
                    audit.c.at >= since,
                )
            ).scalar_one()
        )
