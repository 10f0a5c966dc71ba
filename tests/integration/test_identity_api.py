"""Identities and SCIM targets through the API: create, list, read, import, and who may do which."""

from __future__ import annotations

import io
from typing import Any

import pytest
from sqlalchemy import func, select, update

from core import vault
from core.app import Jobyard
from dashboard.auth.audit import entries
from jobs.cancel import cancel_run
from jobs.catalog.identity import targets, uploads
from jobs.catalog.identity.identities import PROVISIONING_TYPES
from jobs.catalog.identity.models import identities_table, uploads_table
from jobs.models import runs_table
from jobs.params import unseal_secrets

API = "/api/v1"
TOKEN = "tok-" + "s3cret" * 6
CSV = b"user_name,identity_type,credential\nsvc-a,api_key,k1\n"
IDENTITY_GRANTS = (*PROVISIONING_TYPES, "identity.bulk_import")
READERS = ("admin", "operator", "viewer")
DOMAIN_LIMITED = ("domain_admin", "domain_viewer")


pytestmark = pytest.mark.both_databases


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tokens(users: Any) -> dict[str, str]:
    """An API token per role; the operator is granted the identity job types, `bare_operator` none of them and
    `idp_operator` identity.provision_idp_user only."""
    users.add("olga", "operator", grants=IDENTITY_GRANTS)
    users.add("otto", "operator", grants=["demo.noop"])
    users.add("ida", "operator", grants=["identity.provision_idp_user"])
    return {
        "admin": users.token("root-svc", "admin"),
        "operator": users.token("olga-svc", "operator", user="olga"),
        "bare_operator": users.token("otto-svc", "operator", user="otto"),
        "idp_operator": users.token("ida-svc", "operator", user="ida"),
        "domain_admin": users.token("dom-svc", "domain_admin", domain="sales"),
        "viewer": users.token("view-svc", "viewer"),
        "domain_viewer": users.token("sales-view-svc", "viewer", domain="sales"),
    }


@pytest.fixture
def sso(app: Jobyard) -> None:
    targets.save(app.engine, "gws", role="domain", base_url="https://gws.example.org/scim/v2", token=TOKEN, by="t")
    targets.save(app.engine, "sso", role="idp", base_url="https://sso.example.org/scim/v2", token=TOKEN, by="t")


def identity_count(app: Jobyard) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(identities_table)).scalar_one())


def run_row(app: Jobyard, run_id: str) -> Any:
    with app.engine.connect() as conn:
        return conn.execute(select(runs_table).where(runs_table.c.id == run_id)).one()


HUMAN = {"user_name": "ada", "identity_type": "human_interactive", "display_name": "Ada Lovelace",
         "email": "ada@example.org", "platform": "gws", "title": "Analyst"}  # fmt: skip


def test_an_operator_creates_a_human_identity_and_reads_its_operations(
    app: Jobyard, web: Any, tokens: dict[str, str], sso: None
) -> None:
    client = web.test_client()
    created = client.post(f"{API}/identities", json=HUMAN, headers=bearer(tokens["operator"]))
    assert created.status_code == 201, created.json
    body = created.json
    assert created.headers["Location"] == f"{API}/identities/{body['id']}"
    assert (body["user_name"], body["status"], body["display_status"], body["source"], body["created_by"]) == (
        "ada", "pending", "pending", "manual", "olga",
    )  # fmt: skip
    assert {(o["operation"], o["target"], o["run_status"], o["done_at"]) for o in body["operations"]} == {
        ("create_domain_user", "gws", "pending", None),
        ("provision_idp_user", "sso", "pending", None),
    }
    for op in body["operations"]:
        assert run_row(app, op["run_id"]).triggered_by == "olga"
    # Every role not limited to a domain reads it; the detail is what the creation answered.
    for role in READERS:
        read = client.get(f"{API}/identities/{body['id']}", headers=bearer(tokens[role]))
        assert read.status_code == 200 and read.json == body
    [entry] = [e for e in entries(app.engine) if e.action == "identity_create"]
    assert (entry.actor, entry.target, entry.detail["user_name"]) == ("olga", str(body["id"]), "ada")


