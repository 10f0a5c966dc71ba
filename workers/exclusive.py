"""Exclusive job types: never two runs of one type executing at once, across every worker and host.

The lock is a row in ``type_locks`` (scheduler/models.py) taken in the claim's own transaction; its
primary key makes a second taker find it held. A run that finds it held waits in `waiting` (not
dropped, not failed) and is woken, oldest first, when the holder settles.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, exists, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from jobs.dispatch import Delivery
from jobs.models import runs_table as runs
from jobs.status import RunStatus
from scheduler.models import type_locks_table as type_locks


def _drop_stale(conn: Connection, type_name: str) -> None:
    # A lock whose holder is no longer running (settled by the reconciler after its worker died) is stale.
    conn.execute(
        delete(type_locks).where(
            type_locks.c.type == type_name,
            ~exists().where(runs.c.id == type_locks.c.run_id, runs.c.status == RunStatus.RUNNING),
        )
    )


def take(conn: Connection, type_name: str, run_id: str, now: datetime) -> bool:
    _drop_stale(conn, type_name)
    dialect_insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    taken = conn.execute(
        dialect_insert(type_locks)
        .values(type=type_name, run_id=run_id, acquired_at=now)
        .on_conflict_do_nothing(index_elements=["type"])
    )
    if taken.rowcount == 1:
        return True
    holder = conn.execute(select(type_locks.c.run_id).where(type_locks.c.type == type_name)).scalar()
    return holder == run_id


def release(conn: Connection, type_name: str, run_id: str, now: datetime) -> Delivery | None:
    """Frees the type and moves its oldest waiting run back to pending; returns it to be pushed."""
    conn.execute(delete(type_locks).where(type_locks.c.type == type_name, type_locks.c.run_id == run_id))
    return wake_one(conn, type_name, now)


def wake_one(conn: Connection, type_name: str, now: datetime) -> Delivery | None:
    _drop_stale(conn, type_name)
    held = conn.execute(select(type_locks.c.run_id).where(type_locks.c.type == type_name)).scalar()
    if held is not None:
        return None
    waiting = conn.execute(
        select(runs.c.id, runs.c.queue, runs.c.timeout_s)
        .where(runs.c.type == type_name, runs.c.status == RunStatus.WAITING)
        .order_by(runs.c.created_at, runs.c.id)
        .limit(1)
    ).first()
    if waiting is None:
        return None
    moved = conn.execute(
        update(runs)
        .where(runs.c.id == waiting.id, runs.c.status == RunStatus.WAITING)
        .values(status=RunStatus.PENDING, dispatched_at=now)
    ).rowcount
    return Delivery(waiting.id, type_name, waiting.queue, waiting.timeout_s) if moved else None


def waiting_types(conn: Connection) -> list[str]:
    return list(conn.execute(select(runs.c.type).where(runs.c.status == RunStatus.WAITING).distinct()).scalars())
