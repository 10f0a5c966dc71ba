"""Users and API tokens, for admins. The account and token modules write the audit trail themselves.

A new token is shown once, on the page that answers its creation: it is neither flashed (flashes travel
in the session cookie) nor stored anywhere but as a digest."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from dashboard.auth import tokens as api_tokens
from dashboard.auth import users as accounts
from dashboard.auth.passwords import WeakPassword
from dashboard.auth.roles import Role, RoleError
from dashboard.pages.views import jobyard, pages
from dashboard.security import current_principal, require_roles

ADMIN_ERRORS = (accounts.UserError, WeakPassword, RoleError, api_tokens.TokenError)


def _render(status: int = 200, **extra: Any) -> ResponseReturnValue:
    engine = jobyard().engine
    context = {
        "accounts": accounts.list_users(engine),
        "tokens": api_tokens.list_tokens(engine),
        "roles": [r.value for r in Role],
        "type_names": [t.name for t in jobyard().registry],
        "me": current_principal().name,
        "new_token": None,
        "values": {},
    }
    context.update(extra)
    return render_template("users.html", **context), status


def _refused(message: str, **extra: Any) -> ResponseReturnValue:
    flash(message, "error")
    return _render(400, **extra)


def _done(message: str) -> ResponseReturnValue:
    flash(message, "success")
    return redirect(url_for("pages.users"))


def _type_names(field_name: str) -> list[str]:
    chosen = [t.strip() for t in request.form.getlist(field_name) if t.strip()]
    unknown = [t for t in chosen if t not in jobyard().registry]
    if unknown:
        raise accounts.UserError(f"{field_name}: unknown job type(s) {', '.join(unknown)}")
    return chosen


def _not_me(username: str, what: str) -> None:
    if username == current_principal().name:
        raise accounts.UserError(f"you cannot {what} your own account (ask another admin)")


@pages.get("/admin/users")
@require_roles(Role.ADMIN)
def users() -> ResponseReturnValue:
    return _render()


@pages.post("/admin/users/add")
@require_roles(Role.ADMIN)
def add_user() -> ResponseReturnValue:
    form = request.form
    username = form.get("username", "").strip().lower()
    values = {k: form.get(k, "") for k in ("username", "role", "domain", "email")}
    try:
        granted = _type_names("grants")
        accounts.add_user(
            jobyard().engine, username, form.get("password", ""), form.get("role", ""), by=current_principal().name,
            domain=form.get("domain", "").strip() or None, email=form.get("email", "").strip() or None,
        )  # fmt: skip
        if granted:
            accounts.grant(jobyard().engine, username, granted, by=current_principal().name)
    except ADMIN_ERRORS as exc:
        return _refused(f"User not added: {exc}", values=values)
    return _done(f"Added user {username}.")


def _account_action(username: str, action: Any, message: str) -> ResponseReturnValue:
    try:
        action()
    except accounts.UserNotFound:
        abort(404)
    except ADMIN_ERRORS as exc:
        return _refused(f"{username}: {exc}")
    return _done(message)


@pages.post("/admin/users/<username>/role")
@require_roles(Role.ADMIN)
def set_user_role(username: str) -> ResponseReturnValue:
    role, domain = request.form.get("role", ""), request.form.get("domain", "").strip() or None

    def change() -> None:
        if role != Role.ADMIN:
            _not_me(username, "demote")
        accounts.set_role(jobyard().engine, username, role, by=current_principal().name, domain=domain)

    return _account_action(username, change, f"{username} is now {role}{f' of {domain}' if domain else ''}.")


@pages.post("/admin/users/<username>/disable")
@require_roles(Role.ADMIN)
def disable_user(username: str) -> ResponseReturnValue:
    def change() -> None:
        _not_me(username, "disable")
        accounts.set_disabled(jobyard().engine, username, True, by=current_principal().name)

    return _account_action(username, change, f"Disabled {username}; their sessions have ended.")


@pages.post("/admin/users/<username>/enable")
@require_roles(Role.ADMIN)
def enable_user(username: str) -> ResponseReturnValue:
    def change() -> None:
        accounts.set_disabled(jobyard().engine, username, False, by=current_principal().name)

    return _account_action(username, change, f"Enabled {username}.")


@pages.post("/admin/users/<username>/grants")
@require_roles(Role.ADMIN)
def grant_user(username: str) -> ResponseReturnValue:
    revoke = request.form.get("action") == "revoke"

    def change() -> None:
        chosen = _type_names("types")
        if not chosen:
            raise accounts.UserError("types: choose at least one job type")
        accounts.grant(jobyard().engine, username, chosen, by=current_principal().name, revoke=revoke)

    return _account_action(username, change, f"{'Revoked' if revoke else 'Granted'} job types for {username}.")


@pages.post("/admin/tokens")
@require_roles(Role.ADMIN)
def create_token() -> ResponseReturnValue:
    form = request.form
    name = form.get("name", "").strip()
    try:
        token = api_tokens.create_token(
            jobyard().engine, name, form.get("role", ""), by=current_principal().name,
            domain=form.get("domain", "").strip() or None, username=form.get("username", "").strip() or None,
        )  # fmt: skip
    except ADMIN_ERRORS as exc:
        return _refused(f"Token not created: {exc}", token_values={k: form.get(k, "") for k in form})
    return _render(201, new_token={"name": name, "token": token})


@pages.post("/admin/tokens/<name>/revoke")
@require_roles(Role.ADMIN)
def revoke_token(name: str) -> ResponseReturnValue:
    try:
        api_tokens.revoke_token(jobyard().engine, name, by=current_principal().name)
    except api_tokens.TokenError as exc:
        return _refused(str(exc))
    return _done(f"Revoked token {name}.")