def test_a_self_credentialed_identity_keeps_its_credential_out_of_every_answer(
    app: Jobyard, web: Any, tokens: dict[str, str]
) -> None:
    client = web.test_client()
    credential = '{"private_key": "-----BEGIN PRIVATE KEY-----abc"}'
    new = {"user_name": "svc-backup", "identity_type": "service_account", "credential": credential}
    created = client.post(f"{API}/identities", json=new, headers=bearer(tokens["admin"]))
    assert created.status_code == 201, created.json
    assert (created.json["display_status"], created.json["has_credential"], created.json["operations"]) == (
        "provisioned", True, [],
    )  # fmt: skip
    listed = client.get(f"{API}/identities", headers=bearer(tokens["viewer"]))
    for answer in (created, listed, client.get(created.headers["Location"], headers=bearer(tokens["viewer"]))):
        assert "BEGIN PRIVATE KEY" not in answer.get_data(as_text=True)
    assert "BEGIN PRIVATE KEY" not in str([e.detail for e in entries(app.engine)])
    [secret] = [n for n in vault.names(app.engine) if n.startswith("identity:")]
    assert vault.get(app.engine, secret) == credential


def test_every_bad_field_is_named_and_nothing_is_stored(app: Jobyard, web: Any, tokens: dict[str, str]) -> None:
    bad = {"user_name": "bad name", "identity_type": "api_key", "email": "nope", "platform": "p" * 101,
           "surprise": 1}  # fmt: skip
    response = web.test_client().post(f"{API}/identities", json=bad, headers=bearer(tokens["admin"]))
    assert response.status_code == 422
    fields = {e["field"] for e in response.json["errors"]}
    assert fields == {"surprise", "user_name", "email", "credential", "platform"}, response.json
    no_idp = web.test_client().post(f"{API}/identities", json=HUMAN, headers=bearer(tokens["admin"]))
    assert no_idp.status_code == 422
    assert {e["field"] for e in no_idp.json["errors"]} == {"identity_type"}
    assert identity_count(app) == 0 and vault.names(app.engine) == []


def test_a_taken_user_name_is_a_conflict(app: Jobyard, web: Any, tokens: dict[str, str]) -> None:
    client = web.test_client()
    new = {"user_name": "key-1", "identity_type": "api_key", "credential": "k"}
    assert client.post(f"{API}/identities", json=new, headers=bearer(tokens["admin"])).status_code == 201
    again = client.post(f"{API}/identities", json={**new, "user_name": "KEY-1"}, headers=bearer(tokens["admin"]))
    assert again.status_code == 409 and "already exists" in again.json["error"]
    assert identity_count(app) == 1


@pytest.mark.parametrize("role", ["viewer", "domain_admin"])
def test_only_admins_and_operators_create_or_import(
    app: Jobyard, web: Any, tokens: dict[str, str], bulk_import_type: None, role: str
) -> None:
    client = web.test_client()
    new = {"user_name": "key-1", "identity_type": "api_key", "credential": "k"}
    assert client.post(f"{API}/identities", json=new, headers=bearer(tokens[role])).status_code == 403
    imported = client.post(f"{API}/identities/imports", data=CSV, content_type="text/csv", headers=bearer(tokens[role]))
    assert imported.status_code == 403
    assert identity_count(app) == 0
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(uploads_table)).scalar_one() == 0


