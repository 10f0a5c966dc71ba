"""Configure a job type (seed 001's administration window): its plan — automatic (the declared default),
scheduled (a trigger the operator chose) or disabled (manual starts only) — and "send report".

Everything is checked before anything is stored, and only what changed is written, so that saving an
unchanged form neither moves an interval's cadence nor pins the declared report recipients.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from dashboard import operations
from dashboard.pages.forms import FormProblems, addresses_from_text, trigger_from_form
from dashboard.pages.views import actor, jobyard, pages
from dashboard.security import current_principal, require_writer
from jobs.params import InvalidJobRequest, unseal_secrets
from jobs.registry import JobType
from jobs.type_settings import BadRecipients, clean_addresses
from scheduler.schedules import ScheduleRow
from scheduler.triggers import Trigger, TriggerError

MODES = ("automatic", "scheduled", "disabled")


@dataclass
class ConfigureForm:
    mode: str
    trigger_kind: str
    trigger_value: str
    trigger_timezone: str
    send_report: bool
    addresses: str
    problems: FormProblems = field(default_factory=FormProblems)


def current_form(declared: JobType, schedule: ScheduleRow | None, recipients: tuple[str, ...]) -> ConfigureForm:
    trigger = schedule.trigger if schedule is not None else declared.default_schedule
    return ConfigureForm(
        mode=schedule.mode if schedule is not None else "disabled",
        trigger_kind=trigger.kind if trigger is not None else "cron",
        trigger_value=trigger.as_text() if trigger is not None else "",
        trigger_timezone=trigger.timezone if trigger is not None else "UTC",
        send_report=bool(recipients),
        addresses="\n".join(recipients),
    )


def read_configuration(declared: JobType, data: Mapping[str, str]) -> tuple[ConfigureForm, Trigger | None, list[str]]:
    """The submitted form, the plan it asks for, and the report recipients; problems are in the form."""
    form = ConfigureForm(
        mode=data.get("mode", ""),
        trigger_kind=data.get("trigger_kind", ""),
        trigger_value=data.get("trigger_value", ""),
        trigger_timezone=data.get("trigger_timezone", "") or "UTC",
        send_report=data.get("send_report") in ("on", "true", "1"),
        addresses=data.get("report_to", ""),
    )
    plan: Trigger | None = None
    if form.mode not in MODES:
        form.problems.add("mode", f"choose one of {', '.join(MODES)}")
    elif form.mode == "automatic":
        plan = declared.default_schedule
        if plan is None:
            form.problems.add("mode", "this job type declares no automatic plan; choose scheduled or disabled")
    elif form.mode == "scheduled" or form.trigger_value.strip():
        plan = trigger_from_form(data, form.problems)
    addresses: list[str] = []
    if form.send_report:
        try:
            addresses = clean_addresses(addresses_from_text(form.addresses))
        except BadRecipients as exc:
            form.problems.add("report_to", str(exc))
        else:
            if not addresses:
                form.problems.add("report_to", "give at least one address, or untick “send report”")
    return form, plan, addresses


def apply_configuration(
    declared: JobType,
    schedule: ScheduleRow | None,
    recipients: tuple[str, ...],
    form: ConfigureForm,
    plan: Trigger | None,
    addresses: list[str],
) -> None:
    """Stores the checked form; a refusal of the plan (its parameters, an unknown "after" type) is added
    to the form's problems before anything is written."""
    app, who = jobyard(), actor()
    name = declared.name
    kept = unseal_secrets(schedule.params, app.settings.secret_key) if schedule is not None else None
    if form.mode == "disabled" and schedule is None:
        plan = None  # "manual starts only" is what a type without a schedule already is
    changes_plan = plan is not None and (
        schedule is None
        or not schedule.trigger.same_plan(plan)
        or (form.mode != "disabled" and schedule.mode != form.mode)
    )
    try:
        if plan is not None and changes_plan:
            operations.set_schedule(app, who, name, plan, kept)
    except InvalidJobRequest as exc:
        form.problems.add_request_errors(exc)
        return
    except TriggerError as exc:
        form.problems.add("trigger_value", str(exc))
        return
    exists = schedule is not None or changes_plan
    if form.mode == "automatic" and changes_plan:
        operations.set_schedule_enabled(app, who, name, True)  # back to `automatic`: it is the declared plan
    elif form.mode == "disabled" and exists and (changes_plan or schedule is None or schedule.mode != "disabled"):
        operations.set_schedule_enabled(app, who, name, False)
    if sorted(addresses) != sorted(recipients):
        operations.configure_reports(app, who, name, addresses)


def _configurable(name: str) -> tuple[JobType, ScheduleRow | None, tuple[str, ...]]:
    app, principal = jobyard(), current_principal()
    declared = operations.job_type(app, principal, name)
    if not principal.may_configure(declared):
        raise operations.Forbidden(f"{principal.name} may not configure {name}")
    return declared, operations.schedule(app, principal, name), operations.report_to(app, principal, name)


def _render(declared: JobType, schedule: ScheduleRow | None, form: ConfigureForm) -> str:
    return render_template("type_configure.html", declared=declared, schedule=schedule, form=form, modes=MODES)


@pages.get("/types/<name>/configure")
def configure_type(name: str) -> ResponseReturnValue:
    declared, schedule, recipients = _configurable(name)
    return _render(declared, schedule, current_form(declared, schedule, recipients))


@pages.post("/types/<name>/configuration")
@require_writer
def save_type_configuration(name: str) -> ResponseReturnValue:
    declared, schedule, recipients = _configurable(name)
    form, plan, addresses = read_configuration(declared, request.form)
    if not form.problems:
        apply_configuration(declared, schedule, recipients, form, plan, addresses)
    if form.problems:
        flash(f"Nothing was saved: {form.problems.summary()}", "error")
        return _render(declared, schedule, form), 400
    flash(f"Saved the configuration of {declared.title}.", "success")
    return redirect(url_for("pages.configure_type", name=name))
