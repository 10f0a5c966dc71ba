"""The job model: declare job types, enqueue runs, act on them."""

from jobs.actions import RunNotFound, RunNotRetryable, retry_run
from jobs.context import JobContext, PermanentFailure
from jobs.enqueue import EnqueueRequest, enqueue, enqueue_many
from jobs.params import InvalidJobRequest
from jobs.registry import JobType, Param, job_type
from jobs.status import RunStatus

__all__ = [
    "EnqueueRequest",
    "InvalidJobRequest",
    "JobContext",
    "JobType",
    "Param",
    "PermanentFailure",
    "RunNotFound",
    "RunNotRetryable",
    "RunStatus",
    "enqueue",
    "enqueue_many",
    "job_type",
    "retry_run",
]
