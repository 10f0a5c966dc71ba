"""`jobyard users …` and `jobyard tokens …`: accounts and API tokens from the command line."""

from __future__ import annotations

import json

import pytest

from core.app import Jobyard
from dashboard.auth.audit import entries
from dashboard.auth.tokens import principal_of_token
from dashboard.auth.users import authenticate, list_users
from tests.conftest import run_cli

PASSWORD = "a long enough password"


@pytest.fixture(autouse=True)
def new_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBYARD_NEW_PASSWORD", PASSWORD)


def test_add_set_role_disable_and_enable_a_user(app: Jobyard) -> None:
    added = run_cli(app, "users", "add", "olga", "--role", "operator", "--grant", "demo.noop", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout) == {"username": "olga", "role": "operator", "domain": None, "email": None,
                                        "granted_types": ["demo.noop"]}  # fmt: skip
    principal = authenticate(app.engine, "olga", PASSWORD)
    assert principal is not None and principal.granted_types == frozenset({"demo.noop"})
    moved = run_cli(app, "users", "set-role", "olga", "--role", "domain_admin", "--domain", "sales", "--json")
    assert json.loads(moved.stdout) == {"username": "olga", "role": "domain_admin", "domain": "sales"}
    assert [(u.role, u.domain) for u in list_users(app.engine)] == [("domain_admin", "sales")]
    disabled = run_cli(app, "users", "disable", "olga", "--json")
    assert json.loads(disabled.stdout) == {"username": "olga", "disabled": True}
    assert authenticate(app.engine, "olga", PASSWORD) is None
    assert run_cli(app, "users", "enable", "olga").returncode == 0
    assert authenticate(app.engine, "olga", PASSWORD) is not None
    actions = [e.action for e in reversed(entries(app.engine))]
    assert actions == ["user_add", "user_grant", "user_set_role", "user_disable", "user_enable"]
    assert all(e.actor.startswith("cli:") for e in entries(app.engine))


@pytest.mark.parametrize(
    ("args", "message"),
    [(("users", "add", "olga", "--role", "domain_admin"), "needs a domain"),
     (("users", "add", "Bad Name", "--role", "viewer"), "username"),
     (("users", "add", "olga", "--role", "viewer", "--grant", "no.such"), "unknown job type"),
     (("users", "disable", "nobody"), "no user 'nobody'"),
     (("tokens", "create", "svc", "--role", "admin", "--user", "nobody"), "no user 'nobody'"),
     (("tokens", "revoke", "never-made"), "no live token")],
)  # fmt: skip
def test_bad_input_exits_2_with_a_message_and_stores_nothing(app: Jobyard, args: tuple[str, ...], message: str) -> None:
    result = run_cli(app, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert list_users(app.engine) == []


def test_a_weak_password_is_refused(app: Jobyard, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBYARD_NEW_PASSWORD", "short")
    result = run_cli(app, "users", "add", "olga", "--role", "viewer")
    assert result.returncode == 2 and "at least" in result.stderr
    assert list_users(app.engine) == []


def test_a_token_is_printed_once_works_and_stops_working_when_revoked(app: Jobyard) -> None:
    created = run_cli(app, "tokens", "create", "prometheus", "--role", "viewer")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    principal = principal_of_token(app.engine, token)
    assert principal is not None and principal.name == "token:prometheus"
    listed = run_cli(app, "tokens", "list").stdout
    assert "prometheus" in listed and token not in listed and token[:10] in listed
    as_json = json.loads(run_cli(app, "tokens", "list", "--json").stdout)
    assert [(t["name"], t["revoked_at"]) for t in as_json] == [("prometheus", None)] and token not in str(as_json)
    revoked = run_cli(app, "tokens", "revoke", "prometheus", "--json")
    assert json.loads(revoked.stdout) == {"name": "prometheus", "revoked": True}
    assert principal_of_token(app.engine, token) is None
    second = json.loads(run_cli(app, "tokens", "create", "grafana", "--role", "viewer", "--json").stdout)
    assert principal_of_token(app.engine, second["token"]) is not None and second["name"] == "grafana"
