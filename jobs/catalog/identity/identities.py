"""Identities and what provisioning them takes (seed 003).

`create` is the one way an identity comes to be (the API, the CLI, Bulk import and JML automation all call
it). It applies seed 003's table:

================================  ===================  ==============  ======================================
identity type                     domain user          SSO user        result
================================  ===================  ==============  ======================================
human_interactive                 on a domain target   yes             provisioning runs, then ``provisioned``
shared_managed                    yes (domain target)  no              a provisioning run
shared_external, service_account  no                   no              credential stored in the vault,
api_key, oauth_client                                                  ``provisioned`` at once
================================  ===================  ==============  ======================================

The identity row, its provisioning operations and their runs are written in one transaction (enqueue with
the caller's session), so a crash leaves either all of them or none; a self-credentialed identity's
credential is written to the vault in that transaction too.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import vault
from core.db import utcnow
from jobs.catalog.identity.models import identities_table, operations_table, scim_targets_table
from jobs.enqueue import enqueue
from jobs.params import FieldError

if TYPE_CHECKING:
    from core.app import Jobyard

SELF_CREDENTIALED = ("shared_external", "service_account", "api_key", "oauth_client")
IDENTITY_TYPES = ("human_interactive", "shared_managed", *SELF_CREDENTIALED)
# Provisioning operation -> the job type that performs it.
OPERATION_TYPES = {
    "create_domain_user": "identity.create_domain_user",
    "provision_idp_user": "identity.provision_idp_user",
}
PROVISIONING_TYPES = tuple(OPERATION_TYPES.values())
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}$")
MAX_TEXT = 200
MAX_PLATFORM = 100
MAX_CREDENTIAL = 16_384
# Run statuses after which nothing more happens to an operation unless a person retries it: shown as failed.
STOPPED_RUN_STATUSES = ("failed", "cancelled")


class BadIdentity(ValueError):
    """A request `create` refuses; every bad field is named, and nothing was stored."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("invalid identity: " + "; ".join(str(e) for e in errors))


class IdentityExists(BadIdentity):
    def __init__(self, user_name: str) -> None:
        super().__init__([FieldError("user_name", f"an identity named {user_name!r} already exists")])
        self.user_name = user_name


@dataclass(frozen=True)
class NewIdentity:
    user_name: str
    identity_type: str
    display_name: str | None = None
    email: str | None = None
    platform: str | None = None
    department: str | None = None
    title: str | None = None
    # The identity's own credential (JSON key, API key, client secret, shared password); self-credentialed only.
    credential: str | None = field(default=None, repr=False)
    # The identity provider target for the SSO user; needed only when more than one is configured.
    idp_target: str | None = None


@dataclass(frozen=True)
class Created:
    identity_id: int
    status: str
    runs: dict[str, str]  # operation -> run id


@dataclass(frozen=True)
class Plan:
    operations: list[tuple[str, str]]  # (operation, target)


def _unstorable(value: str) -> bool:
    """NUL (PostgreSQL refuses it) or a lone surrogate (bytes that are not UTF-8 on a command line), which no
    database encodes."""
    if "\x00" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _text(errors: list[FieldError], name: str, value: Any, *, required: bool = False) -> None:
    if value is None or value == "":
        if required:
            errors.append(FieldError(name, "is required"))
        return
    if not isinstance(value, str):
        errors.append(FieldError(name, "must be a string"))
    elif len(value) > MAX_TEXT or _unstorable(value):
        errors.append(FieldError(name, f"must be at most {MAX_TEXT} characters of UTF-8 text, without NUL"))


def _roles(conn: Connection) -> dict[str, str]:
    c = scim_targets_table.c
    return {row.name: row.role for row in conn.execute(select(c.name, c.role))}


def plan(conn: Connection, new: NewIdentity) -> Plan:
    """What provisioning `new` takes; raises BadIdentity naming every field that makes it impossible."""
    errors: list[FieldError] = []
    if not isinstance(new.user_name, str) or not USER_NAME.match(new.user_name):
        errors.append(FieldError("user_name", "must be 1 to 200 letters, digits or . _ @ + -, starting alphanumeric"))
    if new.identity_type not in IDENTITY_TYPES:
        errors.append(FieldError("identity_type", f"must be one of {', '.join(IDENTITY_TYPES)}"))
    for name in ("display_name", "platform", "department", "title", "idp_target"):
        _text(errors, name, getattr(new, name))
    if isinstance(new.platform, str) and MAX_PLATFORM < len(new.platform) <= MAX_TEXT:  # identities.platform
        errors.append(FieldError("platform", f"must be at most {MAX_PLATFORM} characters"))
    email = new.email
    # No space, control character or lone surrogate (isprintable): the address goes into a mail's To: header
    # (password expiry warning), and into the database.
    if email and (not isinstance(email, str) or "@" not in email or " " in email or not email.isprintable()
                  or len(email) > 320):  # fmt: skip
        errors.append(FieldError("email", f"is not an email address: {new.email!r}"))
    self_credentialed = new.identity_type in SELF_CREDENTIALED
    if self_credentialed:
        if not isinstance(new.credential, str) or not new.credential.strip():
            errors.append(FieldError("credential", f"is required for a {new.identity_type} identity"))
        elif len(new.credential) > MAX_CREDENTIAL or _unstorable(new.credential):
            errors.append(FieldError("credential", f"must be at most {MAX_CREDENTIAL} characters of UTF-8 text"))
    elif new.credential:
        problem = f"is not taken for a {new.identity_type} identity (provisioning sets it)"
        errors.append(FieldError("credential", problem))
    if errors:
        raise BadIdentity(errors)
    roles = _roles(conn)
    operations: list[tuple[str, str]] = []
    on_domain = new.platform is not None and roles.get(new.platform) == "domain"
    if new.identity_type == "shared_managed" and not on_domain:
        errors.append(FieldError("platform", "a managed shared credential needs a platform that is a domain target"))
    if new.identity_type in ("human_interactive", "shared_managed") and on_domain:
        operations.append(("create_domain_user", str(new.platform)))
    if new.identity_type == "human_interactive":
        providers = sorted(name for name, role in roles.items() if role == "idp")
        if new.idp_target is not None:
            if new.idp_target not in providers:
                errors.append(FieldError("idp_target", f"no identity provider target named {new.idp_target!r}"))
            else:
                operations.append(("provision_idp_user", new.idp_target))
        elif len(providers) == 1:
            operations.append(("provision_idp_user", providers[0]))
        elif not providers:
            errors.append(FieldError("identity_type", "a human interactive identity needs an identity provider target"))
        else:
            errors.append(FieldError("idp_target", f"is required: several identity providers ({', '.join(providers)})"))
    if errors:
        raise BadIdentity(errors)
    return Plan(operations)


