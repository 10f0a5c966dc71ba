"""Credential rotation (seed 003): a new password for an identity's domain user, e.g. when a PAM session ends.

Owns no table. It writes the vault secret ``identity:<id>:password`` (provisioning.py names it) and the
identity's ``password_expires_at`` and ``updated_at``.

The vault keeps the version being replaced as the previous one until the target accepts the new one
(`vault.confirm`). A version stored but never confirmed (the push failed, or the run died before confirming)
is pushed again, not replaced: storing another one would drop the previous version, which may be the only
password the target still accepts. So an attempt that fails leaves the target on the old password and the
vault holding both, and the next attempt (the run's own retry, Retry failed provisioning, or another run)
sends the same new one; the vault's version number rises once per rotation, however many attempts it takes.
An unconfirmed initial password (provisioning died before confirming it) is no pending rotation: it is replaced.

The type is exclusive: two rotations of one identity at once could store two versions and push them in the
other order. A self-credentialed identity (service account, API key, ...) has no domain account here: its
credential is rotated where it was issued, then stored again.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from core import defaults, vault
from core.db import utcnow
from jobs.catalog.identity import targets
from jobs.catalog.identity.models import identities_table, operations_table
from jobs.catalog.identity.provisioning import password_secret
from jobs.catalog.identity.scim_users import patch_user
from jobs.catalog.identity.targets import TargetNotFound, connect
from jobs.context import JobContext, PermanentFailure
from jobs.registry import Param, job_type

MAX_REASON = 200
ROTATE_CREDENTIAL = "identity.rotate_credential"


class BadParameter(PermanentFailure):
    """A parameter that names nothing rotatable; names the field. Nothing was changed."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")


class PushFailed(RuntimeError):
    """The target did not take the new password. Carries the cause's type and message only, with the
    password cut out should the target have echoed it, so that the attempt's record never holds it."""


def _account(ctx: JobContext, identity_id: int) -> tuple[Any, Any]:
    """The identity and its done domain-user operation; refuses every case a rotation cannot serve."""
    i, o = identities_table.c, operations_table.c
    with ctx.engine.connect() as conn:
        identity = conn.execute(select(i.id, i.user_name, i.disabled).where(i.id == identity_id)).first()
        op = conn.execute(
            select(o.target, o.remote_id, o.done_at).where(
                o.identity_id == identity_id, o.operation == "create_domain_user"
            )
        ).first()
    if identity is None:
        raise BadParameter("identity_id", f"no identity {identity_id}")
    who = f"identity {identity_id} ({identity.user_name})"
    if identity.disabled:
        raise BadParameter("identity_id", f"{who} is disabled: its credential is not rotated")
    if op is None:
        raise BadParameter(
            "identity_id",
            f"{who} has no domain account whose password Jobyard sets; a self-credentialed identity's "
            "credential is rotated where it was issued",
        )
    if op.done_at is None or op.remote_id is None:
        raise BadParameter("identity_id", f"{who} has no domain account on {op.target} yet: provisioning is not done")
    try:
        targets.get(ctx.engine, op.target)  # before a new version is stored, not after
    except TargetNotFound as exc:
        raise BadParameter("identity_id", f"{who}'s domain target is gone ({exc})") from None
    return identity, op


def _password(ctx: JobContext, name: str) -> tuple[str, int, bool]:
    """The password to push, its vault version, and whether it was stored by an earlier attempt."""
    try:
        # A rotation left pending keeps the version it replaces. An unconfirmed first version has none: it is the
        # initial password, which the target took (its domain user is done) before provisioning could confirm
        # it; sending it "again" would leave the password the rotation is meant to retire in place.
        pending = not vault.is_confirmed(ctx.engine, name) and vault.get_previous(ctx.engine, name) is not None
    except vault.SecretNotFound:
        pending = False
    if pending:
        return vault.get(ctx.engine, name), vault.version(ctx.engine, name), True
    password = secrets.token_urlsafe(defaults.GENERATED_SECRET_BYTES)
    return password, vault.put(ctx.engine, name, password, f"run:{ctx.run_id}"), False


def _push(ctx: JobContext, target: str, remote_id: str, password: str) -> None:
    try:
        with connect(ctx.engine, target) as scim:
            patch_user(scim, remote_id, {"password": password})
    except TargetNotFound as exc:
        raise PermanentFailure(f"identity_id: its domain target is gone ({exc})") from None
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".replace(password, vault.masked(password))
        # `from None`: the cause's own record (a request body, a response echoing it) stays out of the traceback.
        raise PushFailed(f"{target} did not take the new password: {reason}") from None


@job_type(
    ROTATE_CREDENTIAL,
    title="Credential rotation",
    description="Generates a new password for the identity's domain user, stores it in the vault (the old one is "
    "kept until the target confirms the new one) and sets it on the domain target; the password's expiry "
    "moves on. Started when a PAM session is checked in, or by hand. A failed attempt is retried with the "
    "same new password.",
    params=[
        Param("identity_id", int, help="The identity whose domain user gets a new password.", minimum=1),
        Param("reason", str, default="manual", help="Why the credential is rotated (e.g. pam-checkin), for the log."),
    ],
    exclusive=True,
)
def rotate_credential(ctx: JobContext, identity_id: int, reason: str) -> dict[str, Any]:
    if len(reason) > MAX_REASON or "\x00" in reason:
        raise BadParameter("reason", f"must be at most {MAX_REASON} characters, without NUL")
    identity, op = _account(ctx, identity_id)
    name = password_secret(identity_id)
    password, version, again = _password(ctx, name)
    if again:
        ctx.info(f"vault version {version} of {identity.user_name}'s password was never confirmed: sending it again")
    else:
        ctx.info(f"new password for {identity.user_name} stored as vault version {version} ({reason})")
    _push(ctx, op.target, op.remote_id, password)
    now = utcnow()
    expires_at = now + timedelta(days=defaults.PASSWORD_MAX_AGE_DAYS)
    with ctx.engine.begin() as conn:
        conn.execute(
            update(identities_table)
            .where(identities_table.c.id == identity_id)
            .values(password_expires_at=expires_at, updated_at=now)
        )
    # Confirmed last: a run dying before this leaves the version unconfirmed, and the next run resends it.
    vault.confirm(ctx.engine, name)
    ctx.info(f"{op.target} took the new password of {identity.user_name}; the previous version is dropped")
    return {
        "identity": identity.user_name, "identity_id": identity_id, "target": op.target, "reason": reason,
        "vault_version": version, "password": vault.masked(password), "sent_again": again,
        "password_expires_at": expires_at.isoformat(),
    }  # fmt: skip
