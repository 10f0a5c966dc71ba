from __future__ import annotations

from core.app import Jobyard
from core.settings import Settings
from dashboard.app import create_app


def test_health_reports_database_and_redis(app: Jobyard) -> None:
    response = create_app(app).test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "redis": "ok"}


def test_health_degrades_when_redis_is_away(app: Jobyard) -> None:
    broken = Jobyard(
        Settings(database_url=app.settings.database_url, redis_url="redis://127.0.0.1:1/0", secret_key="k"),
        registry=app.registry,
    )
    response = create_app(broken).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "degraded", "database": "ok", "redis": "unavailable"}
    broken.close()
