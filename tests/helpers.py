"""Reading the record back in tests."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from core.app import Jobyard
from jobs.models import Attempt, Run, runs_table


def run_of(app: Jobyard, run_id: str) -> Run:
    with app.sessions() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run


def attempts_of(app: Jobyard, run_id: str) -> list[Attempt]:
    with app.sessions() as session:
        return list(
            session.scalars(select(Attempt).where(Attempt.run_id == run_id).order_by(Attempt.series, Attempt.number))
        )


@dataclass(frozen=True)
class MixedRuns:
    """A page of runs that a bulk Retry must tell apart (tests of the runs page and of the API)."""

    failed: tuple[str, ...]
    cancelled: tuple[str, ...]  # the first by its dependency's failure, the others by hand
    waiting: tuple[str, ...]  # on `parent`, which has not run
    parent: str

    @property
    def all(self) -> set[str]:
        return {*self.failed, *self.cancelled, *self.waiting, self.parent}


def mixed_runs(app: Jobyard, by: str = "root") -> MixedRuns:
    """Three failed runs, three cancelled ones and two waiting on a pending parent, through the real paths: a
    worker fails the first three (cancelling the run that depends on one of them), an operator cancels two."""
    from jobs.cancel import cancel_run
    from jobs.enqueue import enqueue
    from workers.worker import JobyardWorker

    failed = tuple(enqueue("test.rejecting", {"path": f"/nowhere/{n}"}, triggered_by=by, app=app) for n in range(3))
    doomed = enqueue("demo.noop", depends_on=[failed[0]], triggered_by=by, app=app)
    assert app.flush()
    JobyardWorker(["default"], app=app).work(burst=True)
    by_hand = tuple(enqueue("demo.noop", triggered_by=by, app=app) for _ in range(2))
    for run_id in by_hand:
        cancel_run(app, run_id, by=by)
    parent = enqueue("demo.noop", triggered_by=by, app=app)
    waiting = tuple(enqueue("demo.noop", depends_on=[parent], triggered_by=by, app=app) for _ in range(2))
    mixed = MixedRuns(failed, (doomed, *by_hand), waiting, parent)
    expected = {**dict.fromkeys(failed, "failed"), **dict.fromkeys(mixed.cancelled, "cancelled")}
    expected |= {**dict.fromkeys(waiting, "waiting"), parent: "pending"}
    assert {run_id: run_of(app, run_id).status for run_id in mixed.all} == expected
    return mixed


def run_rows(app: Jobyard, run_ids: Iterable[str]) -> dict[str, tuple[Any, ...]]:
    """What a retry would change in each run's row."""
    r = runs_table.c
    columns = (r.status, r.series, r.attempt_count, r.error, r.retried_by, r.finished_at)
    with app.engine.connect() as conn:
        found = conn.execute(select(r.id, *columns).where(r.id.in_(list(run_ids))))
        return {row[0]: tuple(row[1:]) for row in found}


def run_with_history(app: Jobyard, by: str = "root") -> str:
    """A failed run of test.items with item results, log lines and three attempts in three series, made by a
    worker and two retries (the run detail's nested lists are then all non-empty)."""
    from jobs.actions import retry_run
    from jobs.enqueue import enqueue
    from workers.worker import JobyardWorker

    run_id = enqueue("test.items", {"count": 20}, triggered_by=by, app=app)
    for series in (1, 2, 3):
        if series > 1:
            retry_run(app, run_id, by=by)
        assert app.flush()
        JobyardWorker(["default"], app=app).work(burst=True)
        assert run_of(app, run_id).status == "failed"  # item 14 fails every time
    return run_id
