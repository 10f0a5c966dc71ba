"""Archive mode (seed 000: "once imported, can be viewed in the Archive Mode"): the runs `archive.import`
brought back into ``archived_runs``, listed apart from live runs and shown read-only (GET only, no actions).

Who sees an archived run follows the rules for live runs (dashboard/auth/roles.py): `archive_scope` is
Principal.run_scope spelled on archived_runs' columns for lists, and `Principal.sees_run` decides for one
run; a run outside the principal's view is "not found".
"""

from __future__ import annotations

from typing import Any

from flask import flash, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import ColumnElement, and_, false, or_, select, true

from core import defaults
from core.crypto import masked
from dashboard.auth.roles import Principal, Role
from dashboard.operations import NotFound
from dashboard.pages.views import jobyard, pages
from dashboard.security import current_principal
from jobs.archive_models import archived_runs_table as archived
from jobs.run_search import BadFilter, decode_cursor, encode_cursor
from jobs.status import FINAL, RunStatus

LIST_COLUMNS = (
    archived.c.id,
    archived.c.type,
    archived.c.status,
    archived.c.domain,
    archived.c.triggered_by,
    archived.c.created_at,
    archived.c.finished_at,
    archived.c.archive_file,
    archived.c.imported_at,
)
STATUSES = tuple(s.value for s in RunStatus if s in FINAL)
ITEM_STATUSES = ("ok", "failed", "skipped")
ITEMS_SHOWN = 500


def archive_scope(principal: Principal) -> ColumnElement[bool]:
    """The archived runs this principal may see: the same rules as Principal.run_scope for live runs."""
    match principal.role:
        case Role.ADMIN:
            return true()
        case Role.DOMAIN_ADMIN:
            return archived.c.domain == principal.domain
        case Role.OPERATOR:
            return archived.c.triggered_by == principal.name
        case Role.VIEWER:
            return true() if principal.domain is None else archived.c.domain == principal.domain
    return false()  # pragma: no cover - every role is matched above


def _chosen(name: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    values = tuple(v.strip() for v in request.args.getlist(name) if v.strip())
    unknown = [v for v in values if allowed is not None and v not in allowed]
    if unknown:
        raise BadFilter(name, f"{', '.join(unknown)} is not one of {', '.join(allowed or ())}")
    return values


def _page(principal: Principal, types: tuple[str, ...], statuses: tuple[str, ...], cursor: str | None) -> Any:
    query = (
        select(*LIST_COLUMNS)
        .where(archive_scope(principal))
        .order_by(archived.c.created_at.desc(), archived.c.id.desc())
        .limit(defaults.RUNS_PAGE_SIZE + 1)
    )
    if types:
        query = query.where(archived.c.type.in_(types))
    if statuses:
        query = query.where(archived.c.status.in_(statuses))
    if cursor:
        created_at, run_id = decode_cursor(cursor)
        query = query.where(
            or_(archived.c.created_at < created_at, and_(archived.c.created_at == created_at, archived.c.id < run_id))
        )
    with jobyard().engine.connect() as conn:
        return conn.execute(query).all()


def _archived_types(principal: Principal) -> list[str]:
    query = select(archived.c.type).where(archive_scope(principal)).distinct().order_by(archived.c.type)
    with jobyard().engine.connect() as conn:
        return list(conn.execute(query).scalars())


@pages.get("/archive")
def archive() -> ResponseReturnValue:
    principal = current_principal()
    rows: list[Any] = []
    older_url = None
    error: BadFilter | None = None
    try:
        types, statuses = _chosen("type"), _chosen("status", STATUSES)
        cursor = request.args.get("cursor", "").strip() or None
        rows = list(_page(principal, types, statuses, cursor))
    except BadFilter as exc:
        error = exc
        flash(f"Bad filter {exc.field}: {exc.message}", "error")
    args: dict[str, Any] = {k: request.args.getlist(k) for k in ("type", "status") if any(request.args.getlist(k))}
    if len(rows) > defaults.RUNS_PAGE_SIZE:
        rows = rows[: defaults.RUNS_PAGE_SIZE]
        older_url = url_for("pages.archive", **args, cursor=encode_cursor(rows[-1].created_at, rows[-1].id))
    context = {
        "runs": rows,
        "types": _archived_types(principal),
        "final_statuses": STATUSES,
        "chosen": {k: request.args.getlist(k) for k in ("type", "status")},
        "filter_error": error,
        "older_url": older_url,
        "newest_url": url_for("pages.archive", **args) if request.args.get("cursor") else None,
    }
    return render_template("archive.html", **context), 400 if error else 200


def _record(principal: Principal, run_id: str) -> Any:
    with jobyard().engine.connect() as conn:
        row = conn.execute(select(archived).where(archived.c.id == run_id)).first()
    if row is None or not principal.sees_run(row):
        raise NotFound(f"no archived run {run_id!r}")
    return row


def _counts(items: list[dict[str, Any]]) -> dict[str, int]:
    return {status: sum(1 for item in items if item.get("status") == status) for status in ITEM_STATUSES}


@pages.get("/archive/<string(length=32):run_id>")
def archived_run(run_id: str) -> ResponseReturnValue:
    row = _record(current_principal(), run_id)
    record: dict[str, Any] = row.record
    run = dict(record.get("run") or {})
    run["params"] = masked(run.get("params") or {})
    items = list(record.get("items") or [])
    context = {
        "row": row,
        "run": run,
        "declared": jobyard().registry.get(row.type),
        "attempts": record.get("attempts") or [],
        "logs": record.get("logs") or [],
        "items": items[:ITEMS_SHOWN],
        "item_counts": _counts(items),
        "items_shown": ITEMS_SHOWN,
        "depends_on": record.get("depends_on") or [],
    }
    return render_template("archive_run.html", **context)
