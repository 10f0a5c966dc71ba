"""Moving due runs from RQ's scheduled registry (``rq:scheduled:<queue>``) onto their queue.

RQ's own scheduler does this under one lock per queue whose TTL is a minute, so a host killed while
holding it stalls every retry for that long. Here each due job is claimed with ZREM, which exactly one
caller wins, so any number of supervisors can promote at once and none has to wait for a lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from jobs.dispatch import Dispatcher

log = logging.getLogger("jobyard.promoter")
BATCH = 1000


def promote_due(dispatcher: Dispatcher, queue_names: Iterable[str], *, now: float | None = None) -> int:
    """Enqueues every scheduled run that is due; returns how many this caller moved."""
    moved = 0
    timestamp = int(now if now is not None else time.time())
    for name in queue_names:
        queue = dispatcher.queue(name)
        registry = queue.scheduled_job_registry
        for job_id in registry.get_jobs_to_schedule(timestamp, chunk_size=BATCH):
            if not dispatcher.connection.zrem(registry.key, job_id):
                continue  # another promoter won it
            try:
                job = queue.fetch_job(job_id)
            except Exception:
                # Not a readable job (e.g. a pickle); the worker would refuse it anyway.
                log.warning("dropping unreadable scheduled job %s on %s", job_id, name, exc_info=True)
                continue
            if job is None:
                continue
            queue.enqueue_job(job)
            moved += 1
    return moved
