"""`create_app(jobyard)`: the Flask application of the web process.

Today it serves the health endpoint that load balancers and Kubernetes probes call; it is public by
design and reveals nothing but whether the database and Redis answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask, jsonify
from redis import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from core.app import Jobyard


def create_app(jobyard: Jobyard, config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=jobyard.settings.secret_key or None, **(config or {}))
    app.extensions["jobyard"] = jobyard

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

    return app
