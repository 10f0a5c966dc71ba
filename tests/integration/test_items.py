"""Per-item processing: 100 items, 7 failing, against real Redis and SQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, insert, select, update

from core.app import Jobyard
from core.db import utcnow
from jobs.context import JobContext
from jobs.enqueue import enqueue
from jobs.items import process_items
from jobs.models import ItemClaim, attempts_table, run_logs_table, runs_table
from jobs.queries import items_of, run_detail, run_items
from jobs.status import FINAL
from tests.conftest import WorkerProcesses, wait_for
from workers.worker import JobyardWorker

item_claims = cast(Table, ItemClaim.__table__)
FINAL_VALUES = {s.value for s in FINAL}


pytestmark = pytest.mark.both_databases


def run(app: Jobyard, **params: Any) -> dict[str, Any]:
    run_id = enqueue("test.items", params, app=app)
    assert app.flush()
    JobyardWorker(["default"], app=app).work(burst=True)
    detail = run_detail(app.engine, run_id)
    assert detail is not None
    return detail


def test_continue_on_error_processes_every_item_and_ends_with_warnings(app: Jobyard) -> None:
    first = run(app, continue_on_error=True)
    assert first["status"] == "completed_with_warnings"
    assert first["items"] == {"ok": 93, "failed": 7, "skipped": 0} and first["error_count"] == 7
    failed = items_of(app.engine, first["id"], status="failed")
    assert [i["key"] for i in failed] == [f"item-{n}" for n in range(14, 100, 14)]
    assert failed[0]["message"] == "ValueError: item 14 is not importable"
    assert first["progress"] == {"done": 100, "total": 100, "message": None}
    # The next run skips the 93 done and tries the 7 again.
    second = run(app, continue_on_error=True)
    assert second["items"] == {"ok": 0, "failed": 7, "skipped": 93}


def test_without_continue_on_error_the_run_fails_and_keeps_earlier_items(app: Jobyard) -> None:
    detail = run(app)
    assert detail["status"] == "failed"
    assert detail["items"] == {"ok": 13, "failed": 1, "skipped": 0}
    assert detail["attempt_history"][0]["error_class"] == "ItemFailed"
    # Items 1-13 stay done: a later run (here: no failures) skips them and does the rest.
    again = run(app, fail_every=0)
    assert again["status"] == "completed" and again["items"] == {"ok": 87, "failed": 0, "skipped": 13}


def test_a_dry_run_processes_nothing_and_lists_everything(app: Jobyard) -> None:
    detail = run(app, dry_run=True)
    assert detail["status"] == "completed"
    assert detail["items"] == {"ok": 0, "failed": 0, "skipped": 100}
    assert items_of(app.engine, detail["id"])[0]["message"] == "dry run: would be processed"
    real = run(app, fail_every=0)
    assert real["items"] == {"ok": 100, "failed": 0, "skipped": 0}  # the dry run remembered nothing


def test_items_no_longer_offered_are_forgotten(app: Jobyard) -> None:
    run(app, count=10, fail_every=0)
    run(app, count=5, fail_every=0)  # items 6-10 are no longer offered
    again = run(app, count=10, fail_every=0)
    assert again["items"] == {"ok": 5, "failed": 0, "skipped": 5}


def _claim(app: Jobyard, key: str, run_id: str, **run: Any) -> None:
    """A claim of another run's attempt on `key`, and that run in the state `run` says."""
    with app.engine.begin() as conn:
        conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(**run))
        claim = {"scope": "type:test.items", "key": key, "run_id": run_id, "series": 1, "attempt": 1, "at": utcnow()}
        conn.execute(insert(item_claims).values(**claim))


def _claims(app: Jobyard) -> dict[str, str]:
    with app.engine.connect() as conn:
        return dict(conn.execute(select(item_claims.c.key, item_claims.c.run_id)).all())


