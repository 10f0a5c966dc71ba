"""SCIM targets, for admins: the list with masked tokens, add or update one, remove one (after a confirmation).

The token input is never filled in: a token, once stored, leaves the vault only for the provisioning jobs. On an
update, a blank token keeps the stored one. A refused save re-renders the page with the problem (400).
"""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from dashboard import identity_operations as ops
from dashboard.auth.roles import Role
from dashboard.pages.forms import FormProblems
from dashboard.pages.views import actor, jobyard, pages
from dashboard.security import current_principal, require_roles
from jobs.catalog.identity.models import TARGET_ROLES
from jobs.catalog.identity.targets import BadTarget


def _render(
    values: dict[str, str] | None = None, problems: FormProblems | None = None, status: int = 200
) -> ResponseReturnValue:
    context = {
        "targets": ops.list_targets(jobyard(), current_principal()),
        "roles": TARGET_ROLES,
        "values": values or {"role": "domain"},
        "problems": problems or FormProblems(),
    }
    return render_template("targets.html", **context), status


@pages.get("/admin/targets")
@require_roles(Role.ADMIN)
def targets() -> ResponseReturnValue:
    return _render()


@pages.post("/admin/targets")
@require_roles(Role.ADMIN)
def save_target() -> ResponseReturnValue:
    form = request.form
    values = {name: form.get(name, "").strip() for name in ("name", "role", "base_url")}
    token = form.get("token", "")
    try:
        created = ops.save_target(
            jobyard(), actor(), values["name"], role=values["role"], base_url=values["base_url"],
            token=token.strip() if token.strip() else None,
        )  # fmt: skip
    except BadTarget as exc:
        problems = FormProblems()
        problems.add(exc.field, exc.problem)
        flash(f"Target not saved: {problems.summary()}", "error")
        return _render(values, problems, 400)
    flash(f"Target {values['name']} {'added' if created else 'updated'}.", "success")
    return redirect(url_for("pages.targets"))


@pages.post("/admin/targets/<name>/remove")
@require_roles(Role.ADMIN)
def remove_target(name: str) -> ResponseReturnValue:
    ops.remove_target(jobyard(), actor(), name)  # NotFound: 404
    flash(f"Target {name} removed.", "success")
    return redirect(url_for("pages.targets"))
