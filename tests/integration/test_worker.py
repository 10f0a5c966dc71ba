"""A JobyardWorker running in the test process (burst mode) against real Redis and SQL."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import select

from core.app import Jobyard
from jobs.dispatch import Delivery
from jobs.enqueue import enqueue
from jobs.models import Attempt, Run
from workers.models import RefusedJob, WorkerRecord
from workers.recording import Failure
from workers.worker import JobyardWorker

pytestmark = pytest.mark.both_databases


def drain(app: Jobyard, queues: tuple[str, ...] = ("default",)) -> JobyardWorker:
    assert app.flush()
    worker = JobyardWorker(list(queues), app=app)
    worker.work(burst=True)
    return worker


def load(app: Jobyard, run_id: str) -> tuple[Run, list[Attempt]]:
    with app.sessions() as session:
        run = session.get(Run, run_id)
        assert run is not None
        attempts = session.scalars(
            select(Attempt).where(Attempt.run_id == run_id).order_by(Attempt.series, Attempt.number)
        ).all()
        return run, list(attempts)


def test_a_run_completes_and_its_attempt_is_recorded(app: Jobyard) -> None:
    run_id = enqueue("demo.sleep", {"seconds": 0.01}, app=app)
    worker = drain(app)
    run, attempts = load(app, run_id)
    assert run.status == "completed"
    assert run.result == {"slept_s": 0.01}
    assert run.started_at is not None and run.finished_at is not None and run.started_at <= run.finished_at
    assert [(a.number, a.outcome, a.worker, a.error_class) for a in attempts] == [(1, "completed", worker.name, None)]
    with app.sessions() as session:
        record = session.get(WorkerRecord, worker.name)
        assert record is not None and record.stopped_at is not None


def test_secret_parameters_are_clear_only_inside_the_job(app: Jobyard) -> None:
    run_id = enqueue("test.secretive", {"token": "hunter2"}, app=app)
    drain(app)
    run, _ = load(app, run_id)
    assert run.status == "completed"
    assert run.result == {"token_length": 7}


def test_a_failed_attempt_is_stored_and_the_run_waits_for_its_retry(
    app: Jobyard, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = enqueue("demo.fail", {"times": 1}, app=app)
    before = datetime.now(UTC)
    with caplog.at_level(logging.INFO):
        drain(app)
    run, attempts = load(app, run_id)
    assert run.status == "retrying"
    assert run.next_attempt_at is not None
    assert 0.5 <= (run.next_attempt_at - before).total_seconds() <= 3  # backoff base 1 s
    [attempt] = attempts
    assert (attempt.outcome, attempt.error_class, attempt.error_message) == (
        "failed",
        "DemoFailure",
        "planned failure 1 of 1",
    )
    assert attempt.traceback is not None and "DemoFailure" in attempt.traceback
    # No worker sleeps through the wait: RQ's scheduled registry holds the run.
    assert app.redis.zscore("rq:scheduled:default", run_id) is not None
    assert Queue("default", connection=app.redis).count == 0
    # The worker log gives one next attempt time, Jobyard's; RQ's own (rounded, counting RQ's retries) is left out.
    said = [r.getMessage() for r in caplog.records]
    assert (
        [m for m in said if "next attempt at" in m]
        == [m for m in said if run_id in m and f"next attempt at {run.next_attempt_at:%H:%M:%S}" in m]
        != []
    )
    assert not [m for m in said if "scheduled for retry" in m]


def test_a_permanent_failure_fails_the_run_at_once_without_retrying(app: Jobyard) -> None:
    run_id = enqueue("test.rejecting", {"path": "/nowhere"}, app=app)
    drain(app)
    run, attempts = load(app, run_id)
    assert (run.status, run.next_attempt_at) == ("failed", None)
    assert [(a.outcome, a.error_class, a.error_message) for a in attempts] == [
        ("rejected", "PermanentFailure", "path: /nowhere does not exist")
    ]
    assert app.redis.zscore("rq:scheduled:default", run_id) is None


def test_the_per_attempt_timeout_is_enforced(app: Jobyard) -> None:
    run_id = enqueue("test.slow", {"seconds": 30}, app=app)
    drain(app)  # timeout 1 s, 2 attempts, no backoff: both attempts run in this burst
    run, attempts = load(app, run_id)
    assert run.status == "failed"
    assert [(a.outcome, a.error_class) for a in attempts] == [
        ("timeout", "JobTimeoutException"),
        ("timeout", "JobTimeoutException"),
    ]
    assert all((a.finished_at - a.started_at).total_seconds() < 5 for a in attempts if a.finished_at)


def test_poison_payloads_are_refused_and_never_run(app: Jobyard, tmp_path: Path) -> None:
    pickled_marker = tmp_path / "pickle-ran"
    json_marker = tmp_path / "json-ran"
    # A pickle payload (RQ's default serializer) and a JSON payload naming os.system, straight into the queue.
    Queue("default", connection=app.redis).enqueue("os.system", f"touch {pickled_marker}")
    Queue("default", connection=app.redis, serializer=JSONSerializer).enqueue("os.system", f"touch {json_marker}")
    legit = enqueue("demo.noop", app=app)
    drain(app)
    assert not pickled_marker.exists()
    assert not json_marker.exists()
    with app.sessions() as session:
        reasons = sorted(r.reason for r in session.scalars(select(RefusedJob)))
    assert len(reasons) == 2
    assert any("only JSON is accepted" in r for r in reasons)
    assert any("'os.system' is not a Jobyard run" in r for r in reasons)
    # The worker survived the poison and went on with real work.
    assert load(app, legit)[0].status == "completed"
    assert Queue("default", connection=app.redis).count == 0


def test_a_duplicate_delivery_runs_once(app: Jobyard, tmp_path: Path) -> None:
    out = tmp_path / "executions.txt"
    run_id = enqueue("test.count", {"path": str(out)}, app=app)
    app.dispatcher.push([Delivery(run_id, "test.count", "default", 120)])  # a second copy
    app.dispatcher.push([Delivery("0" * 32, "test.count", "default", 120)])  # a run that does not exist
    drain(app)
    assert out.read_text().split() == [run_id]
    run, attempts = load(app, run_id)
    assert run.status == "completed" and len(attempts) == 1


def test_an_attempt_settled_meanwhile_cannot_complete_the_run(app: Jobyard) -> None:
    from jobs.retry import RetryPolicy
    from workers.recording import recorder_for

    run_id = enqueue("demo.noop", app=app)
    recorder = recorder_for(app)
    claim = recorder.claim(run_id, "w1")
    assert claim is not None
    # The reconciler decided w1 was dead and the run is retrying (or already running again).
    assert recorder.fail(claim, Failure("died", "WorkerDied", "gone"), RetryPolicy(backoff_base_s=0)) is not None
    assert recorder.complete(claim, {"late": True}) is None
    run, attempts = load(app, run_id)
    assert run.status == "retrying" and run.result is None
    assert [a.outcome for a in attempts] == ["died"]
