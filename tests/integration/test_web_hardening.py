"""Bad and hostile input to the web process answers 4xx with a message, never 500, and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from core.app import Jobyard
from dashboard import operations as ops
from dashboard.auth.roles import Principal, Role
from dashboard.auth.users import set_role
from jobs.models import runs_table
from jobs.run_search import encode_cursor
from scheduler import triggers
from tests.webclient import PASSWORD, csrf_of, login, post


def _runs(app: Jobyard) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(runs_table)).scalar_one())


@pytest.mark.parametrize(
    "query",
    ["/runs?q=a%00b", "/runs?type=%00", "/audit?actor=x%00", "/runs?created_from=0001-01-01T00:00%2B01:00",
     "/audit?before_id=999999999999999999999999999999", "/runs/0123456789abcdef0123456789abcde%00"],
)  # fmt: skip
def test_hostile_query_strings_are_refused_with_a_client_error(web: Flask, users: Any, query: str) -> None:
    users.add("root", "admin")
    response = login(web, "root").get(query)
    assert 400 <= response.status_code < 500, response.status_code


def test_a_forged_cursor_is_a_client_error(web: Flask, users: Any) -> None:
    from datetime import datetime

    users.add("root", "admin")
    naive = encode_cursor(datetime(2026, 1, 1), "abc")
    response = login(web, "root").get(f"/runs?cursor={naive}")
    assert response.status_code == 400
    assert "cursor" in response.get_data(as_text=True)


def test_an_overlong_username_is_a_failed_login_not_a_crash(web: Flask, users: Any) -> None:
    client = web.test_client()
    response = client.post("/login", data={"username": "x" * 300, "password": "p", "csrf_token": csrf_of(client)})
    assert response.status_code == 401


def test_a_stranger_cannot_lock_the_owner_out(web: Flask, users: Any) -> None:
    from core import defaults

    users.add("alice", "admin")
    stranger = web.test_client()
    stranger.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    for _ in range(defaults.LOGIN_MAX_FAILURES):
        stranger.post("/login", data={"username": "alice", "password": "guess", "csrf_token": csrf_of(stranger)})
    wrong = {"username": "alice", "password": PASSWORD, "csrf_token": csrf_of(stranger)}
    assert stranger.post("/login", data=wrong).status_code == 429
    assert login(web, "alice").get("/runs").status_code == 200  # from the owner's own address


def test_non_finite_numbers_are_refused_and_nothing_is_stored(app: Jobyard, web: Flask, users: Any) -> None:
    users.add("root", "admin")
    token = users.token("svc", "admin")
    response = post(login(web, "root"), "/types/demo.sleep/start", {"seconds": "nan", "yes": "yes"})
    assert response.status_code == 400
    api = web.test_client().post(
        "/api/v1/runs",
        data='{"type": "demo.sleep", "params": {"seconds": 1e999}}',
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert api.status_code == 422
    assert _runs(app) == 0


def test_a_token_never_reaches_beyond_its_owner(app: Jobyard, web: Flask, users: Any) -> None:
    users.add("bob", "admin")
    token = users.token("bobtok", "admin", user="bob")
    headers = {"Authorization": f"Bearer {token}"}
    assert web.test_client().get("/api/v1/runs", headers=headers).status_code == 200
    set_role(app.engine, "bob", "viewer", by="test")
    assert web.test_client().get("/api/v1/runs", headers=headers).status_code == 401


def test_rq_dashboard_bulk_requeue_refuses_head_as_well_as_get(web: Flask, users: Any) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    assert client.head("/rq/requeue/default").status_code == 405
    assert client.get("/rq/requeue/default").status_code == 405


def test_a_domain_admin_cannot_follow_another_domains_type(app: Jobyard) -> None:
    sales = ops.Actor(Principal("sam", Role.DOMAIN_ADMIN, domain="sales"))
    with pytest.raises(triggers.TriggerError, match=r"unknown job type 'test\.hr_sync'"):
        ops.set_schedule(app, sales, "test.sales_sync", triggers.after("test.hr_sync"))
    assert ops.set_schedule(app, sales, "test.sales_sync", triggers.cron("0 3 * * *")).trigger.kind == "cron"
