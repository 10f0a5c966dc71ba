"""Per-item processing: 100 items, 7 failing, against real Redis and SQL."""

from __future__ import annotations

from typing import Any

from core.app import Jobyard
from jobs.enqueue import enqueue
from jobs.queries import items_of, run_detail
from workers.worker import JobyardWorker


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
