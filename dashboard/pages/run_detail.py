"""One run (seeds 002–004): timing, parameters, attempts, result, items, and its log with a live tail;
Retry, Cancel, Run again and Notify me.

Every read goes through `operations.run`, which answers "not found" for a run outside the principal's
view; the item table is read only after that check."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from flask import flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from dashboard import operations
from dashboard.pages.display import is_final, is_retryable, running_time_s, status_label
from dashboard.pages.views import actor, jobyard, pages
from dashboard.security import current_principal, require_writer
from jobs.queries import items_of

ITEM_STATUSES = ("ok", "failed", "skipped")
ITEMS_SHOWN = 500


def numbered_logs(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Log lines with an `id` the live tail asks "after" (their position when the record gives none)."""
    return [{**line, "id": line.get("id", number)} for number, line in enumerate(logs, start=1)]


def _render(run_id: str, *, status: int = 200, notify_value: str | None = None) -> ResponseReturnValue:
    app, principal = jobyard(), current_principal()
    detail = operations.run(app, principal, run_id)
    item_filter = request.args.get("items", "").strip() or None
    if item_filter is not None and item_filter not in ITEM_STATUSES:
        flash(f"Bad filter items: {item_filter!r} is not one of {', '.join(ITEM_STATUSES)}", "error")
        item_filter, status = None, 400
    has_items = any(detail["items"].values())
    items = items_of(app.engine, run_id, status=item_filter, limit=ITEMS_SHOWN) if has_items else []
    declared = app.registry.get(detail["type"])
    may_act = principal.may_act_on_run(SimpleNamespace(domain=detail["domain"], triggered_by=detail["triggered_by"]))
    logs = numbered_logs(detail["logs"])
    context = {
        "run": detail,
        "declared": declared,
        "logs": logs,
        "last_log_id": logs[-1]["id"] if logs else 0,
        "items": items,
        "item_filter": item_filter,
        "items_shown": ITEMS_SHOWN,
        "may_retry": may_act and is_retryable(detail["status"]),
        "may_cancel": may_act and not is_final(detail["status"]),
        "may_run_again": may_act and declared is not None and principal.may_start(declared),
        "notify_value": (principal.email or "") if notify_value is None else notify_value,
    }
    return render_template("run_detail.html", **context), status


@pages.get("/runs/<string(length=32):run_id>")
def run_detail(run_id: str) -> ResponseReturnValue:
    return _render(run_id)


@pages.get("/runs/<string(length=32):run_id>/live")
def run_live(run_id: str) -> ResponseReturnValue:
    """What the run page's live tail polls: status, progress, attempts, and the log lines after `after`."""
    try:
        after = int(request.args.get("after", "0"))
    except ValueError:
        return jsonify(error="after: must be a whole number (the id of the last log line shown)"), 400
    try:
        detail = operations.run(jobyard(), current_principal(), run_id)
    except operations.NotFound:
        return jsonify(error="not found"), 404
    logs = numbered_logs(detail["logs"])
    attempts = [{k: v for k, v in a.items() if k != "traceback"} for a in detail["attempt_history"]]
    return jsonify(
        id=detail["id"],
        status=detail["status"],
        status_label=status_label(detail["status"]),
        final=is_final(detail["status"]),
        progress=detail["progress"],
        attempts=detail["attempts"],
        max_attempts=detail["max_attempts"],
        attempt_history=attempts,
        next_attempt_at=detail["next_attempt_at"],
        started_at=detail["started_at"],
        finished_at=detail["finished_at"],
        running_time_s=running_time_s(detail["started_at"], detail["finished_at"]),
        error=detail["error"],
        items=detail["items"],
        logs=[line for line in logs if line["id"] > after],
        last_log_id=logs[-1]["id"] if logs else 0,
    )


def _to_run(run_id: str) -> ResponseReturnValue:
    return redirect(url_for("pages.run_detail", run_id=run_id))


@pages.post("/runs/<string(length=32):run_id>/retry")
@require_writer
def retry_run(run_id: str) -> ResponseReturnValue:
    operations.retry(jobyard(), actor(), run_id)
    flash("Retry started: a new attempt series is queued.", "success")
    return _to_run(run_id)


@pages.post("/runs/<string(length=32):run_id>/cancel")
@require_writer
def cancel_run(run_id: str) -> ResponseReturnValue:
    outcome = operations.cancel(jobyard(), actor(), run_id)
    if outcome == "running":
        flash("The run is asked to stop; it ends as cancelled once the job notices.", "success")
    else:
        flash("Run cancelled.", "success")
    return _to_run(run_id)


@pages.post("/runs/<string(length=32):run_id>/run-again")
@require_writer
def run_again(run_id: str) -> ResponseReturnValue:
    new_id = operations.run_again(jobyard(), actor(), run_id)
    old = url_for("pages.run_detail", run_id=run_id)
    flash(Markup('Started again as a new run; the original is <a href="{}">run {}</a>.').format(old, run_id), "success")
    return _to_run(new_id)


# Seed 004's "notify me when finished": it changes the run's record and sends mail, so not for viewers.
@pages.post("/runs/<string(length=32):run_id>/notify")
@require_writer
def notify_run(run_id: str) -> ResponseReturnValue:
    typed = request.form.get("email", "")
    addresses = [a.strip() for a in typed.replace(";", ",").split(",") if a.strip()]
    try:
        operations.notify(jobyard(), actor(), run_id, addresses)
    except ValueError as exc:
        flash(f"email: {exc}", "error")
        return _render(run_id, status=400, notify_value=typed)
    flash(f"You will be mailed at {', '.join(addresses)} when the run ends.", "success")
    return _to_run(run_id)
