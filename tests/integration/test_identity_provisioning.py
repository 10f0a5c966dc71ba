"""Identity creation and provisioning against real SCIM services (scim2-server), through real workers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from core import vault
from core.app import Jobyard
from jobs.catalog.identity import identities, targets
from jobs.catalog.identity.identities import BadIdentity, IdentityExists, NewIdentity
from jobs.catalog.identity.models import identities_table, operations_table
from jobs.catalog.identity.provisioning import password_secret
from jobs.status import RunStatus
from tests.conftest import WorkerProcesses
from tests.helpers import attempts_of
from tests.integration.test_catalog_certificates import count, finished, run_job
from tests.scim import ScimServer

Workers = Callable[..., WorkerProcesses]


def identity_row(app: Jobyard, user_name: str) -> Any:
    with app.engine.connect() as conn:
        return conn.execute(select(identities_table).where(identities_table.c.user_name == user_name)).one()


def human(user_name: str = "ada", **changes: Any) -> NewIdentity:
    values: dict[str, Any] = {
        "user_name": user_name, "identity_type": "human_interactive", "display_name": "Ada Lovelace",
        "email": f"{user_name}@example.org", "platform": "gws", "title": "Analyst",
    }  # fmt: skip
    return NewIdentity(**{**values, **changes})


@pytest.fixture
def two_targets(app: Jobyard, scim_target: ScimServer, scim_idp: ScimServer) -> tuple[ScimServer, ScimServer]:
    scim_target.register(app, "gws", "domain")
    scim_idp.register(app, "sso", "idp")
    return scim_target, scim_idp


def test_a_target_token_is_kept_in_the_vault_and_shown_masked(app: Jobyard, scim_target: ScimServer) -> None:
    token = scim_target.token
    assert targets.save(app.engine, "gws", role="domain", base_url=scim_target.url + "/", token=token, by="t")
    listed = targets.listed(app.engine)
    assert [(t.name, t.role, t.base_url) for t in listed] == [("gws", "domain", scim_target.url)]
    assert scim_target.token not in listed[0].token_masked
    assert vault.get(app.engine, targets.secret_name("gws")) == scim_target.token
    # An update without a token keeps the stored one.
    assert not targets.save(app.engine, "gws", role="domain", base_url=scim_target.url, token=None, by="t")
    with targets.connect(app.engine, "gws") as scim:
        assert scim.get_resource_model("User") is not None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "Bad Name"}, "name"),
        ({"role": "mailer"}, "role"),
        ({"base_url": "ftp://example.org"}, "base_url"),
        ({"base_url": "http://example.org/v2?x=1"}, "base_url"),
        ({"base_url": "https://scim:hunter2@example.org/v2"}, "base_url"),  # would be shown and audited in clear
        ({"token": "two words"}, "token"),
        ({"token": None}, "token"),
    ],
)
def test_a_bad_target_is_refused_and_nothing_is_stored(app: Jobyard, changes: dict[str, Any], field: str) -> None:
    values: dict[str, Any] = {"name": "gws", "role": "domain", "base_url": "https://scim.example.org/v2", "token": "t"}
    values.update(changes)
    with pytest.raises(targets.BadTarget) as refused:
        targets.save(app.engine, values.pop("name"), by="t", **values)
    assert refused.value.field == field
    assert targets.listed(app.engine) == [] and vault.names(app.engine) == []


def test_a_self_credentialed_identity_is_provisioned_at_once_without_a_run(app: Jobyard) -> None:
    created = identities.create(
        app, NewIdentity("svc-backup", "service_account", credential='{"private_key": "k"}'), by="alice"
    )
    assert created.status == "provisioned" and created.runs == {}
    row = identity_row(app, "svc-backup")
    assert row.status == "provisioned" and row.provisioned_at is not None
    assert vault.get(app.engine, row.credential_secret) == '{"private_key": "k"}'
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(operations_table)).scalar_one() == 0


@pytest.mark.parametrize(
    ("new", "fields"),
    [
        (NewIdentity("api-key-1", "api_key"), {"credential"}),
        (NewIdentity("bad name", "unknown"), {"user_name", "identity_type"}),
        (NewIdentity("ada", "human_interactive", email="not-an-address"), {"email"}),
        (NewIdentity("ada", "human_interactive", credential="x"), {"credential"}),
        (NewIdentity("ada", "human_interactive"), {"identity_type"}),  # no identity provider target
        (NewIdentity("mail", "shared_managed", platform="slack"), {"platform"}),
        # A line break would reach the To: header of a password expiry mail; PostgreSQL refuses NUL.
        (NewIdentity("key-1", "api_key", credential="k", email="ada@example.org\nbcc:eve@example.org"), {"email"}),
        (NewIdentity("key-1", "api_key", credential="k", email="ada\x00@example.org"), {"email"}),
    ],
)
def test_a_bad_identity_is_refused_naming_its_fields(app: Jobyard, new: NewIdentity, fields: set[str]) -> None:
    with pytest.raises(BadIdentity) as refused:
        identities.create(app, new, by="alice")
    assert {e.field for e in refused.value.errors} == fields
    assert count(app, identities_table) == 0 and vault.names(app.engine) == []


def test_two_creations_of_one_user_name_at_once_give_one_identity_and_exists_to_the_other(
    app: Jobyard, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = NewIdentity("key-1", "api_key", credential="k1")
    identities.create(app, new, by="alice")
    # The other creation looked before the first committed: its own check found nothing.
    monkeypatch.setattr(identities, "_taken", lambda conn, user_name: False)
    with pytest.raises(IdentityExists):
        identities.create(app, NewIdentity("key-1", "api_key", credential="k2"), by="bob")
    assert count(app, identities_table) == 1 and len(vault.names(app.engine)) == 1  # its credential rolled back


def test_a_human_identity_gets_a_domain_user_and_an_sso_user(
    app: Jobyard, two_targets: tuple[ScimServer, ScimServer], start_workers: Workers
) -> None:
    domain, idp = two_targets
    created = identities.create(app, human(), by="alice")
    assert created.status == "pending" and set(created.runs) == {"create_domain_user", "provision_idp_user"}
    start_workers(1)
    for run_id in created.runs.values():
        assert finished(app, run_id).status == RunStatus.COMPLETED
    [gws_user] = domain.users(userName="ada")
    [sso_user] = idp.users(userName="ada")
    assert gws_user.display_name == "Ada Lovelace" and gws_user.emails[0].value == "ada@example.org"
    assert sso_user.external_id == gws_user.external_id == f"jobyard:{created.identity_id}"
    row = identity_row(app, "ada")
    assert row.status == "provisioned" and row.password_expires_at is not None
    assert row.credential_secret == password_secret(created.identity_id)
    assert vault.get_previous(app.engine, row.credential_secret) is None  # confirmed by the target


def test_provisioning_twice_creates_nothing_more(
    app: Jobyard, two_targets: tuple[ScimServer, ScimServer], start_workers: Workers
) -> None:
    domain, _ = two_targets
    created = identities.create(app, human(), by="alice")
    start_workers(1)
    first = finished(app, created.runs["create_domain_user"])
    again = run_job(app, "identity.create_domain_user", identity_id=created.identity_id, target="gws")
    assert again.status == RunStatus.COMPLETED and again.result["changed"] is False
    assert again.result["remote_id"] == first.result["remote_id"]
    assert len(domain.users()) == 1
    with pytest.raises(IdentityExists):
        identities.create(app, human(user_name="ADA"), by="alice")


def test_its_own_user_left_by_an_attempt_that_died_is_taken_over(
    app: Jobyard, two_targets: tuple[ScimServer, ScimServer], start_workers: Workers
) -> None:
    domain, _ = two_targets
    created = identities.create(app, human(), by="alice")
    with domain.client() as scim:  # as an attempt that created the user and died before recording it
        model = scim.get_resource_model("User")
        existing = scim.create(model(user_name="ada", external_id=f"jobyard:{created.identity_id}"))
    start_workers(1)
    run = finished(app, created.runs["create_domain_user"])
    assert run.status == RunStatus.COMPLETED
    assert run.result["remote_id"] == existing.id and run.result["changed"] is False
    assert len(domain.users()) == 1


def test_someone_elses_user_of_that_name_is_refused_not_taken_over(
    app: Jobyard, two_targets: tuple[ScimServer, ScimServer], start_workers: Workers
) -> None:
    domain, _ = two_targets
    with domain.client() as scim:
        model = scim.get_resource_model("User")
        stranger = scim.create(model(user_name="ada", display_name="Another Ada", external_id="hr-77"))
    created = identities.create(app, human(), by="alice")
    start_workers(1)
    run = finished(app, created.runs["create_domain_user"])
    assert run.status == RunStatus.FAILED and run.attempt_count == 1  # rejected: another try cannot help
    assert run.error is not None and "already holds a user named 'ada' that Jobyard did not create" in run.error
    with app.engine.connect() as conn:
        op = conn.execute(select(operations_table).where(operations_table.c.operation == "create_domain_user")).one()
    assert op.done_at is None and op.remote_id is None and "hr-77" in op.last_error
    [user] = domain.users(userName="ada")
    assert (user.id, user.display_name, user.external_id) == (stranger.id, "Another Ada", "hr-77")
    row = identity_row(app, "ada")
    assert row.status == "pending" and row.credential_secret is None and row.password_expires_at is None


def test_an_unreachable_target_fails_the_attempt_and_records_the_error(
    app: Jobyard, scim_target: ScimServer, scim_idp: ScimServer, start_workers: Workers
) -> None:
    scim_target.register(app, "gws", "domain")
    scim_idp.register(app, "sso", "idp")
    scim_target.stop()
    created = identities.create(app, human(identity_type="shared_managed"), by="alice")
    start_workers(1)
    run = finished(app, created.runs["create_domain_user"], statuses=frozenset({RunStatus.RETRYING}))
    assert run.attempt_count == 1
    with app.engine.connect() as conn:
        error = conn.execute(select(operations_table.c.last_error)).scalar_one()
    assert "RequestNetworkException" in error
    assert identity_row(app, "ada").status == "pending"


class EchoingTarget:
    """A SCIM target that refuses every user creation with an error echoing the request body, as a password
    policy check may ("password <value> is too weak"); every other request goes on to a real scim2-server."""

    def __init__(self, upstream: ScimServer) -> None:
        import http.server
        import threading

        import httpx2

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "POST" and self.path.rstrip("/").endswith("/Users"):
                    status, content = 400, json.dumps({
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400",
                        "scimType": "invalidValue", "detail": f"refused by the password policy: {body.decode()}",
                    }).encode()  # fmt: skip
                    content_type = "application/scim+json"
                else:
                    headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                    answer = httpx2.request(self.command, f"http://127.0.0.1:{upstream.port}{self.path}",
                                            headers=headers, content=body or None, timeout=10)  # fmt: skip
                    status, content = answer.status_code, answer.content
                    content_type = answer.headers.get("content-type", "application/scim+json")
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2"
        self.token = upstream.token
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_target_echoing_the_initial_password_in_its_error_never_gets_it_recorded(
    app: Jobyard, scim_target: ScimServer, start_workers: Workers
) -> None:
    echoing = EchoingTarget(scim_target)
    try:
        targets.save(app.engine, "gws", role="domain", base_url=echoing.url, token=echoing.token, by="t")
        created = identities.create(app, human(identity_type="shared_managed"), by="alice")
        start_workers(1)
        run = finished(app, created.runs["create_domain_user"], statuses=frozenset({RunStatus.RETRYING}))
    finally:
        echoing.close()
    password = vault.get(app.engine, password_secret(created.identity_id))
    with app.engine.connect() as conn:
        last_error = conn.execute(select(operations_table.c.last_error)).scalar_one()
    [attempt] = attempts_of(app, run.id)
    assert last_error is not None and "password policy" in last_error  # the target's reason is kept...
    assert attempt.error_message is not None and "password policy" in attempt.error_message
    recorded = [last_error, attempt.error_message, attempt.traceback, run.error, repr(run.result)]
    assert not [text for text in recorded if text and password in text]  # ...but never the password


def test_moving_a_target_to_another_host_needs_its_token_again(app: Jobyard, scim_target: ScimServer) -> None:
    scim_target.register(app, "gws", "domain")
    # Same host, another path: the stored token stays valid for it.
    assert not targets.save(app.engine, "gws", role="domain", base_url=scim_target.url + "/x", token=None, by="t")
    elsewhere = "https://elsewhere.example.org/v2"
    with pytest.raises(targets.BadTarget) as refused:
        targets.save(app.engine, "gws", role="domain", base_url=elsewhere, token=None, by="t")
    assert refused.value.field == "token"
    assert targets.get(app.engine, "gws").base_url == scim_target.url + "/x"
    assert not targets.save(app.engine, "gws", role="domain", base_url=elsewhere, token="new", by="t")
    assert targets.get(app.engine, "gws").base_url == elsewhere
    assert vault.get(app.engine, targets.secret_name("gws")) == "new"
    assert vault.get_previous(app.engine, targets.secret_name("gws")) is None


def test_a_user_name_differing_only_in_case_is_one_identity(app: Jobyard) -> None:
    identities.create(app, NewIdentity("Svc.Backup", "service_account", credential="k"), by="alice")
    with pytest.raises(IdentityExists):
        identities.create(app, NewIdentity("svc.backup", "api_key", credential="k2"), by="alice")
    assert count(app, identities_table) == 1 and identity_row(app, "Svc.Backup").user_name_folded == "svc.backup"
