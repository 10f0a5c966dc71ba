"""Worker liveness in SQL (table ``workers``, see workers/models.py).

Each worker process refreshes its row from a background thread; the reconciler treats a worker whose
row is stopped, or silent for longer than ``worker_dead_after_s``, as dead.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from core.db import utcnow
from workers.models import workers_table as workers

log = logging.getLogger(__name__)


def register(engine: Engine, name: str, queues: list[str], instance: str | None = None) -> None:
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            insert(workers).values(
                name=name,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                queues=",".join(queues),
                instance=instance,
                started_at=now,
                last_seen_at=now,
                stopped_at=None,
            )
        )


def beat(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(workers).where(workers.c.name == name).values(last_seen_at=utcnow()))


def mark_stopped(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(workers).where(workers.c.name == name, workers.c.stopped_at.is_(None)).values(stopped_at=utcnow())
        )


def dead_workers(engine: Engine, names: set[str], dead_after_s: float, now: datetime | None = None) -> set[str]:
    """Of `names`, those that stopped, went silent, or were never registered."""
    if not names:
        return set()
    now = now or utcnow()
    cutoff = now - timedelta(seconds=dead_after_s)
    with engine.connect() as conn:
        rows = conn.execute(
            select(workers.c.name, workers.c.last_seen_at, workers.c.stopped_at).where(
                workers.c.name.in_(sorted(names))
            )
        ).all()
    alive = {r.name for r in rows if r.stopped_at is None and r.last_seen_at >= cutoff}
    return names - alive


class Heartbeat(threading.Thread):
    def __init__(self, engine: Engine, name: str, interval_s: float) -> None:
        super().__init__(name=f"heartbeat-{name}", daemon=True)
        self.engine = engine
        self.worker_name = name
        self.interval_s = interval_s
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            try:
                beat(self.engine, self.worker_name)
            except SQLAlchemyError:
                log.warning("heartbeat of %s failed; will try again", self.worker_name, exc_info=True)

    def stop(self) -> None:
        self._stop_event.set()
