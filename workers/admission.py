"""What a worker pops is a job RQ can read, or it is refused; RQ on its own would not always say.

Left to RQ, an entry of bytes that are not UTF-8 crashed the worker, ``<run id>:x`` fetched that run
(RQ takes what precedes a colon as the id), and a hash without a payload, or no hash at all, was
skipped without a word, its id left in RQ's intermediate queue until RQ's next maintenance pass and
the hash kept for good. Here an entry that names no
job, or a hash without a payload, raises :class:`Unreadable`, tagged the way RQ tags its own fetch
errors (``job_id``, ``queue``), so that JobyardWorker refuses it like any other poison: recorded in
``refused_jobs``, removed from Redis, and the worker takes the next job. An id whose hash is gone is
only cleared from the intermediate queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import ReadyJobRegistry
from rq.serializers import JSONSerializer
from rq.timeouts import BaseDeathPenalty
from rq.utils import as_text

from jobs.dispatch import job_id_of


class Unreadable(Exception):
    def __init__(self, entry: bytes | str, queue: Queue, reason: str) -> None:
        super().__init__(reason)
        # Kept as stored: removing it from a list takes the exact bytes.
        self.entry = entry
        self.job_id = entry if isinstance(entry, str) else entry.decode("utf-8", "backslashreplace")
        self.queue = queue
        self.reason = reason


class JobyardQueue(Queue):
    """The worker's queue class: RQ's dequeue, with every entry checked before RQ acts on it."""

    @classmethod
    def lpop(cls, queue_keys: Sequence[str], timeout: int | None, connection: Redis | None = None) -> Any:
        assert connection is not None
        return cls._admit(super().lpop(queue_keys, timeout, connection=connection), connection)

    @classmethod
    def lmove(cls, connection: Redis, queue_key: str, timeout: int | None) -> Any:
        return cls._admit(super().lmove(connection, queue_key, timeout), connection)

    @classmethod
    def _admit(cls, popped: tuple[bytes | str, bytes | str] | None, connection: Redis) -> Any:
        if popped is not None and job_id_of(popped[1]) is None:
            queue = cls.from_queue_key(as_text(popped[0]), connection=connection, serializer=JSONSerializer)
            raise Unreadable(popped[1], queue, "the queue entry names no job")
        return popped

    @classmethod
    def _fetch_dequeued_job(
        cls,
        connection: Redis,
        queue_key: str,
        job_id: str,
        job_class: type[Job] | None = None,
        serializer: Any = None,
        death_penalty_class: type[BaseDeathPenalty] | None = None,
    ) -> tuple[Job, Queue] | None:
        fetched = super()._fetch_dequeued_job(
            connection,
            queue_key,
            job_id,
            job_class=job_class,
            serializer=serializer,
            death_penalty_class=death_penalty_class,
        )
        if fetched is not None:
            return fetched
        queue = cls.from_queue_key(queue_key, connection=connection, serializer=serializer)
        if connection.exists(Job.key_for(job_id)):
            raise Unreadable(job_id, queue, "unreadable payload (a job hash without data); only JSON is accepted")
        # A copy of a delivery may outlive its job's hash (RQ expires it after the result TTL): nothing to
        # refuse, only RQ's leftover to clear. RQ then pops the next entry.
        connection.lrem(queue.intermediate_queue_key, 1, job_id)
        return None


def _names_a_job(member: bytes, *, execution: bool) -> bool:
    """Whether a registry member is one RQ could have written: a job id, or (`execution`, the started registry)
    "<job id>:<execution id>"."""
    if not execution:
        return job_id_of(member) is not None
    job_id, colon, execution_id = member.partition(b":")
    return bool(colon) and job_id_of(job_id) is not None and job_id_of(execution_id) is not None


def drop_foreign_entries(connection: Redis, queue: Queue) -> list[tuple[str, bytes]]:
    """Removes, from the registries RQ's maintenance cleans and from the queue's intermediate list, every member
    that names no job RQ could have written; returns (key, member) of each one removed.

    RQ decodes every member it cleans as UTF-8 and takes each for a job id: one planted member that is not text
    made RQ's maintenance raise, and RQ's worker quits on that, at every start, so nothing of the queue ran."""
    registries = [
        (queue.started_job_registry.key, True),
        (queue.finished_job_registry.key, False),
        (queue.failed_job_registry.key, False),
        (queue.deferred_job_registry.key, False),
        (queue.canceled_job_registry.key, False),
        (ReadyJobRegistry(queue.name, connection=connection).key, False),
    ]
    dropped: list[tuple[str, bytes]] = []
    for key, execution in registries:
        members = [cast(bytes, m) for m, _score in connection.zscan_iter(key)]
        foreign = [m for m in members if not _names_a_job(m, execution=execution)]
        if foreign:
            connection.zrem(key, *foreign)
            dropped.extend((key, m) for m in foreign)
    intermediate = queue.intermediate_queue_key
    for entry in cast(list[bytes], connection.lrange(intermediate, 0, -1)):
        if job_id_of(entry) is None:
            connection.lrem(intermediate, 0, entry)  # type: ignore[arg-type]
            dropped.append((intermediate, entry))
    return dropped
