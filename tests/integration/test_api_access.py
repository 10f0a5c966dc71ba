"""Who may see and do what through the API: roles, revoked tokens, sessions and their CSRF token."""

from __future__ import annotations

from typing import Any

import pytest

from core.app import Jobyard
from dashboard.auth.audit import entries
from dashboard.auth.tokens import list_tokens, revoke_token
from dashboard.auth.users import set_disabled
from jobs.enqueue import enqueue
from tests.webclient import csrf_of, login

API = "/api/v1"
NO_RUN = "0" * 32


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def operators(users: Any) -> tuple[str, str]:
    """Two operators granted the same type; each API token acts as its user."""
    for name in ("olga", "oscar"):
        users.add(name, "operator", grants=["demo.noop"])
    return users.token("olga-svc", "operator", user="olga"), users.token("oscar-svc", "operator", user="oscar")


def test_an_operator_sees_and_acts_on_own_runs_only(app: Jobyard, web: Any, operators: tuple[str, str]) -> None:
    olga, oscar = operators
    client = web.test_client()
    created = client.post(f"{API}/runs", json={"type": "demo.noop"}, headers=bearer(olga))
    assert created.status_code == 201
    run_id = created.json["id"]
    own = client.get(f"{API}/runs/{run_id}", headers=bearer(olga))
    assert own.status_code == 200 and own.json["triggered_by"] == "olga"
    assert [r["id"] for r in client.get(f"{API}/runs", headers=bearer(olga)).json["runs"]] == [run_id]
    assert client.get(f"{API}/runs", headers=bearer(oscar)).json["runs"] == []
    for method, path in (
        ("GET", f"/runs/{run_id}"),
        ("GET", f"/runs/{run_id}/items"),
        ("POST", f"/runs/{run_id}/cancel"),
        ("POST", f"/runs/{run_id}/retry"),
        ("POST", f"/runs/{run_id}/run-again"),
        ("POST", f"/runs/{run_id}/notify"),
    ):
        response = client.open(f"{API}{path}", method=method, headers=bearer(oscar))
        assert response.status_code == 404, (method, path, response.json)
    bulk = client.post(f"{API}/runs/bulk", json={"action": "cancel", "ids": [run_id]}, headers=bearer(oscar))
    assert bulk.json["results"][0]["ok"] is False
    assert client.get(f"{API}/runs/{run_id}", headers=bearer(olga)).json["status"] == "pending"
    cancelled = client.post(f"{API}/runs/{run_id}/cancel", headers=bearer(olga))
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    assert client.post(f"{API}/runs/{run_id}/retry", headers=bearer(olga)).status_code == 409  # cancelled stays so
    assert client.post(f"{API}/runs/{run_id}/run-again", headers=bearer(olga)).status_code == 201


def test_an_operator_sees_only_granted_types_and_cannot_configure_them(
    app: Jobyard, web: Any, operators: tuple[str, str]
) -> None:
    olga, _ = operators
    client = web.test_client()
    assert [t["name"] for t in client.get(f"{API}/types", headers=bearer(olga)).json["types"]] == ["demo.noop"]
    assert client.get(f"{API}/types/test.nightly", headers=bearer(olga)).status_code == 404
    refused = client.post(f"{API}/runs", json={"type": "test.touch", "params": {"path": "/x"}}, headers=bearer(olga))
    assert refused.status_code == 422 and refused.json["errors"][0]["field"] == "type"
    trigger = {"trigger": {"kind": "interval", "value": 60}}
    assert client.put(f"{API}/schedules/demo.noop", json=trigger, headers=bearer(olga)).status_code == 403
    assert client.put(f"{API}/schedules/test.nightly", json=trigger, headers=bearer(olga)).status_code == 404
    assert client.post(f"{API}/schedules/demo.noop/run-now", headers=bearer(olga)).status_code == 201


