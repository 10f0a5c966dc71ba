"""What a job function receives: its parameters and ways to report progress and log lines."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, insert, update

from core.db import utcnow
from jobs.models import run_logs_table, runs_table

if TYPE_CHECKING:
    from core.app import Jobyard

LEVELS = ("info", "warning", "error")
CANCEL_POLL_S = 0.2
_PY_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
log = logging.getLogger("jobyard.job")


class PermanentFailure(Exception):
    """Raised by a job for a failure another attempt cannot fix (bad input its declaration cannot
    express, a missing directory): the run fails at once instead of retrying with backoff."""


@dataclass
class JobContext:
    run_id: str
    type: str
    attempt: int
    params: dict[str, Any]
    engine: Engine
    # The worker's Jobyard: settings (keys, data directory), Redis, mail. None only in unit tests.
    app: Jobyard | None = None
    schedule_id: int | None = None
    # Answers whether the run was asked to stop; polled at most every CANCEL_POLL_S.
    cancel_requested: Callable[[], bool] = field(default=lambda: False)
    warnings: int = field(default=0)
    errors: int = field(default=0)
    _cancel_seen: bool = field(default=False)
    _cancel_checked_at: float = field(default=float("-inf"))

    @property
    def cancelled(self) -> bool:
        """True once the run has been asked to stop; a job checks it between steps."""
        now = time.monotonic()
        if not self._cancel_seen and now - self._cancel_checked_at >= CANCEL_POLL_S:
            self._cancel_checked_at = now
            self._cancel_seen = self.cancel_requested()
        return self._cancel_seen

    def check_cancelled(self) -> None:
        """Raises Cancelled when the run was asked to stop: the attempt then ends `cancelled`."""
        if self.cancelled:
            from jobs.cancel import Cancelled

            raise Cancelled(f"run {self.run_id} was cancelled")

    def progress(self, done: int, total: int, message: str | None = None) -> None:
        if total < 0 or done < 0:
            raise ValueError("progress counts cannot be negative")
        values: dict[str, Any] = {"progress_done": done, "progress_total": total}
        if message is not None:
            values["progress_message"] = message[:500]
        with self.engine.begin() as conn:
            conn.execute(update(runs_table).where(runs_table.c.id == self.run_id).values(**values))

    def log(self, level: str, message: str) -> None:
        if level not in LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
        log.log(_PY_LEVELS[level], "%s %s: %s", self.type, self.run_id, message)
        with self.engine.begin() as conn:
            conn.execute(insert(run_logs_table).values(run_id=self.run_id, at=utcnow(), level=level, message=message))

    @property
    def item_scope(self) -> str:
        """Whose memory of processed items this run uses: its schedule's, else its job type's."""
        return f"schedule:{self.schedule_id}" if self.schedule_id is not None else f"type:{self.type}"

    def process_items(
        self,
        items: Iterable[Any],
        handle: Callable[[Any], str | None],
        *,
        key: Callable[[Any], str] = str,
        dry_run: bool = False,
        continue_on_error: bool = False,
    ) -> dict[str, int]:
        """Processes items one by one with per-item results; see jobs/items.py."""
        from jobs.items import process_items

        return process_items(self, items, handle, key=key, dry_run=dry_run, continue_on_error=continue_on_error)

    def mail(self, to: str, subject: str, body: str) -> None:
        """Queues a mail in the outbox (kept if SMTP is down, retried later) and tries to send it now."""
        from core.mail import queue_email, send_pending

        queue_email(self.engine, to, subject, body)
        if self.app is not None:
            send_pending(self.engine, self.app.smtp)

    def info(self, message: str) -> None:
        self.log("info", message)

    def warning(self, message: str) -> None:
        self.warnings += 1
        self.log("warning", message)

    def error(self, message: str) -> None:
        self.log("error", message)
