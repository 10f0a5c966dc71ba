"""Login, sessions, bearer tokens, CSRF and role checks for every request of the web process.

Every route requires a principal unless its endpoint is listed in `PUBLIC_ENDPOINTS`; the check runs
before routing errors surface, so an anonymous caller learns nothing (not even 405) about a route. Then,
for state-changing methods, the CSRF token is checked, except for requests authenticated by a bearer
token: those carry no ambient credential a third-party page could borrow.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, abort, current_app, g, jsonify, make_response, redirect, request, url_for
from flask_login import LoginManager, UserMixin, current_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.wrappers import Response

from core import defaults
from dashboard.auth.roles import Principal, Role
from dashboard.auth.sessions import load_session
from dashboard.auth.tokens import principal_of_token

if TYPE_CHECKING:
    from core.app import Jobyard

F = TypeVar("F", bound=Callable[..., Any])
PUBLIC_ENDPOINTS = frozenset({"auth.login", "healthz", "static"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Sent by the pages' live polling, which is not the user's activity.
POLL_HEADER = "X-Jobyard-Poll"
JSON_PREFIXES = ("/api/", "/metrics")
csrf = CSRFProtect()


class SessionUser(UserMixin):  # type: ignore[misc]
    """Flask-Login's view of a session: its id is the session token, so revoking the row logs it out."""

    def __init__(self, principal: Principal, token: str) -> None:
        self.principal = principal
        self.token = token

    def get_id(self) -> str:
        return self.token


def web_secret_key(secret_key: str) -> bytes:
    """The Flask signing key, derived so that it is not the key that seals secret parameters."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"jobyard-web-sessions-v1")
    return base64.urlsafe_b64encode(derived.derive(secret_key.encode()))


def jobyard_of_app() -> Jobyard:
    return cast("Jobyard", current_app.extensions["jobyard"])


def current_principal() -> Principal:
    principal = g.get("principal")
    if principal is None:  # only reachable from a public endpoint
        abort(401)
    return cast(Principal, principal)


def wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES)


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _authenticate() -> Principal | None:
    jobyard = jobyard_of_app()
    token = _bearer_token()
    if token is not None:
        g.auth_via = "token"
        return principal_of_token(jobyard.engine, token)
    g.auth_via = "session"
    if current_user.is_authenticated:
        return cast(SessionUser, current_user).principal
    return None


def _unauthenticated() -> Response:
    if wants_json():
        response = jsonify(error="authentication required: log in or send 'Authorization: Bearer <token>'")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="jobyard"'
        return response
    return redirect(url_for("auth.login", next=request.full_path if request.query_string else request.path))


def _carries_nul() -> bool:
    """No text Jobyard stores may hold NUL (PostgreSQL refuses it): refuse it at the door, once."""
    if "\x00" in request.path:
        return True
    return any("\x00" in value for source in (request.args, request.form) for value in source.values())


def guard() -> Response | None:
    # The API validates its own input field by field (422); pages and forms are refused here, once.
    if not wants_json() and _carries_nul():
        abort(400, "NUL characters are not accepted")
    if request.endpoint in PUBLIC_ENDPOINTS:
        if request.method in UNSAFE_METHODS:
            csrf.protect()
        return None
    principal = _authenticate()
    if principal is None:
        return _unauthenticated()
    g.principal = principal
    if request.method in UNSAFE_METHODS and g.auth_via != "token":
        csrf.protect()
    return None


def require_roles(*allowed: Role) -> Callable[[F], F]:
    """Refuses (403) a principal whose role is not listed."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if current_principal().role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def require_writer(view: F) -> F:
    """Refuses (403) read-only principals."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_principal().read_only:
            abort(403)
        return view(*args, **kwargs)

    return cast(F, wrapper)


def safe_next(target: str | None) -> str:
    """Only same-site paths: a login link must not bounce the user to another site."""
    if not target:
        return url_for("pages.job_types")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.job_types")
    return target


def _error(status: int, message: str) -> Any:
    if wants_json():
        return jsonify(error=message), status
    from flask import render_template

    return render_template("error.html", status=status, message=message), status


def init_security(app: Flask, jobyard: Jobyard) -> None:
    https = jobyard.settings.base_url.startswith("https://")
    app.config.update(
        SECRET_KEY=web_secret_key(jobyard.settings.secret_key),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        SESSION_COOKIE_NAME="jobyard_session",
        WTF_CSRF_CHECK_DEFAULT=False,  # `guard` checks, after authentication
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the login session
        WTF_CSRF_SSL_STRICT=https,
        MAX_CONTENT_LENGTH=defaults.WEB_MAX_REQUEST_BYTES,
    )
    csrf.init_app(app)
    login_manager = LoginManager()
    login_manager.init_app(app)
    login_manager.session_protection = "basic"

    @login_manager.user_loader  # type: ignore[untyped-decorator]
    def load_user(token: str) -> SessionUser | None:
        background_poll = request.headers.get(POLL_HEADER) == "1"
        principal = load_session(
            jobyard.engine, token, jobyard.settings.session_idle_timeout_s, touch=not background_poll
        )
        return SessionUser(principal, token) if principal is not None else None

    app.before_request(guard)

    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError) -> Any:
        return _error(400, f"CSRF check failed: {error.description} Reload the page and try again.")

    @app.errorhandler(400)
    def bad_request(error: HTTPException) -> Any:
        return _error(400, error.description or "bad request")

    @app.errorhandler(401)
    def unauthorised(_error_: Exception) -> Any:
        return _error(401, "authentication required")

    @app.errorhandler(403)
    def forbidden(_error_: Exception) -> Any:
        return _error(403, "your role does not allow this")

    @app.errorhandler(404)
    def not_found(_error_: Exception) -> Any:
        return _error(404, "not found")

    @app.errorhandler(405)
    def method_not_allowed(error: MethodNotAllowed) -> Any:
        body, status = _error(405, f"{request.method} is not allowed here")
        response = make_response(body, status)
        if error.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(error.valid_methods))
        return response

    @app.errorhandler(413)
    def too_large(_error_: Exception) -> Any:
        return _error(413, f"the request body is larger than {defaults.WEB_MAX_REQUEST_BYTES} bytes")

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        # rq-dashboard's pages carry inline scripts; Jobyard's own pages load scripts only from /static.
        if not request.path.startswith("/rq"):
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                "frame-ancestors 'none'; form-action 'self'; base-uri 'self'",
            )
        if g.get("principal") is not None:
            response.headers.setdefault("Cache-Control", "no-store")
        return response
