"""Schedules, one per job type: read, create or replace, remove, enable, disable, run now."""

from __future__ import annotations

from typing import Any

from flask import Response

from core.db import utcnow
from dashboard import operations
from dashboard.api.errors import FieldProblem, invalid, invalid_field, param_problems
from dashboard.api.job_types import trigger_out
from dashboard.api.routes import Call, Reply, api_url, operation, reply
from dashboard.api.runs import created_run
from dashboard.api.schemas import ref
from dashboard.api.validation import top_fields
from jobs.params import InvalidJobRequest, validate_params
from jobs.registry import JobType
from jobs.type_settings import BadRecipients, clean_addresses
from scheduler import triggers
from scheduler.schedules import ScheduleRow
from scheduler.triggers import Trigger, TriggerError

SCHEDULE_FIELDS = ("type", "mode", "params", "next_run_at", "last_run_id", "last_fired_at", "misfires",
                   "last_misfire_at", "changed_at", "changed_by")  # fmt: skip


def schedule_out(call: Call, row: ScheduleRow) -> dict[str, Any]:
    plain = row.as_dict()
    return {
        **{name: plain[name] for name in SCHEDULE_FIELDS},
        "trigger": trigger_out(row.trigger),
        "report_to": list(operations.report_to(call.app, call.principal, row.type)),
    }


def build_trigger(spec: dict[str, Any]) -> tuple[Trigger | None, list[FieldProblem]]:
    """The trigger a body describes, checked to come due computably (a cron naming February 30th, an
    interval or instant outside the calendar's range), or the problems with it."""
    kind, value, timezone = spec["kind"], str(spec["value"]), spec.get("timezone") or "UTC"
    try:
        triggers.zone(timezone)
    except (TriggerError, OSError):  # OSError: zoneinfo reading a directory, or an over-long name
        return None, [FieldProblem("trigger.timezone", f"unknown timezone {timezone!r}")]
    try:
        trigger = triggers.build(kind, value, timezone)
        trigger.first_due(utcnow())
    except TriggerError as exc:
        return None, [FieldProblem("trigger.value", str(exc))]
    except OverflowError:
        return None, [FieldProblem("trigger.value", f"{value!r} is out of range")]
    except ValueError as exc:
        return None, [FieldProblem("trigger.value", f"{value!r} never comes due ({exc})")]
    return trigger, []


def _configurable(call: Call, type_name: str) -> JobType:
    """404 or 403 before the body is read, whatever it holds; the service layer checks again."""
    declared = operations.job_type(call.app, call.principal, type_name)
    if not call.principal.may_configure(declared):
        raise operations.Forbidden(f"{call.principal.name} may not change the schedule of {type_name}")
    return declared


@operation(
    "GET",
    "/schedules",
    summary="List schedules",
    description="The schedules of the job types the caller may see.",
    tag="schedules",
    replies=(Reply(200, "The schedules.", ref("ScheduleList")),),
)
def list_schedules(call: Call) -> Response:
    rows = operations.visible_schedules(call.app, call.principal)
    return reply({"schedules": [schedule_out(call, row) for row in rows]})


@operation(
    "GET",
    "/schedules/{type_name}",
    summary="Read a job type's schedule",
    description="404 when the type is unknown, not visible to the caller, or has no schedule.",
    tag="schedules",
    replies=(Reply(200, "The schedule.", ref("Schedule")),),
)
def get_schedule(call: Call, type_name: str) -> Response:
    row = operations.schedule(call.app, call.principal, type_name)
    if row is None:
        raise operations.NotFound(f"job type {type_name!r} has no schedule")
    return reply(schedule_out(call, row))


