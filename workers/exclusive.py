"""Exclusive job types: never two runs of one type executing at once, across every worker and host.

The lock is a row in ``type_locks`` (scheduler/models.py) taken in the claim's own transaction; its
primary key makes a second taker find it held. A run that finds it held waits in `waiting` (not
dropped, not failed) and is woken, oldest first, when the holder settles.
"""

from __future__ import annotations

from datetime import datetime

from core.hotsql import HotSQL, Runner
from jobs.dispatch import Delivery

# A lock whose holder is no longer running (settled by the reconciler after its worker died) is stale.
_DROP_STALE = """
DELETE FROM type_locks WHERE type = :type
AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.id = type_locks.run_id AND runs.status = 'running')
"""
_TAKE = "INSERT INTO type_locks (type, run_id, acquired_at) VALUES (:type, :run_id, :now) ON CONFLICT (type) DO NOTHING"
_HOLDER = "SELECT run_id FROM type_locks WHERE type = :type"
_RELEASE = "DELETE FROM type_locks WHERE type = :type AND run_id = :run_id"
# Runs still waiting for their dependencies are not this lock's to wake.
_OLDEST_WAITING = """
SELECT id, queue, timeout_s FROM runs WHERE type = :type AND status = 'waiting'
AND NOT EXISTS (
    SELECT 1 FROM run_dependencies d JOIN runs dep ON dep.id = d.depends_on_id
    WHERE d.run_id = runs.id AND dep.status NOT IN ('completed', 'completed_with_warnings')
)
ORDER BY created_at, id LIMIT 1
"""
_WAKE = "UPDATE runs SET status = 'pending', dispatched_at = :now WHERE id = :id AND status = 'waiting'"
_WAITING_TYPES = "SELECT DISTINCT type FROM runs WHERE status = 'waiting'"


def take(sql: Runner, hot: HotSQL, type_name: str, run_id: str, now: datetime) -> bool:
    sql(_DROP_STALE, {"type": type_name})
    if sql(_TAKE, {"type": type_name, "run_id": run_id, "now": hot.ts(now)}) == 1:
        return True
    holder = sql.one(_HOLDER, {"type": type_name})
    return holder is not None and holder.run_id == run_id


def release(sql: Runner, hot: HotSQL, type_name: str, run_id: str, now: datetime) -> Delivery | None:
    """Frees the type and moves its oldest waiting run back to pending; returns it to be pushed."""
    sql(_RELEASE, {"type": type_name, "run_id": run_id})
    return wake_one(sql, hot, type_name, now)


def wake_one(sql: Runner, hot: HotSQL, type_name: str, now: datetime) -> Delivery | None:
    sql(_DROP_STALE, {"type": type_name})
    if sql.one(_HOLDER, {"type": type_name}) is not None:
        return None
    waiting = sql.one(_OLDEST_WAITING, {"type": type_name})
    if waiting is None or not sql(_WAKE, {"id": waiting.id, "now": hot.ts(now)}):
        return None
    return Delivery(waiting.id, type_name, waiting.queue, waiting.timeout_s)


def waiting_types(sql: Runner) -> list[str]:
    return [row.type for row in sql.all(_WAITING_TYPES)]
