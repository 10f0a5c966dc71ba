"""Writing attempts and run transitions to SQL, with conditional updates so that two processes
(a worker and the reconciler, or two copies of one delivery) can never both move the same run."""

from __future__ import annotations

import logging
import traceback as tb
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from core.db import utcnow
from core.hotsql import HotSQL, Runner
from jobs.dispatch import Delivery
from jobs.models import attempts_table as attempts
from jobs.models import runs_table as runs
from jobs.retry import RetryPolicy
from jobs.status import CLAIMABLE, RunStatus
from workers import exclusive

log = logging.getLogger("jobyard.worker")

if TYPE_CHECKING:
    from core.app import Jobyard


_STARTABLE = ", ".join(f"'{s.value}'" for s in sorted(CLAIMABLE))
_CLAIM = f"""
UPDATE runs SET status = 'running', attempt_count = attempt_count + 1, started_at = :now,
                finished_at = NULL, next_attempt_at = NULL
WHERE id = :id AND status IN ({_STARTABLE})
  AND COALESCE(next_attempt_at, scheduled_for, :now) <= :not_before
RETURNING type, queue, params, series, attempt_count, max_attempts, timeout_s, schedule_id
"""
CLAIM_EARLY_TOLERANCE_S = 2.0
_WAIT = "UPDATE runs SET status = 'waiting', attempt_count = attempt_count - 1, started_at = NULL WHERE id = :id"
_OPEN_ATTEMPT = """
INSERT INTO run_attempts (run_id, series, number, worker, started_at)
VALUES (:run_id, :series, :number, :worker, :now)
"""
_COMPLETE_RUN = """
UPDATE runs SET status = :status, finished_at = :now, result = :result, error = NULL
WHERE id = :id AND status = 'running' AND series = :series AND attempt_count = :number
"""
_FOLLOW_UP = """
SELECT notify, EXISTS (SELECT 1 FROM run_dependencies d WHERE d.depends_on_id = runs.id) AS has_dependents
FROM runs WHERE id = :id
"""
_FAIL_RUN = """
UPDATE runs SET status = :status, finished_at = :finished_at, next_attempt_at = :next_attempt_at,
                dispatched_at = COALESCE(:dispatched_at, dispatched_at), error = :error
WHERE id = :id AND status = 'running' AND series = :series AND attempt_count = :number
"""
_FAIL_ATTEMPT = """
UPDATE run_attempts SET finished_at = :now, outcome = :outcome, error_class = :error_class,
                        error_message = :error_message, traceback = :traceback
WHERE run_id = :id AND series = :series AND number = :number
"""
_COMPLETE_ATTEMPT = """
UPDATE run_attempts SET finished_at = :now, outcome = 'completed'
WHERE run_id = :id AND series = :series AND number = :number
"""


@dataclass(frozen=True)
class Claim:
    """A worker's hold on one attempt of one run."""

    run_id: str
    type: str
    queue: str
    params: dict[str, Any]
    series: int
    attempt: int
    max_attempts: int
    timeout_s: int
    worker: str
    started_at: datetime
    schedule_id: int | None = None


@dataclass(frozen=True)
class Failure:
    outcome: str  # failed | timeout | died | cancelled | rejected (PermanentFailure: no retry)
    error_class: str
    message: str
    traceback: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException, *, outcome: str = "failed") -> Failure:
        return cls(
            outcome=outcome,
            error_class=type(exc).__name__,
            message=str(exc) or type(exc).__name__,
            traceback="".join(tb.format_exception(exc)),
        )


@dataclass(frozen=True)
class Outcome:
    status: RunStatus
    next_attempt_at: datetime | None = None
    failure: Failure | None = None
    # Runs this outcome made ready (a waiting run of an exclusive type); push them after the commit.
    woken: tuple[Delivery, ...] = ()
    # Read in the same transaction, so that hooks with nothing to do cost no query of their own.
    notify: tuple[str, ...] = ()
    has_dependents: bool = False


