"""SQL tables owned by the worker side.

- ``workers``        one row per worker process ever started: liveness (last_seen_at) lives in SQL, not
                     in Redis, so that a Redis restart does not make every worker look dead.
- ``refused_jobs``   payloads found in a Jobyard queue that were not Jobyard runs (pickle, foreign
                     callables); recorded, never executed.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime


class WorkerRecord(Base):
    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    queues: Mapped[str] = mapped_column(String(1000))
    # Named instance (seed 002) this worker serves; its restart settles the runs it left running.
    instance: Mapped[str | None] = mapped_column(String(100), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RefusedJob(Base):
    __tablename__ = "refused_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rq_job_id: Mapped[str] = mapped_column(String(200))
    queue: Mapped[str] = mapped_column(String(100))
    worker: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


workers_table = cast(Table, WorkerRecord.__table__)
refused_jobs_table = cast(Table, RefusedJob.__table__)
