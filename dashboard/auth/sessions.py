"""Server-side login sessions (table ``web_sessions``).

The browser's signed Flask cookie carries a random session token; the table keeps only its SHA-256. A
session ends at logout, after `session_idle_timeout_s` without a request, `SESSION_MAX_AGE_S` after
login, or when the account is disabled or its password changed.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import Engine, delete, insert, select, update

from core import defaults
from core.db import utcnow
from dashboard.auth.models import sessions_table as web_sessions
from dashboard.auth.roles import Principal
from dashboard.auth.users import principal_of


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(engine: Engine, user_id: int, remote_addr: str | None) -> str:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            insert(web_sessions).values(
                token_hash=_digest(token), user_id=user_id, created_at=now, last_seen_at=now,
                expires_at=now + timedelta(seconds=defaults.SESSION_MAX_AGE_S), remote_addr=remote_addr,
            )
        )  # fmt: skip
    return token


def load_session(engine: Engine, token: str, idle_timeout_s: float, *, touch: bool = True) -> Principal | None:
    """The principal of a live session; an expired or idle one is deleted and gives None. `touch=False`
    (a page's background poll) reads the session without counting as activity."""
    digest = _digest(token)
    now = utcnow()
    with engine.connect() as conn:
        row = conn.execute(select(web_sessions).where(web_sessions.c.token_hash == digest)).first()
    if row is None:
        return None
    if row.expires_at <= now or row.last_seen_at + timedelta(seconds=idle_timeout_s) <= now:
        close_session(engine, token)
        return None
    principal = principal_of(engine, row.user_id)
    if principal is None:
        close_session(engine, token)
        return None
    if touch and (now - row.last_seen_at).total_seconds() >= defaults.SESSION_TOUCH_INTERVAL_S:
        with engine.begin() as conn:
            conn.execute(update(web_sessions).where(web_sessions.c.token_hash == digest).values(last_seen_at=now))
    return principal


def close_session(engine: Engine, token: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(web_sessions).where(web_sessions.c.token_hash == _digest(token)))
