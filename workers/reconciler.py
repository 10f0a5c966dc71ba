"""Bringing Redis back in line with SQL, which is the record.

- A run SQL says is scheduled/pending/retrying but RQ no longer holds (Redis restarted empty, a push
  that failed after commit) is pushed again.
- A run SQL says is running whose worker is dead becomes a failed attempt ("worker died") and follows
  its retry policy.

Safe to run from several processes at once: every move is a conditional update, and a second copy of
a delivery is dropped by the worker's claim. The Redis key ``jobyard:reconciler:lock`` only saves work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from redis import RedisError
from sqlalchemy import select, update

from core import defaults
from core.db import utcnow
from jobs.dependencies import settle_dependents, settle_stale
from jobs.dispatch import Delivery
from jobs.models import attempts_table as attempts
from jobs.models import runs_table as runs
from jobs.retry import RetryPolicy
from jobs.status import AWAITING_DISPATCH, FINAL, RunStatus
from workers import exclusive, liveness
from workers.models import workers_table
from workers.recording import Claim, Failure, RunRecorder, recorder_for

if TYPE_CHECKING:
    from core.app import Jobyard

log = logging.getLogger("jobyard.reconciler")
LOCK_KEY = "jobyard:reconciler:lock"
BATCH = 1000


@dataclass
class ReconcileReport:
    repushed: list[str] = field(default_factory=list)
    died: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"repushed": self.repushed, "died": self.died}


def reconcile(app: Jobyard, *, grace_s: float | None = None, now: datetime | None = None) -> ReconcileReport:
    now = now or utcnow()
    grace_s = app.settings.reconcile_grace_s if grace_s is None else grace_s
    report = ReconcileReport()
    _settle_dead_workers(app, now, report)
    _wake_waiting(app, now, report)
    settle_stale(app)
    _repush_missing(app, now - timedelta(seconds=grace_s), now, report)
    if report.repushed or report.died:
        log.info("reconciled: %d pushed again, %d attempts of dead workers", len(report.repushed), len(report.died))
    return report


def reconcile_if_free(app: Jobyard) -> ReconcileReport | None:
    """Runs the reconciler unless another process holds the lock; for periodic callers."""
    token = f"{id(app)}-{utcnow().timestamp()}"
    try:
        if not app.redis.set(LOCK_KEY, token, nx=True, ex=defaults.RECONCILE_LOCK_TTL_S):
            return None
    except RedisError:
        # Dead workers can still be settled in SQL while Redis is away.
        log.warning("Redis unavailable; reconciling without the lock")
        return reconcile(app)
    try:
        return reconcile(app)
    finally:
        try:
            if app.redis.get(LOCK_KEY) == token.encode():
                app.redis.delete(LOCK_KEY)
        except RedisError:
            pass


def _settle_dead_workers(app: Jobyard, now: datetime, report: ReconcileReport) -> None:
    with app.engine.connect() as conn:
        rows = conn.execute(
            select(runs.c.id, attempts.c.worker)
            .join(
                attempts,
                (attempts.c.run_id == runs.c.id)
                & (attempts.c.series == runs.c.series)
                & (attempts.c.number == runs.c.attempt_count),
            )
            .where(runs.c.status == RunStatus.RUNNING)
        ).all()
    if not rows:
        return
    dead = liveness.dead_workers(app.engine, {r.worker for r in rows}, app.settings.worker_dead_after_s, now)
    recorder = recorder_for(app)
    for row in rows:
        if row.worker not in dead:
            continue
        claim = recorder.open_claim(row.id)
        if claim is None or claim.worker != row.worker:
            continue  # settled meanwhile
        _fail_died_attempt(app, recorder, claim, report)


def settle_instance_restart(app: Jobyard, instance: str) -> list[str]:
    """At the start of a named instance: the runs its previous life left running become failed attempts
    ("instance restarted") and follow their retry policy (seed 002). Returns their ids."""
    with app.engine.connect() as conn:
        left = (
            conn.execute(
                select(runs.c.id)
                .join(
                    attempts,
                    (attempts.c.run_id == runs.c.id)
                    & (attempts.c.series == runs.c.series)
                    & (attempts.c.number == runs.c.attempt_count),
                )
                .join(workers_table, workers_table.c.name == attempts.c.worker)
                .where(runs.c.status == RunStatus.RUNNING, workers_table.c.instance == instance)
            )
            .scalars()
            .all()
        )
    recorder = recorder_for(app)
    report = ReconcileReport()
    for run_id in left:
        claim = recorder.open_claim(run_id)
        if claim is not None:
            reason = f"instance {instance} restarted during attempt {claim.attempt}"
            _fail_died_attempt(app, recorder, claim, report, Failure("died", "InstanceRestarted", reason))
    return report.died


def _fail_died_attempt(
    app: Jobyard, recorder: RunRecorder, claim: Claim, report: ReconcileReport, failure: Failure | None = None
) -> None:
    declared = app.registry.get(claim.type)
    policy = declared.retry if declared is not None else RetryPolicy()
    failure = failure or Failure("died", "WorkerDied", f"worker {claim.worker} died during attempt {claim.attempt}")
    with app.engine.connect() as conn:
        stop_asked = conn.execute(select(runs.c.cancel_requested_at).where(runs.c.id == claim.run_id)).scalar()
    if stop_asked is not None:
        # Killed on purpose: the job did not stop within the cancel grace period.
        failure = Failure("cancelled", "Cancelled", f"stopped hard: worker {claim.worker} was killed")
    outcome = recorder.fail(claim, failure, policy)
    if outcome is None:
        return
    report.died.append(claim.run_id)
    if outcome.status in FINAL:
        settle_dependents(app, claim.run_id)
    log.warning("run %s: worker %s died; run is now %s", claim.run_id, claim.worker, outcome.status.value)
    try:
        app.dispatcher.forget_execution(claim.queue, claim.run_id)
        app.dispatcher.push(outcome.woken)
        if outcome.status is RunStatus.RETRYING:
            app.dispatcher.push(
                [Delivery(claim.run_id, claim.type, claim.queue, claim.timeout_s, outcome.next_attempt_at, front=True)]
            )
    except RedisError:
        log.warning("Redis unavailable; run %s will be pushed on a later pass", claim.run_id)


def _wake_waiting(app: Jobyard, now: datetime, report: ReconcileReport) -> None:
    """A waiting run of an exclusive type whose lock is free (its holder settled without waking it)."""
    with app.hot.transaction() as sql:
        woken = [d for t in exclusive.waiting_types(sql) if (d := exclusive.wake_one(sql, app.hot, t, now)) is not None]
    if woken:
        app.dispatcher.push(woken)
        report.repushed.extend(d.run_id for d in woken)


def _repush_missing(app: Jobyard, older_than: datetime, now: datetime, report: ReconcileReport) -> None:
    last_id = ""
    while True:
        with app.engine.connect() as conn:
            rows = conn.execute(
                select(
                    runs.c.id,
                    runs.c.type,
                    runs.c.queue,
                    runs.c.timeout_s,
                    runs.c.status,
                    runs.c.scheduled_for,
                    runs.c.next_attempt_at,
                    runs.c.dispatched_at,
                )
                .where(
                    runs.c.status.in_(list(AWAITING_DISPATCH)), runs.c.dispatched_at <= older_than, runs.c.id > last_id
                )
                .order_by(runs.c.id)
                .limit(BATCH)
            ).all()
        if not rows:
            return
        last_id = rows[-1].id
        verify_before = now - timedelta(seconds=defaults.RECONCILE_VERIFY_QUEUED_AFTER_S)
        held = app.dispatcher.held(
            ((r.id, r.queue) for r in rows),
            verify_queued={r.id for r in rows if r.dispatched_at <= verify_before},
        )
        missing = [r for r in rows if r.id not in held]
        if not missing:
            continue
        # Claim the re-push in SQL first: a run that started (or finished) since it was read is left alone.
        with app.engine.begin() as conn:
            still_waiting = {
                row.id: row
                for row in conn.execute(
                    update(runs)
                    .where(runs.c.id.in_([r.id for r in missing]), runs.c.status.in_(list(AWAITING_DISPATCH)))
                    .values(dispatched_at=now)
                    .returning(runs.c.id, runs.c.status, runs.c.scheduled_for, runs.c.next_attempt_at)
                )
            }
        deliveries = []
        for r in missing:
            current = still_waiting.get(r.id)
            if current is None:
                continue
            due = current.scheduled_for if current.status == RunStatus.SCHEDULED else current.next_attempt_at
            # A retry lost with Redis has waited its backoff like any other: it still goes before fresh runs.
            front = current.status == RunStatus.RETRYING
            deliveries.append(Delivery(r.id, r.type, r.queue, r.timeout_s, due if due and due > now else None, front))
        app.dispatcher.push(deliveries)
        report.repushed.extend(d.run_id for d in deliveries)
