"""The schedules page (seed 001's "Scheduling" and "Run now"): every visible plan; edit (any trigger
kind, timezone, parameters), enable/disable, run now, and a plan for a type that has none.

A bad trigger or bad parameters re-render the form with the message (400) and store nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any
from zoneinfo import available_timezones

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from dashboard import operations
from dashboard.pages.forms import (
    PARAM_PREFIX,
    FormProblems,
    default_texts,
    form_texts,
    param_text,
    params_from_form,
    trigger_from_form,
)
from dashboard.pages.views import actor, back, jobyard, pages
from dashboard.security import current_principal, require_writer
from jobs.params import InvalidJobRequest, unseal_secrets, validate_params
from jobs.registry import JobType
from scheduler.schedules import ScheduleRow
from scheduler.triggers import KINDS, TriggerError

KIND_HELP = {
    "cron": "a cron expression, e.g. 0 3 * * * (03:00 every day, in the timezone below)",
    "interval": "a number of seconds between runs, e.g. 3600",
    "at": "one date and time, ISO 8601, e.g. 2030-12-01T03:00 (read in the timezone below)",
    "weekly": "days@times, e.g. mon,fri@03:00 or mon,tue,wed,thu,fri@07:30,18:00",
    "after": "the job type whose completion starts this one, e.g. demo.noop",
}


@cache
def timezones() -> list[str]:
    return sorted(available_timezones())


@dataclass
class ScheduleForm:
    trigger_kind: str
    trigger_value: str
    trigger_timezone: str
    params: dict[str, str]
    stored_secrets: frozenset[str] = frozenset()
    problems: FormProblems = field(default_factory=FormProblems)


def _current_form(declared: JobType, schedule: ScheduleRow | None) -> ScheduleForm:
    if schedule is None:
        trigger = declared.default_schedule
        return ScheduleForm(
            trigger_kind=trigger.kind if trigger else "cron",
            trigger_value=trigger.as_text() if trigger else "",
            trigger_timezone=trigger.timezone if trigger else "UTC",
            params=default_texts(declared),
        )
    shown: dict[str, str] = {}
    for param in declared.params:
        if param.name in schedule.params and not param.secret:
            shown[param.name] = param_text(param, schedule.params[param.name])
    return ScheduleForm(
        trigger_kind=schedule.trigger.kind,
        trigger_value=schedule.trigger.as_text(),
        trigger_timezone=schedule.trigger.timezone,
        params=shown,
        stored_secrets=frozenset(p.name for p in declared.params if p.secret and p.name in schedule.params),
    )


def _editable(type_name: str) -> tuple[JobType, ScheduleRow | None]:
    app, principal = jobyard(), current_principal()
    declared = operations.job_type(app, principal, type_name)
    if not principal.may_configure(declared):
        raise operations.Forbidden(f"{principal.name} may not change the schedule of {type_name}")
    return declared, operations.schedule(app, principal, type_name)


def _render_edit(
    declared: JobType, schedule: ScheduleRow | None, form: ScheduleForm, status: int = 200
) -> tuple[str, int]:
    context: dict[str, Any] = {
        "declared": declared,
        "schedule": schedule,
        "form": form,
        "kinds": KINDS,
        "kind_help": KIND_HELP,
        "timezones": timezones(),
        "type_names": [t.name for t in operations.visible_types(jobyard(), current_principal())],
        "prefix": PARAM_PREFIX,
    }
    return render_template("schedule_edit.html", **context), status


def _list_page() -> str:
    app, principal = jobyard(), current_principal()
    visible = {t.name: t for t in operations.visible_types(app, principal)}
    rows = [(s, visible[s.type]) for s in operations.visible_schedules(app, principal) if s.type in visible]
    planned = {s.type for s, _ in rows}
    unplanned = [t for name, t in visible.items() if name not in planned and principal.may_configure(t)]
    return render_template("schedules.html", rows=rows, unplanned=unplanned, principal=principal)


@pages.get("/schedules")
def schedules() -> ResponseReturnValue:
    return _list_page()


@pages.get("/schedules/new")
def new_schedule() -> ResponseReturnValue:
    """The "create a schedule" picker's target: the edit form of the chosen type."""
    declared, _ = _editable(request.args.get("type", ""))
    return redirect(url_for("pages.edit_schedule", type_name=declared.name))


@pages.get("/schedules/<type_name>/edit")
def edit_schedule(type_name: str) -> ResponseReturnValue:
    declared, schedule = _editable(type_name)
    return _render_edit(declared, schedule, _current_form(declared, schedule))


@pages.post("/schedules/<type_name>")
@require_writer
def save_schedule(type_name: str) -> ResponseReturnValue:
    app, who = jobyard(), actor()
    declared, schedule = _editable(type_name)
    form = ScheduleForm(
        trigger_kind=request.form.get("trigger_kind", ""),
        trigger_value=request.form.get("trigger_value", ""),
        trigger_timezone=request.form.get("trigger_timezone", "") or "UTC",
        params=form_texts(declared, request.form, prefix=PARAM_PREFIX),
        stored_secrets=_current_form(declared, schedule).stored_secrets,
    )
    trigger = trigger_from_form(request.form, form.problems)
    kept = unseal_secrets(schedule.params, app.settings.secret_key) if schedule is not None else None
    params = params_from_form(declared, request.form, prefix=PARAM_PREFIX, keep=kept)
    try:
        validate_params(  # every bad field at once, with the trigger's
            declared, params, dirs=app.settings.server_dirs, from_text=True
        )
    except InvalidJobRequest as exc:
        form.problems.add_request_errors(exc)
    if trigger is not None and not form.problems:
        try:
            operations.set_schedule(app, who, type_name, trigger, params, from_text=True)
        except InvalidJobRequest as exc:
            form.problems.add_request_errors(exc)
        except TriggerError as exc:
            form.problems.add("trigger_value", str(exc))
    if form.problems:
        flash(f"The schedule of {declared.title} was not saved: {form.problems.summary()}", "error")
        return _render_edit(declared, schedule, form, 400)
    flash(f"Saved the schedule of {declared.title}: {trigger.describe() if trigger else ''}.", "success")
    return redirect(url_for("pages.schedules"))


def _set_enabled(type_name: str, enabled: bool) -> ResponseReturnValue:
    row = operations.set_schedule_enabled(jobyard(), actor(), type_name, enabled)
    flash(f"{type_name} is {row.mode}.", "success")
    return back(url_for("pages.schedules"))


@pages.post("/schedules/<type_name>/enable")
@require_writer
def enable_schedule(type_name: str) -> ResponseReturnValue:
    return _set_enabled(type_name, True)


@pages.post("/schedules/<type_name>/disable")
@require_writer
def disable_schedule(type_name: str) -> ResponseReturnValue:
    return _set_enabled(type_name, False)


@pages.post("/schedules/<type_name>/run-now")
@require_writer
def run_schedule_now(type_name: str) -> ResponseReturnValue:
    try:
        run_id = operations.run_now(jobyard(), actor(), type_name)
    except InvalidJobRequest as exc:
        flash(f"{type_name} was not started: {'; '.join(str(e) for e in exc.errors)}", "error")
        return _list_page(), 400
    link = url_for("pages.run_detail", run_id=run_id)
    flash(Markup('{} started now: <a href="{}">run {}</a>').format(type_name, link, run_id), "success")
    return back(url_for("pages.schedules"))
