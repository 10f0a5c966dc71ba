"""Create domain user and Provision identity provider user (seed 003): one run per (identity, target).

Both are idempotent: an operation already done returns at once, and a user the target already holds under
the identity's userName with this identity's externalId (``jobyard:<id>``) is taken over rather than created
twice (a previous attempt created it and died before recording it). A user of that name that Jobyard did
not create is refused (the run fails at once, naming it), unless the identity was read from that very
target by Directory sync: then the account is the directory's own, and keeps its own password.

A domain user's initial password is generated once and kept in the vault as
``identity:<id>:password`` before it is sent, so every attempt sends the same one. A target's error quoting
it (a password policy check may) is recorded with the password masked, in the operation and the attempt alike.
"""

from __future__ import annotations

import secrets
import traceback
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, select, update

from core import defaults, vault
from core.db import utcnow
from jobs.catalog.identity import identities
from jobs.catalog.identity.models import identities_table, operations_table
from jobs.catalog.identity.scim_users import ForeignAccount, ensure_user
from jobs.catalog.identity.targets import TargetNotFound, connect
from jobs.context import JobContext, PermanentFailure
from jobs.registry import Param, job_type

PARAMS = [
    Param("identity_id", int, help="The identity to provision.", minimum=1),
    Param("target", str, help="The SCIM target (its name) to provision it on."),
]


class ProvisioningFailed(RuntimeError):
    """The target refused the user and its answer quoted the initial password (a password policy check may):
    the same failure, with the password masked and the cause, which holds it, left out."""


def password_secret(identity_id: int) -> str:
    return f"identity:{identity_id}:password"


def _identity(ctx: JobContext, identity_id: int, operation: str, target: str) -> tuple[Row[Any], Row[Any]]:
    i, o = identities_table.c, operations_table.c
    with ctx.engine.connect() as conn:
        identity = conn.execute(select(identities_table).where(i.id == identity_id)).first()
        op = conn.execute(
            select(operations_table).where(o.identity_id == identity_id, o.operation == operation, o.target == target)
        ).first()
    if identity is None:
        raise PermanentFailure(f"identity_id: no identity {identity_id}")
    if op is None:
        raise PermanentFailure(f"identity {identity.user_name} has no {operation} operation on target {target!r}")
    return identity, op


def _attributes(identity: Row[Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "user_name": identity.user_name,
        "external_id": f"jobyard:{identity.id}",
        "active": not identity.disabled,
    }
    if identity.display_name:
        attributes["display_name"] = identity.display_name
    if identity.email:
        attributes["emails"] = [{"value": identity.email, "primary": True, "type": "work"}]
    if identity.title:
        attributes["title"] = identity.title
    return attributes


def _initial_password(ctx: JobContext, identity_id: int) -> str:
    name = password_secret(identity_id)
    try:
        return vault.get(ctx.engine, name)
    except vault.SecretNotFound:
        password = secrets.token_urlsafe(defaults.GENERATED_SECRET_BYTES)
        vault.put(ctx.engine, name, password, f"run:{ctx.run_id}")
        return password


def provision(ctx: JobContext, identity_id: int, target: str, operation: str) -> dict[str, Any]:
    identity, op = _identity(ctx, identity_id, operation, target)
    if op.done_at is not None:
        ctx.info(f"{identity.user_name} already has its account on {target} ({op.remote_id}); nothing to do")
        return {"identity": identity.user_name, "target": target, "remote_id": op.remote_id, "changed": False}
    attributes = _attributes(identity)
    with_password = operation == "create_domain_user"
    password = _initial_password(ctx, identity_id) if with_password else None
    if password is not None:
        attributes["password"] = password
    try:
        with connect(ctx.engine, target) as scim:
            ensured = ensure_user(scim, attributes, adopt_foreign=identity.source == f"directory:scim:{target}")
    except TargetNotFound as exc:
        raise PermanentFailure(f"target: {exc}") from None
    except ForeignAccount as exc:
        _record_error(ctx, identity_id, operation, target, str(exc))
        raise PermanentFailure(f"{target}: {exc}") from None
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        quoted = password is not None and password in "".join(traceback.format_exception(exc))
        if password is not None:
            reason = reason.replace(password, vault.masked(password))
        _record_error(ctx, identity_id, operation, target, reason)
        if quoted:  # the attempt's record (message, traceback) must not hold it either
            raise ProvisioningFailed(f"{target} refused {identity.user_name}: {reason}") from None
        raise
    remote_id, created = ensured.remote_id, ensured.created
    # A directory's own account keeps its own password: the generated one was never sent, so it is dropped.
    with_password = with_password and not ensured.foreign
    now = utcnow()
    with ctx.engine.begin() as conn:
        provisioned = identities.mark_done(conn, identity_id, operation, target, remote_id)
        if with_password:
            conn.execute(
                update(identities_table)
                .where(identities_table.c.id == identity_id)
                .values(
                    credential_secret=password_secret(identity_id),
                    password_expires_at=now + timedelta(days=defaults.PASSWORD_MAX_AGE_DAYS),
                    updated_at=now,
                )
            )
    if with_password:
        vault.confirm(ctx.engine, password_secret(identity_id))
    elif password is not None:
        vault.delete(ctx.engine, password_secret(identity_id))
    verb = "created" if created else "took over the directory's own" if ensured.foreign else "found its existing"
    ctx.info(f"{verb} user {identity.user_name} on {target} ({remote_id})")
    if provisioned:
        ctx.info(f"{identity.user_name} is provisioned")
    return {
        "identity": identity.user_name, "target": target, "remote_id": remote_id, "changed": created,
        "provisioned": provisioned,
    }  # fmt: skip


def _record_error(ctx: JobContext, identity_id: int, operation: str, target: str, reason: str) -> None:
    o = operations_table.c
    with ctx.engine.begin() as conn:
        conn.execute(
            update(operations_table)
            .where(o.identity_id == identity_id, o.operation == operation, o.target == target)
            .values(last_error=reason[:2000], run_id=ctx.run_id)
        )


@job_type(
    "identity.create_domain_user",
    title="Create domain user",
    description="Creates the identity's user on its domain target (a directory such as Google Workspace), with a "
    "generated initial password kept in the vault. Started when a human interactive or managed shared "
    "credential identity is created on a domain platform.",
    params=PARAMS,
)
def create_domain_user(ctx: JobContext, identity_id: int, target: str) -> dict[str, Any]:
    return provision(ctx, identity_id, target, "create_domain_user")


@job_type(
    "identity.provision_idp_user",
    title="Provision identity provider user",
    description="Provisions the identity's single sign-on user in the identity provider. Started when a human "
    "interactive identity is created.",
    params=PARAMS,
)
def provision_idp_user(ctx: JobContext, identity_id: int, target: str) -> dict[str, Any]:
    return provision(ctx, identity_id, target, "provision_idp_user")
