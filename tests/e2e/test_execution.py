"""Watching a job from outside while it runs, and stopping a worker in the middle of one."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable

import pytest
from rq.worker import Worker, WorkerStatus
from sqlalchemy import select

from core.app import Jobyard
from jobs.enqueue import enqueue
from jobs.queries import run_detail
from tests.conftest import JobyardProcess, WorkerProcesses, _running, wait_for
from workers.models import workers_table

pytestmark = pytest.mark.both_databases


def test_progress_and_log_lines_are_visible_while_the_job_runs(
    app: Jobyard, start_workers: Callable[..., WorkerProcesses]
) -> None:
    run_id = enqueue("demo.progress", {"steps": 20, "step_seconds": 0.25}, app=app)
    start_workers(1)

    def midway() -> dict[str, object] | None:
        detail = run_detail(app.engine, run_id)
        assert detail is not None
        progress = detail["progress"]
        return detail if detail["status"] == "running" and 3 <= (progress["done"] or 0) < 20 else None

    seen = wait_for(midway, timeout=30, what="the run to be part-way through")
    assert seen["logs"], "log lines are readable before the run ends"
    assert seen["logs"][0]["message"] == "step 1 of 20"
    assert seen["progress"]["total"] == 20
    wait_for(lambda: (run_detail(app.engine, run_id) or {}).get("status") == "completed", what="the run to end")
    final = run_detail(app.engine, run_id)
    assert final is not None and final["progress"]["done"] == 20 and len(final["logs"]) == 20


def test_sigterm_lets_the_current_job_finish_and_loses_nothing(
    app: Jobyard, start_workers: Callable[..., WorkerProcesses]
) -> None:
    current = enqueue("demo.sleep", {"seconds": 2}, app=app)
    queued = enqueue("demo.noop", app=app)
    workers = start_workers(1)
    wait_for(lambda: (run_detail(app.engine, current) or {}).get("status") == "running", what="the job to start")
    workers.process.send_signal(signal.SIGTERM)
    assert workers.process.wait(timeout=60) == 0
    workers.stopped = True
    detail = run_detail(app.engine, current)
    assert detail is not None and detail["status"] == "completed"
    assert [a["outcome"] for a in detail["attempt_history"]] == ["completed"]
    # The run it had not started is still queued for the next worker.
    assert (run_detail(app.engine, queued) or {}).get("status") == "pending"
    start_workers(1)
    wait_for(lambda: (run_detail(app.engine, queued) or {}).get("status") == "completed", what="the queued run")


def test_an_idle_worker_given_sigterm_exits_cleanly_at_once(
    app: Jobyard, start_workers: Callable[..., WorkerProcesses]
) -> None:
    workers = start_workers(1)

    def listening() -> bool:
        with app.engine.connect() as conn:
            names = conn.execute(select(workers_table.c.name).where(workers_table.c.stopped_at.is_(None))).scalars()
            keys = [Worker.redis_worker_namespace_prefix + name for name in names]
        return any(app.redis.hget(key, "state") == WorkerStatus.IDLE.encode() for key in keys)

    # Idle: blocked in RQ's dequeue, where the stop has to break a blocking Redis read and end the pubsub thread.
    wait_for(listening, what="the worker to wait for jobs")
    workers.process.send_signal(signal.SIGTERM)
    try:
        # Far below the supervisor's 30 s grace, so a worker that only the grace's kill ends fails here.
        code = workers.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail("an idle worker was still running 5 s after SIGTERM", pytrace=False)
    workers.stopped = True
    assert code == 0


def test_a_run_for_a_named_instance_waits_for_it_and_survives_its_restart(
    app: Jobyard, start_workers: Callable[..., WorkerProcesses]
) -> None:
    targeted = enqueue("demo.sleep", {"seconds": 3}, instance="alpha", app=app)
    marker = enqueue("demo.noop", app=app)
    others = start_workers(1)  # serves the default queue only
    wait_for(lambda: (run_detail(app.engine, marker) or {}).get("status") == "completed", what="the other worker")
    assert (run_detail(app.engine, targeted) or {}).get("status") == "pending"
    others.stop()
    alpha = JobyardProcess(app, "worker", "--processes", "1", "--instance", "alpha")
    try:
        wait_for(lambda: (run_detail(app.engine, targeted) or {}).get("status") == "running", what="alpha to start it")
        alpha.kill()
        alpha = JobyardProcess(app, "worker", "--processes", "1", "--instance", "alpha")
        wait_for(lambda: (run_detail(app.engine, targeted) or {}).get("status") == "completed", timeout=60,
                 what="the restarted instance to finish it")  # fmt: skip
    finally:
        alpha.stop()
        _running.remove(alpha)
    history = (run_detail(app.engine, targeted) or {})["attempt_history"]
    assert [(a["outcome"], a["error_class"]) for a in history] == [("died", "InstanceRestarted"), ("completed", None)]
