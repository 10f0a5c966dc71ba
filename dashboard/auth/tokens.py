"""API bearer tokens (table ``api_tokens``).

A token is 32 random bytes shown once at creation; the table keeps its SHA-256 (a slow KDF buys nothing
against a random 256-bit secret and would cost every API call) and its first characters for display.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from core import defaults
from core.db import utcnow
from dashboard.auth import audit
from dashboard.auth.models import tokens_table as tokens
from dashboard.auth.models import users_table as users
from dashboard.auth.roles import ROLE_RANK, Principal, Role, parse_role
from dashboard.auth.users import DOMAIN, principal_of

TOKEN_PREFIX = "jy_"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class TokenError(ValueError):
    pass


@dataclass(frozen=True)
class TokenRow:
    id: int
    name: str
    prefix: str
    role: str
    domain: str | None
    username: str | None
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    engine: Engine, name: str, role: str, *, by: str, domain: str | None = None, username: str | None = None
) -> str:
    """Returns the token; it cannot be shown again."""
    if not NAME.match(name):
        raise TokenError("a token name is 1-100 letters, digits, '.', '_' or '-'")
    checked = parse_role(role, domain)
    if domain and not DOMAIN.match(domain):
        raise TokenError("a domain is 1-100 letters, digits, '.', '_' or '-'")
    token = TOKEN_PREFIX + secrets.token_urlsafe(defaults.API_TOKEN_BYTES)
    with engine.begin() as conn:
        user_id = None
        if username:
            user_id = conn.execute(select(users.c.id).where(users.c.username == username)).scalar()
            if user_id is None:
                raise TokenError(f"no user {username!r}")
        try:
            conn.execute(
                insert(tokens).values(
                    name=name, token_hash=_digest(token), prefix=token[:10], role=checked, domain=domain or None,
                    user_id=user_id, created_at=utcnow(), created_by=by,
                )
            )  # fmt: skip
        except IntegrityError:
            raise TokenError(f"a token named {name!r} already exists") from None
        audit.record(conn, by, "token_create", name, {"role": checked.value, "domain": domain, "user": username})
    return token


def revoke_token(engine: Engine, name: str, *, by: str) -> None:
    with engine.begin() as conn:
        done = conn.execute(
            update(tokens).where(tokens.c.name == name, tokens.c.revoked_at.is_(None)).values(revoked_at=utcnow())
        ).rowcount
        if not done:
            raise TokenError(f"no live token named {name!r}")
        audit.record(conn, by, "token_revoke", name)


def list_tokens(engine: Engine) -> list[TokenRow]:
    query = (
        select(tokens, users.c.username)
        .select_from(tokens.outerjoin(users, users.c.id == tokens.c.user_id))
        .order_by(tokens.c.name)
    )
    with engine.connect() as conn:
        return [
            TokenRow(
                id=r.id,
                name=r.name,
                prefix=r.prefix,
                role=r.role,
                domain=r.domain,
                username=r.username,
                created_at=r.created_at,
                created_by=r.created_by,
                last_used_at=r.last_used_at,
                revoked_at=r.revoked_at,
            )
            for r in conn.execute(query)
        ]


def principal_of_token(engine: Engine, token: str) -> Principal | None:
    """The principal a live token acts as, or None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    with engine.connect() as conn:
        row = conn.execute(
            select(tokens).where(tokens.c.token_hash == _digest(token), tokens.c.revoked_at.is_(None))
        ).first()
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() >= defaults.SESSION_TOUCH_INTERVAL_S:
        with engine.begin() as conn:
            conn.execute(update(tokens).where(tokens.c.id == row.id).values(last_used_at=now))
    role = Role(row.role)
    if row.user_id is None:
        return Principal(name=f"token:{row.name}", role=role, domain=row.domain)
    owner = principal_of(engine, row.user_id)
    if owner is None:  # the owning account is disabled
        return None
    if ROLE_RANK[role] > ROLE_RANK[owner.role] or (owner.domain is not None and row.domain != owner.domain):
        # The owner was demoted or confined to a domain since: a token never reaches beyond its owner.
        return None
    return Principal(
        name=owner.name, role=role, domain=row.domain, granted_types=owner.granted_types, email=owner.email,
        user_id=owner.user_id,
    )  # fmt: skip
