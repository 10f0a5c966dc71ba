"""Runs: start one, list them (filters, keyset pages), read one and its item results."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from flask import Response

from core import defaults
from dashboard import operations
from dashboard.api.errors import ApiError, FieldProblem, invalid, param_problems
from dashboard.api.routes import Call, QueryParam, Reply, api_url, operation, reply
from dashboard.api.schemas import ITEM_STATUSES, STATUS, project, ref
from dashboard.api.validation import parse_instant, top_fields
from jobs.params import InvalidJobRequest, validate_params
from jobs.queries import items_of
from jobs.run_search import BadFilter, RunFilter, decode_cursor
from jobs.type_settings import BadRecipients, clean_addresses

MAX_ITEMS = 1000


def created_run(call: Call, run_id: str) -> Response:
    """201 with the run's id, status and where to find it."""
    detail = operations.run(call.app, call.principal, run_id)
    url = api_url("get_run", run_id=run_id)
    payload = {"id": run_id, "status": detail["status"], "url": url, "page_url": page_url(call, run_id)}
    return reply(payload, 201, location=url)


def page_url(call: Call, run_id: str) -> str:
    return f"{call.app.settings.base_url}/runs/{run_id}"


@operation(
    "POST",
    "/runs",
    summary="Start a run",
    description="Starts a run of a job type now, or at `at`. An unknown job type, or one the caller does not "
    "see, is a 422 naming `type`; every bad parameter is named as `params.<name>`, and nothing is stored. "
    "A repeated `idempotency_key` creates nothing and answers 201 with the first run; 409 when that run is "
    "one the caller cannot see.",
    tag="runs",
    body=ref("StartRun"),
    body_required=True,
    replies=(
        Reply(
            201, "The run; with a repeated `idempotency_key`, the run that key created first.", ref("RunCreated"), True
        ),
    ),
    writes=True,
    conflict=True,
)
def start_run(call: Call) -> Response:
    body, problems = call.body_and_problems()
    malformed = top_fields(problems)
    declared = None
    if "type" not in malformed:
        try:
            declared = operations.job_type(call.app, call.principal, body["type"])
        except operations.NotFound:
            problems.append(FieldProblem("type", f"unknown job type {body['type']!r}"))
    params = body.get("params") or {}
    if declared is not None and "params" not in malformed:
        try:
            validate_params(declared, params, dirs=call.app.settings.server_dirs)
        except InvalidJobRequest as exc:
            problems.extend(param_problems(exc))
    addresses: list[str] = []
    if "notify" not in malformed:
        try:
            addresses = clean_addresses(body.get("notify") or ())
        except BadRecipients as exc:
            problems.append(FieldProblem("notify", str(exc)))
    if problems or declared is None:
        raise invalid(problems)
    at = parse_instant(body["at"], naive_is_utc=False) if body.get("at") is not None else None
    run_id = operations.start(
        call.app, call.actor, declared.name, params, at=at, idempotency_key=body.get("idempotency_key"),
        notify=addresses,
    )  # fmt: skip
    try:
        return created_run(call, run_id)
    except operations.NotFound:
        raise ApiError(409, "this idempotency_key is already taken by a run you cannot see") from None


def _checked_cursor(cursor: str | None) -> str | None:
    """Refuses a cursor that would decode but not compare (naive or out-of-range instant, NUL in the id)."""
    if cursor is None:
        return None
    created_at, run_id = decode_cursor(cursor)
    try:
        if created_at.tzinfo is None or "\x00" in run_id:
            raise ValueError
        created_at.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadFilter("cursor", "not a cursor this server handed out") from None
    return cursor


@operation(
    "GET",
    "/runs",
    summary="List runs",
    description="Newest first, in pages cut by `cursor` (keyset pagination: every page costs the same). "
    "Only the runs the caller may see are listed. Naive `created_from`/`created_to` are UTC.",
    tag="runs",
    query=(
        QueryParam("type", {"type": "string"}, "only runs of these job types", repeatable=True),
        QueryParam("status", STATUS, "only runs in these statuses", repeatable=True),
        QueryParam("queue", {"type": "string"}, "only runs on this queue"),
        QueryParam("domain", {"type": "string"}, "only runs of this domain"),
        QueryParam("triggered_by", {"type": "string"}, 'who started them: a username, or "token:<name>"'),
        QueryParam("created_from", {"type": "string", "format": "date-time"}, "created at or after"),
        QueryParam("created_to", {"type": "string", "format": "date-time"}, "created before"),
        QueryParam("q", {"type": "string", "maxLength": 200}, "text in the id, type, triggered_by or error"),
        QueryParam("cursor", {"type": "string"}, "`next_cursor` of the previous page"),
        QueryParam(
            "limit",
            {
                "type": "integer",
                "minimum": 1,
                "maximum": defaults.RUNS_PAGE_SIZE_MAX,
                "default": defaults.RUNS_PAGE_SIZE,
            },
            "runs per page",
        ),
    ),
    replies=(Reply(200, "A page of runs.", ref("RunPage")),),
)
def list_runs(call: Call) -> Response:
    query = call.query
    filters = RunFilter(
        types=tuple(query.get("type", ())),
        statuses=tuple(query.get("status", ())),
        queue=query.get("queue"),
        domain=query.get("domain"),
        triggered_by=query.get("triggered_by"),
        created_from=query.get("created_from"),
        created_to=query.get("created_to"),
        text=query.get("q"),
    )
    page = operations.list_runs(
        call.app, call.principal, filters, cursor=_checked_cursor(query.get("cursor")), limit=query["limit"]
    )
    return reply({"runs": [project("RunSummary", r) for r in page.runs], "next_cursor": page.next_cursor})


@operation(
    "GET",
    "/runs/{run_id}",
    summary="Read a run",
    description="Its status, parameters (secrets masked), attempt history, logs and item counts. "
    "404 for a run the caller may not see.",
    tag="runs",
    replies=(Reply(200, "The run.", ref("RunDetail")),),
)
def get_run(call: Call, run_id: str) -> Response:
    return reply(project("RunDetail", operations.run(call.app, call.principal, run_id)))


@operation(
    "GET",
    "/runs/{run_id}/items",
    summary="A run's item results",
    description=f"In processing order; at most `limit` (up to {MAX_ITEMS}); `truncated` says whether more match.",
    tag="runs",
    query=(
        QueryParam("status", {"type": "string", "enum": list(ITEM_STATUSES)}, "only items with this outcome"),
        QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": MAX_ITEMS, "default": 100}, "at most"),
    ),
    replies=(Reply(200, "The run's item results.", ref("Items")),),
)
def list_run_items(call: Call, run_id: str) -> Response:
    operations.run(call.app, call.principal, run_id)  # 404 unless the caller may see the run
    limit: int = call.query["limit"]
    found: list[dict[str, Any]] = items_of(call.app.engine, run_id, status=call.query.get("status"), limit=limit + 1)
    return reply({"run_id": run_id, "items": found[:limit], "truncated": len(found) > limit})