def test_the_list_filters_by_display_status_type_and_name_and_pages(
    app: Jobyard, web: Any, tokens: dict[str, str], sso: None
) -> None:
    client = web.test_client()
    headers = bearer(tokens["admin"])
    ids = {}
    for name in ("ada", "bob", "carol", "dave"):
        created = client.post(f"{API}/identities", json={**HUMAN, "user_name": name}, headers=headers)
        ids[name] = created.json
    key = client.post(f"{API}/identities", json={"user_name": "key-ada", "identity_type": "api_key",
                                                 "credential": "k"}, headers=headers).json  # fmt: skip
    with app.engine.begin() as conn:
        bob_run, carol_run = ids["bob"]["operations"][0]["run_id"], ids["carol"]["operations"][1]["run_id"]
        conn.execute(update(runs_table).where(runs_table.c.id == bob_run).values(status="failed"))
        conn.execute(update(runs_table).where(runs_table.c.id == carol_run).values(status="retrying"))
        conn.execute(update(identities_table).where(identities_table.c.id == ids["dave"]["id"]).values(disabled=True))

    def names(**query: Any) -> list[str]:
        answer = client.get(f"{API}/identities", query_string=query, headers=headers)
        assert answer.status_code == 200, answer.json
        return [i["user_name"] for i in answer.json["identities"]]

    assert names() == ["key-ada", "dave", "carol", "bob", "ada"]
    assert names(status="failed") == ["bob"]
    assert names(status="retrying") == ["carol"]
    assert names(status="pending") == ["ada"]
    assert names(status="disabled") == ["dave"]
    assert names(status="provisioned") == ["key-ada"]
    assert names(type="api_key") == ["key-ada"]
    assert names(q="ADA") == ["key-ada", "ada"]
    assert names(q="%") == []
    first = client.get(f"{API}/identities", query_string={"limit": 2}, headers=headers).json
    assert [i["user_name"] for i in first["identities"]] == ["key-ada", "dave"]
    assert first["next_cursor"] == ids["dave"]["id"]
    assert names(limit=2, cursor=first["next_cursor"]) == ["carol", "bob"]
    assert client.get(f"{API}/identities/{ids['bob']['id']}", headers=headers).json["display_status"] == "failed"
    assert key["display_status"] == "provisioned"
    bad = client.get(f"{API}/identities", query_string={"status": "lost", "limit": 0}, headers=headers)
    assert bad.status_code == 422 and {e["field"] for e in bad.json["errors"]} == {"status", "limit"}
    for missing in ("999", "0", "x", "99999999999"):
        assert client.get(f"{API}/identities/{missing}", headers=headers).status_code == 404


def test_an_identity_whose_provisioning_run_was_cancelled_shows_as_failed(
    app: Jobyard, web: Any, tokens: dict[str, str], sso: None
) -> None:
    client, headers = web.test_client(), bearer(tokens["admin"])
    created = client.post(f"{API}/identities", json=HUMAN, headers=headers).json
    cancel_run(app, created["operations"][0]["run_id"], by="alice")  # nothing will provision it now
    assert client.get(f"{API}/identities/{created['id']}", headers=headers).json["display_status"] == "failed"
    for status, listed in (("failed", ["ada"]), ("pending", [])):
        answer = client.get(f"{API}/identities", query_string={"status": status}, headers=headers).json
        assert [i["user_name"] for i in answer["identities"]] == listed


@pytest.mark.parametrize("as_multipart", [True, False], ids=["multipart", "text-csv"])
def test_an_import_stores_the_upload_and_starts_bulk_import(
    app: Jobyard, web: Any, tokens: dict[str, str], bulk_import_type: None, as_multipart: bool
) -> None:
    client = web.test_client()
    query = {"dry_run": "true", "continue_on_error": "true"}
    if as_multipart:
        response = client.post(
            f"{API}/identities/imports", query_string=query, headers=bearer(tokens["operator"]),
            data={"file": (io.BytesIO(CSV), "people.csv")}, content_type="multipart/form-data",
        )  # fmt: skip
    else:
        response = client.post(
            f"{API}/identities/imports", query_string={**query, "filename": "people.csv"}, data=CSV,
            content_type="text/csv", headers=bearer(tokens["operator"]),
        )  # fmt: skip
    assert response.status_code == 202, response.json
    body = response.json
    assert (body["dry_run"], body["continue_on_error"]) == (True, True)
    assert response.headers["Location"] == f"{API}/runs/{body['run_id']}"
    run = run_row(app, body["run_id"])
    params = unseal_secrets(run.params, app.settings.secret_key)
    assert (run.type, run.triggered_by, run.status) == ("identity.bulk_import", "olga", "pending")
    expected = {"upload_id": body["upload_id"], "dry_run": True, "continue_on_error": True}
    assert {k: v for k, v in params.items() if v is not None} == expected
    assert uploads.read(app.engine, body["upload_id"]) == ("people.csv", CSV.decode())
    # The operator follows their run.
    assert client.get(response.headers["Location"], headers=bearer(tokens["operator"])).status_code == 200
    [entry] = [e for e in entries(app.engine) if e.action == "identity_import"]
    assert (entry.target, entry.detail["upload_id"], entry.detail["filename"]) == (
        body["run_id"], body["upload_id"], "people.csv",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("data", "content_type", "status", "message"),
    [
        (b"", "text/csv", 422, "empty"),
        (b"\xff\xfe\x00bad", "text/csv", 422, "not UTF-8"),
        (b"a,b\n" * 600_000, "text/csv", 413, "larger than"),
        (b"{}", "application/json", 422, "Content-Type"),
    ],
    ids=["empty", "binary", "too-large", "json"],
)
def test_a_bad_upload_is_refused_and_nothing_is_stored_or_started(
    app: Jobyard,
    web: Any,
    tokens: dict[str, str],
    bulk_import_type: None,
    data: bytes,
    content_type: str,
    status: int,
    message: str,
) -> None:
    response = web.test_client().post(
        f"{API}/identities/imports", data=data, content_type=content_type, headers=bearer(tokens["admin"])
    )
    assert response.status_code == status
    assert message in response.get_data(as_text=True)
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(uploads_table)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(runs_table)).scalar_one() == 0