def test_a_domain_admin_sees_only_their_domain(app: Jobyard, web: Any, users: Any) -> None:
    hr_run = enqueue("test.hr_sync", triggered_by="someone", app=app)
    token = users.token("sales-admin", "domain_admin", domain="sales")
    client = web.test_client()
    assert [t["name"] for t in client.get(f"{API}/types", headers=bearer(token)).json["types"]] == ["test.sales_sync"]
    assert client.get(f"{API}/types/test.hr_sync", headers=bearer(token)).status_code == 404
    started = client.post(f"{API}/runs", json={"type": "test.sales_sync"}, headers=bearer(token))
    assert started.status_code == 201
    sales_run = started.json["id"]
    listed = client.get(f"{API}/runs", headers=bearer(token)).json["runs"]
    assert [(r["id"], r["domain"]) for r in listed] == [(sales_run, "sales")]
    assert client.get(f"{API}/runs/{hr_run}", headers=bearer(token)).status_code == 404
    assert client.post(f"{API}/runs/{hr_run}/cancel", headers=bearer(token)).status_code == 404
    assert client.post(f"{API}/runs/{sales_run}/cancel", headers=bearer(token)).json["status"] == "cancelled"
    trigger = {"trigger": {"kind": "interval", "value": 60}}
    assert client.put(f"{API}/schedules/test.sales_sync", json=trigger, headers=bearer(token)).status_code == 201
    assert client.put(f"{API}/schedules/test.hr_sync", json=trigger, headers=bearer(token)).status_code == 404
    assert [s["type"] for s in client.get(f"{API}/schedules", headers=bearer(token)).json["schedules"]] == [
        "test.sales_sync"
    ]


WRITES = [
    ("POST", "/runs", {"type": "demo.noop"}),
    ("POST", "/runs/bulk", {"action": "cancel", "ids": [NO_RUN]}),
    ("POST", "/runs/{run}/retry", None),
    ("POST", "/runs/{run}/cancel", None),
    ("POST", "/runs/{run}/run-again", None),
    ("POST", "/runs/{run}/notify", {"addresses": ["watcher@example.org"]}),
    ("PUT", "/schedules/demo.noop", {"trigger": {"kind": "interval", "value": 60}}),
    ("DELETE", "/schedules/demo.noop", None),
    ("POST", "/schedules/demo.noop/enable", None),
    ("POST", "/schedules/demo.noop/disable", None),
    ("POST", "/schedules/demo.noop/run-now", None),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_a_viewer_may_read_but_not_write(app: Jobyard, web: Any, users: Any, method: str, path: str, body: Any) -> None:
    run_id = enqueue("demo.noop", triggered_by="someone", app=app)
    token = users.token("watcher", "viewer")
    client = web.test_client()
    response = client.open(f"{API}{path.format(run=run_id)}", method=method, json=body, headers=bearer(token))
    assert response.status_code == 403 and response.is_json
    assert client.get(f"{API}/runs/{run_id}", headers=bearer(token)).json["status"] == "pending"


def test_a_revoked_or_unknown_token_is_refused(app: Jobyard, web: Any, users: Any) -> None:
    token = users.token("svc", "admin")
    client = web.test_client()
    assert client.get(f"{API}/runs", headers=bearer(token)).status_code == 200
    revoke_token(app.engine, "svc", by="test")
    for credential in (token, "jy_not-a-token", "nonsense"):
        response = client.get(f"{API}/runs", headers=bearer(credential))
        assert response.status_code == 401 and "error" in response.json
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get(f"{API}/openapi.json").status_code == 401


def test_a_session_needs_its_csrf_token_to_write(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    assert client.get(f"{API}/runs").status_code == 200
    refused = client.post(f"{API}/runs", json={"type": "demo.noop"})
    assert refused.status_code == 400 and "CSRF" in refused.json["error"]
    accepted = client.post(f"{API}/runs", json={"type": "demo.noop"}, headers={"X-CSRFToken": csrf_of(client)})
    assert accepted.status_code == 201
    assert client.get(accepted.headers["Location"]).json["triggered_by"] == "root"


def test_a_disabled_users_tokens_stay_dead_after_re_enabling(app: Jobyard, web: Any, users: Any) -> None:
    users.add("olga", "operator")
    token = users.token("olga-svc", "operator", user="olga")
    service = users.token("unowned-svc", "viewer")
    client = web.test_client()
    assert client.get(f"{API}/runs", headers=bearer(token)).status_code == 200
    set_disabled(app.engine, "olga", True, by="test")
    assert client.get(f"{API}/runs", headers=bearer(token)).status_code == 401
    set_disabled(app.engine, "olga", False, by="test")
    assert client.get(f"{API}/runs", headers=bearer(token)).status_code == 401
    assert [t.revoked_at is not None for t in list_tokens(app.engine) if t.name == "olga-svc"] == [True]
    # A token of nobody's account is not touched by another account's disabling.
    assert client.get(f"{API}/runs", headers=bearer(service)).status_code == 200
    [entry] = [e for e in entries(app.engine, actor="test") if e.action == "user_disable"]
    assert entry.detail == {"tokens_revoked": 1}
