"""What a job function receives: its parameters and ways to report progress and log lines."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, insert, update

from core.db import utcnow
from jobs.models import run_logs_table, runs_table

LEVELS = ("info", "warning", "error")
_PY_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
log = logging.getLogger("jobyard.job")


@dataclass
class JobContext:
    run_id: str
    type: str
    attempt: int
    params: dict[str, Any]
    engine: Engine
    warnings: int = field(default=0)

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

    def info(self, message: str) -> None:
        self.log("info", message)

    def warning(self, message: str) -> None:
        self.warnings += 1
        self.log("warning", message)

    def error(self, message: str) -> None:
        self.log("error", message)
