"""Outgoing email through an outbox (``outbox_emails``), sent over SMTP with tenacity retries.

A message is written to the outbox in SQL first, then sent; one that cannot be sent is retried on later
passes (the scheduler process sends what is pending) and, after MAIL_MAX_ATTEMPTS, kept as
`undelivered` so that it stays visible (and the "Delete undelivered emails" job can clear it). A message the
email library refuses to build (a line break in its address or subject raises ValueError) would fail the same
way every time: it is kept as `undelivered` at once, and the messages after it still go out.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import tenacity
from sqlalchemy import Engine, Integer, Row, String, Table, Text, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from core import defaults
from core.db import Base, UTCDateTime, utcnow

log = logging.getLogger("jobyard.mail")


class OutboxEmail(Base):
    __tablename__ = "outbox_emails"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    to_addr: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), index=True)  # pending | sent | undelivered
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


outbox = cast(Table, OutboxEmail.__table__)


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None
    password: str | None
    starttls: bool
    sender: str

    @classmethod
    def from_url(cls, url: str, sender: str) -> SmtpConfig:
        """`smtp://user:password@host:port` (`smtp+starttls://` to upgrade the connection)."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtp+starttls") or not parts.hostname:
            raise ValueError(f"JOBYARD_SMTP_URL must look like smtp://host:port, got {url!r}")
        return cls(
            host=parts.hostname,
            port=parts.port or 25,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            starttls=parts.scheme == "smtp+starttls",
            sender=sender,
        )


def queue_email(engine: Engine, to: str, subject: str, body: str) -> None:
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            insert(outbox).values(
                to_addr=to, subject=subject, body=body, status="pending", attempts=0, created_at=now,
                next_attempt_at=now,
            )
        )  # fmt: skip


def _message(config: SmtpConfig, to: str, subject: str, body: str) -> EmailMessage:
    """Raises ValueError for a header the email library refuses (a line break in the address or subject)."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = config.sender, to, subject
    message.set_content(body)
    return message


def _deliver(config: SmtpConfig, message: EmailMessage) -> None:
    for attempt in tenacity.Retrying(
        stop=tenacity.stop_after_attempt(defaults.MAIL_SEND_TRIES),
        wait=tenacity.wait_exponential(multiplier=defaults.MAIL_SEND_BACKOFF_S),
        retry=tenacity.retry_if_exception_type((OSError, smtplib.SMTPException)),
        reraise=True,
    ):
        with attempt, smtplib.SMTP(config.host, config.port, timeout=defaults.MAIL_TIMEOUT_S) as smtp:
            if config.starttls:
                smtp.starttls()
            if config.username:
                smtp.login(config.username, config.password or "")
            smtp.send_message(message)


def send_pending(engine: Engine, config: SmtpConfig | None, *, limit: int = 100) -> int:
    """Sends due outbox messages; returns how many went out."""
    if config is None:
        return 0
    now = utcnow()
    with engine.connect() as conn:
        due = conn.execute(
            select(outbox)
            .where(outbox.c.status == "pending", outbox.c.next_attempt_at <= now)
            .order_by(outbox.c.id)
            .limit(limit)
        ).all()
    sent = 0
    for row in due:
        values = _attempt(config, row)
        sent += values["status"] == "sent"
        with engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id == row.id).values(**values))
    return sent


def _attempt(config: SmtpConfig, row: Row[Any]) -> dict[str, object]:
    """Sends one outbox message; returns the row's new values."""
    try:
        message = _message(config, row.to_addr, row.subject, row.body)
    except ValueError as exc:  # every attempt would fail the same way, and must not hold up the others
        log.warning("mail %d to %r not sent, undeliverable: %s", row.id, row.to_addr, exc)
        return {"attempts": row.attempts + 1, "last_error": f"{type(exc).__name__}: {exc}", "status": "undelivered"}
    try:
        _deliver(config, message)
    except (OSError, smtplib.SMTPException) as exc:
        attempts = row.attempts + 1
        gave_up = attempts >= defaults.MAIL_MAX_ATTEMPTS
        log.warning("mail to %s not sent (attempt %d): %s", row.to_addr, attempts, exc)
        return {
            "attempts": attempts,
            "last_error": f"{type(exc).__name__}: {exc}",
            "status": "undelivered" if gave_up else "pending",
            "next_attempt_at": utcnow() + timedelta(seconds=defaults.MAIL_RETRY_AFTER_S * 2 ** (attempts - 1)),
        }
    return {"attempts": row.attempts + 1, "status": "sent", "sent_at": utcnow(), "last_error": None}
