"""Record HMACs: the sealing pass, tampering found by Verify HMAC, Recompute (Upgrade) HMAC; real workers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from core import integrity
from core.app import Jobyard
from dashboard.auth import audit
from dashboard.auth.models import audit_table
from jobs.actions import retry_run
from jobs.enqueue import enqueue
from jobs.models import Run, attempts_table, runs_table
from jobs.status import FINAL, RunStatus
from scheduler.sealing import TABLES, seal_settled, signed_select
from tests.conftest import JobyardProcess, WorkerProcesses, free_port, wait_for
from tests.helpers import run_of
from tests.integration.test_notifications import Inbox
from workers.worker import JobyardWorker

Workers = Callable[..., WorkerProcesses]
Scheduler = Callable[[], JobyardProcess]


pytestmark = pytest.mark.both_databases


@pytest.fixture
def inbox(app: Jobyard, monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    handler, port = Inbox(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setattr(app, "settings", replace(app.settings, smtp_url=f"smtp://127.0.0.1:{port}"))
    yield handler
    controller.stop()


def finished(app: Jobyard, run_id: str) -> Run:
    run: Run = wait_for(lambda: (r := run_of(app, run_id)).status in FINAL and r, timeout=60, what=run_id)
    return run


def run_job(app: Jobyard, type_name: str, **params: Any) -> Run:
    return finished(app, enqueue(type_name, params, app=app))


def hmacs(app: Jobyard, table: str) -> dict[Any, str | None]:
    t = TABLES[table]
    with app.engine.connect() as conn:
        return {row.id: row.hmac for row in conn.execute(select(t.c.id, t.c.hmac))}


def expected_hmac(app: Jobyard, table: str, row_id: Any) -> str:
    t = TABLES[table]
    with app.engine.connect() as conn:
        row = conn.execute(signed_select(t).where(t.c.id == row_id)).one()
    return integrity.sign_row(integrity.records_key(app.settings.secret_key), table, row._mapping)


def some_history(app: Jobyard) -> list[str]:
    """Three settled runs with attempts, and audit entries, all signed."""
    ids = [run_job(app, "demo.noop").id for _ in range(3)]
    audit.record(app.engine, "alice", "login", remote_addr="10.0.0.1")
    audit.record(app.engine, "alice", "start", "demo.noop", {"params": {"n": 1.5}})
    seal_settled(app)
    return ids


def verify(app: Jobyard, **params: Any) -> Run:
    return run_job(app, "integrity.verify_hmac", **params)


def test_audit_entries_are_signed_when_written(app: Jobyard) -> None:
    audit.record(app.engine, "alice", "login", remote_addr="10.0.0.1")
    with app.engine.begin() as conn:
        audit.record(conn, "bob", "user_add", "carol", {"role": "viewer", "domain": None})
    signed = hmacs(app, "audit_log")
    assert len(signed) == 2
    for entry_id, mac in signed.items():
        assert mac == expected_hmac(app, "audit_log", entry_id)


def test_the_sealing_pass_signs_a_run_settled_by_a_real_worker(
    app: Jobyard, start_workers: Workers, start_scheduler: Scheduler
) -> None:
    start_scheduler()
    start_workers()
    run_id = run_job(app, "demo.noop").id
    mac = wait_for(lambda: hmacs(app, "runs")[run_id], timeout=30, what="the run to be sealed")
    assert mac == expected_hmac(app, "runs", run_id)
    with app.engine.connect() as conn:
        attempt_id = conn.execute(select(attempts_table.c.id).where(attempts_table.c.run_id == run_id)).scalar_one()
    attempt_mac = wait_for(lambda: hmacs(app, "run_attempts")[attempt_id], timeout=30, what="the attempt sealed")
    assert attempt_mac == expected_hmac(app, "run_attempts", attempt_id)


def test_a_retried_run_loses_its_hmac_and_is_signed_again_once_settled(
    app: Jobyard, start_workers: Workers, start_scheduler: Scheduler
) -> None:
    run_id = enqueue("test.rejecting", {"path": "/nowhere"}, app=app)
    assert app.flush()
    JobyardWorker(["default"], app=app).work(burst=True)
    assert run_of(app, run_id).status == RunStatus.FAILED
    start_scheduler()
    first = wait_for(lambda: hmacs(app, "runs")[run_id], timeout=30, what="the failed run sealed")
    retry_run(app, run_id, by="alice")
    assert hmacs(app, "runs")[run_id] is None
    start_workers()
    assert finished(app, run_id).status == RunStatus.FAILED
    second = wait_for(lambda: hmacs(app, "runs")[run_id], timeout=30, what="the retried run sealed")
    assert second != first
    assert second == expected_hmac(app, "runs", run_id)


def test_verify_reports_rows_changed_behind_its_back_and_mails_the_report(
    app: Jobyard, inbox: Inbox, start_workers: Workers
) -> None:
    start_workers()
    ids = some_history(app)
    clean = verify(app, notify=["auditor@example.org"])
    assert clean.status == RunStatus.COMPLETED, clean.error
    assert isinstance(clean.result, dict)
    assert clean.result["mismatched"] == 0
    assert clean.result["tables"]["runs"]["ok"] >= 3
    assert clean.result["tables"]["audit_log"]["ok"] == 2
    wait_for(lambda: len(inbox.messages) == 1, what="the clean report mailed")
    assert "all" in inbox.messages[0]["Subject"] and "match" in inbox.messages[0]["Subject"]

    tampered_audit = min(hmacs(app, "audit_log"))
    with app.engine.begin() as conn:
        conn.execute(update(runs_table).where(runs_table.c.id == ids[1]).values(result={"forged": True}))
        conn.execute(update(audit_table).where(audit_table.c.id == tampered_audit).values(actor="mallory"))
    found = verify(app, notify=["auditor@example.org"])
    assert found.status == RunStatus.COMPLETED_WITH_WARNINGS
    assert isinstance(found.result, dict)
    assert found.result["mismatched"] == 2
    assert sorted(found.result["mismatched_rows"], key=str) == sorted(
        [{"table": "runs", "id": ids[1]}, {"table": "audit_log", "id": tampered_audit}], key=str
    )
    assert found.result["report_sent_to"] == ["auditor@example.org"]
    wait_for(lambda: len(inbox.messages) == 2, what="the report of the tampering mailed")
    assert "2 row(s) do NOT match" in inbox.messages[1]["Subject"]
    body = inbox.messages[1].get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert f"runs {ids[1]}" in body and f"audit_log {tampered_audit}" in body


def test_verify_with_a_bad_address_fails_clearly_and_mails_nothing(
    app: Jobyard, inbox: Inbox, start_workers: Workers
) -> None:
    start_workers()
    run = verify(app, notify=["not an address"])
    assert run.status == RunStatus.FAILED
    assert "notify: not email addresses: not an address" in (run.error or "")
    assert inbox.messages == []


def test_recompute_after_a_key_change_makes_verify_clean_again(
    app: Jobyard, monkeypatch: pytest.MonkeyPatch, start_workers: Workers
) -> None:
    first_workers = start_workers()
    some_history(app)
    first_workers.stop()
    monkeypatch.setattr(app, "settings", replace(app.settings, secret_key="a-brand-new-secret-key"))
    workers = start_workers()
    stale = verify(app)
    assert stale.status == RunStatus.COMPLETED_WITH_WARNINGS
    assert isinstance(stale.result, dict) and stale.result["mismatched"] >= 5
    recomputed = run_job(app, "integrity.recompute_hmac")
    assert recomputed.status == RunStatus.COMPLETED, recomputed.error
    assert isinstance(recomputed.result, dict) and recomputed.result["signed"] >= 5
    workers.stop()  # the jobs above are settled now; sign them too, then nothing is left to recompute
    seal_settled(app)
    start_workers()
    again = run_job(app, "integrity.recompute_hmac")
    assert isinstance(again.result, dict)
    assert again.result["signed"] == 0
    clean = verify(app)
    assert clean.status == RunStatus.COMPLETED, clean.result
    assert isinstance(clean.result, dict) and clean.result["mismatched"] == 0


def test_recompute_upgrade_signs_only_the_rows_without_an_hmac(app: Jobyard, start_workers: Workers) -> None:
    start_workers()
    ids = some_history(app)
    entry = min(hmacs(app, "audit_log"))
    with app.engine.begin() as conn:
        conn.execute(update(runs_table).where(runs_table.c.id == ids[0]).values(hmac=None))
        conn.execute(update(audit_table).where(audit_table.c.id == entry).values(hmac=None))
        # A row whose content changed keeps its (now wrong) HMAC: upgrade must not launder it.
        conn.execute(update(runs_table).where(runs_table.c.id == ids[2]).values(error="changed"))
    before = {table: hmacs(app, table) for table in TABLES}
    upgraded = run_job(app, "integrity.recompute_upgrade_hmac")
    assert upgraded.status == RunStatus.COMPLETED, upgraded.error
    assert isinstance(upgraded.result, dict)
    assert upgraded.result["tables"]["audit_log"]["signed"] == 1
    after = {table: hmacs(app, table) for table in TABLES}
    assert after["runs"][ids[0]] == expected_hmac(app, "runs", ids[0])
    assert after["audit_log"][entry] == expected_hmac(app, "audit_log", entry)
    for table, macs in before.items():
        for row_id, mac in macs.items():
            if mac is not None:
                assert after[table][row_id] == mac, (table, row_id)
    assert after["runs"][ids[2]] != expected_hmac(app, "runs", ids[2])
    again = run_job(app, "integrity.recompute_upgrade_hmac")
    assert isinstance(again.result, dict)
    # Only the rows settled since (the first upgrade run and its attempt) are left to sign.
    assert again.result["tables"]["audit_log"]["signed"] == 0
    assert again.result["tables"]["runs"]["signed"] <= 1
