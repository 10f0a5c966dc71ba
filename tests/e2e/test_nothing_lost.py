"""Nothing lost: Redis emptied or restarted under queued, retrying and running runs; 2,000 runs on
two worker processes."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from rq import Queue
from sqlalchemy import func, select

from core.app import Jobyard
from core.migrate import upgrade
from jobs.enqueue import EnqueueRequest, enqueue, enqueue_many
from jobs.models import Attempt, Run
from tests.conftest import PrivateRedis, WorkerProcesses, make_settings, run_cli, wait_for
from workers.worker import JobyardWorker

pytestmark = pytest.mark.both_databases


def statuses(app: Jobyard) -> Counter[str]:
    with app.engine.connect() as conn:
        return Counter(dict(conn.execute(select(Run.status, func.count()).group_by(Run.status)).all()))


def completed_attempts_per_run(app: Jobyard) -> Counter[str]:
    with app.engine.connect() as conn:
        rows = conn.execute(select(Attempt.run_id).where(Attempt.outcome == "completed")).scalars()
        return Counter(rows)


def all_completed(app: Jobyard, total: int) -> Callable[[], bool]:
    return lambda: statuses(app).get("completed", 0) == total


def test_redis_emptied_under_queued_and_retrying_runs(
    app: Jobyard, start_workers: Callable[..., WorkerProcesses], tmp_path: Path
) -> None:
    flaky = [enqueue("demo.fail", {"times": 1}, app=app) for _ in range(5)]
    assert app.flush()
    JobyardWorker(["default"], app=app).work(burst=True)
    assert statuses(app) == {"retrying": 5}
    out = tmp_path / "executions.txt"
    counted = enqueue_many([EnqueueRequest("test.count", {"path": str(out)})] * 20, app=app)
    assert app.flush()
    app.redis.flushdb()
    assert app.redis.dbsize() == 0

    result = run_cli(app, "reconcile", "--grace", "0", "--json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["repushed"]) == 25
    # Redis holds every run again: the 20 pending ones queued, the retrying ones queued or scheduled.
    assert app.dispatcher.held((run_id, "default") for run_id in [*flaky, *counted]) == {*flaky, *counted}
    start_workers(2)
    wait_for(all_completed(app, 25), timeout=60, what="all 25 runs to complete")
    assert sorted(out.read_text().split()) == sorted(counted)  # each executed exactly once
    per_run = completed_attempts_per_run(app)
    assert set(per_run.values()) == {1} and len(per_run) == 25
    with app.engine.connect() as conn:
        flaky_attempts = Counter(conn.execute(select(Attempt.run_id).where(Attempt.run_id.in_(flaky))).scalars())
    assert set(flaky_attempts.values()) == {2}


def test_redis_restarted_empty_while_workers_run(
    tmp_path: Path, database_url: str, private_redis: PrivateRedis
) -> None:
    app = Jobyard(make_settings(tmp_path / "var", database_url, private_redis.url))
    upgrade(app.engine)
    out = tmp_path / "executions.txt"
    workers = WorkerProcesses(app, 2)
    try:
        slow = enqueue_many([EnqueueRequest("demo.sleep", {"seconds": 0.3})] * 6, app=app)
        counted = enqueue_many([EnqueueRequest("test.count", {"path": str(out)})] * 20, app=app)
        wait_for(lambda: statuses(app).get("running", 0) > 0, timeout=30, what="a run to start")
        private_redis.kill()
        private_redis.start()  # back, and empty
        # The supervisors' periodic reconciler pushes again what SQL has and Redis lost.
        wait_for(all_completed(app, 26), timeout=90, what="every run to complete after the restart")
    finally:
        workers.stop()
        app.close()
    assert sorted(out.read_text().split()) == sorted(counted)
    per_run = completed_attempts_per_run(app)
    assert set(per_run.values()) == {1} and set(per_run) == set(slow) | set(counted)


def test_two_thousand_runs_on_two_worker_processes(app: Jobyard, start_workers: Callable[..., WorkerProcesses]) -> None:
    ids = enqueue_many([EnqueueRequest("demo.noop")] * 2000, app=app)
    start_workers(2)
    wait_for(all_completed(app, 2000), timeout=240, interval=0.5, what="2,000 runs to complete")
    per_run = completed_attempts_per_run(app)
    assert set(per_run) == set(ids)
    assert set(per_run.values()) == {1}
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Attempt)).scalar_one() == 2000
    # Nothing left behind: any second copy a reconciler pass pushed meanwhile is drained and dropped.
    wait_for(lambda: len(Queue("default", connection=app.redis)) == 0, timeout=30, what="the queue to drain")
