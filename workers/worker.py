"""JobyardWorker: an RQ SimpleWorker that records every attempt in SQL and runs only declared types.

Execution model: no fork. Each worker process runs one job at a time in its main thread, and
`jobyard worker --processes N` supervises N such processes. RQ's default fork-per-job costs a fork
and a fresh interpreter state per job; without it the per-job cost is a few Redis round trips and two
SQL commits. The per-attempt timeout is still enforced by RQ's SIGALRM death penalty in the main
thread, and a process that dies or hangs is replaced by the supervisor, its attempt counted as failed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from redis import RedisError
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException
from rq.utils import now as rq_now
from rq.worker import SimpleWorker
from sqlalchemy import insert, select
from sqlalchemy.exc import SQLAlchemyError

from core.db import utcnow
from jobs import cancel
from jobs.context import JobContext, PermanentFailure
from jobs.dispatch import ENTRYPOINT
from jobs.enqueue import push_quietly
from jobs.models import runs_table
from jobs.retry import RetryPolicy
from jobs.status import RunStatus
from workers import liveness
from workers.admission import JobyardQueue, Unreadable, drop_foreign_entries
from workers.entrypoint import ActiveAttempt, current_attempt
from workers.hooks import DEFAULT_HOOKS, Hook, run_hooks_after
from workers.models import refused_jobs_table
from workers.recording import Claim, Failure, recorder_for

if TYPE_CHECKING:
    from core.app import Jobyard

log = logging.getLogger("jobyard.worker")


def _not_rqs_retry_time(record: logging.LogRecord) -> bool:
    """RQ logs when it puts a retry in its scheduled registry: a second, rounded time (and a count of retries
    left that is RQ's, not the run's) beside the next attempt time Jobyard's own log line gives."""
    return not str(record.msg).startswith("Job %s: scheduled for retry at")


