"""SQL tables of scheduling.

- ``schedules``   one plan per job type: trigger, timezone, mode, next execution, last run, misfires,
                  who changed it and when. rq-scheduler holds one entry per active schedule (see
                  scheduler/clock.py); this table is the truth it is kept in step with.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime

MODES = ("automatic", "scheduled", "disabled")


class Schedule(Base):
    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(200), unique=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    trigger_kind: Mapped[str] = mapped_column(String(20))
    trigger_spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    timezone: Mapped[str] = mapped_column(String(64))
    # automatic: the type's declared default; scheduled: set by an operator; disabled: manual only.
    mode: Mapped[str] = mapped_column(String(20))
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_run_id: Mapped[str | None] = mapped_column(String(32))
    last_fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    misfires: Mapped[int] = mapped_column(Integer, default=0)
    last_misfire_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_by: Mapped[str] = mapped_column(String(200))


class TypeLock(Base):
    """Held by the one running run of an exclusive job type (``type_locks``)."""

    __tablename__ = "type_locks"

    type: Mapped[str] = mapped_column(String(200), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)


schedules_table = cast(Table, Schedule.__table__)
type_locks_table = cast(Table, TypeLock.__table__)
