"""What a principal may do with identities and SCIM targets, done: role checks, the action, the audit trail.

The pages (dashboard/pages/identities.py, targets.py), the API (dashboard/api/identities.py, targets.py) and the
CLI (core/cli/identity.py) call these, as they call dashboard/operations.py for runs, and get its `NotFound`,
`Forbidden` and `Conflict`. Only admins see or change SCIM targets, whose tokens open other systems.

Identities belong to no domain, so, like /metrics, they are not shown to a principal limited to one (a domain
admin, a viewer with a domain): the list and every identity answer 403 (Forbidden), checked before any lookup
so that whether an identity exists is not revealed. Admins, operators and other viewers read them.

Admins create and import identities. An operator acts on the job types granted to them (DESIGN.md): importing
needs a grant on identity.bulk_import, and creating an identity a grant on every provisioning job type its plan
starts (`identities.plan` -> `identities.OPERATION_TYPES`). A self-credentialed identity starts no run but
stores a credential: it needs a grant on at least one provisioning job type, i.e. an operator trusted to
provision identities. Nothing here hands out a secret in clear: an identity shows whether it holds a
credential, a target its masked token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.exc import IntegrityError

from dashboard.auth import audit
from dashboard.auth.roles import Principal, Role
from dashboard.operations import Actor, Conflict, Forbidden, NotFound
from jobs.catalog.identity import identities, targets, uploads
from jobs.catalog.identity.identities import OPERATION_TYPES, PROVISIONING_TYPES, Created, IdentityExists, NewIdentity
from jobs.catalog.identity.models import identities_table, operations_table
from jobs.enqueue import enqueue
from jobs.models import runs_table
from jobs.params import InvalidJobRequest

if TYPE_CHECKING:
    from core.app import Jobyard

IDENTITY_WRITERS = frozenset({Role.ADMIN, Role.OPERATOR})
DISPLAY_STATUSES = ("provisioned", "pending", "retrying", "failed", "disabled")
BULK_IMPORT_TYPE = "identity.bulk_import"
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# What a listed identity carries; the credential is never one of them, only whether there is one.
IDENTITY_FIELDS = (
    "id", "user_name", "display_name", "email", "identity_type", "platform", "department", "title", "status",
    "display_status", "disabled", "source", "has_credential", "password_expires_at", "created_at", "created_by",
    "updated_at", "provisioned_at",
)  # fmt: skip

_i, _o, _r = identities_table.c, operations_table.c, runs_table.c


@dataclass(frozen=True)
class IdentityFilter:
    status: str | None = None  # a display status
    identity_type: str | None = None
    text: str | None = None  # part of the user name, any case


@dataclass
class IdentityPage:
    identities: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: int | None = None  # the `before_id` of the next page


@dataclass(frozen=True)
class ImportStarted:
    upload_id: int
    run_id: str


def _audit(app: Jobyard, actor: Actor, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    audit.record(app.engine, actor.name, action, target, detail, actor.remote_addr)


def may_read_identities(principal: Principal) -> bool:
    return not principal.limited_to_domain


def require_reader(principal: Principal) -> None:
    if not may_read_identities(principal):
        raise Forbidden(f"a {principal.role.value} of domain {principal.domain} may not read identities, which "
                        "belong to no domain")  # fmt: skip


def require_writer(principal: Principal) -> None:
    if principal.role not in IDENTITY_WRITERS:
        raise Forbidden(f"a {principal.role.value} may not create or import identities")


def _granted(app: Jobyard, principal: Principal, type_name: str) -> bool:
    """May start `type_name`, as starting a run checks it (admins: any declared type; operators: their grants)."""
    declared = app.registry.get(type_name)
    return declared is not None and principal.may_start(declared)


def may_create_identities(app: Jobyard, principal: Principal) -> bool:
    """Admins; operators granted at least one provisioning job type (which ones the identity needs is checked
    when it is created)."""
    return principal.role in IDENTITY_WRITERS and (
        principal.is_admin or any(_granted(app, principal, t) for t in PROVISIONING_TYPES)
    )


def may_import_identities(app: Jobyard, principal: Principal) -> bool:
    return principal.role in IDENTITY_WRITERS and (principal.is_admin or _granted(app, principal, BULK_IMPORT_TYPE))


def require_creator(app: Jobyard, principal: Principal) -> None:
    require_writer(principal)
    if not may_create_identities(app, principal):
        raise Forbidden(f"{principal.name} may not create identities: no grant on {' or '.join(PROVISIONING_TYPES)}")


def require_importer(app: Jobyard, principal: Principal) -> None:
    require_writer(principal)
    if not may_import_identities(app, principal):
        raise Forbidden(f"{principal.name} may not import identities: no grant on {BULK_IMPORT_TYPE}")


def _require_grants_for(app: Jobyard, principal: Principal, new: NewIdentity) -> None:
    """Refuses an operator the identity whose provisioning would start a job type not granted to them; raises
    BadIdentity first for a request `plan` refuses."""
    require_creator(app, principal)
    if principal.is_admin:
        return
    with app.engine.connect() as conn:
        planned = identities.plan(conn, new)
    needed = sorted({OPERATION_TYPES[operation] for operation, _ in planned.operations})
    missing = [t for t in needed if not _granted(app, principal, t)]
    if missing:
        raise Forbidden(f"{principal.name} may not start {', '.join(missing)}, which provisioning this identity needs")


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("only admins manage SCIM targets")


# Identities


def _open_run_in(*statuses: str) -> ColumnElement[bool]:
    """The identity has an operation not yet done whose run is in one of `statuses`."""
    joined = operations_table.join(runs_table, _r.id == _o.run_id)
    return exists(
        select(_o.id).select_from(joined).where(_o.identity_id == _i.id, _o.done_at.is_(None), _r.status.in_(statuses))
    )


def status_condition(status: str) -> ColumnElement[bool]:
    """`identities.display_status` as SQL, so that a status filter pages like any other."""
    if status == "disabled":
        return _i.disabled.is_(True)
    enabled = _i.disabled.is_(False)
    if status == "provisioned":
        return and_(enabled, _i.status == "provisioned")
    unfinished = and_(enabled, _i.status != "provisioned")
    stopped = identities.STOPPED_RUN_STATUSES
    if status == "failed":
        return and_(unfinished, _open_run_in(*stopped))
    if status == "retrying":
        return and_(unfinished, ~_open_run_in(*stopped), _open_run_in("retrying"))
    if status == "pending":
        return and_(unfinished, ~_open_run_in(*stopped, "retrying"))
    raise ValueError(f"unknown display status {status!r}")


def _open_run_statuses(conn: Any, ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {i: [] for i in ids}
    if not ids:
        return found
    joined = operations_table.join(runs_table, _r.id == _o.run_id)
    rows = conn.execute(
        select(_o.identity_id, _r.status).select_from(joined).where(_o.identity_id.in_(ids), _o.done_at.is_(None))
    )
    for row in rows:
        found[row.identity_id].append(row.status)
    return found


def _shown(row: Any, open_statuses: list[str]) -> dict[str, Any]:
    values = dict(row._mapping)
    values["has_credential"] = values.pop("credential_secret") is not None
    values["display_status"] = identities.display_status(row.status, open_statuses, bool(row.disabled))
    values["disabled"] = bool(row.disabled)
    return {name: values[name] for name in IDENTITY_FIELDS}


def list_identities(
    app: Jobyard,
    principal: Principal,
    filters: IdentityFilter,
    *,
    before_id: int | None = None,
    limit: int = PAGE_SIZE,
) -> IdentityPage:
    """Newest first, `limit` at a time; `next_cursor` continues."""
    require_reader(principal)
    query = select(identities_table).order_by(_i.id.desc()).limit(limit + 1)
    if filters.status:
        query = query.where(status_condition(filters.status))
    if filters.identity_type:
        query = query.where(_i.identity_type == filters.identity_type)
    if filters.text:
        query = query.where(func.lower(_i.user_name).contains(filters.text.lower(), autoescape=True))
    if before_id is not None:
        query = query.where(_i.id < before_id)
    with app.engine.connect() as conn:
        rows = conn.execute(query).all()
        page = rows[:limit]
        statuses = _open_run_statuses(conn, [r.id for r in page])
    shown = [_shown(r, statuses[r.id]) for r in page]
    return IdentityPage(shown, page[-1].id if len(rows) > limit else None)


def identity(app: Jobyard, principal: Principal, identity_id: int) -> dict[str, Any]:
    """One identity with its provisioning operations and their runs."""
    require_reader(principal)
    joined = operations_table.outerjoin(runs_table, _r.id == _o.run_id)
    with app.engine.connect() as conn:
        row = conn.execute(select(identities_table).where(_i.id == identity_id)).first()
        if row is None:
            raise NotFound(f"no identity {identity_id}")
        operations = conn.execute(
            select(_o.operation, _o.target, _o.remote_id, _o.done_at, _o.last_error, _o.run_id, _r.status)
            .select_from(joined)
            .where(_o.identity_id == identity_id)
            .order_by(_o.id)
        ).all()
    open_statuses = [op.status for op in operations if op.done_at is None and op.status is not None]
    return {
        **_shown(row, open_statuses),
        "operations": [_operation(op) for op in operations],
    }


def _operation(op: Any) -> dict[str, Any]:
    return {
        "operation": op.operation, "target": op.target, "remote_id": op.remote_id, "done_at": op.done_at,
        "last_error": op.last_error, "run_id": op.run_id, "run_status": op.status,
    }  # fmt: skip


def check_identity(app: Jobyard, actor: Actor, new: NewIdentity) -> None:
    """Raises BadIdentity naming every problem `create_identity` would refuse; stores nothing."""
    require_creator(app, actor.principal)
    identities.create(app, new, by=actor.name, dry_run=True)


def create_identity(app: Jobyard, actor: Actor, new: NewIdentity) -> Created:
    """Creates an identity and starts its provisioning (identities.create); raises BadIdentity, IdentityExists,
    Forbidden (a role that does not create identities, an operator not granted a job type it would start)."""
    _require_grants_for(app, actor.principal, new)
    try:
        created = identities.create(app, new, by=actor.name, source="manual")
    except IntegrityError:  # the same name created at the same moment by someone else
        raise IdentityExists(new.user_name) from None
    detail = {"user_name": new.user_name, "identity_type": new.identity_type, "status": created.status,
              "runs": created.runs}  # fmt: skip
    _audit(app, actor, "identity_create", str(created.identity_id), detail)
    return created


def start_import(
    app: Jobyard, actor: Actor, filename: str, data: bytes, *, dry_run: bool, continue_on_error: bool
) -> ImportStarted:
    """Stores an uploaded CSV file and starts Bulk import on it; raises uploads.BadUpload before storing."""
    require_writer(actor.principal)
    if BULK_IMPORT_TYPE not in app.registry:
        raise Conflict(f"job type {BULK_IMPORT_TYPE} is not declared on this installation")
    require_importer(app, actor.principal)
    upload_id = uploads.store(app.engine, filename, data, actor.name)
    params = {"upload_id": upload_id, "dry_run": dry_run, "continue_on_error": continue_on_error}
    try:
        run_id = enqueue(BULK_IMPORT_TYPE, params, triggered_by=actor.name, app=app)
    except InvalidJobRequest:
        uploads.discard(app.engine, upload_id)  # refused before anything was queued: no run will read it
        raise
    _audit(app, actor, "identity_import", run_id, {"upload_id": upload_id, "filename": filename, **params})
    return ImportStarted(upload_id, run_id)


# SCIM targets


def list_targets(app: Jobyard, principal: Principal) -> list[targets.Target]:
    require_admin(principal)
    return targets.listed(app.engine)


def target(app: Jobyard, principal: Principal, name: str) -> targets.Target:
    require_admin(principal)
    try:
        return targets.get(app.engine, name)
    except targets.TargetNotFound as exc:
        raise NotFound(str(exc)) from None


def save_target(app: Jobyard, actor: Actor, name: str, *, role: str, base_url: str, token: str | None) -> bool:
    """Creates or updates a target (a None token keeps the stored one); True when new. Raises BadTarget."""
    require_admin(actor.principal)
    created = targets.save(app.engine, name, role=role, base_url=base_url, token=token, by=actor.name)
    detail = {"role": role, "base_url": base_url.rstrip("/"), "created": created, "token_changed": token is not None}
    _audit(app, actor, "target_save", name, detail)
    return created


def remove_target(app: Jobyard, actor: Actor, name: str) -> None:
    require_admin(actor.principal)
    try:
        targets.remove(app.engine, name)
    except targets.TargetNotFound as exc:
        raise NotFound(str(exc)) from None
    _audit(app, actor, "target_remove", name)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