def test_a_multipart_import_without_its_file_part_is_refused(
    app: Jobyard, web: Any, tokens: dict[str, str], bulk_import_type: None
) -> None:
    response = web.test_client().post(
        f"{API}/identities/imports", data={"other": "x"}, content_type="multipart/form-data",
        headers=bearer(tokens["admin"]),
    )  # fmt: skip
    assert response.status_code == 422
    assert {e["field"] for e in response.json["errors"]} == {"file", "other"}


def test_targets_are_for_admins_and_their_token_is_write_only(app: Jobyard, web: Any, tokens: dict[str, str]) -> None:
    client = web.test_client()
    admin = bearer(tokens["admin"])
    spec = {"role": "domain", "base_url": "https://gws.example.org/scim/v2/", "token": TOKEN}
    created = client.put(f"{API}/targets/gws", json=spec, headers=admin)
    assert created.status_code == 201, created.json
    assert created.json == {"name": "gws", "role": "domain", "base_url": "https://gws.example.org/scim/v2",
                            "token_masked": vault.masked(TOKEN)}  # fmt: skip
    moved = client.put(f"{API}/targets/gws", json={"role": "domain", "base_url": "https://gws.example.org/v2"},
                       headers=admin)  # fmt: skip
    assert moved.status_code == 200 and moved.json["base_url"] == "https://gws.example.org/v2"
    assert vault.get(app.engine, targets.secret_name("gws")) == TOKEN  # kept: the same host
    elsewhere = client.put(f"{API}/targets/gws", json={"role": "domain", "base_url": "https://new.example.org/v2"},
                           headers=admin)  # fmt: skip
    assert elsewhere.status_code == 422 and elsewhere.json["errors"][0]["field"] == "token", elsewhere.json
    assert targets.get(app.engine, "gws").base_url == "https://gws.example.org/v2"
    listed = client.get(f"{API}/targets", headers=admin)
    assert [t["name"] for t in listed.json["targets"]] == ["gws"]
    for answer in (created, moved, listed, client.get(f"{API}/targets/gws", headers=admin)):
        assert TOKEN not in answer.get_data(as_text=True)
    for role in ("operator", "domain_admin", "viewer"):
        for method, path in (("GET", "/targets"), ("GET", "/targets/gws"), ("PUT", "/targets/gws"),
                             ("DELETE", "/targets/gws"), ("GET", "/targets/none")):  # fmt: skip
            answer = client.open(f"{API}{path}", method=method, json=spec, headers=bearer(tokens[role]))
            assert answer.status_code == 403, (role, method, path)
    assert client.delete(f"{API}/targets/gws", headers=admin).json == {"name": "gws", "deleted": True}
    assert client.delete(f"{API}/targets/gws", headers=admin).status_code == 404
    assert client.get(f"{API}/targets/gws", headers=admin).status_code == 404
    assert targets.listed(app.engine) == [] and vault.names(app.engine) == []
    actions = [(e.action, e.target) for e in reversed(entries(app.engine)) if e.action.startswith("target_")]
    assert actions == [("target_save", "gws"), ("target_save", "gws"), ("target_remove", "gws")]
    assert TOKEN not in str([e.detail for e in entries(app.engine)])