def _taken(conn: Connection, user_name: str) -> bool:
    c = identities_table.c
    return conn.execute(select(c.id).where(c.user_name_folded == user_name.lower())).first() is not None


def create(
    app: Jobyard,
    new: NewIdentity,
    *,
    by: str,
    source: str = "manual",
    session: Session | None = None,
    dry_run: bool = False,
) -> Created:
    """Creates `new` and starts its provisioning; see the module's table. With `session`, the rows and runs
    commit with the caller's transaction. With `dry_run`, checks everything and stores nothing."""
    if session is not None:
        return _create(app, new, by=by, source=source, session=session, dry_run=dry_run)
    with Session(app.engine) as own, own.begin():
        return _create(app, new, by=by, source=source, session=own, dry_run=dry_run)


def _create(app: Jobyard, new: NewIdentity, *, by: str, source: str, session: Session, dry_run: bool) -> Created:
    conn = session.connection()
    planned = plan(conn, new)
    if _taken(conn, new.user_name):
        raise IdentityExists(new.user_name)
    if dry_run:
        return Created(0, "provisioned" if not planned.operations else "pending", {})
    now = utcnow()
    status = "pending" if planned.operations else "provisioned"
    try:
        # A savepoint: the same name created meanwhile by another transaction (the check above could not see it)
        # undoes this identity and its credential alone, and the caller's transaction stays usable.
        with session.begin_nested():
            secret: str | None = None
            if new.identity_type in SELF_CREDENTIALED:
                assert new.credential is not None
                secret = f"identity:{uuid.uuid4().hex}:credential"
                vault.put(app.engine, secret, new.credential, by, conn=conn)  # commits or rolls back with it
            identity_id = conn.execute(
                insert(identities_table)
                .values(
                    user_name=new.user_name, user_name_folded=new.user_name.lower(),
                    display_name=new.display_name or None, email=new.email or None,
                    identity_type=new.identity_type, platform=new.platform or None,
                    department=new.department or None, title=new.title or None, status=status, disabled=False,
                    source=source, credential_secret=secret, password_expires_at=None, created_at=now,
                    created_by=by, updated_at=now, provisioned_at=None if planned.operations else now,
                )
                .returning(identities_table.c.id)
            ).scalar_one()  # fmt: skip
    except IntegrityError:  # user_name_folded is the one unique column, and the secret's name is new
        raise IdentityExists(new.user_name) from None
    runs: dict[str, str] = {}
    for operation, target in planned.operations:
        run_id = enqueue(
            OPERATION_TYPES[operation], {"identity_id": identity_id, "target": target}, session=session,
            triggered_by=by, idempotency_key=f"identity:{identity_id}:{operation}:{target}", app=app,
        )  # fmt: skip
        conn.execute(
            insert(operations_table).values(identity_id=identity_id, operation=operation, target=target, run_id=run_id)
        )
        runs[operation] = run_id
    return Created(int(identity_id), status, runs)


def mark_done(conn: Connection, identity_id: int, operation: str, target: str, remote_id: str) -> bool:
    """Records an operation as done and the identity as provisioned once all of its operations are; returns
    whether the identity is now provisioned. Locks the identity row first, so that two operations finishing
    at once cannot both miss the other's completion."""
    i, o = identities_table.c, operations_table.c
    conn.execute(select(i.id).where(i.id == identity_id).with_for_update()).first()
    now = utcnow()
    conn.execute(
        update(operations_table)
        .where(o.identity_id == identity_id, o.operation == operation, o.target == target)
        .values(remote_id=remote_id, done_at=now, last_error=None)
    )
    pending = conn.execute(select(func.count()).where(o.identity_id == identity_id, o.done_at.is_(None))).scalar_one()
    if pending:
        return False
    conn.execute(
        update(identities_table)
        .where(i.id == identity_id, i.status != "provisioned")
        .values(status="provisioned", provisioned_at=now, updated_at=now)
    )
    return True


def display_status(status: str, run_statuses: list[str], disabled: bool) -> str:
    """What a page shows for an identity: disabled, provisioned, failed (a provisioning run failed or was
    cancelled, and no retry is under way), retrying, or pending."""
    if disabled:
        return "disabled"
    if status == "provisioned":
        return "provisioned"
    if any(run_status in STOPPED_RUN_STATUSES for run_status in run_statuses):
        return "failed"
    if "retrying" in run_statuses:
        return "retrying"
    return "pending"
