"""Credential rotation against a real SCIM service (scim2-server), through real workers.

The SCIM server of these tests dumps what it stores when it stops (tests/scim.py `dump_to`), password
included: that is how a test sees which password the target really holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from core import vault
from core.app import Jobyard
from jobs.catalog.identity import identities, targets
from jobs.catalog.identity.identities import NewIdentity
from jobs.catalog.identity.models import identities_table
from jobs.catalog.identity.provisioning import password_secret
from jobs.enqueue import enqueue
from jobs.models import run_logs_table
from jobs.params import InvalidJobRequest
from jobs.status import RunStatus
from tests.conftest import WorkerProcesses, free_port
from tests.helpers import attempts_of
from tests.integration.test_catalog_certificates import finished, run_job
from tests.scim import ScimServer, scim_server

Workers = Callable[..., WorkerProcesses]
ROTATE = "identity.rotate_credential"


@pytest.fixture
def gws(app: Jobyard, tmp_path: Path) -> Iterator[ScimServer]:
    """A domain target that tells, once stopped, what it stored."""
    with scim_server(dump_to=tmp_path / "gws-resources.json") as server:
        server.register(app, "gws", "domain")
        yield server


def provisioned(app: Jobyard, user_name: str = "mailroom") -> int:
    """A managed shared credential with its domain user on gws (workers must be running)."""
    new = NewIdentity(user_name, "shared_managed", email=f"{user_name}@example.org", platform="gws")
    created = identities.create(app, new, by="alice")
    assert finished(app, created.runs["create_domain_user"]).status == RunStatus.COMPLETED
    return created.identity_id


def identity(app: Jobyard, identity_id: int) -> Any:
    with app.engine.connect() as conn:
        return conn.execute(select(identities_table).where(identities_table.c.id == identity_id)).one()


def vault_rows(app: Jobyard) -> list[tuple[Any, ...]]:
    with app.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(vault.vault_secrets_table).order_by("name"))]


def logs(app: Jobyard, run_id: str) -> str:
    with app.engine.connect() as conn:
        query = select(run_logs_table.c.message).where(run_logs_table.c.run_id == run_id)
        return "\n".join(conn.execute(query).scalars())


def held_password(server: ScimServer, user_name: str) -> str:
    """The password the target stores for `user_name` (stops the server)."""
    [user] = [u for u in server.stored_users() if u["userName"] == user_name]
    password: str = user["password"]
    return password


def test_rotation_stores_a_new_version_sets_it_on_the_target_and_moves_the_expiry(
    app: Jobyard, gws: ScimServer, start_workers: Workers
) -> None:
    start_workers(1)
    identity_id = provisioned(app)
    name = password_secret(identity_id)
    first, first_version = vault.get(app.engine, name), vault.version(app.engine, name)
    before = identity(app, identity_id)

    run = run_job(app, ROTATE, identity_id=identity_id, reason="pam-checkin")

    assert run.status == RunStatus.COMPLETED and run.result is not None
    new = vault.get(app.engine, name)
    assert new != first and len(new) >= 32
    assert vault.version(app.engine, name) == first_version + 1 == run.result["vault_version"]
    assert vault.get_previous(app.engine, name) is None and vault.is_confirmed(app.engine, name)
    after = identity(app, identity_id)
    assert after.password_expires_at > before.password_expires_at and after.updated_at > before.updated_at
    assert run.result["password"] == vault.masked(new) and run.result["sent_again"] is False
    assert run.result["reason"] == "pam-checkin" and run.result["target"] == "gws"
    # The secret is never in the run's record.
    assert new not in json.dumps(run.result) and new not in logs(app, run.id)
    # A second rotation is another rotation: one more version, and the target follows.
    again = run_job(app, ROTATE, identity_id=identity_id)
    assert again.status == RunStatus.COMPLETED and vault.version(app.engine, name) == first_version + 2
    latest = vault.get(app.engine, name)
    assert latest not in (new, first)
    assert held_password(gws, "mailroom") == latest


def test_an_initial_password_left_unconfirmed_by_provisioning_is_still_rotated(
    app: Jobyard, gws: ScimServer, start_workers: Workers
) -> None:
    start_workers(1)
    identity_id = provisioned(app)
    name = password_secret(identity_id)
    initial = vault.get(app.engine, name)
    # Create domain user died between recording its operation as done and confirming the password (and its
    # retry found the operation done): the target took the initial password, which is not a rotation pending.
    with app.engine.begin() as conn:
        conn.execute(update(vault.vault_secrets_table).values(confirmed_at=None))

    run = run_job(app, ROTATE, identity_id=identity_id, reason="pam-checkin")

    assert run.status == RunStatus.COMPLETED and run.result is not None and run.result["sent_again"] is False
    new = vault.get(app.engine, name)
    assert new != initial and vault.version(app.engine, name) == 2
    assert held_password(gws, "mailroom") == new  # the password the PAM session saw no longer works


def test_a_target_that_is_down_keeps_the_old_password_and_the_retry_sends_the_same_new_one(
    app: Jobyard, gws: ScimServer, start_workers: Workers
) -> None:
    start_workers(1)
    identity_id = provisioned(app)
    name = password_secret(identity_id)
    old, old_version = vault.get(app.engine, name), vault.version(app.engine, name)
    expires_before = identity(app, identity_id).password_expires_at
    # The outage: the target's address answers nothing, as a stopped server's would. The server itself keeps
    # its users, as a real directory does across an outage (a stopped scim2-server would forget them).
    dead = f"http://127.0.0.1:{free_port()}/v2"
    targets.save(app.engine, "gws", role="domain", base_url=dead, token=gws.token, by="t")

    run_id = enqueue(ROTATE, {"identity_id": identity_id, "reason": "pam-checkin"}, app=app)
    run = finished(app, run_id, statuses=frozenset({RunStatus.RETRYING}))

    assert run.attempt_count == 1
    new = vault.get(app.engine, name)
    assert new != old and vault.version(app.engine, name) == old_version + 1
    assert vault.get_previous(app.engine, name) == old  # the password the target still has is not lost
    assert not vault.is_confirmed(app.engine, name)
    assert identity(app, identity_id).password_expires_at == expires_before
    [attempt] = attempts_of(app, run_id)
    assert attempt.outcome == "failed" and attempt.error_class is not None and "PushFailed" in attempt.error_class
    assert new not in (attempt.error_message or "") + (attempt.traceback or "")

    targets.save(app.engine, "gws", role="domain", base_url=gws.url, token=gws.token, by="t")  # the target is back
    done = finished(app, run_id)  # the run's own next attempt

    assert done.status == RunStatus.COMPLETED and done.result is not None and done.result["sent_again"] is True
    assert vault.version(app.engine, name) == old_version + 1  # not rotated a second time
    assert vault.get(app.engine, name) == new and vault.get_previous(app.engine, name) is None
    assert identity(app, identity_id).password_expires_at > expires_before
    assert "never confirmed: sending it again" in logs(app, run_id)
    assert held_password(gws, "mailroom") == new


def test_rotation_refuses_what_it_cannot_rotate_and_changes_nothing(
    app: Jobyard, gws: ScimServer, start_workers: Workers
) -> None:
    start_workers(1)
    provisioned_id = provisioned(app)
    own = identities.create(app, NewIdentity("svc-backup", "service_account", credential="k" * 40), by="alice")
    disabled = provisioned(app, "frontdesk")
    with app.engine.begin() as conn:
        conn.execute(update(identities_table).where(identities_table.c.id == disabled).values(disabled=True))
    secrets_before = vault_rows(app)
    identities_before = [identity(app, i) for i in (provisioned_id, own.identity_id, disabled)]

    cases = [
        ({"identity_id": 9999}, "identity_id: no identity 9999"),
        ({"identity_id": own.identity_id}, "has no domain account"),
        ({"identity_id": disabled}, "is disabled"),
        ({"identity_id": provisioned_id, "reason": "x" * 201}, "reason: must be at most 200 characters"),
    ]
    for params, error in cases:
        run = run_job(app, ROTATE, **params)
        assert run.status == RunStatus.FAILED and error in (run.error or ""), (params, run.error)
        assert [a.outcome for a in attempts_of(app, run.id)] == ["rejected"]  # no retry can help
    with pytest.raises(InvalidJobRequest, match="identity_id: must be at least 1"):
        enqueue(ROTATE, {"identity_id": 0}, app=app)

    assert vault_rows(app) == secrets_before
    assert [identity(app, i) for i in (provisioned_id, own.identity_id, disabled)] == identities_before
    stored = {u["userName"]: u["password"] for u in gws.stored_users()}
    assert stored == {"mailroom": vault.get(app.engine, password_secret(provisioned_id)),
                      "frontdesk": vault.get(app.engine, password_secret(disabled))}  # fmt: skip

    targets.remove(app.engine, "gws")  # a target removed since: refused before a new version is stored
    secrets_before = vault_rows(app)
    gone = run_job(app, ROTATE, identity_id=provisioned_id)
    assert gone.status == RunStatus.FAILED and "domain target is gone" in (gone.error or "")
    assert vault_rows(app) == secrets_before