@pytest.mark.parametrize(
    ("name", "spec", "field"),
    [
        ("Bad Name", {"role": "domain", "base_url": "https://x.example.org", "token": "t"}, "target_name"),
        ("gws", {"role": "mailer", "base_url": "https://x.example.org", "token": "t"}, "role"),
        ("gws", {"role": "idp", "base_url": "http://[::1", "token": "t"}, "base_url"),
        ("gws", {"role": "idp", "base_url": "https://x.example.org"}, "token"),
        ("gws", {"role": "idp", "base_url": "https://x.example.org", "token": "two words"}, "token"),
    ],
)
def test_a_bad_target_is_a_422_naming_the_field(
    app: Jobyard, web: Any, tokens: dict[str, str], name: str, spec: dict[str, Any], field: str
) -> None:
    answer = web.test_client().put(f"{API}/targets/{name}", json=spec, headers=bearer(tokens["admin"]))
    assert answer.status_code == 422
    assert field in {e["field"] for e in answer.json["errors"]}, answer.json
    assert targets.listed(app.engine) == [] and vault.names(app.engine) == []


@pytest.mark.parametrize("role", DOMAIN_LIMITED)
def test_a_principal_limited_to_a_domain_reads_no_identity(
    app: Jobyard, web: Any, tokens: dict[str, str], sso: None, role: str
) -> None:
    # Identities belong to no domain (like /metrics' figures): a domain's principals see none of them, and an
    # identity that exists is answered as one that does not.
    client = web.test_client()
    created = client.post(f"{API}/identities", json=HUMAN, headers=bearer(tokens["admin"])).json
    listed = client.get(f"{API}/identities", headers=bearer(tokens[role]))
    assert listed.status_code == 403 and "ada" not in listed.get_data(as_text=True)
    for identity_id in (created["id"], 999):
        read = client.get(f"{API}/identities/{identity_id}", headers=bearer(tokens[role]))
        assert read.status_code == 403 and read.json == {"error": listed.json["error"]}


def test_an_operator_creates_only_identities_whose_provisioning_types_are_granted(
    app: Jobyard, web: Any, tokens: dict[str, str], sso: None
) -> None:
    client = web.test_client()
    key = {"user_name": "key-1", "identity_type": "api_key", "credential": "k"}
    for new in (HUMAN, key):  # granted no identity job type: neither runs nor a credential of its own
        refused = client.post(f"{API}/identities", json=new, headers=bearer(tokens["bare_operator"]))
        assert refused.status_code == 403, refused.json
    # Granted identity.provision_idp_user only: a human on a domain target would start create_domain_user too.
    partial = client.post(f"{API}/identities", json=HUMAN, headers=bearer(tokens["idp_operator"]))
    assert partial.status_code == 403 and "identity.create_domain_user" in partial.json["error"]
    assert identity_count(app) == 0 and not [n for n in vault.names(app.engine) if n.startswith("identity:")]
    sso_only = {**HUMAN, "platform": None}
    created = client.post(f"{API}/identities", json=sso_only, headers=bearer(tokens["idp_operator"]))
    assert created.status_code == 201, created.json
    assert [o["operation"] for o in created.json["operations"]] == ["provision_idp_user"]
    assert client.post(f"{API}/identities", json=key, headers=bearer(tokens["idp_operator"])).status_code == 201
    assert identity_count(app) == 2


def test_an_operator_imports_only_when_granted_bulk_import(
    app: Jobyard, web: Any, tokens: dict[str, str], bulk_import_type: None
) -> None:
    client = web.test_client()
    for role in ("bare_operator", "idp_operator"):
        refused = client.post(
            f"{API}/identities/imports", data=CSV, content_type="text/csv", headers=bearer(tokens[role])
        )
        assert refused.status_code == 403 and "identity.bulk_import" in refused.json["error"], refused.json
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(uploads_table)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(runs_table)).scalar_one() == 0
