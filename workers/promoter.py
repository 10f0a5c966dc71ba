"""Moving due runs from RQ's scheduled registry (``rq:scheduled:<queue>``) onto their queue.

RQ's own scheduler does this under one lock per queue whose TTL is a minute, so a host killed while
holding it stalls every retry for that long. Here each due job is claimed with ZREM, which exactly one
caller wins, so any number of supervisors can promote at once and none has to wait for a lock.

A due retry goes to the head of its queue (the job says so: Job.should_enqueue_at_front), since it has
already waited its backoff; retries due in one pass keep their due order there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import cast

from redis import RedisError
from rq.job import Job

from jobs.dispatch import Dispatcher, job_id_of

log = logging.getLogger("jobyard.promoter")
BATCH = 1000


def promote_due(dispatcher: Dispatcher, queue_names: Iterable[str], *, now: float | None = None) -> int:
    """Enqueues every scheduled run that is due; returns how many this caller moved."""
    moved = 0
    timestamp = int(now if now is not None else time.time())
    connection = dispatcher.connection
    for name in queue_names:
        queue = dispatcher.queue(name)
        registry_key = queue.scheduled_job_registry.key
        # Raw members: RQ's own reader decodes them all at once, so one entry of garbage bytes would stop
        # every retry of the queue for good.
        entries = cast(list[bytes], connection.zrangebyscore(registry_key, 0, timestamp, start=0, num=BATCH))
        front: list[Job] = []
        back: list[Job] = []
        for entry in entries:
            if not connection.zrem(registry_key, entry):
                continue  # another promoter won it
            job_id = job_id_of(entry)
            if job_id is None:
                log.warning("dropped scheduled entry %r on %s: it names no job", entry[:200], name)
                continue
            try:
                job = queue.fetch_job(job_id)
            except RedisError:
                raise  # the job is fine; the reconciler pushes its run again
            except Exception as exc:
                # Not a readable job (e.g. a pickle): nothing will ever run it, so nothing keeps it.
                connection.delete(Job.key_for(job_id))
                log.warning("dropped unreadable scheduled job %s on %s (%s)", job_id, name, type(exc).__name__)
                continue
            if job is None:
                log.warning("dropped scheduled entry %s on %s: no such job on this queue", job_id, name)
                continue
            (front if job.should_enqueue_at_front() else back).append(job)
        # Each is pushed onto the head in turn, so the last pushed is taken first: push the latest due first.
        for job in reversed(front):
            queue.enqueue_job(job, at_front=True)
        for job in back:
            queue.enqueue_job(job)
        moved += len(front) + len(back)
    return moved
