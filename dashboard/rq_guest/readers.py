"""How rq-dashboard reads RQ's data: JSON only, and what cannot be read is shown as unreadable.

rq-dashboard builds `Job`, `Queue` and `Worker` objects with RQ's default serializer (pickle) in most of its
views. Anyone who can write to Redis could then run code in the web process by planting a job hash whose
`meta`, `data` or result is a pickle. The classes here replace the ones rq-dashboard's views use: every
object they build reads with `GuestSerializer`, which accepts UTF-8 JSON and nothing else.
`forbid_pickle` is the tripwire behind it: in the web process, RQ's pickle serializer refuses to load.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, ClassVar

from rq import Queue, Worker
from rq.exceptions import DeserializationError
from rq.job import Job
from rq.serializers import DefaultSerializer
from rq.utils import as_text

UNREADABLE = "unreadable: not JSON (Jobyard never unpickles what it finds in Redis)"


class UnreadableJobData(ValueError):
    """Data in Redis that is not UTF-8 JSON: never loaded, reported as such."""


# What RQ and redis-py raise when a planted job hash has a field of the wrong shape (a date that is not
# one, compressed text that is not, an id with a separator): the job is unreadable, not the page broken.
READ_ERRORS: tuple[type[Exception], ...] = (
    UnreadableJobData,
    DeserializationError,
    UnicodeDecodeError,
    ValueError,
    TypeError,
    zlib.error,
)


class GuestSerializer:
    """RQ's serializer protocol, JSON only; `loads` refuses anything else without looking into it."""

    @staticmethod
    def dumps(obj: Any) -> bytes:
        return json.dumps(obj).encode("utf-8")

    @staticmethod
    def loads(data: bytes | str) -> Any:
        try:
            text = data.decode("utf-8") if isinstance(data, bytes) else data
            return json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise UnreadableJobData(UNREADABLE) from None


def _refuse_pickle(data: bytes, /) -> Any:
    raise UnreadableJobData(UNREADABLE)


def forbid_pickle() -> None:
    """RQ falls back to pickle wherever a caller forgets to name a serializer (rq-dashboard's views do);
    in the web process that fallback refuses to load instead. Idempotent; the web process never pickles."""
    DefaultSerializer.loads = _refuse_pickle


class GuestJob(Job):
    def __init__(self, id: str | None = None, connection: Any = None, serializer: Any = None) -> None:
        super().__init__(id, connection=connection, serializer=GuestSerializer)


class UnreadableJob:
    """Stands in a list for a job whose hash RQ could not read."""

    def __init__(self, job_id: str) -> None:
        self.id = job_id


class GuestQueue(Queue):
    job_class: ClassVar[type[Job]] = GuestJob  # type: ignore[misc]

    def __init__(self, name: str = "default", connection: Any = None, *args: Any, **kwargs: Any) -> None:
        kwargs["serializer"] = GuestSerializer
        kwargs["job_class"] = GuestJob
        super().__init__(name, connection, *args, **kwargs)

    @classmethod
    def all(cls, connection: Any, *args: Any, **kwargs: Any) -> list[Queue]:
        """RQ's set of queues, less an entry that names no queue (not text, or not a queue key): one planted entry
        left RQ's `Queue.all` raising, and so every page that lists the queues unreadable."""
        queues: list[Queue] = []
        for key in connection.smembers(cls.redis_queues_keys):
            try:
                queues.append(cls.from_queue_key(as_text(key), connection=connection))
            except READ_ERRORS:
                continue
        return queues

    def fetch_job(self, job_id: str) -> Any:
        try:
            return super().fetch_job(job_id)
        except READ_ERRORS:
            return UnreadableJob(job_id)

    def compact(self) -> None:
        # RQ renames the queue's list first, which Redis refuses for a queue that holds nothing (no key).
        if self.connection.exists(self.key):
            super().compact()  # type: ignore[no-untyped-call]


class GuestWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["serializer"] = GuestSerializer
        kwargs["job_class"] = GuestJob
        kwargs["queue_class"] = GuestQueue
        super().__init__(*args, **kwargs)

    @classmethod
    def find_by_key(cls, worker_key: str, connection: Any, *args: Any, **kwargs: Any) -> Any:
        # A worker whose hash RQ cannot read (or an entry of RQ's set of workers that names none) is left out of
        # the list, rather than one planted key making the whole workers page unreadable.
        try:
            return super().find_by_key(worker_key, connection, *args, **kwargs)
        except READ_ERRORS:
            return None

    def get_current_job(self) -> Any:
        try:
            return super().get_current_job()
        except READ_ERRORS:
            return UnreadableJob(self.get_current_job_id() or "")


def requeue_job(job_id: str, connection: Any, serializer: Any = None) -> Job:
    job = GuestJob.fetch(job_id, connection=connection)
    job.requeue()
    return job


def unreadable_summary(job_id: str) -> dict[str, Any]:
    """rq-dashboard's job fields for a job that cannot be read: every text field says so."""
    return {
        "id": job_id,
        "created_at": None,
        "enqueued_at": None,
        "started_at": None,
        "ended_at": None,
        "origin": None,
        "status": "unreadable",
        "result": None,
        "exc_info": None,
        "description": UNREADABLE,
        "metadata": json.dumps(UNREADABLE),
        "job_id": job_id,
        "call_string": UNREADABLE,
    }
