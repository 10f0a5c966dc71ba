"""Mail when a run ends (seed 004's "notify me when finished", seed 001's "send report"): to the run's
own addresses and its job type's report recipients, through the outbox (core/mail.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from core.mail import queue_email, send_pending
from jobs.actions import RunNotFound
from jobs.models import runs_table as runs
from jobs.queries import run_detail
from jobs.status import FINAL, RunStatus
from jobs.type_settings import report_recipients

if TYPE_CHECKING:
    from core.app import Jobyard


def notify_me(app: Jobyard, run_id: str, addresses: Iterable[str]) -> list[str]:
    """Adds addresses to mail when the run ends (at once if it already has); returns the full list."""
    wanted = [a.strip() for a in addresses if a.strip()]
    bad = [a for a in wanted if "@" not in a or " " in a]
    if bad or not wanted:
        raise ValueError(f"not email addresses: {', '.join(bad) or '(none given)'}")
    with app.engine.begin() as conn:
        row = conn.execute(select(runs.c.notify, runs.c.status).where(runs.c.id == run_id)).first()
        if row is None:
            raise RunNotFound(run_id)
        merged = sorted({*(row.notify or []), *wanted})
        conn.execute(update(runs).where(runs.c.id == run_id).values(notify=merged))
    if RunStatus(row.status) in FINAL:
        notify_finished(app, run_id, only=wanted)
    return merged


def notify_finished(app: Jobyard, run_id: str, *, only: Iterable[str] | None = None) -> int:
    """Writes the end-of-run mails to the outbox and tries to send them; returns how many were queued."""
    with app.engine.connect() as conn:
        row = conn.execute(select(runs.c.type, runs.c.notify).where(runs.c.id == run_id)).first()
    if row is None:
        return 0
    declared = app.registry.get(row.type)
    recipients = sorted(
        set(only)
        if only is not None
        else {*(row.notify or []), *(report_recipients(app.engine, declared) if declared else ())}
    )
    if not recipients:
        return 0
    detail = run_detail(app.engine, run_id)
    assert detail is not None
    subject = f"[Jobyard] {detail['type']} {detail['status']}"
    lines = [
        f"Run {run_id} of {detail['type']} ended: {detail['status']}.",
        f"Started:  {detail['started_at']}",
        f"Finished: {detail['finished_at']}",
        f"Attempts: {detail['attempts']} of {detail['max_attempts']}",
        f"Item errors: {detail['error_count']}",
    ]
    if detail["error"]:
        lines.append(f"Error: {detail['error']}")
    lines.append(f"Details: {app.settings.base_url}/runs/{run_id}")
    for address in recipients:
        queue_email(app.engine, address, subject, "\n".join(lines) + "\n")
    send_pending(app.engine, app.smtp)
    return len(recipients)
