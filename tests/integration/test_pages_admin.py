"""Admin pages: the audit trail, and users and API tokens (a new token is shown once)."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest

from core.app import Jobyard
from dashboard.auth import audit
from dashboard.auth.tokens import list_tokens, principal_of_token
from dashboard.auth.users import list_users
from tests.webclient import PASSWORD, login, post

ENTRY = re.compile(r'data-audit-id="(\d+)"')


def _user(app: Jobyard, username: str) -> Any:
    return next(u for u in list_users(app.engine) if u.username == username)


def test_the_audit_page_is_for_admins_only(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    users.add("dora", "domain_admin", domain="sales")
    users.add("olga", "operator")
    assert "/audit" in login(web, "root").get("/").get_data(as_text=True)
    for name in ("dora", "olga"):
        client = login(web, name)
        assert client.get("/audit").status_code == 403
        assert 'href="/audit"' not in client.get("/").get_data(as_text=True)


def test_the_audit_page_filters_and_pages_newest_first(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    for n in range(120):
        audit.record(app.engine, "svc" if n % 2 else "bob", "start", f"run-{n}")
    client = login(web, "root")
    first = client.get("/audit").get_data(as_text=True)
    ids = [int(i) for i in ENTRY.findall(first)]
    assert len(ids) == 100 and ids == sorted(ids, reverse=True)
    older = re.search(r'href="([^"]+)" id="older"', first)
    assert older
    second = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert [int(i) for i in ENTRY.findall(second)] == list(range(min(ids) - 1, 0, -1))
    only_bob = client.get("/audit?actor=bob&action=start").get_data(as_text=True)
    assert len(ENTRY.findall(only_bob)) == 60 and "run-1<" not in only_bob
    logins = client.get("/audit?action=login").get_data(as_text=True)
    assert len(ENTRY.findall(logins)) == 1
    for query, field in (("action=explode", "action"), ("before_id=x", "before_id")):
        response = client.get(f"/audit?{query}")
        assert response.status_code == 400 and f"Bad filter {field}" in response.get_data(as_text=True)


def test_an_admin_adds_changes_disables_and_grants_users(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    form = {
        "username": "nina", "password": PASSWORD, "role": "operator", "domain": "", "email": "nina@example.org",
        "grants": ["demo.fail", "demo.noop"],
    }  # fmt: skip
    assert post(client, "/admin/users/add", form).status_code == 302
    nina = _user(app, "nina")
    assert (nina.role, nina.email, nina.granted_types) == ("operator", "nina@example.org", ("demo.fail", "demo.noop"))
    page = client.get("/admin/users").get_data(as_text=True)
    assert 'data-user="nina"' in page and 'data-role="operator"' in page

    assert post(client, "/admin/users/nina/role", {"role": "domain_admin", "domain": "sales"}).status_code == 302
    assert (_user(app, "nina").role, _user(app, "nina").domain) == ("domain_admin", "sales")
    assert post(client, "/admin/users/nina/grants", {"types": ["demo.fail"], "action": "revoke"}).status_code == 302
    assert _user(app, "nina").granted_types == ("demo.noop",)
    assert post(client, "/admin/users/nina/disable").status_code == 302
    assert _user(app, "nina").disabled
    assert post(client, "/admin/users/nina/enable").status_code == 302
    assert not _user(app, "nina").disabled
    actions = {e.action for e in audit.entries(app.engine, actor="root")}
    assert {"user_add", "user_grant", "user_set_role", "user_revoke", "user_disable", "user_enable"} <= actions


@pytest.mark.parametrize(
    ("path", "form", "message"),
    [
        ("/admin/users/add", {"username": "root", "password": PASSWORD, "role": "viewer"}, "already exists"),
        ("/admin/users/add", {"username": "weak", "password": "short", "role": "viewer"}, "at least 10 characters"),
        ("/admin/users/add", {"username": "odd", "password": PASSWORD, "role": "overlord"}, "unknown role"),
        ("/admin/users/add", {"username": "x", "password": PASSWORD, "role": "viewer"}, "a username is 2-100"),
        (
            "/admin/users/add",
            {"username": "gus", "password": PASSWORD, "role": "operator", "grants": "no.such"},
            "grants",
        ),
        ("/admin/users/add", {"username": "dan", "password": PASSWORD, "role": "domain_admin"}, "needs a domain"),
        ("/admin/users/root/role", {"role": "viewer"}, "cannot demote your own account"),
        ("/admin/users/root/disable", {}, "cannot disable your own account"),
        ("/admin/users/root/grants", {"action": "grant"}, "types: choose at least one"),
        ("/admin/tokens", {"name": "bad name!", "role": "viewer"}, "a token name is"),
        ("/admin/tokens", {"name": "svc", "role": "viewer", "username": "ghost"}, "no user 'ghost'"),
        ("/admin/tokens/nothing/revoke", {}, "no live token named 'nothing'"),
    ],
)
def test_bad_account_and_token_requests_answer_400_with_the_reason(
    app: Jobyard, web: Any, users: Any, path: str, form: dict[str, str], message: str
) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    before = (list_users(app.engine), list_tokens(app.engine))
    response = post(client, path, form)
    assert response.status_code == 400
    assert message in html.unescape(response.get_data(as_text=True))
    after = (list_users(app.engine), list_tokens(app.engine))
    assert [(u.username, u.role, u.disabled, u.granted_types) for u in after[0]] == [
        (u.username, u.role, u.disabled, u.granted_types) for u in before[0]
    ]
    assert after[1] == before[1]


def test_a_new_token_is_shown_once_and_can_be_revoked(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    response = post(client, "/admin/tokens", {"name": "ci", "role": "operator", "domain": "", "username": "root"})
    assert response.status_code == 201
    match = re.search(r'id="new-token-value" value="(jy_[^"]+)"', response.get_data(as_text=True))
    assert match, "the token is not on the page"
    token = match.group(1)
    principal = principal_of_token(app.engine, token)
    assert principal is not None and principal.name == "root"
    page = client.get("/admin/users").get_data(as_text=True)
    assert token not in page and 'data-token="ci"' in page and token[:10] in page
    assert post(client, "/admin/tokens/ci/revoke").status_code == 302
    assert principal_of_token(app.engine, token) is None
    assert {e.action for e in audit.entries(app.engine, actor="root")} >= {"token_create", "token_revoke"}


def test_users_and_tokens_are_for_admins_only(app: Jobyard, web: Any, users: Any) -> None:
    users.add("dora", "domain_admin", domain="sales")
    client = login(web, "dora")
    assert client.get("/admin/users").status_code == 403
    form = {"username": "eve", "password": PASSWORD, "role": "admin"}
    assert post(client, "/admin/users/add", form).status_code == 403
    assert post(client, "/admin/tokens", {"name": "x", "role": "admin"}).status_code == 403
    assert [u.username for u in list_users(app.engine)] == ["dora"] and list_tokens(app.engine) == []
