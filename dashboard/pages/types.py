"""The job types page (seeds 000 and 001): every type the principal sees, its plan and last run; Start
(a dialog with the type's parameters and a confirm step), Activity, and Configure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from dashboard import operations
from dashboard.pages.display import effective_status
from dashboard.pages.forms import FormProblems, default_texts, form_texts, params_from_form
from dashboard.pages.views import actor, jobyard, pages
from dashboard.security import current_principal, require_writer
from jobs.params import InvalidJobRequest
from jobs.registry import JobType
from jobs.run_search import RunFilter
from scheduler.schedules import ScheduleRow


@dataclass
class TypeRow:
    declared: JobType
    schedule: ScheduleRow | None
    last_run: dict[str, Any] | None
    may_start: bool
    may_configure: bool

    @property
    def planning(self) -> str:
        return self.schedule.mode if self.schedule is not None else "manual only"

    @property
    def last_status(self) -> str | None:
        return effective_status(self.last_run) if self.last_run is not None else None


@dataclass
class StartForm:
    """A start dialog's state: the values shown and, after a refused start, why it was refused."""

    values: dict[str, str]
    problems: FormProblems = field(default_factory=FormProblems)
    open: bool = False


def _type_rows() -> list[TypeRow]:
    app, principal = jobyard(), current_principal()
    planned = {s.type: s for s in operations.visible_schedules(app, principal)}
    rows = []
    for declared in operations.visible_types(app, principal):
        # One indexed query per type, led by (type, created_at): cheap for the few dozen types a site has.
        latest = operations.list_runs(app, principal, RunFilter(types=(declared.name,)), limit=1).runs
        rows.append(
            TypeRow(
                declared=declared,
                schedule=planned.get(declared.name),
                last_run=latest[0] if latest else None,
                may_start=principal.may_start(declared),
                may_configure=principal.may_configure(declared),
            )
        )
    return rows


def _render(failed: tuple[str, StartForm] | None = None) -> str:
    rows = _type_rows()
    forms = {row.declared.name: StartForm(default_texts(row.declared)) for row in rows if row.may_start}
    if failed is not None:
        forms[failed[0]] = failed[1]
    return render_template("types.html", rows=rows, start_forms=forms)


@pages.get("/")
def job_types() -> ResponseReturnValue:
    return _render()


@pages.post("/types/<name>/start")
@require_writer
def start_type(name: str) -> ResponseReturnValue:
    app, who = jobyard(), actor()
    declared = operations.job_type(app, who.principal, name)
    try:
        run_id = operations.start(app, who, name, params_from_form(declared, request.form), from_text=True)
    except InvalidJobRequest as exc:
        problems = FormProblems()
        problems.add_request_errors(exc)
        flash(f"{declared.title} was not started: {problems.summary()}", "error")
        return _render((name, StartForm(form_texts(declared, request.form), problems, open=True))), 400
    link = url_for("pages.run_detail", run_id=run_id)
    flash(Markup('{} started: <a href="{}">run {}</a>').format(declared.title, link, run_id), "success")
    return redirect(link)
