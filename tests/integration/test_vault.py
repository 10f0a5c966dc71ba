"""The vault and its key rotation: secrets, sealed run and schedule parameters, real workers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from core import crypto, vault
from core.app import Jobyard
from core.db import utcnow
from core.settings import Settings, SettingsError
from core.vault import vault_secrets_table
from jobs.enqueue import enqueue
from jobs.models import Run, runs_table
from jobs.params import unseal_secrets
from jobs.status import FINAL, RunStatus
from scheduler import schedules, triggers
from tests.conftest import WorkerProcesses, run_cli, wait_for
from tests.helpers import run_of

Workers = Callable[..., WorkerProcesses]
TOKEN = "s3cret-token-of-23-char"  # the job reports its length: proof the worker read it


pytestmark = pytest.mark.both_databases


def finished(app: Jobyard, run_id: str) -> Run:
    run: Run = wait_for(lambda: (r := run_of(app, run_id)).status in FINAL and r, timeout=60, what=run_id)
    return run


def with_keys(app: Jobyard, monkeypatch: pytest.MonkeyPatch, *keys: str) -> None:
    """The installation configured with these vault keys; workers started afterwards get them too."""
    monkeypatch.setattr(app, "settings", replace(app.settings, vault_keys=keys))


def ciphertexts(app: Jobyard) -> list[str]:
    with app.engine.connect() as conn:
        rows = conn.execute(select(vault_secrets_table.c.ciphertext, vault_secrets_table.c.previous_ciphertext)).all()
    return [t for row in rows for t in row if t is not None]


def test_put_get_keeps_the_previous_version_until_confirmed_and_never_stores_clear_text(app: Jobyard) -> None:
    assert vault.put(app.engine, "scim:alpha", "first-value-1234", "alice") == 1
    assert vault.put(app.engine, "scim:alpha", "second-value-5678", "alice") == 2
    assert vault.get(app.engine, "scim:alpha") == "second-value-5678"
    assert vault.get_previous(app.engine, "scim:alpha") == "first-value-1234"
    assert not any("value" in t for t in ciphertexts(app))
    vault.confirm(app.engine, "scim:alpha")
    assert vault.get_previous(app.engine, "scim:alpha") is None
    assert vault.get(app.engine, "scim:alpha") == "second-value-5678"
    vault.put(app.engine, "scim:beta", "x" * 20, "bob")
    assert vault.names(app.engine) == ["scim:alpha", "scim:beta"]
    assert vault.masked("second-value-5678") == "se•••78"
    assert vault.masked("short") == crypto.MASK
    assert vault.delete(app.engine, "scim:beta") is True
    assert vault.delete(app.engine, "scim:beta") is False
    with pytest.raises(vault.SecretNotFound, match="no secret named 'scim:beta'"):
        vault.get(app.engine, "scim:beta")
    with pytest.raises(vault.BadSecret, match="value: must be a non-empty string"):
        vault.put(app.engine, "scim:gamma", "", "bob")
    with pytest.raises(vault.BadSecret, match="name: must be 1 to 200 characters"):
        vault.put(app.engine, "", "value", "bob")


def test_bad_vault_keys_are_refused_at_start_without_echoing_them() -> None:
    good = Fernet.generate_key().decode()
    with pytest.raises(SettingsError, match=r"JOBYARD_VAULT_KEYS: key 2 of 2 is not a Fernet key") as caught:
        Settings.from_env({"JOBYARD_VAULT_KEYS": f"{good}, not-a-key-at-all"})
    assert "not-a-key-at-all" not in str(caught.value)
    with pytest.raises(SettingsError, match="JOBYARD_VAULT_KEYS: a key is listed twice"):
        Settings.from_env({"JOBYARD_VAULT_KEYS": f"{good},{good}"})
    assert Settings.from_env({"JOBYARD_VAULT_KEYS": f" {good} ,"}).vault_keys == (good,)


def test_the_cli_refuses_to_start_with_a_bad_vault_key(app: Jobyard, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "child_env", lambda: {**app.settings.as_env(), "JOBYARD_VAULT_KEYS": "garbage"})
    done = run_cli(app, "schedules", "list")
    assert done.returncode != 0
    assert "JOBYARD_VAULT_KEYS: key 1 of 1 is not a Fernet key" in done.stderr


def test_params_sealed_before_vault_keys_were_set_stay_readable(app: Jobyard, monkeypatch: pytest.MonkeyPatch) -> None:
    before = crypto.seal(app.settings.secret_key, "old-secret")
    with_keys(app, monkeypatch, Fernet.generate_key().decode())
    assert crypto.unseal(app.settings.secret_key, before) == "old-secret"
    after = crypto.seal(app.settings.secret_key, "new-secret")
    assert not crypto.is_current(app.settings.secret_key, before[crypto.SECRET_MARKER])
    assert crypto.is_current(app.settings.secret_key, after[crypto.SECRET_MARKER])


def change_key(app: Jobyard) -> dict[str, Any]:
    run = finished(app, enqueue("vault.change_key", {}, app=app))
    assert run.status == RunStatus.COMPLETED, run.error
    assert isinstance(run.result, dict)
    return run.result


def test_rotation_reencrypts_everything_and_the_old_key_can_then_be_dropped(
    app: Jobyard, monkeypatch: pytest.MonkeyPatch, start_workers: Workers
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with_keys(app, monkeypatch, old)
    vault.put(app.engine, "scim:alpha", "token-version-one", "alice")
    vault.put(app.engine, "scim:alpha", "token-version-two", "alice")
    vault.put(app.engine, "credential:svc", "service-password-9", "alice")
    # A run held on a queue no worker serves until the end, and a schedule, both with a sealed parameter.
    held = enqueue("test.secretive", {"token": TOKEN}, queue="held", app=app)
    schedules.set_schedule(app, "test.secretive", triggers.cron("0 3 * * *"), by="alice", params={"token": TOKEN})
    under_old_only = crypto.seal(app.settings.secret_key, "witness")

    with_keys(app, monkeypatch, new, old)
    workers = start_workers()
    first = change_key(app)
    assert first["vault_secrets"] == 2
    assert first["run_params"] == 1
    assert first["schedule_params"] == 1
    assert first["unreadable"] == 0
    again = change_key(app)
    assert (again["vault_secrets"], again["run_params"], again["schedule_params"]) == (0, 0, 0)
    workers.stop()

    with_keys(app, monkeypatch, new)
    with pytest.raises(ValueError, match="cannot be decrypted"):
        crypto.unseal(app.settings.secret_key, under_old_only)  # the old key really is gone
    assert vault.get(app.engine, "scim:alpha") == "token-version-two"
    assert vault.get_previous(app.engine, "scim:alpha") == "token-version-one"
    assert vault.get(app.engine, "credential:svc") == "service-password-9"
    schedule = schedules.get(app, "test.secretive")
    assert unseal_secrets(schedule.params, app.settings.secret_key) == {"token": TOKEN}
    with app.engine.connect() as conn:
        stored = conn.execute(select(runs_table.c.params).where(runs_table.c.id == held)).scalar_one()
    assert TOKEN not in str(stored)
    start_workers(queues="default,held")
    run = finished(app, held)
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.result == {"token_length": len(TOKEN)}


def test_rotation_reports_a_value_no_configured_key_can_read(
    app: Jobyard, monkeypatch: pytest.MonkeyPatch, start_workers: Workers
) -> None:
    stray = Fernet(Fernet.generate_key())
    vault.put(app.engine, "readable", "readable-value", "alice")
    with app.engine.begin() as conn:
        conn.execute(
            vault_secrets_table.insert().values(
                name="stray", version=1, ciphertext=stray.encrypt(b"lost").decode(), created_at=utcnow(),
                updated_at=utcnow(), updated_by="test",
            )
        )  # fmt: skip
    with_keys(app, monkeypatch, Fernet.generate_key().decode())
    start_workers()
    run = finished(app, enqueue("vault.change_key", {}, app=app))
    assert run.status == RunStatus.COMPLETED_WITH_WARNINGS
    assert isinstance(run.result, dict)
    assert run.result["unreadable"] == 1
    assert run.result["unreadable_listed"] == ["vault secret stray"]
    assert run.result["vault_secrets"] == 1
    assert vault.get(app.engine, "readable") == "readable-value"
