"""Handing committed runs to Redis from a background thread.

An enqueue is acknowledged once its SQL row is committed (that is what makes it durable); the push to
Redis follows from this thread, which takes every delivery waiting at that moment into one pipeline.
On this kind of machine a Redis round trip costs ~0.35 ms, more than the SQL commit, so a caller that
enqueues in a loop would otherwise spend most of its time waiting on Redis. If the process dies
before a push, or Redis is away, the reconciler pushes the run after its grace period: nothing is lost,
it is only later.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Sequence

from redis import RedisError

from jobs.dispatch import Delivery, Dispatcher

log = logging.getLogger("jobyard.enqueue")
_STOP: list[Delivery] = []
MAX_BATCH = 5000  # submissions taken per pipeline
COALESCE_S = 0.005  # wait this long after a submission for others to join it


class Pusher:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._queue: queue.Queue[list[Delivery]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def submit(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        self._ensure_thread()
        self._queue.put(list(deliveries))

    def _ensure_thread(self) -> None:
        # After a fork the thread is gone (only the forking thread survives): start a new one.
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            if self._pid != os.getpid():
                self._queue = queue.Queue()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="jobyard-pusher", daemon=True)
            self._thread.start()
            atexit.register(self.close)

    def _run(self) -> None:
        while True:
            batches = [self._queue.get()]
            # Let a burst gather: one pipeline for many runs costs far less (CPU and GIL) than many.
            time.sleep(COALESCE_S)
            while len(batches) < MAX_BATCH:
                try:
                    batches.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(b is _STOP for b in batches)
            deliveries = [d for b in batches if b is not _STOP for d in b]
            try:
                self.dispatcher.push(deliveries, fresh=True)
            except RedisError:
                log.warning("Redis unavailable; %d committed run(s) wait for the reconciler", len(deliveries))
            except Exception:
                log.exception("pushing %d run(s) failed; the reconciler will push them", len(deliveries))
            finally:
                for _ in batches:
                    self._queue.task_done()
            if stop:
                return

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until every submitted run has been pushed (or failed to); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> None:
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            return
        self.flush(timeout)
        self._queue.put(_STOP)
        self._thread.join(timeout)
