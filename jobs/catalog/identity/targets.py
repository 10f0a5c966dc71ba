"""SCIM 2.0 targets: where identities are provisioned (scim_targets rows, tokens in the vault) and how a job
reaches one (`connect`).

A target's bearer token is stored in the vault as ``scim-target:<name>``; `listed` shows it masked. `connect`
opens an httpx2 client with the token, discovers the service (schemas, resource types) and hands back a
scim2-client `SyncSCIMClient`; `call` retries one call on transient network failures with tenacity, so that
a blip costs a second, not one of the run's attempts.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import tenacity
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from core import defaults, vault
from core.db import utcnow
from jobs.catalog.identity.models import TARGET_ROLES, scim_targets_table

if TYPE_CHECKING:
    # scim2-client and scim2-models build their pydantic models at import (about a second of CPU): they are
    # imported when a SCIM call is first made, not by every process that declares the identity types.
    from scim2_client.engines.httpx2 import SyncSCIMClient
    from scim2_models import ScimProvider

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
T = TypeVar("T")


class BadTarget(ValueError):
    """A target definition Jobyard refuses; the message names the field, never the token."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class TargetNotFound(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no SCIM target named {name!r}")
        self.name = name


@dataclass(frozen=True)
class Target:
    name: str
    role: str
    base_url: str
    token_masked: str


def secret_name(target: str) -> str:
    return f"scim-target:{target}"


def _utf8(text: str) -> bool:
    """False for a lone surrogate (bytes that are not UTF-8 on a command line), which no database encodes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check(name: str, role: str, base_url: str, token: str | None) -> None:
    if not NAME_PATTERN.match(name or ""):
        raise BadTarget("name", "must be 1 to 100 lowercase letters, digits, '.', '_' or '-', starting alphanumeric")
    if role not in TARGET_ROLES:
        raise BadTarget("role", f"must be one of {', '.join(TARGET_ROLES)}, got {role!r}")
    try:
        parts = urlsplit(base_url or "")
    except ValueError:  # "http://[::1": an unclosed IPv6 host
        raise BadTarget("base_url", f"is not a URL: {base_url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or len(base_url) > 1000 or not _utf8(base_url):
        raise BadTarget("base_url", f"must be an http(s) URL with a host, got {base_url!r}")
    if parts.query or parts.fragment:
        raise BadTarget("base_url", "must not carry a query or a fragment")
    if parts.username is not None or parts.password is not None:
        # The URL is listed, audited and printed in clear: a credential goes in the token, kept in the vault.
        raise BadTarget("base_url", "must not carry a user name or password; give the token instead")
    # Sent in an HTTP header, which carries printable ASCII only: any other token would fail every run.
    if token is not None and (not token or len(token) > 4096 or any(not "!" <= c <= "~" for c in token)):
        raise BadTarget("token", "must be 1 to 4096 printable ASCII characters, without spaces or line breaks")


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def save(engine: Engine, name: str, *, role: str, base_url: str, token: str | None, by: str) -> bool:
    """Creates target `name`, or updates it; a None token keeps the stored one, as long as the target stays on
    the same scheme, host and port (else the stored token would be sent to a host it was never meant for).
    Returns True when the target is new. The row and its token commit together."""
    _check(name, role, base_url, token)
    base_url = base_url.rstrip("/")
    for _ in range(2):
        try:
            with engine.begin() as conn:
                return _save(engine, conn, name, role, base_url, token, by)
        except IntegrityError:
            continue  # created meanwhile by another save: the second pass updates it
    raise BadTarget("name", "is being saved by someone else at this moment; try again")


def _save(engine: Engine, conn: Connection, name: str, role: str, base_url: str, token: str | None, by: str) -> bool:
    c = scim_targets_table.c
    current = conn.execute(select(c.base_url).where(c.name == name).with_for_update()).first()
    if token is None:
        if current is None:
            raise BadTarget("token", "is required for a new target")
        if _origin(current.base_url) != _origin(base_url):
            raise BadTarget("token", "is required again when the target moves to another host: the stored one stays")
    else:
        vault.put(engine, secret_name(name), token, by, conn=conn)
        vault.confirm(engine, secret_name(name), conn=conn)  # an operator's token is not rotated: nothing to keep
    now = utcnow()
    if current is not None:
        conn.execute(
            update(scim_targets_table)
            .where(c.name == name)
            .values(role=role, base_url=base_url, updated_at=now, updated_by=by)
        )
        return False
    conn.execute(
        insert(scim_targets_table).values(
            name=name, role=role, base_url=base_url, created_at=now, updated_at=now, updated_by=by
        )
    )
    return True


def remove(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        if not conn.execute(delete(scim_targets_table).where(scim_targets_table.c.name == name)).rowcount:
            raise TargetNotFound(name)
    vault.delete(engine, secret_name(name))


def get(engine: Engine, name: str) -> Target:
    c = scim_targets_table.c
    with engine.connect() as conn:
        row = conn.execute(select(c.name, c.role, c.base_url).where(c.name == name)).first()
    if row is None:
        raise TargetNotFound(name)
    return Target(row.name, row.role, row.base_url, _masked_token(engine, row.name))


def listed(engine: Engine, role: str | None = None) -> list[Target]:
    c = scim_targets_table.c
    query = select(c.name, c.role, c.base_url).order_by(c.name)
    if role is not None:
        query = query.where(c.role == role)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [Target(r.name, r.role, r.base_url, _masked_token(engine, r.name)) for r in rows]


def _masked_token(engine: Engine, name: str) -> str:
    try:
        return vault.masked(vault.get(engine, secret_name(name)))
    except vault.SecretNotFound:
        return "(missing)"


@contextmanager
def connect(engine: Engine, name: str, *, timeout_s: float = defaults.SCIM_TIMEOUT_S) -> Iterator[SyncSCIMClient]:
    """A SCIM client for target `name`, its service discovered (at most every SCIM_DISCOVERY_TTL_S per process
    and base URL); closed on leaving the block."""
    import httpx2
    from scim2_client.engines.httpx2 import SyncSCIMClient

    target = get(engine, name)
    token = vault.get(engine, secret_name(name))
    with httpx2.Client(
        base_url=target.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s
    ) as http:
        known = _discovered.get(target.base_url)
        if known is not None and time.monotonic() - known[0] < defaults.SCIM_DISCOVERY_TTL_S:
            scim = SyncSCIMClient(http, provider=known[1])
        else:
            scim = SyncSCIMClient(http)
            call(scim.discover)
            _discovered[target.base_url] = (time.monotonic(), scim.provider)
        yield scim


# What each target's service said of itself (schemas, resource types, configuration), per process: discovery
# is three requests and most of a provisioning run's time against a fast target. Holds no connection.
_discovered: dict[str, tuple[float, ScimProvider]] = {}


def call(operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Runs one SCIM call, retrying network failures (not SCIM errors, which another try would repeat)."""
    from scim2_client import RequestNetworkException

    for attempt in tenacity.Retrying(
        stop=tenacity.stop_after_attempt(defaults.SCIM_CALL_TRIES),
        wait=tenacity.wait_exponential(multiplier=defaults.SCIM_CALL_BACKOFF_S),
        retry=tenacity.retry_if_exception_type(RequestNetworkException),
        reraise=True,
    ):
        with attempt:
            return operation(*args, **kwargs)
    raise AssertionError("unreachable: tenacity reraises the last failure")
