"""Runs brought back from an archive file (table ``archived_runs``), shown apart from live runs.

- ``archived_runs``  one row per imported run: the columns the archive view filters on, and the whole
                     record (run, attempts, log lines, item results) as the archive file held it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Index, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime


class ArchivedRun(Base):
    __tablename__ = "archived_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    type: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(32))
    domain: Mapped[str | None] = mapped_column(String(100))
    triggered_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    archive_file: Mapped[str] = mapped_column(String(1000))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)
    imported_by_run: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        Index("ix_archived_runs_created_at", "created_at"),
        Index("ix_archived_runs_type_created_at", "type", "created_at"),
    )


archived_runs_table = cast(Table, ArchivedRun.__table__)
