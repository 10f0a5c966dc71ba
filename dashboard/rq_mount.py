"""rq-dashboard mounted at `/rq`, for admins, behind Jobyard's login.

rq-dashboard is a blueprint: Jobyard registers it with its own guard in front (login via `security.guard`,
then admin only). Its JavaScript sends the token of a cookie named ``_csrf_token`` as ``X-CSRFToken`` on
every POST, so that cookie is set to Jobyard's CSRF token and every POST is checked like any other. Its
"requeue every failed job" route also answers GET, which would let a link trigger it: GET is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, abort, current_app, g, request
from flask_wtf.csrf import generate_csrf
from werkzeug.wrappers import Response

from dashboard.security import current_principal

if TYPE_CHECKING:
    from core.app import Jobyard

URL_PREFIX = "/rq"
BLUEPRINT = "rq_dashboard"
CSRF_COOKIE = "_csrf_token"


def mount_rq_dashboard(app: Flask, jobyard: Jobyard) -> None:
    import rq_dashboard
    from rq.serializers import JSONSerializer
    from rq_dashboard import web

    # Jobyard's jobs are JSON-serialised; rq-dashboard must never unpickle what it reads from Redis.
    web.config.serializer = JSONSerializer
    app.config.setdefault("RQ_DASHBOARD_REDIS_URL", jobyard.redis_url)
    app.config.setdefault("RQ_DASHBOARD_POLL_INTERVAL", 2500)

    # rq-dashboard's blueprint is a module global shared by every app built in this process, and Flask
    # forbids adding hooks to a registered blueprint: the checks are app hooks that look at the blueprint.
    @app.before_request
    def admins_only() -> None:
        if request.blueprint != BLUEPRINT:
            return
        if not current_principal().is_admin:
            abort(403)
        # GET and HEAD both reach rq-dashboard's requeue-all view; only a CSRF-checked POST may.
        if request.method != "POST" and request.endpoint == f"{BLUEPRINT}.requeue_all":
            abort(405)

    @app.after_request
    def csrf_cookie(response: Response) -> Response:
        if request.blueprint == BLUEPRINT and g.get("principal") is not None:
            response.set_cookie(
                CSRF_COOKIE, generate_csrf(), path=URL_PREFIX, samesite="Strict", httponly=False,
                secure=current_app.config["SESSION_COOKIE_SECURE"],
            )  # fmt: skip
        return response

    app.register_blueprint(rq_dashboard.blueprint, url_prefix=URL_PREFIX)
    web.setup_rq_connection(app)
