"""`create_app(jobyard)`: the Flask application of the web process.

- `/healthz`        public: whether the database and Redis answer, nothing more.
- `/login`, `/logout`, and the operator pages (dashboard/pages/).
- `/api/v1`         the JSON API for services, with its OpenAPI document (dashboard/api/).
- `/rq`             rq-dashboard, admins only, as an untrusted guest (dashboard/rq_guest/).
- `/metrics`        Prometheus text (dashboard/metrics.py).

Nothing connects at import time; the app uses the connections of the `Jobyard` it is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, jsonify
from redis import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from core.crypto import SecretKeyMissing
from dashboard.security import init_security

if TYPE_CHECKING:
    from core.app import Jobyard


def create_app(jobyard: Jobyard, config: dict[str, Any] | None = None) -> Flask:
    if not jobyard.settings.secret_key:
        raise SecretKeyMissing("the web process needs JOBYARD_SECRET_KEY (it signs sessions and CSRF tokens)")
    app = Flask(__name__)
    app.extensions["jobyard"] = jobyard
    init_security(app, jobyard)
    app.config.update(config or {})

    @app.get("/healthz")
    def healthz() -> tuple[Any, int]:
        checks = {"database": "ok", "redis": "ok"}
        try:
            with jobyard.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            checks["database"] = "unavailable"
        try:
            jobyard.redis.ping()
        except RedisError:
            checks["redis"] = "unavailable"
        healthy = all(v == "ok" for v in checks.values())
        return jsonify(status="ok" if healthy else "degraded", **checks), 200 if healthy else 503

    from dashboard.api import api_v1
    from dashboard.metrics import metrics_blueprint
    from dashboard.pages import auth_pages, pages
    from dashboard.rq_guest import mount_rq_dashboard

    app.register_blueprint(auth_pages)
    app.register_blueprint(pages)
    app.register_blueprint(api_v1, url_prefix="/api/v1")
    app.register_blueprint(metrics_blueprint)
    mount_rq_dashboard(app, jobyard)
    return app