class JobyardWorker(SimpleWorker):
    def __init__(
        self,
        queues: Sequence[str],
        *,
        app: Jobyard,
        name: str | None = None,
        instance: str | None = None,
        hooks: Sequence[Hook] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            list(queues),
            name=name,
            connection=app.redis,
            serializer=JSONSerializer,
            queue_class=JobyardQueue,
            **kwargs,
        )
        if _not_rqs_retry_time not in logging.getLogger("rq.job").filters:
            logging.getLogger("rq.job").addFilter(_not_rqs_retry_time)
        self.app = app
        self.instance = instance
        self.recorder = recorder_for(app)
        self.hooks = list(hooks) if hooks is not None else [hook(app) for hook in DEFAULT_HOOKS]
        self._active: ActiveAttempt | None = None
        self._failure: Failure | None = None
        self._heartbeat: liveness.Heartbeat | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def register_birth(self) -> None:
        super().register_birth()  # type: ignore[no-untyped-call]
        liveness.register(self.app.engine, self.name, self.queue_names(), self.instance)
        self._heartbeat = liveness.Heartbeat(self.app.engine, self.name, self.app.settings.worker_heartbeat_interval_s)
        self._heartbeat.start()

    def register_death(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
        liveness.mark_stopped(self.app.engine, self.name)
        super().register_death()  # type: ignore[no-untyped-call]

    def unsubscribe(self) -> None:
        # Once RQ's UNSUBSCRIBE is answered, redis-py's listener thread waits up to RQ's 60 s for a new
        # subscription before it reads its stop flag again, and RQ then joins it with no timeout: a stopping
        # worker whose listener won that race hung past the supervisor's grace period and was killed. With
        # the flag down first, the answer itself ends the thread.
        if self.pubsub_thread is not None:
            self.pubsub_thread.stop(timeout=0)
        super().unsubscribe()  # type: ignore[no-untyped-call]

    def clean_registries(self) -> None:
        """RQ's maintenance, less what would stop the worker: members planted in the registries that name no job
        are dropped first (RQ's decoding of them raised), and any other failure of it on data it cannot read is
        logged and left for the next maintenance, where RQ's worker quit (and quit again at every restart)."""
        for queue in self.queues:
            for key, member in drop_foreign_entries(self.connection, queue):
                log.warning("dropped %r from %s: it names no job", member[:200], key)
        try:
            super().clean_registries()  # type: ignore[no-untyped-call]
        except RedisError:
            raise
        except Exception:
            log.exception("cleaning RQ's registries failed; the next maintenance tries again")
            self.last_cleaned_at = rq_now()  # type: ignore[assignment]

    # -- admission: only Jobyard runs, only JSON --------------------------------------------------

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        while True:
            try:
                return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            except Exception as exc:
                # RQ tags fetch errors with the job (and so does JobyardQueue); anything else is a real
                # fault of this worker.
                job_id, queue = getattr(exc, "job_id", None), getattr(exc, "queue", None)
                if job_id is None or queue is None:
                    raise
                if isinstance(exc, Unreadable):
                    self._refuse(exc.entry, queue, exc.reason)
                else:
                    self._refuse(job_id, queue, f"unreadable payload ({type(exc).__name__}); only JSON is accepted")

    def execute_job(self, job: Job, queue: Queue) -> None:
        reason = self._refusal_reason(job)
        if reason is not None:
            self._refuse(job.id, queue, reason)
            return
        claim = self.recorder.claim(job.id, self.name)
        if claim is None:
            if not self._run_exists(job.id):
                # Jobyard pushes a run only after its row is committed: this job was never one of ours.
                self._refuse(job.id, queue, "names no Jobyard run")
                return
            # Another copy of this delivery already ran or is running, or the run was settled.
            log.info("run %s is not startable; dropping this delivery", job.id)
            self._release_delivery(job.id, queue)
            return
        context = JobContext(
            run_id=claim.run_id,
            type=claim.type,
            attempt=claim.attempt,
            params={},
            engine=self.app.engine,
            app=self.app,
            schedule_id=claim.schedule_id,
            cancel_requested=lambda: cancel.is_requested(self.connection, claim.run_id),
        )
        self._active = ActiveAttempt(self.app, claim, context)
        self._failure = None
        token = current_attempt.set(self._active)
        try:
            for hook in self.hooks:
                hook.before_attempt(claim)
            super().execute_job(job, queue)
        finally:
            current_attempt.reset(token)
            self._active = None

    def _refusal_reason(self, job: Job) -> str | None:
        try:
            func_name = job.func_name
            args = job.args
        except Exception as exc:
            return f"unreadable payload ({type(exc).__name__}); only JSON is accepted"
        if job._unreadable_meta is not None:
            return "unreadable meta; only JSON is accepted"
        if func_name != ENTRYPOINT:
            return f"{func_name!r} is not a Jobyard run; only declared job types execute"
        # RQ would import and call a callback named in the hash: Jobyard never sets one.
        if job._success_callback_name or job._failure_callback_name or job._stopped_callback_name:
            return "callbacks are not allowed on a Jobyard run"
        if len(args) != 1 or args[0] != job.id or job.kwargs:
            return "malformed Jobyard payload"
        return None

    def _run_exists(self, run_id: str) -> bool:
        with self.app.engine.connect() as conn:
            return conn.execute(select(runs_table.c.id).where(runs_table.c.id == run_id)).first() is not None

    def _refuse(self, entry: bytes | str, queue: Queue, reason: str) -> None:
        """Records a popped job that is not a Jobyard run and removes every trace RQ keeps of it.

        `entry` is the queue entry as stored (bytes when it is not text)."""
        job_id = entry if isinstance(entry, str) else entry.decode("utf-8", "backslashreplace")
        log.error("refused job %r on %s: %s", job_id, queue.name, reason)
        try:
            with self.app.engine.begin() as conn:
                conn.execute(
                    insert(refused_jobs_table).values(
                        rq_job_id=job_id[:200], queue=queue.name, worker=self.name, reason=reason, at=utcnow()
                    )
                )
        except SQLAlchemyError:
            # The log line above is then the only record; the poison must still go.
            log.exception("could not record the refusal of %r", job_id)
        raw = entry.encode() if isinstance(entry, str) else entry
        with self.connection.pipeline(transaction=False) as pipe:
            # Popped but never started: RQ's intermediate queue is all it holds besides the hash (the
            # started registry is only written once a job is prepared, which a refused one never is).
            # Bytes, since an entry may not be text; redis-py's hints say str only.
            pipe.lrem(queue.intermediate_queue_key, 1, raw)  # type: ignore[arg-type]
            # Not ours, so not kept: a refused payload must never be picked up again.
            pipe.delete(Job.redis_job_namespace_prefix.encode() + raw)
            pipe.execute()

    def _release_delivery(self, job_id: str, queue: Queue) -> None:
        self.connection.lrem(queue.intermediate_queue_key, 1, job_id)

    # -- outcomes --------------------------------------------------------------------------------

    def handle_exception(self, job: Job, *exc_info: type[BaseException] | BaseException | TracebackType | None) -> None:
        exc = exc_info[1]
        if isinstance(exc, BaseException):
            outcome = "failed"
            if isinstance(exc, JobTimeoutException):
                outcome = "timeout"
            elif isinstance(exc, cancel.Cancelled):
                outcome = "cancelled"
            elif isinstance(exc, PermanentFailure):
                outcome = "rejected"
            self._failure = Failure.from_exception(exc, outcome=outcome)
        super().handle_exception(job, *exc_info)

    def _policy(self, claim: Claim) -> RetryPolicy:
        declared = self.app.registry.get(claim.type)
        # A type missing on this host still retries, so that a worker which has it can take over.
        return declared.retry if declared is not None else RetryPolicy()

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: Any = None,
        exc_string: str = "",
        execution: Any = None,
    ) -> None:
        active = self._active
        if active is None:
            super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
            return
        failure = self._failure or Failure(
            "failed",
            "Error",
            exc_string.strip().splitlines()[-1:][0] if exc_string.strip() else "unknown error",
            exc_string,
        )
        # A job that says retrying cannot help fails at once.
        policy = None if failure.outcome == "rejected" else self._policy(active.claim)
        outcome = self.recorder.fail(active.claim, failure, policy)
        if outcome is not None and outcome.status is RunStatus.RETRYING and outcome.next_attempt_at:
            # Let RQ put the job in its scheduled registry; its scheduler brings it back when due.
            wait_s = (outcome.next_attempt_at - utcnow()).total_seconds()
            job.retries_left = 1
            # RQ scores its scheduled registry in whole seconds, truncating; one more second makes sure the
            # run never comes back before next_attempt_at (at worst a second after it).
            job.retry_intervals = [math.ceil(wait_s) + 1 if wait_s > 0 else 0]
            # Once due, the retry has waited its backoff already: behind a backlog of fresh runs it would
            # wait for all of them too. RQ honours this flag on an immediate retry and the promoter on a
            # scheduled one (Job.should_enqueue_at_front).
            job.enqueue_at_front_on_retry = True
        else:
            job.retries_left = None
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
        if outcome is not None:
            push_quietly(self.app.dispatcher, outcome.woken)
            run_hooks_after(self.hooks, active.claim, outcome)

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: Any, execution: Any) -> None:
        active = self._active
        if active is None:
            super().handle_job_success(job, queue, started_job_registry, execution)
            return
        status = RunStatus.COMPLETED_WITH_WARNINGS if active.context.warnings else RunStatus.COMPLETED
        outcome = self.recorder.complete(active.claim, job._result, status)
        super().handle_job_success(job, queue, started_job_registry, execution)
        if outcome is not None:
            push_quietly(self.app.dispatcher, outcome.woken)
            run_hooks_after(self.hooks, active.claim, outcome)


def run_worker(
    app: Jobyard, queues: Sequence[str], *, name: str | None = None, instance: str | None = None, burst: bool = False
) -> bool:
    """Runs one worker in this process until it is told to stop (or, in burst mode, queues are empty)."""
    worker = JobyardWorker(queues, app=app, name=name, instance=instance)
    started = time.monotonic()
    # The supervisor runs RQ's scheduler once per host; a forked one per worker would outlive a kill -9.
    worked = worker.work(burst=burst, with_scheduler=False, logging_level=app.settings.log_level)
    log.info("worker %s stopped after %.1fs", worker.name, time.monotonic() - started)
    return worked
