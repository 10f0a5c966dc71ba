"""The runs page (seeds 003 and 004): filters as query parameters, newest first, keyset pages, and the
bulk actions Retry / Cancel / Run again on the selected runs."""

from __future__ import annotations

from typing import Any

from flask import flash, render_template, request, url_for
from flask.typing import ResponseReturnValue

from dashboard import operations
from dashboard.pages.display import effective_status
from dashboard.pages.forms import utc_from_input
from dashboard.pages.views import actor, back, jobyard, pages
from dashboard.security import current_principal, require_writer
from jobs.run_search import BadFilter, RunFilter, RunPage

FILTER_FIELDS = ("type", "status", "queue", "domain", "triggered_by", "created_from", "created_to", "q")
BULK_LABELS = {"retry": "Retry", "cancel": "Cancel", "run_again": "Run again"}


def _one(name: str) -> str | None:
    value = request.args.get(name, "").strip()
    return value or None


def filter_of_request() -> RunFilter:
    """The RunFilter the query string asks for; raises BadFilter naming the field."""
    return RunFilter(
        types=tuple(t for t in request.args.getlist("type") if t.strip()),
        statuses=tuple(s for s in request.args.getlist("status") if s.strip()),
        queue=_one("queue"),
        domain=_one("domain"),
        triggered_by=_one("triggered_by"),
        created_from=utc_from_input("created_from", request.args.get("created_from", "")),
        created_to=utc_from_input("created_to", request.args.get("created_to", "")),
        text=_one("q"),
    )


def _filter_args() -> dict[str, Any]:
    """The current filters, for links that keep them (next page, newest)."""
    return {k: [v for v in request.args.getlist(k) if v] for k in FILTER_FIELDS if any(request.args.getlist(k))}


@pages.get("/runs")
def runs() -> ResponseReturnValue:
    app, principal = jobyard(), current_principal()
    error: BadFilter | None = None
    page = RunPage()
    try:
        page = operations.list_runs(app, principal, filter_of_request(), cursor=_one("cursor"))
    except BadFilter as exc:
        error = exc
        flash(f"Bad filter {exc.field}: {exc.message}", "error")
    types = operations.visible_types(app, principal)
    args = _filter_args()
    context: dict[str, Any] = {
        "runs": [{**run, "shown_status": effective_status(run)} for run in page.runs],
        "types": types,
        "queues": sorted({t.queue for t in types}),
        "chosen": {k: request.args.getlist(k) for k in FILTER_FIELDS},
        "filter_error": error,
        "older_url": url_for("pages.runs", **args, cursor=page.next_cursor) if page.next_cursor else None,
        "newest_url": url_for("pages.runs", **args) if request.args.get("cursor") else None,
        "bulk_labels": BULK_LABELS,
        "may_act": not principal.read_only,
    }
    return render_template("runs.html", **context), 400 if error else 200


@pages.post("/runs/bulk")
@require_writer
def bulk_runs() -> ResponseReturnValue:
    action = request.form.get("action", "")
    run_ids = [r for r in request.form.getlist("run_ids") if r.strip()]
    if not run_ids:
        flash("Select at least one run.", "error")
        return back(url_for("pages.runs"))
    outcome = operations.bulk(jobyard(), actor(), action, run_ids)
    # One banner for the whole selection: a page of fifty runs answered with fifty banners hid the few
    # that mattered. Each run's own outcome is on its page and in the audit trail.
    category = "success" if outcome.acted == len(outcome.results) else "error" if not outcome.acted else "info"
    flash(f"{BULK_LABELS[action]}: {outcome.message}", category)
    return back(url_for("pages.runs"))
