"""One test per route and method of the web process (pages, API, metrics, rq-dashboard), built from the
app's own URL map so that a new route is covered the day it is added:

- no session → the login page (pages) or 401 (API, metrics);
- a read-only or non-admin principal → 403 or 404 on state-changing and admin-only routes;
- GET on a state-changing route → 405;
- a state-changing request without a CSRF token → 400.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from werkzeug.exceptions import HTTPException

from core.app import Jobyard
from core.settings import Settings
from dashboard.app import create_app
from dashboard.security import PUBLIC_ENDPOINTS, UNSAFE_METHODS
from tests.webclient import csrf_of, login

SAMPLE_VALUES = {"int": "0", "default": "0" * 32, "path": "x"}
ADMIN_ONLY_PREFIXES = ("/rq", "/audit", "/admin")
# Logging out is a state change every role may make.
OPEN_TO_EVERY_ROLE = frozenset({"auth.logout"})


def _route_table(app: Flask) -> list[tuple[str, str, str, frozenset[str]]]:
    """(path with sample values, method, endpoint, all methods of the rule) for every protected route."""
    table = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS or rule.endpoint.endswith(".static"):
            continue
        path = rule.rule
        for name, converter in rule._converters.items():
            kind = type(converter).__name__.replace("Converter", "").lower()
            sample = SAMPLE_VALUES["int"] if kind in {"integer", "int"} else SAMPLE_VALUES["default"]
            path = re.sub(rf"<(?:[^:>]+:)?{name}>", sample, path)
        methods = frozenset(rule.methods or ()) - {"HEAD", "OPTIONS"}
        table.extend((path, method, rule.endpoint, methods) for method in sorted(methods))
    return table


def _path_answers_get(app: Flask, path: str) -> bool:
    """Another rule at the same path may serve GET (GET and POST /api/v1/runs are different routes)."""
    try:
        app.url_map.bind("localhost").match(path, method="GET")
    except HTTPException:
        return False
    return True


# Built without connecting to anything: the URL map is all that is read. Each test gets only the routes it
# is about, so no test pays for a database it then skips.
_MAP_APP = create_app(
    Jobyard(Settings(database_url="sqlite://", redis_url="redis://127.0.0.1:1/0", secret_key="route-table"))
)
ROUTES = _route_table(_MAP_APP)
FIELDS = ("path", "method", "endpoint")
RESTRICTED = [
    (path, method, endpoint)
    for path, method, endpoint, _ in ROUTES
    if (method in UNSAFE_METHODS and endpoint not in OPEN_TO_EVERY_ROLE) or path.startswith(ADMIN_ONLY_PREFIXES)
]
UNSAFE = [(path, method, endpoint) for path, method, endpoint, _ in ROUTES if method in UNSAFE_METHODS]
WITHOUT_GET = sorted({path for path, _, _, methods in ROUTES if "GET" not in methods} - {
    path for path, *_ in ROUTES if _path_answers_get(_MAP_APP, path)
})  # fmt: skip


def _ids(rows: list[tuple[str, str, str]]) -> list[str]:
    return [f"{method} {path}" for path, method, _ in rows]


def _is_json_route(path: str) -> bool:
    return path.startswith(("/api/", "/metrics"))


def _send(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    return client.open(path, method=method, **kwargs)


@pytest.fixture
def accounts(users: Any) -> None:
    users.add("root", "admin")
    users.add("watcher", "viewer")


def test_the_route_table_covers_every_part_of_the_web_process() -> None:
    paths = {path for path, *_ in ROUTES}
    assert any(p.startswith("/api/v1") for p in paths)
    assert any(p.startswith("/rq") for p in paths)
    assert "/metrics" in paths
    assert "/runs" in paths


@pytest.mark.parametrize(FIELDS, [r[:3] for r in ROUTES], ids=_ids([r[:3] for r in ROUTES]))
def test_without_a_session_nothing_is_served(web: Flask, path: str, method: str, endpoint: str) -> None:
    response = _send(web.test_client(), method, path)
    if _is_json_route(path):
        assert response.status_code == 401
        assert response.is_json and "error" in response.json
    else:
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize(FIELDS, RESTRICTED, ids=_ids(RESTRICTED))
def test_a_read_only_principal_cannot_change_anything_or_reach_admin_pages(
    web: Flask, accounts: None, path: str, method: str, endpoint: str
) -> None:
    client = login(web, "watcher")
    headers = {"X-CSRFToken": csrf_of(client)}
    # rq-dashboard's alias URLs redirect to their canonical form first: follow to what is finally served.
    response = _send(
        client, method, path, headers=headers, json={} if method != "GET" else None, follow_redirects=method == "GET"
    )
    assert response.status_code in (403, 404), response.get_data(as_text=True)[:300]


@pytest.mark.parametrize("path", WITHOUT_GET)
def test_get_on_a_state_changing_route_is_not_allowed(web: Flask, accounts: None, path: str) -> None:
    response = _send(login(web, "root"), "GET", path)
    assert response.status_code == 405


@pytest.mark.parametrize(FIELDS, UNSAFE, ids=_ids(UNSAFE))
def test_a_state_changing_request_without_csrf_token_is_refused(
    web: Flask, accounts: None, path: str, method: str, endpoint: str
) -> None:
    response = _send(login(web, "root"), method, path, json={})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)


def test_a_bearer_token_needs_no_csrf_token_but_a_revoked_one_is_refused(web: Flask, users: Any) -> None:
    from dashboard.auth.tokens import revoke_token

    token = users.token("svc", "admin")
    client = web.test_client()
    assert client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    revoke_token(web.extensions["jobyard"].engine, "svc", by="test")
    assert client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 401
