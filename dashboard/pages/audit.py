"""The audit trail, for admins: newest first, filtered by actor and action, paged by entry id."""

from __future__ import annotations

from typing import Any

from flask import flash, render_template, request, url_for
from flask.typing import ResponseReturnValue

from dashboard.auth import audit as trail
from dashboard.auth.roles import Role
from dashboard.pages.views import jobyard, pages
from dashboard.security import require_roles

PAGE_SIZE = 100


@pages.get("/audit")
@require_roles(Role.ADMIN)
def audit() -> ResponseReturnValue:
    actor = request.args.get("actor", "").strip() or None
    action = request.args.get("action", "").strip() or None
    before_text = request.args.get("before_id", "").strip()
    problem = None
    if action is not None and action not in trail.ACTIONS:
        problem = f"Bad filter action: {action!r} is not one of {', '.join(trail.ACTIONS)}"
    before_id = None
    if before_text:
        try:
            before_id = int(before_text)
            if not 0 < before_id < 2**62:  # beyond any id a table holds, and beyond what the column types hold
                raise ValueError(before_text)
        except ValueError:
            problem = f"Bad filter before_id: {before_text!r} is not an entry id"
    if problem:
        flash(problem, "error")
        return render_template("audit.html", entries=[], actions=trail.ACTIONS, actor=actor, action=action), 400
    rows = trail.entries(jobyard().engine, actor=actor, action=action, before_id=before_id, limit=PAGE_SIZE + 1)
    page, more = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
    kept: dict[str, Any] = {k: v for k, v in (("actor", actor), ("action", action)) if v}
    return render_template(
        "audit.html",
        entries=page,
        actions=trail.ACTIONS,
        actor=actor,
        action=action,
        older_url=url_for("pages.audit", **kept, before_id=page[-1].id) if more else None,
        newest_url=url_for("pages.audit", **kept) if before_id is not None else None,
    )
