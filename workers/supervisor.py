"""`jobyard worker`: supervises N worker processes on this host.

It restarts a worker process that dies (marking it stopped at once so the reconciler fails its attempt
without waiting for the heartbeat to go stale), promotes due runs from RQ's scheduled registry (which is
how retries come back) and runs the reconciler periodically, and on SIGTERM/SIGINT lets workers finish their
current job within a grace period before killing them.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from core import defaults
from core.db import utcnow
from jobs.dispatch import instance_queue
from jobs.models import Attempt, Run
from jobs.status import RunStatus
from workers import liveness
from workers.promoter import promote_due
from workers.reconciler import reconcile_if_free, settle_instance_restart

if TYPE_CHECKING:
    from core.app import Jobyard

log = logging.getLogger("jobyard.supervisor")
PROMOTE_INTERVAL_S = 0.5
LIMIT_CHECK_INTERVAL_S = 0.5
POLL_INTERVAL_S = 0.2
# Work that a burst run waits for before it may end.
UNFINISHED = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.RETRYING)


@dataclass
class Slot:
    index: int
    process: subprocess.Popen[bytes] | None = None
    name: str = ""
    generation: int = 0
    restart_at: float = 0.0
    failures: int = 0
    done: bool = False


class Supervisor:
    def __init__(
        self, app: Jobyard, queues: Sequence[str], processes: int, *, burst: bool = False, instance: str | None = None
    ) -> None:
        if processes < 1:
            raise ValueError("--processes must be at least 1")
        self.app = app
        self.instance = instance
        # A named instance also serves its own queue, where runs targeted at it wait.
        self.queues = [*queues, instance_queue(instance)] if instance else list(queues)
        self.burst = burst
        self.slots = [Slot(i) for i in range(processes)]
        self.prefix = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._next_limit_check = 0.0
        self._env = {**os.environ, **app.child_env()}

    # -- child processes -------------------------------------------------------------------------

    def _start(self, slot: Slot) -> None:
        slot.generation += 1
        slot.name = f"{self.prefix}.{slot.index}.{slot.generation}"
        command = [sys.executable, "-m", "workers.process", "--name", slot.name, "--queues", ",".join(self.queues)]
        if self.burst:
            command.append("--burst")
        if self.instance:
            command += ["--instance", self.instance]
        slot.process = subprocess.Popen(command, env=self._env)
        log.info("started worker %s (pid %d)", slot.name, slot.process.pid)

    def _check(self, slot: Slot) -> bool:
        """Returns True when a child ended abnormally."""
        if slot.process is None or slot.process.poll() is None:
            return False
        code = slot.process.returncode
        slot.process = None
        # A clean exit marked itself stopped; a killed one could not, so do it now.
        liveness.mark_stopped(self.app.engine, slot.name)
        if code == 0 and (self.burst or self._stop.is_set()):
            slot.done = True
            return False
        slot.failures = slot.failures + 1 if code != 0 else 0
        backoff = min(defaults.WORKER_RESTART_BACKOFF_MAX_S, 0.5 * 2 ** max(0, slot.failures - 1))
        slot.restart_at = time.monotonic() + (backoff if code != 0 else 0)
        log.warning("worker %s exited with %s; restarting in %.1fs", slot.name, code, backoff)
        return code != 0

    def _unfinished_work(self) -> bool:
        with self.app.engine.connect() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(Run)
                .where(Run.status.in_(list(UNFINISHED)), Run.queue.in_(self.queues))
            ).scalar_one()
        return bool(count)

    def _queued(self) -> bool:
        return any(self.app.dispatcher.queue(q).count for q in self.queues)

    # -- main loop -------------------------------------------------------------------------------

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; stopping workers", signal.Signals(signum).name)
        self._stop.set()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        promoter = threading.Thread(target=self._promote_forever, name="promoter", daemon=True)
        promoter.start()
        if self.instance:
            recovered = settle_instance_restart(self.app, self.instance)
            if recovered:
                log.warning("instance %s restarted: %d run(s) it left running follow their retry policy",
                            self.instance, len(recovered))  # fmt: skip
        for slot in self.slots:
            self._start(slot)
        next_reconcile = time.monotonic() + self.app.settings.reconcile_interval_s
        try:
            while not self._stop.is_set():
                died = False
                for slot in self.slots:
                    died |= self._guarded(partial(self._check, slot), True)
                    if slot.process is None and not slot.done and time.monotonic() >= slot.restart_at:
                        self._start(slot)
                died |= self._guarded(self._enforce_limits, False)
                if died or time.monotonic() >= next_reconcile:
                    self._reconcile()
                    next_reconcile = time.monotonic() + self.app.settings.reconcile_interval_s
                if self.burst and all(s.done for s in self.slots):
                    if not self._unfinished_work():
                        break
                    # Retries are still due: run another round once RQ's scheduler has brought them back.
                    if self._queued():
                        for slot in self.slots:
                            slot.done = False
                self._stop.wait(POLL_INTERVAL_S)
        finally:
            self._stop.set()
            self._shutdown()
        return 0

    def _enforce_limits(self) -> bool:
        """Kills a worker whose job overran: asked to stop longer than the cancel grace ago, or past its
        attempt timeout by a margin (stuck where RQ's SIGALRM cannot reach it). True if one was."""
        alive = {s.name: s for s in self.slots if s.process is not None and s.process.poll() is None}
        if not alive or time.monotonic() < self._next_limit_check:
            return False
        self._next_limit_check = time.monotonic() + LIMIT_CHECK_INTERVAL_S
        now = utcnow()
        with self.app.engine.connect() as conn:
            current = conn.execute(
                select(Attempt.worker, Attempt.started_at, Run.timeout_s, Run.cancel_requested_at)
                .join(
                    Run,
                    (Run.id == Attempt.run_id) & (Run.series == Attempt.series) & (Run.attempt_count == Attempt.number),
                )
                .where(Run.status == RunStatus.RUNNING, Attempt.worker.in_(alive), Attempt.finished_at.is_(None))
            ).all()
        cancel_grace = timedelta(seconds=self.app.settings.cancel_grace_s)
        overdue = [
            row.worker
            for row in current
            if (row.cancel_requested_at is not None and now - row.cancel_requested_at > cancel_grace)
            or now - row.started_at > timedelta(seconds=row.timeout_s + defaults.HARD_TIMEOUT_MARGIN_S)
        ]
        for name in overdue:
            slot = alive[name]
            assert slot.process is not None
            log.warning("worker %s overran its job (cancelled or past its timeout); killing it", name)
            slot.process.kill()
            slot.process.wait()
            self._check(slot)
        return bool(overdue)

    def _guarded(self, step: Callable[[], bool], on_error: bool) -> bool:
        """A database or Redis outage must not bring the supervisor down with it."""
        try:
            return step()
        except Exception:
            log.exception("supervisor step failed; will try again")
            return on_error

    def _reconcile(self) -> None:
        try:
            reconcile_if_free(self.app)
        except Exception:
            log.exception("reconciler pass failed; will try again")

    def _promote_forever(self) -> None:
        while not self._stop.is_set():
            try:
                promote_due(self.app.dispatcher, self.queues)
            except Exception:
                log.warning("promoting due runs failed; will try again", exc_info=True)
            self._stop.wait(PROMOTE_INTERVAL_S)

    def _shutdown(self) -> None:
        running = [s for s in self.slots if s.process is not None and s.process.poll() is None]
        for slot in running:
            assert slot.process is not None
            slot.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + defaults.WORKER_SHUTDOWN_GRACE_S
        for slot in running:
            assert slot.process is not None
            try:
                slot.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker %s did not stop within the grace period; killing it", slot.name)
                slot.process.kill()
                slot.process.wait()
            liveness.mark_stopped(self.app.engine, slot.name)
