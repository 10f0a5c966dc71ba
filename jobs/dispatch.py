"""The Redis side of a run: how a run becomes an RQ job and back.

Redis keys used (all RQ's own, under its ``rq:`` prefix): ``rq:queue:<queue>``, ``rq:job:<run id>``,
and the queue registries (``rq:wip:<queue>``, ``rq:scheduled:<queue>``, ``rq:failed:<queue>``, …).
The RQ job id is the run id, and the payload is JSON naming one fixed entrypoint with the run id as its
only argument: the type and parameters are read from SQL by the worker, never trusted from Redis.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from redis import Redis
from redis.client import Pipeline
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import now, utcformat

from core import defaults

ENTRYPOINT = "workers.entrypoint.execute_run"
PUSH_CHUNK = 1000  # runs per Redis round trip
# Statuses in which RQ is still going to deliver the job. `started` is not one: the reconciler only asks
# about runs SQL says are waiting for a delivery, and a worker claims a run in SQL before RQ marks it
# started, so a started hash beside such a run is left over from a failure RQ never finished recording.
HELD_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED})
# RQ's own rule for a job id (rq.job.validate_job_id), bounded: a run id is a uuid4 hex, and nothing longer than
# refused_jobs can name is one of Jobyard's.
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")


def job_id_of(entry: bytes | str) -> str | None:
    """The job id a queue or registry entry names, or None when it names none RQ could have written.

    RQ decodes entries as UTF-8 and takes what precedes a colon as the id, so a foreign entry (garbage
    bytes, "<run id>:x") would make RQ crash, or act on another job than the one the entry names."""
    if isinstance(entry, bytes):
        try:
            entry = entry.decode()
        except UnicodeDecodeError:
            return None
    return entry if JOB_ID.fullmatch(entry) else None


def instance_queue(instance: str) -> str:
    """The queue of a named instance: runs targeted at it go there, and only its workers serve it."""
    return f"instance.{instance}"


@dataclass(frozen=True)
class Delivery:
    run_id: str
    type: str
    queue: str
    timeout_s: int
    at: datetime | None = None  # None: now
    # A retry whose backoff has passed: it goes to the head of its queue, so that a backlog of fresh runs
    # cannot hold it back for longer than its backoff.
    front: bool = False


class Dispatcher:
    def __init__(self, connection: Redis) -> None:
        self.connection = connection
        self._queues: dict[str, Queue] = {}
        self._templates: dict[tuple[str, int], dict[Any, bytes | str | int | float]] = {}

    def queue(self, name: str) -> Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = Queue(name, connection=self.connection, serializer=JSONSerializer)
            self._queues[name] = queue
        return queue

    def push(self, deliveries: Sequence[Delivery], *, fresh: bool = False) -> None:
        """Puts runs on their queues (or in RQ's scheduled registry), a chunk per round trip.

        `fresh` runs were never in Redis, so there is no old registry entry to clear. Chunks are not
        transactions: a push cut short leaves runs pending in SQL, and the reconciler pushes them.
        """
        created = utcformat(now())
        for start in range(0, len(deliveries), PUSH_CHUNK):
            queue_keys: set[str] = set()
            with self.connection.pipeline(transaction=False) as pipe:
                for delivery in deliveries[start : start + PUSH_CHUNK]:
                    queue = self.queue(delivery.queue)
                    if not fresh:
                        self._forget_registries(queue, delivery.run_id, pipe)
                    if delivery.at is None:
                        pipe.hset(Job.key_for(delivery.run_id), mapping=self._job_hash(delivery, created))
                        (pipe.lpush if delivery.front else pipe.rpush)(queue.key, delivery.run_id)
                        queue_keys.add(queue.key)
                    else:
                        job = self._job(delivery)
                        # RQ fetches a due job only for the queue its origin names; without one the promoter
                        # found nothing, and the run waited for the reconciler to push it again.
                        job.origin = queue.name
                        # Read back by whoever promotes the job when it is due (workers/promoter.py, or RQ's
                        # own scheduler): always written, so that a hash reused by a later push says the truth.
                        job.enqueue_at_front = delivery.front
                        queue.schedule_job(job, delivery.at, pipeline=pipe)
                if queue_keys:
                    pipe.sadd(Queue.redis_queues_keys, *queue_keys)
                pipe.execute()

    def _job(self, delivery: Delivery) -> Job:
        return Job.create(
            ENTRYPOINT,
            args=[delivery.run_id],
            id=delivery.run_id,
            connection=self.connection,
            serializer=JSONSerializer,
            # RQ's death penalty (timeout) is what enforces the per-attempt limit.
            timeout=delivery.timeout_s,
            result_ttl=defaults.RQ_RESULT_TTL_S,
            failure_ttl=defaults.RQ_FAILURE_TTL_S,
            description=f"{delivery.type} run {delivery.run_id}",
        )

    def _job_hash(self, delivery: Delivery, created: str) -> dict[Any, bytes | str | int | float]:
        """The hash RQ's own enqueue would write, from a per-queue template built by RQ itself: creating
        an RQ Job object per run costs more than the rest of an enqueue together."""
        key = (delivery.queue, delivery.timeout_s)
        template = self._templates.get(key)
        if template is None:
            job = self._job(Delivery("template", delivery.type, delivery.queue, delivery.timeout_s))
            job.origin = delivery.queue
            job.enqueued_at = now()
            job._status = JobStatus.QUEUED
            # Empty fields are optional for RQ (it reads them with .get): leaving them out halves the hash.
            template = self._templates[key] = {k: v for k, v in job.to_dict().items() if v != ""}
        return {
            **template,
            # RQ's JSONSerializer.dumps of (func, instance, args, kwargs). Left uncompressed: RQ reads
            # uncompressed data by design, and zlib only makes a payload this small larger.
            "data": json.dumps([ENTRYPOINT, None, [delivery.run_id], {}]).encode(),
            "description": f"{delivery.type} run {delivery.run_id}",
            "created_at": created,
            "enqueued_at": created,
        }

    def _forget_registries(self, queue: Queue, run_id: str, pipe: Pipeline) -> None:
        for registry in (queue.failed_job_registry, queue.finished_job_registry, queue.scheduled_job_registry):
            registry.remove(run_id, pipeline=pipe)

    def forget_execution(self, queue_name: str, run_id: str) -> None:
        """Drops a dead worker's claim on a run from RQ's started registry."""
        registry = self.queue(queue_name).started_job_registry
        with self.connection.pipeline() as pipe:
            entries = cast(list[bytes], self.connection.zrange(registry.key, 0, -1))
            for entry in entries:
                # Entries are "<job id>:<execution id>"; compared as bytes, since one planted there may not be text.
                if entry.split(b":", 1)[0] == run_id.encode():
                    pipe.zrem(registry.key, entry)
            pipe.execute()

    def held(self, runs: Iterable[tuple[str, str]], *, verify_queued: Collection[str] = ()) -> set[str]:
        """Of (run id, queue) pairs, the runs that RQ still holds for delivery.

        For ids in `verify_queued`, a "queued" status is checked against the queue itself: a worker that
        died between popping a job and starting it leaves the status saying queued with the job nowhere.
        LPOS scans from the head, where old jobs sit, so the check is cheap unless the job is really lost.
        """
        runs = list(runs)
        if not runs:
            return set()
        with self.connection.pipeline(transaction=False) as pipe:
            for run_id, queue in runs:
                pipe.hget(Job.key_for(run_id), "status")
                pipe.zscore(self.queue(queue).scheduled_job_registry.key, run_id)
            replies = pipe.execute()
        held = set()
        for index, (run_id, queue) in enumerate(runs):
            raw_status, score = replies[2 * index], replies[2 * index + 1]
            # Not text: no status RQ wrote, so RQ does not hold the run (a planted hash must not stop the caller).
            status = raw_status.decode(errors="replace") if raw_status is not None else None
            if status not in HELD_STATUSES:
                continue
            # "scheduled" in the hash is true only while the registry has it (a promoter may have died
            # between taking it out and queueing it).
            if status == JobStatus.SCHEDULED and score is None:
                continue
            if status == JobStatus.QUEUED and run_id in verify_queued and not self._in_queue(queue, run_id):
                continue
            held.add(run_id)
        return held

    def _in_queue(self, queue_name: str, run_id: str) -> bool:
        queue = self.queue(queue_name)
        # Not the intermediate list: a job still there after a minute belongs to a worker that died
        # between popping and starting it, and a second copy is harmless (the claim drops one).
        return self.connection.lpos(queue.key, run_id) is not None
