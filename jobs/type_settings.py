"""Settings an operator changes per job type at run time (table ``type_settings``).

Today: the report recipients of seed 001's "send report" box. A row, once saved, replaces the
recipients declared in code (`report_to=`); deleting it falls back to the declaration.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, cast

from sqlalchemy import JSON, Engine, String, Table, delete, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime, utcnow

if TYPE_CHECKING:
    from jobs.registry import JobType


class TypeSetting(Base):
    __tablename__ = "type_settings"

    type: Mapped[str] = mapped_column(String(200), primary_key=True)
    report_to: Mapped[list[str]] = mapped_column(JSON)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_by: Mapped[str] = mapped_column(String(200))


type_settings = cast(Table, TypeSetting.__table__)


class BadRecipients(ValueError):
    pass


def clean_addresses(addresses: Iterable[str]) -> list[str]:
    wanted = sorted({a.strip() for a in addresses if a.strip()})
    # Any whitespace or control character is refused: a line break would add a header (Bcc:) to the mail,
    # or make the email library refuse the message when it is sent.
    bad = [a for a in wanted if "@" not in a or not a.isprintable() or any(c.isspace() for c in a) or len(a) > 320]
    if bad:
        raise BadRecipients(f"not email addresses: {', '.join(a if a.isprintable() else repr(a) for a in bad)}")
    return wanted


def report_recipients(engine: Engine, declared: JobType) -> tuple[str, ...]:
    with engine.connect() as conn:
        saved = conn.execute(select(type_settings.c.report_to).where(type_settings.c.type == declared.name)).scalar()
    return tuple(saved) if saved is not None else declared.report_to


def set_report_recipients(engine: Engine, type_name: str, addresses: Iterable[str], *, by: str) -> list[str]:
    recipients = clean_addresses(addresses)
    now = utcnow()
    with engine.begin() as conn:
        if not conn.execute(
            update(type_settings)
            .where(type_settings.c.type == type_name)
            .values(report_to=recipients, changed_at=now, changed_by=by)
        ).rowcount:
            conn.execute(
                insert(type_settings).values(type=type_name, report_to=recipients, changed_at=now, changed_by=by)
            )
    return recipients


def reset_report_recipients(engine: Engine, type_name: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(type_settings).where(type_settings.c.type == type_name))
