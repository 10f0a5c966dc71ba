"""Password expiry warning (seed 002): identities whose password expires within `days` get one email.

Owns no table. Reads ``identities`` (``password_expires_at``, set by provisioning and Credential rotation)
and queues mails in the outbox.

Each warning is an item of the per-item memory under the key ``<identity id>:<expiry>:<days>``: an identity
is warned once per threshold per password, and a new password (a new expiry) is warned about again. The
memory belongs to the run's schedule, so one schedule per threshold (14, 7 and 3 days, say) warns three
times before an expiry; runs without a schedule share the job type's memory, which keeps only the keys of
the latest run's threshold. Disabled identities are never warned.

An identity without an email address is a failed item, not a skipped one: nobody was warned, a person can
fix it by adding an address, and a failed item is not remembered, so the next run warns once there is one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from core import defaults
from core.db import utcnow
from jobs.catalog.identity.models import identities_table
from jobs.context import JobContext
from jobs.registry import Param, job_type
from scheduler import triggers

MAX_DAYS = 3650
REPORT_LIMIT = 100  # user names per list in the result; the counts are exact
DAILY = triggers.cron("0 6 * * *")


class NoAddress(ValueError):
    """The identity has no email address to warn."""


@dataclass(frozen=True)
class Expiring:
    identity_id: int
    user_name: str
    display_name: str | None
    email: str | None
    expires_at: datetime

    def key(self, days: int) -> str:
        return f"{self.identity_id}:{self.expires_at.isoformat()}:{days}"


def _expiring(ctx: JobContext, now: datetime, days: int) -> list[Expiring]:
    i = identities_table.c
    query = (
        select(i.id, i.user_name, i.display_name, i.email, i.password_expires_at)
        .where(
            i.disabled.is_(False),
            i.password_expires_at > now,
            i.password_expires_at <= now + timedelta(days=days),
        )
        .order_by(i.password_expires_at, i.id)
    )
    with ctx.engine.connect() as conn:
        return [Expiring(*row) for row in conn.execute(query)]


def _days_left(expires_at: datetime, now: datetime) -> int:
    """Whole days, rounded up: a password expiring in 13 days and 2 hours "expires in 14 days"."""
    return max(1, math.ceil((expires_at - now).total_seconds() / 86_400))


def _mail(ctx: JobContext, identity: Expiring, now: datetime) -> str:
    if not identity.email:
        raise NoAddress(f"{identity.user_name} has no email address: not warned; add one to warn it")
    left = _days_left(identity.expires_at, now)
    in_days = f"in {left} day{'' if left == 1 else 's'}"
    when = f"{identity.expires_at:%Y-%m-%d %H:%M} UTC"
    body = (
        f"Hello {identity.display_name or identity.user_name},\n\n"
        f"The password of the account {identity.user_name} expires on {when}, {in_days}.\n"
        "Please change it before then; once it has expired, the account cannot sign in with it.\n"
    )
    ctx.mail(identity.email, f"[Jobyard] Your password expires {in_days}", body)
    return f"warned {identity.email}: expires {when}"


@job_type(
    "identity.password_expiry_warning",
    title="Password expiry warning",
    description="Mails each identity whose password expires within the given number of days a warning, once per "
    "threshold and password; disabled identities are not warned. Give each threshold (14, 7, 3 days...) its own "
    "schedule.",
    params=[
        Param(
            "days",
            int,
            default=defaults.PASSWORD_EXPIRY_WARNING_DAYS,
            minimum=1,
            maximum=MAX_DAYS,
            help=f"warn this many days before the password expires (1 to {MAX_DAYS})",
        ),
        Param("dry_run", bool, default=False, help="list who would be warned without sending anything"),
    ],
    exclusive=True,
    default_schedule=DAILY,
)
def password_expiry_warning(ctx: JobContext, days: int, dry_run: bool) -> dict[str, Any]:
    now = utcnow()
    expiring = _expiring(ctx, now, days)
    ctx.info(f"{len(expiring)} enabled identit{'y' if len(expiring) == 1 else 'ies'} with a password expiring "
             f"within {days} days")  # fmt: skip
    warned: list[str] = []

    def handle(identity: Expiring) -> str:
        message = _mail(ctx, identity, now)
        warned.append(identity.user_name)
        return message

    counts = ctx.process_items(
        expiring, handle, key=lambda identity: identity.key(days), dry_run=dry_run, continue_on_error=True
    )
    without_email = [identity.user_name for identity in expiring if not identity.email]
    return {
        "days": days,
        "dry_run": dry_run,
        "expiring": len(expiring),
        "mails": len(warned),
        "warned": warned[:REPORT_LIMIT],
        "without_email": without_email[:REPORT_LIMIT],
        "items": counts,
    }
