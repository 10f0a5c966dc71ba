"""A due retry is not stuck behind the backlog: a real worker process, real Redis and SQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.app import Jobyard
from jobs.enqueue import EnqueueRequest, enqueue, enqueue_many
from jobs.models import Attempt, Run
from tests.conftest import WorkerProcesses, wait_for
from tests.helpers import attempts_of

BACKLOG = 2000
# demo.fail's backoff base: its first retry is due this long after the failed attempt.
BACKOFF = timedelta(seconds=1)


pytestmark = pytest.mark.both_databases


def test_a_due_retry_starts_before_a_backlog_of_2000_fresh_runs(
    app: Jobyard, start_workers: Callable[..., WorkerProcesses]
) -> None:
    retried = enqueue("demo.fail", {"times": 1}, app=app)
    # 20 ms each, so that one worker needs about a minute for the backlog: it is still there when the
    # retry comes due a second or two after the worker takes the failing run first.
    enqueue_many([EnqueueRequest("demo.sleep", {"seconds": 0.02})] * BACKLOG, app=app)
    assert app.flush()
    start_workers(1)

    def second_attempt() -> list[Attempt] | None:
        attempts = attempts_of(app, retried)
        return attempts if len(attempts) == 2 else None

    first, second = wait_for(second_attempt, timeout=30, what="the retry's second attempt to start")
    assert first.outcome == "failed" and first.finished_at is not None
    due = first.finished_at + BACKOFF
    assert second.started_at >= due - timedelta(seconds=0.1)
    assert second.started_at - due < timedelta(seconds=5), (due, second.started_at)
    with app.sessions() as session:
        overtaken = session.scalar(
            select(func.count())
            .select_from(Run)
            .where(
                Run.type == "demo.sleep",
                ~select(Attempt.run_id)
                .where(Attempt.run_id == Run.id, Attempt.started_at < second.started_at)
                .exists(),
            )
        )
    # The retry did overtake the backlog rather than arrive after it.
    assert overtaken is not None and overtaken > BACKLOG // 2, overtaken
