"""Login and logout."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import login_user, logout_user

from core import defaults
from dashboard.auth import audit
from dashboard.auth.audit import recent_failures
from dashboard.auth.sessions import close_session, open_session
from dashboard.auth.users import USERNAME_MAX_LENGTH, authenticate
from dashboard.security import SessionUser, current_principal, jobyard_of_app, safe_next

auth_pages = Blueprint("auth", __name__)


@auth_pages.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        return render_template("login.html", next=request.args.get("next", ""))
    jobyard = jobyard_of_app()
    username = request.form.get("username", "").strip().lower()
    if len(username) > USERNAME_MAX_LENGTH:
        username = ""  # no account has such a name; and the audit column would not hold it
    password = request.form.get("password", "")
    failures = recent_failures(jobyard.engine, username, request.remote_addr) if username else 0
    if failures >= defaults.LOGIN_MAX_FAILURES:
        # Password guessing is slowed per account; the scrypt hash already makes each guess costly.
        minutes = defaults.LOGIN_FAILURE_WINDOW_S // 60
        flash(f"Too many failed logins for this account; try again in {minutes} minutes.", "error")
        return render_template("login.html", next=request.form.get("next", ""), username=username), 429
    principal = authenticate(jobyard.engine, username, password) if username and password else None
    if principal is None or principal.user_id is None:
        audit.record(jobyard.engine, username or "(blank)", "login_failed", remote_addr=request.remote_addr)
        flash("Wrong username or password, or the account is disabled.", "error")
        return render_template("login.html", next=request.form.get("next", ""), username=username), 401
    session.clear()  # no pre-login session state survives into the logged-in session
    token = open_session(jobyard.engine, principal.user_id, request.remote_addr)
    login_user(SessionUser(principal, token))
    audit.record(jobyard.engine, principal.name, "login", remote_addr=request.remote_addr)
    return redirect(safe_next(request.form.get("next")))


@auth_pages.post("/logout")
def logout() -> Any:
    jobyard = jobyard_of_app()
    principal = current_principal()
    token = session.get("_user_id")
    if token:
        close_session(jobyard.engine, token)
    logout_user()
    session.clear()
    audit.record(jobyard.engine, principal.name, "logout", remote_addr=request.remote_addr)
    return redirect(url_for("auth.login"))
