"""Runs that wait for other runs (`enqueue(..., depends_on=[run ids])`).

A dependent run waits in `waiting` until every run it depends on has completed; then it is queued. If
one of them fails or is cancelled, the dependent run is cancelled with that reason, and so, in turn,
are the runs that depend on it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from core.db import utcnow
from core.hotsql import Runner
from jobs.dispatch import Delivery
from jobs.enqueue import push_quietly

if TYPE_CHECKING:
    from core.app import Jobyard

log = logging.getLogger("jobyard.dependencies")
SUCCESS = ("completed", "completed_with_warnings")
DOOMED = ("failed", "cancelled")

_HAS_DEPENDENTS = "SELECT 1 AS one FROM run_dependencies WHERE depends_on_id = :id LIMIT 1"
_WAITING_DEPENDENTS = """
SELECT r.id, r.type, r.queue, r.timeout_s FROM run_dependencies d JOIN runs r ON r.id = d.run_id
WHERE d.depends_on_id = :id AND r.status = 'waiting'
"""
_UNMET = """
SELECT count(*) AS unmet FROM run_dependencies d JOIN runs r ON r.id = d.depends_on_id
WHERE d.run_id = :id AND r.status NOT IN ('completed', 'completed_with_warnings')
"""
_QUEUE = "UPDATE runs SET status = 'pending', dispatched_at = :now WHERE id = :id AND status = 'waiting'"
_CANCEL = """
UPDATE runs SET status = 'cancelled', finished_at = :now, error = :reason, cancel_requested_at = :now,
                cancel_requested_by = 'system:dependency'
WHERE id = :id AND status = 'waiting'
"""
_LOG = "INSERT INTO run_logs (run_id, at, level, message) VALUES (:id, :now, 'warning', :reason)"
_STATUS = "SELECT status FROM runs WHERE id = :id"
_STALE_WAITERS = """
SELECT DISTINCT d.depends_on_id AS id FROM run_dependencies d
JOIN runs waiter ON waiter.id = d.run_id JOIN runs r ON r.id = d.depends_on_id
WHERE waiter.status = 'waiting'
AND r.status IN ('completed', 'completed_with_warnings', 'failed', 'cancelled')
"""


def settle_dependents(app: Jobyard, run_id: str) -> None:
    """To call once `run_id` reached a final status: queues or cancels the runs waiting for it."""
    pending = [run_id]
    while pending:
        current = pending.pop()
        deliveries, cancelled = _settle_one(app, current)
        push_quietly(app.dispatcher, deliveries)
        pending.extend(cancelled)


def _settle_one(app: Jobyard, run_id: str) -> tuple[list[Delivery], list[str]]:
    hot = app.hot
    now = hot.ts(utcnow())
    deliveries: list[Delivery] = []
    cancelled: list[str] = []
    with hot.transaction() as sql:
        if sql.one(_HAS_DEPENDENTS, {"id": run_id}) is None:
            return [], []
        row = sql.one(_STATUS, {"id": run_id})
        status = row.status if row else "cancelled"
        for waiter in sql.all(_WAITING_DEPENDENTS, {"id": run_id}):
            if status in DOOMED:
                reason = f"cancelled: run {run_id}, which it depends on, {status}"
                if sql(_CANCEL, {"id": waiter.id, "now": now, "reason": reason}):
                    sql(_LOG, {"id": waiter.id, "now": now, "reason": reason})
                    cancelled.append(waiter.id)
            elif status in SUCCESS and _all_met(sql, waiter.id) and sql(_QUEUE, {"id": waiter.id, "now": now}):
                deliveries.append(Delivery(waiter.id, waiter.type, waiter.queue, waiter.timeout_s))
    return deliveries, cancelled


def _all_met(sql: Runner, run_id: str) -> bool:
    row = sql.one(_UNMET, {"id": run_id})
    return row is not None and int(row.unmet) == 0


def settle_stale(app: Jobyard) -> int:
    """The reconciler's safety net: settles waiters of runs that ended without settling them (a crash
    between the outcome and this step)."""
    with app.hot.transaction() as sql:
        ended = [row.id for row in sql.all(_STALE_WAITERS)]
    for run_id in ended:
        settle_dependents(app, run_id)
    return len(ended)
