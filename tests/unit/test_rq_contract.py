"""The parts of RQ (and of redis-py's pubsub thread) that Jobyard's worker relies on beyond RQ's documented API.

Jobyard overrides RQ's worker and queue methods and reads private attributes of RQ's jobs and workers
(workers/worker.py, workers/admission.py, workers/promoter.py, jobs/dispatch.py). RQ may rename or drop any of
them in a minor release and nothing would say so until a worker misbehaved in production: each test here
fails naming what the installed RQ no longer has.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import rq
from fakeredis import FakeStrictRedis
from redis.client import PubSubWorkerThread
from rq import Queue
from rq.job import Job
from rq.registry import BaseRegistry, ReadyJobRegistry
from rq.serializers import JSONSerializer
from rq.worker import SimpleWorker

from jobs.dispatch import ENTRYPOINT
from workers.admission import JobyardQueue
from workers.worker import JobyardWorker

# Jobyard's override -> the RQ method it replaces. The override's parameters must be RQ's: RQ calls them with
# its own argument names, and Jobyard passes them on to super() by name.
OVERRIDES: list[tuple[Callable[..., Any], Callable[..., Any]]] = [
    (JobyardWorker.dequeue_job_and_maintain_ttl, SimpleWorker.dequeue_job_and_maintain_ttl),
    (JobyardWorker.execute_job, SimpleWorker.execute_job),
    (JobyardWorker.handle_exception, SimpleWorker.handle_exception),
    (JobyardWorker.handle_job_failure, SimpleWorker.handle_job_failure),
    (JobyardWorker.handle_job_success, SimpleWorker.handle_job_success),
    (JobyardWorker.unsubscribe, SimpleWorker.unsubscribe),
    (JobyardWorker.clean_registries, SimpleWorker.clean_registries),
    (JobyardWorker.register_birth, SimpleWorker.register_birth),
    (JobyardWorker.register_death, SimpleWorker.register_death),
    (JobyardQueue.lpop, Queue.lpop),
    (JobyardQueue.lmove, Queue.lmove),
    (JobyardQueue._fetch_dequeued_job, Queue._fetch_dequeued_job),
]

# RQ callables Jobyard calls with these keyword arguments.
KEYWORDS: list[tuple[Callable[..., Any], set[str]]] = [
    (SimpleWorker.__init__, {"queues", "name", "connection", "serializer", "queue_class"}),
    (SimpleWorker.work, {"burst", "with_scheduler", "logging_level"}),
    (Queue.__init__, {"name", "connection", "serializer"}),
    (Queue.from_queue_key, {"queue_key", "connection", "serializer"}),
    (Queue._fetch_dequeued_job, {"job_class", "serializer", "death_penalty_class"}),
    (Queue.schedule_job, {"job", "pipeline"}),
    (Queue.enqueue_job, {"job", "at_front"}),
    (Job.create, {"args", "id", "connection", "serializer", "timeout", "result_ttl", "failure_ttl", "description"}),
    (BaseRegistry.remove, {"pipeline"}),
    (ReadyJobRegistry.__init__, {"name", "connection"}),
    # workers/worker.py stops the listener without waiting for it (see JobyardWorker.unsubscribe).
    (PubSubWorkerThread.stop, {"timeout"}),
]

WORKER_ATTRIBUTES = ["pubsub_thread", "last_cleaned_at", "connection", "queues", "name"]
WORKER_METHODS = ["queue_names", "heartbeat"]
JOB_ATTRIBUTES = [
    "_unreadable_meta",
    "_success_callback_name",
    "_failure_callback_name",
    "_stopped_callback_name",
    "_result",
    "_status",
    "origin",
    "enqueue_at_front",
    "enqueue_at_front_on_retry",
    "retries_left",
    "retry_intervals",
]
JOB_METHODS = ["should_enqueue_at_front", "to_dict"]
JOB_CLASS_ATTRIBUTES = ["redis_job_namespace_prefix", "key_for"]
QUEUE_ATTRIBUTES = [
    "key",
    "intermediate_queue_key",
    "count",
    "started_job_registry",
    "finished_job_registry",
    "failed_job_registry",
    "deferred_job_registry",
    "canceled_job_registry",
    "scheduled_job_registry",
]
QUEUE_CLASS_ATTRIBUTES = ["redis_queues_keys"]
MODULE_NAMES = [
    ("rq.job", "JobStatus"),
    ("rq.registry", "ReadyJobRegistry"),
    ("rq.timeouts", "BaseDeathPenalty"),
    ("rq.timeouts", "JobTimeoutException"),
    ("rq.exceptions", "StopRequested"),
    ("rq.utils", "now"),
    ("rq.utils", "utcformat"),
    ("rq.utils", "as_text"),
]


def _name(func: Callable[..., Any]) -> str:
    return getattr(func, "__qualname__", repr(func))


def _parameters(func: Callable[..., Any]) -> list[str]:
    return [p for p in inspect.signature(func).parameters if p not in ("self", "cls")]


@pytest.fixture
def connection() -> Iterator[FakeStrictRedis]:
    redis = FakeStrictRedis()
    yield redis
    redis.close()


def test_rq_is_the_major_version_jobyard_is_tested_with() -> None:
    assert rq.__version__.split(".")[0] == "3", f"installed rq {rq.__version__}; Jobyard pins and tests rq 3"


@pytest.mark.parametrize(("ours", "theirs"), OVERRIDES, ids=[_name(t) for _o, t in OVERRIDES])
def test_an_overridden_rq_method_keeps_its_parameters(ours: Callable[..., Any], theirs: Callable[..., Any]) -> None:
    assert _parameters(ours) == _parameters(theirs), (
        f"RQ's {_name(theirs)} now takes {_parameters(theirs)}; Jobyard's override takes {_parameters(ours)}"
    )


@pytest.mark.parametrize(("func", "names"), KEYWORDS, ids=[_name(f) for f, _n in KEYWORDS])
def test_rq_still_takes_the_keywords_jobyard_passes(func: Callable[..., Any], names: set[str]) -> None:
    missing = names - set(_parameters(func))
    assert not missing, f"{_name(func)} no longer takes {sorted(missing)}"


def test_rq_worker_has_what_jobyard_reads(connection: FakeStrictRedis) -> None:
    worker = SimpleWorker(["default"], connection=connection, serializer=JSONSerializer)
    missing = [a for a in WORKER_ATTRIBUTES if not hasattr(worker, a)]
    missing += [m for m in WORKER_METHODS if not callable(getattr(worker, m, None))]
    assert not missing, f"RQ's SimpleWorker no longer has {missing}"


def test_rq_job_has_what_jobyard_reads(connection: FakeStrictRedis) -> None:
    job = Job.create(ENTRYPOINT, args=["run"], id="run", connection=connection, serializer=JSONSerializer)
    missing = [a for a in JOB_ATTRIBUTES if not hasattr(job, a)]
    missing += [m for m in JOB_METHODS if not callable(getattr(job, m, None))]
    missing += [a for a in JOB_CLASS_ATTRIBUTES if not hasattr(Job, a)]
    assert not missing, f"RQ's Job no longer has {missing}"
    # The promoter puts a due retry at the head of its queue on this flag's word.
    job.enqueue_at_front = True
    assert job.should_enqueue_at_front(), "Job.should_enqueue_at_front() no longer reads Job.enqueue_at_front"


def test_rq_queue_has_what_jobyard_reads(connection: FakeStrictRedis) -> None:
    queue = Queue("default", connection=connection, serializer=JSONSerializer)
    missing = [a for a in QUEUE_ATTRIBUTES if not hasattr(queue, a)]
    missing += [a for a in QUEUE_CLASS_ATTRIBUTES if not hasattr(Queue, a)]
    assert not missing, f"RQ's Queue no longer has {missing}"
    # jobs/dispatch.py writes these keys itself, and its docstring names them.
    assert queue.key == "rq:queue:default", f"RQ's queue key is now {queue.key!r}"
    assert Job.key_for("run") == "rq:job:run", f"RQ's job key is now {Job.key_for('run')!r}"


@pytest.mark.parametrize(("module", "name"), MODULE_NAMES, ids=[f"{m}.{n}" for m, n in MODULE_NAMES])
def test_rq_module_still_has(module: str, name: str) -> None:
    assert hasattr(__import__(module, fromlist=[name]), name), f"{module} no longer has {name}"
