"""The identities pages and the SCIM targets page: what each role sees and may do, forms and their errors."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from core import vault
from core.app import Jobyard
from dashboard.auth.audit import entries
from jobs.catalog.identity import identities, targets, uploads
from jobs.catalog.identity.identities import PROVISIONING_TYPES, NewIdentity
from jobs.catalog.identity.models import identities_table, uploads_table
from jobs.models import runs_table
from jobs.params import unseal_secrets
from tests.webclient import login, post

TOKEN = "scim-bearer-" + "x9" * 12
CSV = b"user_name,identity_type,credential\nsvc-a,api_key,k1\n"
ROLES = ("admin", "operator", "domain_admin", "viewer")
READERS = ("admin", "operator", "bare_operator", "viewer")
DOMAIN_LIMITED = ("domain_admin", "domain_viewer")


@pytest.fixture
def clients(web: Flask, users: Any) -> dict[str, Any]:
    users.add("root", "admin")
    users.add("olga", "operator", grants=[*PROVISIONING_TYPES, "identity.bulk_import"])
    users.add("otto", "operator", grants=["demo.noop"])
    users.add("dora", "domain_admin", domain="sales")
    users.add("watcher", "viewer")
    users.add("vera", "viewer", domain="sales")
    names = {"admin": "root", "operator": "olga", "bare_operator": "otto", "domain_admin": "dora",
             "viewer": "watcher", "domain_viewer": "vera"}  # fmt: skip
    return {role: login(web, name) for role, name in names.items()}


@pytest.fixture
def sso(app: Jobyard) -> None:
    targets.save(app.engine, "gws", role="domain", base_url="https://gws.example.org/v2", token=TOKEN, by="t")
    targets.save(app.engine, "sso", role="idp", base_url="https://sso.example.org/v2", token=TOKEN, by="t")


def page(response: Any) -> str:
    text: str = response.get_data(as_text=True)
    return text


def identity_count(app: Jobyard) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(identities_table)).scalar_one())


def test_every_role_not_limited_to_a_domain_reads_the_list_and_an_identity_with_its_runs(
    app: Jobyard, clients: dict[str, Any], sso: None
) -> None:
    human = identities.create(app, NewIdentity("ada", "human_interactive", platform="gws"), by="root")
    key = identities.create(app, NewIdentity("key-1", "api_key", credential="the-key-itself"), by="root")
    with app.engine.begin() as conn:
        failed_run = human.runs["provision_idp_user"]
        conn.execute(update(runs_table).where(runs_table.c.id == failed_run).values(status="failed"))
    for role in READERS:
        listed = page(clients[role].get("/identities"))
        assert 'data-identity="ada" data-status="failed"' in listed
        assert 'data-identity="key-1" data-status="provisioned"' in listed
        assert 'href="/identities"' in listed and 'aria-current="page">Identities' in listed
        assert ("New identity" in listed) == ("Bulk import" in listed) == (role in ("admin", "operator"))
        detail = clients[role].get(f"/identities/{human.identity_id}")
        assert detail.status_code == 200
        for run_id in human.runs.values():
            assert f'href="/runs/{run_id}"' in page(detail)
        assert 'data-operation="provision_idp_user" data-target="sso"' in page(detail)
        assert "the-key-itself" not in page(clients[role].get(f"/identities/{key.identity_id}"))
    assert clients["viewer"].get("/identities/999").status_code == 404
    assert clients["viewer"].get("/identities/99999999999").status_code == 404
    # Identities belong to no domain: a domain's principals do not see them, nor the nav link to them.
    for role in DOMAIN_LIMITED:
        refused = clients[role].get("/identities")
        assert refused.status_code == 403 and "data-identity" not in page(refused)
        assert 'href="/identities"' not in page(clients[role].get("/runs"))
        for identity_id in (human.identity_id, 999):  # one that exists is answered as one that does not
            detail = clients[role].get(f"/identities/{identity_id}")
            assert detail.status_code == 403 and "ada" not in page(detail)


def test_the_list_filters_searches_and_pages(app: Jobyard, clients: dict[str, Any], sso: None) -> None:
    for number in range(55):
        identities.create(app, NewIdentity(f"key-{number:02d}", "api_key", credential="k"), by="root")
    identities.create(app, NewIdentity("ada", "human_interactive", platform="gws"), by="root")
    client = clients["viewer"]

    def shown(text: str) -> list[str]:
        return re.findall(r'data-identity="([^"]+)"', text)

    first = page(client.get("/identities"))
    assert shown(first)[:2] == ["ada", "key-54"] and len(shown(first)) == 50
    older = re.search(r'href="([^"]+)" id="older"', first)
    assert older is not None
    second = page(client.get(older.group(1).replace("&amp;", "&")))
    assert shown(second) == [f"key-{n:02d}" for n in range(5, -1, -1)]
    assert shown(page(client.get("/identities?status=pending"))) == ["ada"]
    assert shown(page(client.get("/identities?type=human_interactive"))) == ["ada"]
    assert shown(page(client.get("/identities?q=KEY-0&status=provisioned"))) == [f"key-0{n}" for n in range(9, -1, -1)]
    bad = client.get("/identities?status=lost&before_id=x")
    assert bad.status_code == 400
    assert 'data-field="status"' in page(bad) and 'data-field="before_id"' in page(bad)


def test_an_operator_creates_an_identity_from_the_form(app: Jobyard, clients: dict[str, Any], sso: None) -> None:
    client = clients["operator"]
    form = page(client.get("/identities/new"))
    assert 'name="credential"' in form and "data-for-types=" in form and "<script>" not in form
    assert '<option value="gws">' in form  # the domain targets, by name
    fields = {"user_name": "ada", "identity_type": "human_interactive", "platform": "gws", "email": "ada@example.org"}
    created = post(client, "/identities/new", {**fields, "credential": ""})
    assert created.status_code == 302, page(created)
    with app.engine.connect() as conn:
        [row] = conn.execute(select(identities_table)).all()
    assert created.headers["Location"] == f"/identities/{row.id}"
    assert (row.user_name, row.created_by, row.status, row.source) == ("ada", "olga", "pending", "manual")
    detail = page(client.get(created.headers["Location"]))
    assert "created: pending" in detail
    [entry] = [e for e in entries(app.engine) if e.action == "identity_create"]
    assert entry.actor == "olga" and entry.target == str(row.id)


def test_a_refused_identity_re_renders_the_form_with_every_problem(
    app: Jobyard, clients: dict[str, Any], sso: None
) -> None:
    client = clients["admin"]
    refused = post(client, "/identities/new", {"user_name": "bad name", "identity_type": "api_key",
                                               "email": "nope", "display_name": "Kept Value",
                                               "credential": ""})  # fmt: skip
    assert refused.status_code == 400
    text = page(refused)
    for field in ("user_name", "email", "credential"):
        assert f'data-field="{field}"' in text, field
    assert 'value="Kept Value"' in text
    secret = post(client, "/identities/new", {"user_name": "ada", "identity_type": "human_interactive",
                                              "platform": "gws", "credential": "never-echoed"})  # fmt: skip
    assert secret.status_code == 400
    assert 'data-field="credential"' in page(secret) and "never-echoed" not in page(secret)
    assert identity_count(app) == 0 and not [n for n in vault.names(app.engine) if n.startswith("identity:")]


@pytest.mark.parametrize("role", ["viewer", "domain_admin", "bare_operator"])
def test_roles_that_may_only_read_cannot_reach_the_forms(
    app: Jobyard, clients: dict[str, Any], bulk_import_type: None, role: str
) -> None:
    client = clients[role]
    assert client.get("/identities/new").status_code == 403
    assert client.get("/identities/import").status_code == 403
    new = {"user_name": "key-1", "identity_type": "api_key", "credential": "k"}
    assert post(client, "/identities/new", new).status_code == 403
    upload = {"file": (io.BytesIO(CSV), "people.csv")}
    assert post(client, "/identities/import", upload, content_type="multipart/form-data").status_code == 403
    assert identity_count(app) == 0


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_bulk_import_stores_the_file_and_goes_to_its_run(
    app: Jobyard, clients: dict[str, Any], bulk_import_type: None, dry_run: bool
) -> None:
    client = clients["operator"]
    assert 'enctype="multipart/form-data"' in page(client.get("/identities/import"))
    data: dict[str, Any] = {"file": (io.BytesIO(CSV), "people.csv"), "continue_on_error": "true"}
    if dry_run:
        data["dry_run"] = "true"
    started = post(client, "/identities/import", data, content_type="multipart/form-data")
    assert started.status_code == 302, page(started)
    run_id = started.headers["Location"].rsplit("/", 1)[-1]
    assert started.headers["Location"] == f"/runs/{run_id}"
    with app.engine.connect() as conn:
        run = conn.execute(select(runs_table).where(runs_table.c.id == run_id)).one()
    params = unseal_secrets(run.params, app.settings.secret_key)
    assert (run.type, run.triggered_by) == ("identity.bulk_import", "olga")
    assert (params["dry_run"], params["continue_on_error"]) == (dry_run, True)
    assert uploads.read(app.engine, params["upload_id"]) == ("people.csv", CSV.decode())
    assert client.get(started.headers["Location"]).status_code == 200  # the operator follows their run
    assert [e.target for e in entries(app.engine) if e.action == "identity_import"] == [run_id]


@pytest.mark.parametrize(("content", "message"), [(b"", "choose a CSV file"), (b"\xff\xfe\x00", "not UTF-8")])
def test_a_bad_upload_re_renders_the_import_form(
    app: Jobyard, clients: dict[str, Any], bulk_import_type: None, content: bytes, message: str
) -> None:
    data = {"file": (io.BytesIO(content), "" if not content else "people.csv")}
    refused = post(clients["admin"], "/identities/import", data, content_type="multipart/form-data")
    assert refused.status_code == 400 and message in page(refused)
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(uploads_table)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(runs_table)).scalar_one() == 0


def test_the_targets_page_never_shows_a_token_and_saves_and_removes_targets(
    app: Jobyard, clients: dict[str, Any]
) -> None:
    client = clients["admin"]
    assert "Targets" in page(client.get("/identities"))
    added = post(client, "/admin/targets", {"name": "gws", "role": "domain", "base_url": "https://gws.example.org/v2",
                                            "token": TOKEN})  # fmt: skip
    assert added.status_code == 302
    listed = page(client.get("/admin/targets"))
    assert 'data-target="gws"' in listed and vault.masked(TOKEN) in listed and TOKEN not in listed
    assert not re.search(r'name="token"[^>]*value=', listed)  # the token input is never filled in
    moved = post(client, "/admin/targets", {"name": "gws", "role": "domain", "base_url": "https://gws.example.org/v3",
                                            "token": ""})  # fmt: skip
    assert moved.status_code == 302
    assert targets.get(app.engine, "gws").base_url == "https://gws.example.org/v3"
    assert vault.get(app.engine, targets.secret_name("gws")) == TOKEN
    elsewhere = post(client, "/admin/targets", {"name": "gws", "role": "domain",
                                                "base_url": "https://new.example.org/v2", "token": ""})  # fmt: skip
    assert elsewhere.status_code == 400
    assert "is required again when the target moves" in elsewhere.get_data(as_text=True)
    assert targets.get(app.engine, "gws").base_url == "https://gws.example.org/v3"
    refused = post(client, "/admin/targets", {"name": "new", "role": "idp", "base_url": "https://x.example.org",
                                              "token": ""})  # fmt: skip
    assert refused.status_code == 400 and 'data-field="token"' in page(refused)
    assert 'data-confirm="Remove target gws?' in listed
    removed = post(client, "/admin/targets/gws/remove")
    assert removed.status_code == 302 and targets.listed(app.engine) == []
    assert post(client, "/admin/targets/gws/remove").status_code == 404
    actions = [e.action for e in reversed(entries(app.engine)) if e.action.startswith("target_")]
    assert actions == ["target_save", "target_save", "target_remove"]


@pytest.mark.parametrize("role", ["operator", "domain_admin", "viewer"])
def test_only_admins_reach_the_targets_page(app: Jobyard, clients: dict[str, Any], sso: None, role: str) -> None:
    client = clients[role]
    assert client.get("/admin/targets").status_code == 403
    assert 'href="/admin/targets"' not in page(client.get("/identities"))
    spec = {"name": "gws", "role": "domain", "base_url": "https://evil.example.org", "token": "x"}
    assert post(client, "/admin/targets", spec).status_code == 403
    assert post(client, "/admin/targets/gws/remove").status_code == 403
    assert targets.get(app.engine, "gws").base_url == "https://gws.example.org/v2"
