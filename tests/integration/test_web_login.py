"""Login, logout, idle sessions, disabled accounts, and CSRF on the login form."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from core.app import Jobyard
from core.db import utcnow
from dashboard.auth.models import sessions_table
from dashboard.auth.users import set_disabled
from tests.webclient import PASSWORD, csrf_of, login, post


def test_login_opens_a_session_and_logout_ends_it(app: Jobyard, web: Any, users: Any) -> None:
    users.add("alice", "admin")
    client = login(web, "alice")
    assert client.get("/runs").status_code == 200
    assert post(client, "/logout").status_code == 302
    response = client.get("/runs")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(web: Any, users: Any) -> None:
    users.add("alice", "admin")
    client = web.test_client()
    for username, password in (("alice", "wrong password!"), ("nobody", PASSWORD)):
        response = client.post(
            "/login", data={"username": username, "password": password, "csrf_token": csrf_of(client)}
        )
        assert response.status_code == 401
        assert "Wrong username or password" in response.get_data(as_text=True)


def test_login_without_csrf_token_is_refused(web: Any, users: Any) -> None:
    users.add("alice", "admin")
    response = web.test_client().post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400


def test_idle_session_expires(app: Jobyard, web: Any, users: Any) -> None:
    users.add("alice", "admin")
    client = login(web, "alice")
    long_ago = utcnow() - timedelta(seconds=app.settings.session_idle_timeout_s + 1)
    with app.engine.begin() as conn:
        conn.execute(update(sessions_table).values(last_seen_at=long_ago))
    assert client.get("/runs").status_code == 302


def test_disabling_an_account_ends_its_sessions(app: Jobyard, web: Any, users: Any) -> None:
    users.add("alice", "admin")
    client = login(web, "alice")
    set_disabled(app.engine, "alice", True, by="test")
    assert client.get("/runs").status_code == 302


def test_next_parameter_cannot_send_the_user_to_another_site(web: Any, users: Any) -> None:
    users.add("alice", "admin")
    client = web.test_client()
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        response = client.post(
            "/login",
            data={"username": "alice", "password": PASSWORD, "next": target, "csrf_token": csrf_of(client)},
        )
        assert response.status_code == 302
        assert "evil" not in response.headers["Location"] and "javascript" not in response.headers["Location"]


def test_repeated_failed_logins_lock_the_account_for_a_while(app: Jobyard, web: Any, users: Any) -> None:
    from core import defaults

    users.add("alice", "admin")
    client = web.test_client()
    for _ in range(defaults.LOGIN_MAX_FAILURES):
        response = client.post("/login", data={"username": "alice", "password": "guess", "csrf_token": csrf_of(client)})
        assert response.status_code == 401
    response = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": csrf_of(client)})
    assert response.status_code == 429
    assert "Too many failed logins" in response.get_data(as_text=True)


def test_method_not_allowed_names_the_allowed_methods(web: Any, users: Any) -> None:
    users.add("alice", "admin")
    response = login(web, "alice").get("/runs/bulk")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"] and "GET" not in response.headers["Allow"]


def test_an_oversized_body_is_refused_before_it_is_read(web: Any, users: Any) -> None:
    from core import defaults

    users.add("alice", "admin")
    token = users.token("svc", "admin")
    response = web.test_client().post(
        "/api/v1/runs",
        data=b"{" + b" " * defaults.WEB_MAX_REQUEST_BYTES + b"}",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert "larger than" in response.json["error"]


def test_background_polling_does_not_keep_an_idle_session_alive(app: Jobyard, web: Any, users: Any) -> None:
    from sqlalchemy import select

    users.add("alice", "admin")
    client = login(web, "alice")
    long_ago = utcnow() - timedelta(seconds=120)
    with app.engine.begin() as conn:
        conn.execute(update(sessions_table).values(last_seen_at=long_ago))
    client.get("/runs", headers={"X-Jobyard-Poll": "1"})
    with app.engine.connect() as conn:
        assert conn.execute(select(sessions_table.c.last_seen_at)).scalar_one() == long_ago
    client.get("/runs")
    with app.engine.connect() as conn:
        assert conn.execute(select(sessions_table.c.last_seen_at)).scalar_one() > long_ago
