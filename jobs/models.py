"""SQL tables of the run record.

Tables owned here:
- ``runs``          one row per requested execution of a job type; the source of truth for its status.
- ``run_attempts``  one row per attempt (series restarts at 1 after a manual retry; old rows stay).
- ``run_logs``      log lines written by the job or by Jobyard about the run.
- ``run_dependencies``  which runs a run waits for (enqueue's `depends_on`).
- ``run_items``, ``processed_items``  per-item results, and the memory of processed items (jobs/items.py).
- ``item_claims``   items an attempt is processing right now, so that a concurrent run skips them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    type: Mapped[str] = mapped_column(String(200))
    queue: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    domain: Mapped[str | None] = mapped_column(String(100))
    triggered_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # When the run was last handed to Redis (or was meant to be); the reconciler's grace is measured from it.
    dispatched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Attempts of the current series; a manual retry starts a new series at 0.
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    series: Mapped[int] = mapped_column(Integer, default=1)
    max_attempts: Mapped[int] = mapped_column(Integer)
    timeout_s: Mapped[int] = mapped_column(Integer)
    result: Mapped[Any | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    progress_done: Mapped[int | None] = mapped_column(Integer)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    progress_message: Mapped[str | None] = mapped_column(String(500))
    retried_by: Mapped[str | None] = mapped_column(String(200))
    retried_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Asked to stop while running: the job sees it through its context, and past the grace period the
    # supervisor kills its process. Cancelling is final (seed 004); only an explicit retry starts again.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(200))
    schedule_id: Mapped[int | None] = mapped_column(Integer)
    # "Notify me when finished" (seed 004): addresses mailed when the run ends.
    notify: Mapped[list[str] | None] = mapped_column(JSON)
    # A producer's key (a schedule's: "schedule:<id>:<due time>"); a second enqueue with it returns the first run.
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # HMAC-SHA256 of the settled row under the server key (core/integrity.py); NULL until it is signed.
    hmac: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_runs_status_dispatched_at", "status", "dispatched_at"),
        Index("ix_runs_type_created_at", "type", "created_at"),
        Index("ix_runs_status_created_at", "status", "created_at"),
        Index("ix_runs_domain_created_at", "domain", "created_at"),
        Index("ix_runs_triggered_by_created_at", "triggered_by", "created_at"),
        Index("ix_runs_schedule_id_created_at", "schedule_id", "created_at"),
        Index("uq_runs_idempotency_key", "idempotency_key", unique=True),
        # The sealing pass (scheduler/sealing.py) looks for the few unsigned settled rows among millions of signed
        # ones. Keyed by status so that SQLite's planner prefers it to ix_runs_status_created_at.
        Index("ix_runs_unsigned", "status", sqlite_where=text("hmac IS NULL"), postgresql_where=text("hmac IS NULL")),
    )


class Attempt(Base):
    __tablename__ = "run_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    series: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(200), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # completed | failed | timeout | died | cancelled | rejected (the job raised PermanentFailure)
    outcome: Mapped[str | None] = mapped_column(String(32))
    error_class: Mapped[str | None] = mapped_column(String(200))
    error_message: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    hmac: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("run_id", "series", "number", name="uq_run_attempts_run_series_number"),
        Index(
            "ix_run_attempts_unsigned",
            "finished_at",
            sqlite_where=text("hmac IS NULL"),
            postgresql_where=text("hmac IS NULL"),
        ),
    )


class RunDependency(Base):
    """``run_dependencies``: a run waits in `waiting` until every run it depends on has completed."""

    __tablename__ = "run_dependencies"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    depends_on_id: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)


class RunItem(Base):
    """``run_items``: the result of one item of a run that processes items (seed 002's log)."""

    __tablename__ = "run_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(10))  # ok | failed | skipped
    message: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_run_items_run_id_status", "run_id", "status"),)


class ProcessedItem(Base):
    """``processed_items``: items already processed successfully, per schedule (or per job type when a
    run has no schedule), so that a later run skips them (seed 002's queue)."""

    __tablename__ = "processed_items"

    scope: Mapped[str] = mapped_column(String(250), primary_key=True)
    key: Mapped[str] = mapped_column(String(500), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class ItemClaim(Base):
    """``item_claims``: an item one attempt of a run is processing now, under the same scope as
    ``processed_items``, so that another run processing the same items at the same time skips it. The claim
    goes with the item's result; one whose attempt has been settled (died, timed out, stopped) no longer
    holds and is taken over (jobs/items.py)."""

    __tablename__ = "item_claims"

    scope: Mapped[str] = mapped_column(String(250), primary_key=True)
    key: Mapped[str] = mapped_column(String(500), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32))
    series: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class RunLog(Base):
    __tablename__ = "run_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    level: Mapped[str] = mapped_column(String(10))
    message: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_run_logs_run_id_id", "run_id", "id"),)


# Typed handles for Core statements on the hot paths (enqueue, claim, finish), which skip the ORM.
runs_table = cast(Table, Run.__table__)
attempts_table = cast(Table, Attempt.__table__)
run_logs_table = cast(Table, RunLog.__table__)