@operation(
    "PUT",
    "/schedules/{type_name}",
    summary="Create or replace a job type's schedule",
    description="Admins, and domain admins for their domain's types. The next execution moves at once; "
    "the schedule is enabled (`scheduled`). `report_to`, when given, replaces the type's report recipients. "
    "Every bad field is named and nothing is stored.",
    tag="schedules",
    body=ref("PutSchedule"),
    body_required=True,
    replies=(
        Reply(200, "The schedule, replaced.", ref("Schedule")),
        Reply(201, "The schedule, created.", ref("Schedule"), location=True),
    ),
    writes=True,
)
def put_schedule(call: Call, type_name: str) -> Response:
    declared = _configurable(call, type_name)
    body, problems = call.body_and_problems()
    malformed = top_fields(problems)
    trigger = None
    if "trigger" not in malformed:
        trigger, trigger_problems = build_trigger(body["trigger"])
        problems.extend(trigger_problems)
    params = body.get("params") or {}
    if "params" not in malformed:
        try:
            validate_params(declared, params, dirs=call.app.settings.server_dirs)
        except InvalidJobRequest as exc:
            problems.extend(param_problems(exc))
    report_to = body.get("report_to")
    if report_to is not None and "report_to" not in malformed:
        try:
            clean_addresses(report_to)
        except BadRecipients as exc:
            problems.append(FieldProblem("report_to", str(exc)))
    if problems or trigger is None:
        raise invalid(problems)
    existed = operations.schedule(call.app, call.principal, type_name) is not None
    try:
        row = operations.set_schedule(call.app, call.actor, type_name, trigger, params)
    except TriggerError as exc:  # an `after` trigger naming an unknown type, or itself
        raise invalid_field("trigger.value", str(exc)) from None
    if report_to is not None:
        operations.configure_reports(call.app, call.actor, type_name, report_to)
    if existed:
        return reply(schedule_out(call, row))
    return reply(schedule_out(call, row), 201, location=api_url("get_schedule", type_name=type_name))


@operation(
    "DELETE",
    "/schedules/{type_name}",
    summary="Remove a job type's schedule",
    description="A schedule declared in code comes back, `automatic`, when the scheduler next starts.",
    tag="schedules",
    replies=(Reply(200, "Removed.", ref("Deleted")),),
    writes=True,
)
def delete_schedule(call: Call, type_name: str) -> Response:
    operations.delete_schedule(call.app, call.actor, type_name)
    return reply({"type": type_name, "deleted": True})


def _set_enabled(call: Call, type_name: str, enabled: bool) -> Response:
    _configurable(call, type_name)
    call.body()
    return reply(schedule_out(call, operations.set_schedule_enabled(call.app, call.actor, type_name, enabled)))


@operation(
    "POST",
    "/schedules/{type_name}/enable",
    summary="Enable a schedule",
    description="Its next execution is computed from now.",
    tag="schedules",
    body=ref("Empty"),
    replies=(Reply(200, "The schedule.", ref("Schedule")),),
    writes=True,
)
def enable_schedule(call: Call, type_name: str) -> Response:
    return _set_enabled(call, type_name, True)


@operation(
    "POST",
    "/schedules/{type_name}/disable",
    summary="Disable a schedule",
    description="It keeps its trigger and parameters, and starts nothing until enabled again.",
    tag="schedules",
    body=ref("Empty"),
    replies=(Reply(200, "The schedule.", ref("Schedule")),),
    writes=True,
)
def disable_schedule(call: Call, type_name: str) -> Response:
    return _set_enabled(call, type_name, False)


@operation(
    "POST",
    "/schedules/{type_name}/run-now",
    summary="Start a run now, with the schedule's parameters",
    description="`params` override the schedule's; a type without a schedule runs with its defaults. "
    "The schedule's next execution does not move.",
    tag="schedules",
    body=ref("RunNow"),
    replies=(Reply(201, "The new run.", ref("RunCreated"), location=True),),
    writes=True,
)
def run_schedule_now(call: Call, type_name: str) -> Response:
    operations.job_type(call.app, call.principal, type_name)
    params = call.body().get("params")
    try:
        run_id = operations.run_now(call.app, call.actor, type_name, params)
    except InvalidJobRequest as exc:
        raise invalid(param_problems(exc)) from None
    return created_run(call, run_id)
