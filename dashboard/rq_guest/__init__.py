"""rq-dashboard mounted at `/rq` as an untrusted guest: admins only, JSON only, escaped, under a strict CSP.

Jobyard's own record (the runs pages) is authoritative; `/rq` shows RQ's transport state for admins who
want RQ's view of it. rq-dashboard was written to be trusted, so Jobyard fences it in:

- **who**: every `/rq` route needs a session (the app-wide guard) and the admin role; it serves Redis
  instance 0 only (Jobyard has one Redis);
- **CSRF**: its JavaScript sends the token of a cookie named ``_csrf_token`` as ``X-CSRFToken`` on every
  POST, so that cookie carries Jobyard's CSRF token and every POST is checked like any other; its
  "requeue every failed job" route also answers GET, which would let a link trigger it: GET is refused;
- **no pickle** (`readers.py`): every job, queue and worker it reads is read as JSON; what is not JSON is
  shown as unreadable and never loaded;
- **no script injection** (`templates.py`): its templates are served rewritten so every job field is
  HTML-escaped, and each response carries a Content-Security-Policy whose nonce only rq-dashboard's own
  inline script has.

Nothing here is stored: Redis keys are RQ's own (`rq:queue:*`, `rq:job:*`, registries, workers).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from flask import Flask, abort, current_app, g, request
from flask_wtf.csrf import generate_csrf
from jinja2 import ChoiceLoader
from werkzeug.wrappers import Response

from dashboard.rq_guest.templates import EscapedRqTemplates
from dashboard.rq_guest.views import guard_views, read_json_only
from dashboard.security import current_principal

if TYPE_CHECKING:
    from core.app import Jobyard

URL_PREFIX = "/rq"
BLUEPRINT = "rq_dashboard"
CSRF_COOKIE = "_csrf_token"
# Underscore compiles its templates with `new Function`, hence 'unsafe-eval'; inline script runs only with
# the response's nonce, so markup that slipped into a page (and inline event handlers) cannot run.
CSP = (
    "default-src 'none'; script-src 'self' 'nonce-{nonce}' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def _nonce() -> str:
    nonce: str | None = g.get("rq_csp_nonce")
    if nonce is None:
        nonce = g.rq_csp_nonce = secrets.token_urlsafe(18)
    return nonce


def mount_rq_dashboard(app: Flask, jobyard: Jobyard) -> None:
    import rq_dashboard
    from rq_dashboard import web

    read_json_only(web)
    app.config.setdefault("RQ_DASHBOARD_REDIS_URL", jobyard.redis_url)
    app.config.setdefault("RQ_DASHBOARD_POLL_INTERVAL", 2500)
    # The escaping loader is the only source of rq-dashboard's templates: with the blueprint's own loader
    # off, a template the rewriter cannot serve is an error, never the unescaped original.
    app.jinja_loader = ChoiceLoader([loader for loader in (app.jinja_loader, EscapedRqTemplates()) if loader])
    rq_dashboard.blueprint.jinja_loader = None
    app.jinja_env.globals["rq_csp_nonce"] = _nonce

    # rq-dashboard's blueprint is a module global shared by every app built in this process, and Flask
    # forbids adding hooks to a registered blueprint: the checks are app hooks that look at the blueprint.
    @app.before_request
    def admins_only() -> None:
        if request.blueprint != BLUEPRINT:
            return
        if not current_principal().is_admin:
            abort(403)
        # rq-dashboard would connect to any Redis URL listed in its config by index; Jobyard lists one.
        if (request.view_args or {}).get("instance_number", 0) != 0:
            abort(404)
        # GET and HEAD both reach rq-dashboard's requeue-all view; only a CSRF-checked POST may.
        if request.method != "POST" and request.endpoint == f"{BLUEPRINT}.requeue_all":
            abort(405)

    @app.after_request
    def guest_headers(response: Response) -> Response:
        if not request.path.startswith(URL_PREFIX + "/") and request.path != URL_PREFIX:
            return response
        response.headers["Content-Security-Policy"] = CSP.format(nonce=_nonce())
        response.headers["Cache-Control"] = "no-store"
        if request.blueprint == BLUEPRINT and g.get("principal") is not None:
            response.set_cookie(
                CSRF_COOKIE, generate_csrf(), path=URL_PREFIX, samesite="Strict", httponly=False,
                secure=current_app.config["SESSION_COOKIE_SECURE"],
            )  # fmt: skip
        return response

    app.register_blueprint(rq_dashboard.blueprint, url_prefix=URL_PREFIX)
    guard_views(app, BLUEPRINT)
    web.setup_rq_connection(app)