def test_a_claim_holds_while_its_attempt_runs_and_is_taken_over_once_settled(app: Jobyard) -> None:
    running = enqueue("test.items", {"count": 3}, app=app)
    died = enqueue("test.items", {"count": 3}, app=app)
    _claim(app, "item-1", running, status="running", attempt_count=1, started_at=utcnow())
    # Its attempt 1 died and was settled: the run is retrying, so the claim of attempt 1 no longer holds.
    _claim(app, "item-2", died, status="retrying", attempt_count=1, next_attempt_at=utcnow() + timedelta(hours=1))
    detail = run(app, count=3, fail_every=0)
    assert detail["status"] == "completed"
    assert [(i["key"], i["status"], i["message"]) for i in items_of(app.engine, detail["id"])] == [
        ("item-1", "skipped", f"run {running} is processing it at the same time"),
        ("item-2", "ok", "imported 2"),
        ("item-3", "ok", "imported 3"),
    ]
    assert _claims(app) == {"item-1": running}  # the others went with their results
    _claim(app, "item-0", running, status="failed", finished_at=utcnow())  # now settled too (item-0: not offered)
    again = run(app, count=3, fail_every=0)
    assert again["items"] == {"ok": 1, "failed": 0, "skipped": 2} and _claims(app) == {"item-0": running}


def test_an_item_offered_twice_is_processed_once(app: Jobyard) -> None:
    run_id = enqueue("test.items", app=app)
    ctx = JobContext(run_id=run_id, type="test.items", attempt=1, params={}, engine=app.engine, app=app)
    seen: list[str] = []

    def handle(item: str) -> None:
        seen.append(item)

    counts = process_items(ctx, ["a", "b", "a"], handle)
    assert seen == ["a", "b"] and counts == {"ok": 2, "failed": 0, "skipped": 1}
    assert items_of(app.engine, run_id)[2]["message"] == f"already processed by run {run_id}"
    assert _claims(app) == {}


def _results(app: Jobyard, run_id: str) -> dict[str, tuple[str, str | None]]:
    return {i["key"]: (i["status"], i["message"]) for i in items_of(app.engine, run_id)}


def _ended(app: Jobyard, run_id: str) -> dict[str, Any]:
    detail: dict[str, Any] = wait_for(
        lambda: (d := run_detail(app.engine, run_id)) is not None and d["status"] in FINAL_VALUES and d,
        timeout=90,
        what=f"run {run_id} to end",
    )
    return detail


def test_two_runs_at_once_over_the_same_items_process_each_once(
    app: Jobyard, start_workers: Callable[..., WorkerProcesses], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    params = {"count": 20, "gate": str(gate), "hold": 10}
    first, second = (enqueue("test.shared_items", params, app=app) for _ in range(2))
    start_workers(2)
    # Whichever run claims item 10 first keeps it until released; the other must reach it meanwhile.
    holding = wait_for(lambda: list(gate.glob("holding-*")), timeout=60, what="a run to hold item 10")
    holder = holding[0].name.removeprefix("holding-")
    other = second if holder == first else first
    wait_for(lambda: "item-10" in _results(app, other), timeout=60, what="the other run to pass item 10")
    assert _results(app, other)["item-10"] == ("skipped", f"run {holder} is processing it at the same time")
    assert [p.name for p in gate.glob("holding-*")] == [f"holding-{holder}"]  # never both
    (gate / "release").touch()
    ended = [_ended(app, run_id) for run_id in (first, second)]
    assert [d["status"] for d in ended] == ["completed", "completed"]
    lines = [line.split() for line in (gate / "effects").read_text().splitlines()]
    assert Counter(int(n) for n, _ in lines) == dict.fromkeys(range(1, 21), 1)  # every side effect exactly once
    did = {int(n): run_id for n, run_id in lines}
    ok_in: dict[str, list[str]] = {}
    for run_id in (first, second):
        for key, (status, _message) in _results(app, run_id).items():
            if status == "ok":
                ok_in.setdefault(key, []).append(run_id)
    assert ok_in == {f"item-{n}": [did[n]] for n in range(1, 21)}  # one result per item, from the run that did it
    with app.engine.connect() as conn:
        said = [
            *conn.execute(select(attempts_table.c.error_message, attempts_table.c.traceback)).all(),
            *conn.execute(select(run_logs_table.c.message)).all(),
            *conn.execute(select(run_items.c.message)).all(),
        ]
        assert conn.execute(select(item_claims.c.key)).all() == []
    assert not [text for row in said for text in row if text and ("Integrity" in text or "unique" in text.lower())]
