"""rq-dashboard at /rq: admins only, its POST actions under Jobyard's CSRF check, its GET bulk requeue blocked."""

from __future__ import annotations

from typing import Any

from flask import Flask

from core.app import Jobyard
from jobs.enqueue import enqueue
from tests.webclient import login


def _csrf_cookie(client: Any) -> str:
    cookie = client.get_cookie("_csrf_token", path="/rq")
    assert cookie is not None, "rq-dashboard's pages must carry the CSRF cookie its JavaScript reads"
    return str(cookie.value)


def test_admin_sees_rq_dashboard_with_jobyard_queues(app: Jobyard, web: Flask, users: Any) -> None:
    users.add("root", "admin")
    enqueue("test.follower", app=app)
    assert app.flush()
    client = login(web, "root")
    page = client.get("/rq/")
    assert page.status_code == 200
    assert "<title>RQ dashboard</title>" in page.get_data(as_text=True)
    queues = client.get("/rq/0/data/queues.json").json
    assert any(q["name"] == "default" and q["count"] == 1 for q in queues["queues"])


def test_non_admins_are_refused(web: Flask, users: Any) -> None:
    users.add("vera", "viewer")
    users.add("olga", "operator")
    users.add("sam", "domain_admin", domain="sales")
    for name in ("vera", "olga", "sam"):
        assert login(web, name).get("/rq/").status_code == 403


def test_post_actions_need_the_csrf_token_rq_dashboard_sends(app: Jobyard, web: Flask, users: Any) -> None:
    users.add("root", "admin")
    run_id = enqueue("test.follower", app=app)
    assert app.flush()
    client = login(web, "root")
    client.get("/rq/")
    assert client.post(f"/rq/job/{run_id}/delete").status_code == 400
    assert app.redis.exists(f"rq:job:{run_id}")
    response = client.post(f"/rq/job/{run_id}/delete", headers={"X-CSRFToken": _csrf_cookie(client)})
    assert response.status_code == 200
    assert not app.redis.exists(f"rq:job:{run_id}")


def test_bulk_requeue_is_post_only(web: Flask, users: Any) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    client.get("/rq/")
    assert client.get("/rq/requeue/default").status_code == 405
    response = client.post("/rq/requeue/default", headers={"X-CSRFToken": _csrf_cookie(client)})
    assert response.status_code == 200
    assert response.json["status"] == "OK"
