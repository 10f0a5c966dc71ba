"""Dashboard accounts: create, change role, grant job types, disable, authenticate."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.db import utcnow
from dashboard.auth import audit
from dashboard.auth.models import grants_table as grants
from dashboard.auth.models import sessions_table as web_sessions
from dashboard.auth.models import tokens_table as tokens
from dashboard.auth.models import users_table as users
from dashboard.auth.passwords import hash_password, verify_password
from dashboard.auth.roles import Principal, Role, parse_role

USERNAME_MAX_LENGTH = 100
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,99}$")
DOMAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
EMAIL_MAX_LENGTH = 320


def check_domain(domain: str | None) -> None:
    if domain and not DOMAIN.match(domain):
        raise UserError("a domain is 1-100 letters, digits, '.', '_' or '-'")


class UserError(ValueError):
    pass


class UserNotFound(LookupError):
    def __init__(self, username: str) -> None:
        super().__init__(f"no user {username!r}")


@dataclass(frozen=True)
class UserRow:
    id: int
    username: str
    role: str
    domain: str | None
    email: str | None
    disabled: bool
    created_at: datetime
    last_login_at: datetime | None
    granted_types: tuple[str, ...]


def add_user(
    engine: Engine,
    username: str,
    password: str,
    role: str,
    *,
    by: str,
    domain: str | None = None,
    email: str | None = None,
) -> int:
    if not USERNAME.match(username):
        raise UserError("a username is 2-100 characters: lowercase letters, digits, '.', '_', '@', '-'")
    checked = parse_role(role, domain)
    check_domain(domain)
    if email and (len(email) > EMAIL_MAX_LENGTH or "@" not in email or any(c.isspace() for c in email)):
        raise UserError(f"not an email address: {email[:50]!r}")
    password_hash = hash_password(password)
    try:
        with engine.begin() as conn:
            user_id = conn.execute(
                insert(users)
                .values(
                    username=username, password_hash=password_hash, role=checked, domain=domain or None,
                    email=email or None, disabled=False, created_at=utcnow(),
                )
                .returning(users.c.id)
            ).scalar_one()  # fmt: skip
            audit.record(conn, by, "user_add", username, {"role": checked.value, "domain": domain})
    except IntegrityError:
        raise UserError(f"user {username!r} already exists") from None
    return int(user_id)


def _user_id(engine: Engine, username: str) -> int:
    with engine.connect() as conn:
        user_id = conn.execute(select(users.c.id).where(users.c.username == username)).scalar()
    if user_id is None:
        raise UserNotFound(username)
    return int(user_id)


def set_role(engine: Engine, username: str, role: str, *, by: str, domain: str | None = None) -> None:
    checked = parse_role(role, domain)
    check_domain(domain)
    user_id = _user_id(engine, username)
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user_id).values(role=checked, domain=domain or None))
        audit.record(conn, by, "user_set_role", username, {"role": checked.value, "domain": domain})


def set_password(engine: Engine, username: str, password: str, *, by: str) -> None:
    password_hash = hash_password(password)
    user_id = _user_id(engine, username)
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))
        # Other sessions of the account end: whoever knew the old password is logged out.
        conn.execute(delete(web_sessions).where(web_sessions.c.user_id == user_id))
        audit.record(conn, by, "user_password", username)


def set_disabled(engine: Engine, username: str, disabled: bool, *, by: str) -> None:
    user_id = _user_id(engine, username)
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user_id).values(disabled=disabled))
        if not disabled:
            audit.record(conn, by, "user_enable", username)
            return
        conn.execute(delete(web_sessions).where(web_sessions.c.user_id == user_id))
        # Revoked for good, not hidden while disabled: re-enabling an account must not bring back
        # credentials that may have leaked with it; its owner creates new tokens on purpose.
        revoked = conn.execute(
            update(tokens).where(tokens.c.user_id == user_id, tokens.c.revoked_at.is_(None)).values(revoked_at=utcnow())
        ).rowcount
        audit.record(conn, by, "user_disable", username, {"tokens_revoked": revoked})


def grant(engine: Engine, username: str, job_types: list[str], *, by: str, revoke: bool = False) -> None:
    user_id = _user_id(engine, username)
    with engine.begin() as conn:
        if revoke:
            conn.execute(delete(grants).where(grants.c.user_id == user_id, grants.c.job_type.in_(job_types)))
        else:
            have = set(conn.execute(select(grants.c.job_type).where(grants.c.user_id == user_id)).scalars())
            new = [t for t in dict.fromkeys(job_types) if t not in have]
            if new:
                conn.execute(insert(grants), [{"user_id": user_id, "job_type": t} for t in new])
        audit.record(conn, by, "user_revoke" if revoke else "user_grant", username, {"job_types": job_types})


def list_users(engine: Engine) -> list[UserRow]:
    with engine.connect() as conn:
        granted: dict[int, list[str]] = {}
        for user_id, job_type in conn.execute(select(grants.c.user_id, grants.c.job_type).order_by(grants.c.job_type)):
            granted.setdefault(user_id, []).append(job_type)
        return [
            UserRow(
                id=r.id,
                username=r.username,
                role=r.role,
                domain=r.domain,
                email=r.email,
                disabled=r.disabled,
                created_at=r.created_at,
                last_login_at=r.last_login_at,
                granted_types=tuple(granted.get(r.id, ())),
            )
            for r in conn.execute(select(users).order_by(users.c.username))
        ]


def principal_of(engine: Engine, user_id: int) -> Principal | None:
    """The principal of an enabled account, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.id == user_id, users.c.disabled.is_(False))).first()
        if row is None:
            return None
        granted = frozenset(conn.execute(select(grants.c.job_type).where(grants.c.user_id == user_id)).scalars())
    return Principal(
        name=row.username, role=Role(row.role), domain=row.domain, granted_types=granted, email=row.email,
        user_id=row.id,
    )  # fmt: skip


def authenticate(engine: Engine, username: str, password: str) -> Principal | None:
    """The principal when the password is right and the account enabled; None otherwise (same time taken)."""
    with engine.connect() as conn:
        row = conn.execute(select(users.c.id, users.c.password_hash, users.c.disabled).where(
            users.c.username == username.strip().lower()
        )).first()  # fmt: skip
    if not verify_password(row.password_hash if row is not None else None, password) or row is None or row.disabled:
        return None
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == row.id).values(last_login_at=utcnow()))
    return principal_of(engine, row.id)


def has_users(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(users.c.id).limit(1)).first() is not None
