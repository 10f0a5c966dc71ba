"""The `pages` blueprint and what its views share: who acts, where to go back to, and how the service
layer's refusals become answers (404, 403, or a flashed conflict)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, flash, redirect, render_template, request
from flask.typing import ResponseReturnValue

from dashboard.operations import Actor, Conflict, Forbidden, NotFound
from dashboard.security import current_principal, jobyard_of_app, safe_next

if TYPE_CHECKING:
    from core.app import Jobyard

pages = Blueprint("pages", __name__)


def jobyard() -> Jobyard:
    return jobyard_of_app()


def actor() -> Actor:
    return Actor(current_principal(), request.remote_addr)


def back(default: str) -> ResponseReturnValue:
    """Redirects to the form's same-site `next` path, else to `default`."""
    target = request.form.get("next")
    return redirect(safe_next(target) if target else default)


# An object outside the principal's view is "not found", so that its existence is not revealed.
@pages.errorhandler(NotFound)
def _not_found(_error: NotFound) -> ResponseReturnValue:
    return render_template("error.html", status=404, message="not found"), 404


@pages.errorhandler(Forbidden)
def _forbidden(error: Forbidden) -> ResponseReturnValue:
    return render_template("error.html", status=403, message=str(error) or "your role does not allow this"), 403


@pages.errorhandler(Conflict)
def _conflict(error: Conflict) -> ResponseReturnValue:
    flash(str(error), "error")
    return back(request.referrer if request.referrer and request.referrer.startswith(request.host_url) else "/")