class RunRecorder:
    def __init__(self, hot: HotSQL, is_exclusive: Callable[[str], bool] = lambda _type: False) -> None:
        self.hot = hot
        self.engine = hot.engine
        self.is_exclusive = is_exclusive

    def claim(self, run_id: str, worker: str) -> Claim | None:
        """Starts the next attempt, or returns None when the run is not in a startable state
        (a second copy of a delivery, a cancelled run, a run that no longer exists)."""
        now = utcnow()
        at = self.hot.ts(now)
        with self.hot.transaction() as sql:
            # A copy delivered before the run's time (a backoff, a planned start) is not taken; RQ's
            # registries score whole seconds, hence the tolerance.
            not_before = self.hot.ts(now + timedelta(seconds=CLAIM_EARLY_TOLERANCE_S))
            row = sql.one(_CLAIM, {"id": run_id, "now": at, "not_before": not_before})
            if row is None:
                return None
            if self.is_exclusive(row.type) and not exclusive.take(sql, self.hot, row.type, run_id, now):
                sql(_WAIT, {"id": run_id})
                log.info("run %s waits: another %s run is executing", run_id, row.type)
                return None
            sql(
                _OPEN_ATTEMPT,
                {"run_id": run_id, "series": row.series, "number": row.attempt_count, "worker": worker, "now": at},
            )
        return Claim(
            run_id=run_id,
            type=row.type,
            queue=row.queue,
            params=self.hot.from_json(row.params),
            series=row.series,
            attempt=row.attempt_count,
            max_attempts=row.max_attempts,
            timeout_s=row.timeout_s,
            worker=worker,
            started_at=now,
            schedule_id=row.schedule_id,
        )

    def complete(self, claim: Claim, result: Any, status: RunStatus = RunStatus.COMPLETED) -> Outcome | None:
        now = utcnow()
        at = self.hot.ts(now)
        with self.hot.transaction() as sql:
            key = {"id": claim.run_id, "series": claim.series, "number": claim.attempt}
            if not sql(_COMPLETE_RUN, {**key, "status": status.value, "now": at, "result": self.hot.json(result)}):
                # This attempt was settled meanwhile (declared dead; a later attempt may be running).
                log.warning(
                    "run %s: attempt %d finished after it was settled; result dropped", claim.run_id, claim.attempt
                )
                return None
            sql(_COMPLETE_ATTEMPT, {**key, "now": at})
            woken = self._release(sql, claim, now)
            follow_up = self._follow_up(sql, claim.run_id)
        return Outcome(status, woken=woken, **follow_up)

    def fail(self, claim: Claim, failure: Failure, policy: RetryPolicy | None) -> Outcome | None:
        """Closes the attempt with its error and moves the run to retrying or failed per the policy.

        Returns None if the run was no longer running under this attempt (someone else settled it)."""
        now = utcnow()
        delay = None
        if policy is not None and failure.outcome != "cancelled":
            delay = policy.delay_after(claim.attempt, max_attempts=claim.max_attempts)
        if failure.outcome == "cancelled":
            outcome = Outcome(RunStatus.CANCELLED, None, failure)
            finished_at, next_attempt_at, dispatched_at = now, None, None
        elif delay is None:
            outcome = Outcome(RunStatus.FAILED, None, failure)
            finished_at, next_attempt_at, dispatched_at = now, None, None
        else:
            due = now + timedelta(seconds=delay)
            outcome = Outcome(RunStatus.RETRYING, due, failure)
            finished_at, next_attempt_at, dispatched_at = None, due, now
        key = {"id": claim.run_id, "series": claim.series, "number": claim.attempt}
        with self.hot.transaction() as sql:
            moved = sql(
                _FAIL_RUN,
                {
                    **key,
                    "status": outcome.status.value,
                    "finished_at": self.hot.ts(finished_at),
                    "next_attempt_at": self.hot.ts(next_attempt_at),
                    "dispatched_at": self.hot.ts(dispatched_at),
                    "error": f"{failure.error_class}: {failure.message}",
                },
            )
            if not moved:
                return None
            sql(
                _FAIL_ATTEMPT,
                {
                    **key,
                    "now": self.hot.ts(now),
                    "outcome": failure.outcome,
                    "error_class": failure.error_class,
                    "error_message": failure.message,
                    "traceback": failure.traceback,
                },
            )
            woken = self._release(sql, claim, now)
            follow_up = self._follow_up(sql, claim.run_id)
        return replace(outcome, woken=woken, **follow_up)

    def _follow_up(self, sql: Runner, run_id: str) -> dict[str, Any]:
        row = sql.one(_FOLLOW_UP, {"id": run_id})
        if row is None:
            return {}
        return {"notify": tuple(self.hot.from_json(row.notify) or ()), "has_dependents": bool(row.has_dependents)}

    def _release(self, sql: Runner, claim: Claim, now: datetime) -> tuple[Delivery, ...]:
        if not self.is_exclusive(claim.type):
            return ()
        woken = exclusive.release(sql, self.hot, claim.type, claim.run_id, now)
        return (woken,) if woken is not None else ()

    def open_claim(self, run_id: str) -> Claim | None:
        """The claim of a running run's current attempt, rebuilt from SQL (for the reconciler)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(runs, attempts.c.worker, attempts.c.started_at.label("attempt_started_at"))
                .join(
                    attempts,
                    (attempts.c.run_id == runs.c.id)
                    & (attempts.c.series == runs.c.series)
                    & (attempts.c.number == runs.c.attempt_count),
                )
                .where(runs.c.id == run_id, runs.c.status == RunStatus.RUNNING)
            ).first()
        if row is None:
            return None
        return Claim(
            run_id=row.id,
            type=row.type,
            queue=row.queue,
            params=row.params,
            series=row.series,
            attempt=row.attempt_count,
            max_attempts=row.max_attempts,
            timeout_s=row.timeout_s,
            worker=row.worker,
            started_at=row.attempt_started_at,
        )

    @staticmethod
    def _attempt_key(claim: Claim) -> tuple[Any, ...]:
        return (
            attempts.c.run_id == claim.run_id,
            attempts.c.series == claim.series,
            attempts.c.number == claim.attempt,
        )


def recorder_for(app: Jobyard) -> RunRecorder:
    def is_exclusive(type_name: str) -> bool:
        declared = app.registry.get(type_name)
        return declared is not None and declared.exclusive

    return RunRecorder(app.hot, is_exclusive)
