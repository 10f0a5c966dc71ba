"""Mail at the end of a run, to a real SMTP server (aiosmtpd) on this machine."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from core.app import Jobyard
from core.mail import OutboxEmail, queue_email, send_pending
from jobs.enqueue import EnqueueRequest, enqueue_many
from jobs.notifications import notify_me
from jobs.type_settings import BadRecipients, clean_addresses
from tests.conftest import wait_for
from workers.worker import JobyardWorker

pytestmark = pytest.mark.both_databases


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler, port = Inbox(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def with_smtp(app: Jobyard, url: str) -> Jobyard:
    return Jobyard(replace(app.settings, smtp_url=url, base_url="https://jobs.example.org"), registry=app.registry)


def run_all(app: Jobyard, *requests: EnqueueRequest) -> list[str]:
    ids = enqueue_many(requests, app=app)
    assert app.flush()
    JobyardWorker(["default"], app=app).work(burst=True)
    return ids


def test_notify_me_and_report_recipients_get_a_mail_with_the_run_link(app: Jobyard, inbox: tuple[Inbox, int]) -> None:
    handler, port = inbox
    mailing = with_smtp(app, f"smtp://127.0.0.1:{port}")
    [done, reported] = run_all(
        mailing, EnqueueRequest("demo.noop", notify=("ops@example.org",)), EnqueueRequest("test.reported")
    )
    wait_for(lambda: len(handler.messages) == 2, what="two mails")
    by_to = {m["To"]: m for m in handler.messages}
    assert by_to["ops@example.org"]["Subject"] == "[Jobyard] demo.noop completed"
    body = by_to["ops@example.org"].get_payload()
    assert f"https://jobs.example.org/runs/{done}" in body and "Attempts: 1 of 5" in body
    assert by_to["reports@example.org"]["Subject"] == "[Jobyard] test.reported completed"
    # Asked after the end: mailed at once.
    notify_me(mailing, reported, ["late@example.org"])
    wait_for(lambda: len(handler.messages) == 3, what="the late mail")
    mailing.close()


def test_with_smtp_down_a_mail_is_retried_then_kept_as_undelivered(app: Jobyard) -> None:
    down = with_smtp(app, f"smtp://127.0.0.1:{free_port()}")  # nothing listens there
    run_all(down, EnqueueRequest("demo.noop", notify=("ops@example.org",)))
    for _ in range(3):  # the first pass ran at the end of the run; the scheduler makes the next ones
        with app.engine.connect() as conn:
            [row] = conn.execute(select(OutboxEmail.__table__)).all()
        if row.status != "pending":
            break
        assert row.last_error and row.next_attempt_at > row.created_at
        with app.engine.begin() as conn:  # time passes
            conn.execute(update(OutboxEmail.__table__).values(next_attempt_at=row.created_at))
        send_pending(down.engine, down.smtp)
    assert (row.status, row.attempts) == ("undelivered", 3)
    assert "ConnectionRefusedError" in (row.last_error or "")
    down.close()


def test_bad_addresses_are_refused(app: Jobyard) -> None:
    [run_id] = enqueue_many([EnqueueRequest("demo.noop")], app=app)
    with pytest.raises(ValueError, match="not email addresses: not-an-address"):
        notify_me(app, run_id, ["not-an-address"])


@pytest.mark.parametrize(
    "address", ["a@b.org\nBcc: x@y.org", "a@b.org\nBcc:x@y.org", "a@b.org\r\nx@y.org", "a@b.org\tx", "a@b\x00.org"]
)
def test_addresses_with_a_line_break_or_a_control_character_are_refused(address: str) -> None:
    with pytest.raises(BadRecipients, match="not email addresses: "):
        clean_addresses(["ops@example.org", address])


def test_a_message_the_email_library_refuses_is_kept_undelivered_and_does_not_block_the_others(
    app: Jobyard, inbox: tuple[Inbox, int]
) -> None:
    handler, port = inbox
    mailing = with_smtp(app, f"smtp://127.0.0.1:{port}")
    # Written before addresses were checked (or by a job of its own): To: and Subject: would get a second header.
    queue_email(app.engine, "a@b.org\nBcc:x@y.org", "Run done", "body")
    queue_email(app.engine, "ops@example.org", "Report\nBcc: x@y.org", "body")
    queue_email(app.engine, "ops@example.org", "Run done", "good body")
    assert send_pending(mailing.engine, mailing.smtp) == 1
    assert [(m["To"], m["Subject"]) for m in handler.messages] == [("ops@example.org", "Run done")]
    with app.engine.connect() as conn:
        rows = conn.execute(select(OutboxEmail.__table__).order_by(OutboxEmail.__table__.c.id)).all()
    assert [(row.status, row.attempts) for row in rows] == [("undelivered", 1), ("undelivered", 1), ("sent", 1)]
    assert all("ValueError" in (row.last_error or "") for row in rows[:2])
    assert send_pending(mailing.engine, mailing.smtp) == 0 and len(handler.messages) == 1
    mailing.close()
