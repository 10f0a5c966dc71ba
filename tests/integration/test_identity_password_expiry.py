"""Password expiry warning through real workers and a real SMTP server.

The identities are made with `identities.create`; their password expiry, which provisioning and Credential
rotation set in real life (tested in their own files), is set here directly: it is this job's input.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from core.app import Jobyard
from core.db import utcnow
from core.mail import outbox
from jobs.catalog.identity import identities
from jobs.catalog.identity.identities import NewIdentity
from jobs.catalog.identity.models import identities_table
from jobs.enqueue import enqueue
from jobs.models import ProcessedItem, runs_table
from jobs.params import InvalidJobRequest
from jobs.queries import items_of
from jobs.registry import REGISTRY
from jobs.status import RunStatus
from scheduler import triggers
from tests.conftest import WorkerProcesses
from tests.integration import test_catalog_certificates
from tests.integration.test_catalog_certificates import body, count, run_job
from tests.integration.test_notifications import Inbox

Workers = Callable[..., WorkerProcesses]
WARNING = "identity.password_expiry_warning"
CREDENTIAL = "s3cr3t-credential-never-mailed"
inbox = test_catalog_certificates.inbox  # the fixture: a real SMTP server the workers send to


def identity(
    app: Jobyard, user_name: str, *, days: float | None, email: bool = True, disabled: bool = False, name: str = ""
) -> int:
    new = NewIdentity(
        user_name, "shared_external", display_name=name or None, email=f"{user_name}@example.org" if email else None,
        credential=CREDENTIAL,
    )  # fmt: skip
    created = identities.create(app, new, by="alice")
    expires(app, created.identity_id, days)
    if disabled:
        with app.engine.begin() as conn:
            conn.execute(
                update(identities_table).where(identities_table.c.id == created.identity_id).values(disabled=True)
            )
    return created.identity_id


def expires(app: Jobyard, identity_id: int, days: float | None) -> datetime | None:
    """Sets the identity's password expiry `days` from now; returns it as stored."""
    at = None if days is None else utcnow() + timedelta(days=days)
    i = identities_table.c
    with app.engine.begin() as conn:
        conn.execute(update(identities_table).where(i.id == identity_id).values(password_expires_at=at))
        stored: datetime | None = conn.execute(select(i.password_expires_at).where(i.id == identity_id)).scalar_one()
    return stored


def test_each_identity_is_warned_once_per_password_and_threshold(
    app: Jobyard, inbox: Inbox, start_workers: Workers
) -> None:
    ada = identity(app, "ada", days=None, name="Ada Lovelace")
    ada_expiry = expires(app, ada, 10)
    assert ada_expiry is not None
    identity(app, "bob", days=30)  # outside the window
    identity(app, "carol", days=5, disabled=True)
    dave = identity(app, "dave", days=3, email=False)
    identity(app, "eve", days=-1)  # already expired
    identity(app, "frank", days=None)  # no password of ours
    start_workers(1)

    first = run_job(app, WARNING, days=14)

    # dave cannot be warned: a failed item, so the run ends with warnings.
    assert first.status == RunStatus.COMPLETED_WITH_WARNINGS and first.result is not None
    assert (first.result["expiring"], first.result["mails"], first.result["warned"]) == (2, 1, ["ada"])
    assert first.result["without_email"] == ["dave"]
    [mail] = inbox.messages
    assert mail["To"] == "ada@example.org" and mail["Subject"] == "[Jobyard] Your password expires in 10 days"
    text = body(mail)
    assert "Hello Ada Lovelace," in text and "the account ada expires on" in text
    assert f"{ada_expiry:%Y-%m-%d %H:%M} UTC, in 10 days" in text
    assert CREDENTIAL not in text
    items = {i["key"]: i for i in items_of(app.engine, first.id)}
    assert items[f"{ada}:{ada_expiry.isoformat()}:14"]["status"] == "ok"
    [failed] = [i for i in items.values() if i["status"] == "failed"]
    assert failed["key"].startswith(f"{dave}:") and "dave has no email address" in failed["message"]

    second = run_job(app, WARNING, days=14)
    assert second.result is not None and second.result["mails"] == 0
    assert len(inbox.messages) == 1 and count(app, outbox) == 1
    assert [i["status"] for i in items_of(app.engine, second.id) if i["key"].startswith(f"{ada}:")] == ["skipped"]

    # A new password (as a rotation would set, with its new expiry) is warned about again.
    new_expiry = expires(app, ada, 12)
    assert new_expiry is not None
    third = run_job(app, WARNING, days=14)
    assert third.result is not None and third.result["warned"] == ["ada"] and len(inbox.messages) == 2
    assert inbox.messages[1]["Subject"] == "[Jobyard] Your password expires in 12 days"
    assert f"{new_expiry:%Y-%m-%d %H:%M} UTC" in body(inbox.messages[1])
    # The memory keeps only what is still offered: the first password's key is gone.
    with app.engine.connect() as conn:
        keys = set(conn.execute(select(ProcessedItem.key)).scalars())
    assert keys == {f"{ada}:{new_expiry.isoformat()}:14"}

    # Another threshold is another warning for the same password.
    seven = run_job(app, WARNING, days=13)
    assert seven.result is not None and seven.result["warned"] == ["ada"] and len(inbox.messages) == 3


def test_a_dry_run_sends_nothing_and_remembers_nothing(app: Jobyard, inbox: Inbox, start_workers: Workers) -> None:
    identity(app, "ada", days=2)
    start_workers(1)
    dry = run_job(app, WARNING, days=7, dry_run=True)
    assert dry.status == RunStatus.COMPLETED and dry.result is not None
    assert (dry.result["expiring"], dry.result["mails"]) == (1, 0)
    assert [(i["status"], i["message"]) for i in items_of(app.engine, dry.id)] == [
        ("skipped", "dry run: would be processed")
    ]
    assert inbox.messages == [] and count(app, outbox) == 0 and count(app, ProcessedItem.__table__) == 0
    real = run_job(app, WARNING, days=7)
    assert real.result is not None and real.result["warned"] == ["ada"] and len(inbox.messages) == 1
    assert inbox.messages[0]["Subject"] == "[Jobyard] Your password expires in 2 days"


@pytest.mark.parametrize(("days", "error"), [(0, "at least 1"), (-1, "at least 1"), (3651, "at most 3650")])
def test_a_bad_threshold_is_refused_at_enqueue_and_nothing_is_sent(
    app: Jobyard, inbox: Inbox, days: int, error: str
) -> None:
    identity(app, "ada", days=2)
    with pytest.raises(InvalidJobRequest, match=f"days: must be {error}, got {days}"):
        enqueue(WARNING, {"days": days}, app=app)
    assert count(app, runs_table) == 0 and count(app, outbox) == 0 and inbox.messages == []


def test_declarations_and_default_schedules() -> None:
    declared: dict[str, Any] = {t.name: t for t in REGISTRY}
    warning = declared[WARNING]
    assert warning.title == "Password expiry warning" and warning.exclusive
    assert warning.default_schedule is not None
    assert warning.default_schedule.as_text() == triggers.cron("0 6 * * *").as_text()
    days = warning.param("days")
    assert days is not None and (days.default, days.minimum, days.maximum) == (14, 1, 3650)
    retry = declared["identity.retry_failed_provisioning"]
    assert retry.title == "Retry failed provisioning" and retry.exclusive and retry.default_schedule is not None
    assert retry.default_schedule.as_text() == triggers.interval(60).as_text()
    assert declared["identity.rotate_credential"].title == "Credential rotation"
