"""Built-in certificate job types (seed 000): import, expiry notifications, domain validation expiry.

- ``certificates.import`` reads certificates from a directory into the inventory (certificate_models.py),
  one item per file, and reports what it imported, skipped and could not read.
- The three expiry notifications mail each recipient one list of what expires within `days`; each
  certificate (or domain) is listed once per threshold, remembered by the per-item memory under the key
  ``<fingerprint or domain>:<days>``. The memory belongs to the run's schedule (else to the job type),
  so one schedule per threshold (say 30 days and 7 days) warns twice before an expiry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select

from core.db import utcnow
from dashboard.auth.models import User
from jobs import paths
from jobs.catalog.certificate_files import CertificateFile, InvalidCertificateFile, files_under, read_file
from jobs.catalog.certificate_models import VALIDATORS, certificates_table, validated_domains_table
from jobs.context import JobContext, PermanentFailure
from jobs.models import ProcessedItem
from jobs.registry import Param, job_type
from jobs.type_settings import BadRecipients, clean_addresses
from scheduler import triggers

MAX_DAYS = 3650
IN_SLICE = 1000
REPORT_LIMIT = 100  # names per list in the run's result; the mailed report lists every file
DAILY = triggers.cron("0 6 * * *")
CREATED_BY = ("both", *VALIDATORS)


class BadParameter(PermanentFailure):
    """A parameter the declaration cannot check (a path, an address, a range); names the field. Another
    attempt cannot fix it, so the run fails at once."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")


# Parameters


def _strings(field: str, values: Sequence[Any]) -> list[str]:
    if not all(isinstance(v, str) for v in values):
        raise BadParameter(field, "must be a list of strings")
    return [v.strip() for v in values if v.strip()]


def _addresses(field: str, values: Sequence[Any]) -> list[str]:
    try:
        return clean_addresses(_strings(field, values))
    except BadRecipients as exc:
        raise BadParameter(field, str(exc)) from None


def _recipients(ctx: JobContext, recipients: Sequence[Any], operators: Sequence[Any]) -> list[str]:
    """The addresses given plus those of the chosen operators (seed 000: "select the operators")."""
    addresses = _addresses("recipients", recipients)
    names = sorted(set(_strings("operators", operators)))
    if not names:
        return addresses
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(User.username, User.email, User.disabled).where(User.username.in_(names)))
        emails = {row.username: row.email for row in rows if row.email and not row.disabled}
    missing = [name for name in names if name not in emails]
    if missing:
        raise BadParameter("operators", f"no enabled user with an email address: {', '.join(missing)}")
    return sorted({*addresses, *emails.values()})


def _known(conn: Connection, fingerprints: set[str]) -> set[str]:
    column, wanted = certificates_table.c.fingerprint_sha256, sorted(fingerprints)
    # In slices: a dry run over a large directory would pass the databases' limit of bound parameters.
    slices = (wanted[i : i + IN_SLICE] for i in range(0, len(wanted), IN_SLICE))
    return {found for part in slices for found in conn.execute(select(column).where(column.in_(part))).scalars()}


def _store(ctx: JobContext, file: CertificateFile) -> int:
    """Inserts the file's certificates not yet in the inventory, in one transaction; returns how many."""
    rows = {row["fingerprint_sha256"]: row for row in file.rows}  # a chain may repeat a certificate
    now = utcnow()
    with ctx.engine.begin() as conn:
        known = _known(conn, set(rows))
        new = [
            {**row, "source": str(file.path), "imported_at": now, "imported_by_run": ctx.run_id}
            for fingerprint, row in rows.items()
            if fingerprint not in known
        ]
        if new:
            conn.execute(insert(certificates_table), new)
    return len(new)


def _import_report(root: Path, dry_run: bool, imported: list[str], skipped: list[str], invalid: list[str]) -> str:
    sections = [f"Certificates imported from {root}" + (" (dry run: nothing was stored)" if dry_run else "") + "."]
    for title, names in (("Imported", imported), ("Skipped (already in the inventory)", skipped), ("Invalid", invalid)):
        sections.append(f"{title}: {len(names)}" + "".join(f"\n- {n}" for n in names))
    return "\n\n".join(sections) + "\n"


@job_type(
    "certificates.import",
    title="Import Certificates",
    description="Reads PEM and DER certificates and chains from a directory into the certificate inventory, "
    "skipping certificates already there, and reports which files were imported, skipped or invalid; the "
    "report is mailed to the addresses given.",
    params=[
        Param("path", str, server_path="import", help=f"the directory holding the certificate files, {paths.HELP}"),
        Param("recursive", bool, default=False, help="also read the directory's subdirectories"),
        Param("notify", list, default=[], help="email addresses the import report is sent to"),
        Param("dry_run", bool, default=False, help="report what would be imported without storing anything"),
    ],
    exclusive=True,
    timeout_s=1800,
)
def import_certificates(
    ctx: JobContext, path: str, recursive: bool, notify: list[Any], dry_run: bool
) -> dict[str, Any]:
    report_to = _addresses("notify", notify)
    # Checked again here, not only at enqueue: the directory (or a link on the way) may have changed since.
    import_dirs = paths.import_dirs_of(ctx)
    root = paths.check_directory("path", path, import_dirs)
    files = [read_file(root, p, import_dirs) for p in files_under(root, recursive, ctx.warning, import_dirs)]
    ctx.info(f"{len(files)} file(s) found in {root}")
    stored: dict[str, int] = {}

    def handle(file: CertificateFile) -> str:
        if file.problem is not None:
            raise InvalidCertificateFile(file.problem)
        stored[file.key] = _store(ctx, file)
        return f"{stored[file.key]} of {len(file.rows)} certificate(s) imported"

    ctx.process_items(files, handle, key=lambda f: f.key, dry_run=dry_run, continue_on_error=True)
    fingerprints = {r["fingerprint_sha256"] for f in files for r in f.rows}
    known: set[str] = set()
    if dry_run:  # nothing was stored: what it would import is what the inventory lacks
        with ctx.engine.connect() as conn:
            known = _known(conn, fingerprints)
    imported: list[str] = []
    skipped: list[str] = []
    invalid: list[dict[str, str]] = []
    for file in files:
        if file.problem is not None:
            invalid.append({"file": file.name, "reason": file.problem})
        elif stored.get(file.key) or (dry_run and any(r["fingerprint_sha256"] not in known for r in file.rows)):
            imported.append(file.name)
        else:  # every certificate already known, or the file is unchanged since an earlier import
            skipped.append(file.name)
    certificates = len(fingerprints - known) if dry_run else sum(stored.values())
    subject = f"[Jobyard] Import certificates: {len(imported)} imported, {len(skipped)} skipped, {len(invalid)} invalid"
    body = _import_report(root, dry_run, imported, skipped, [f"{i['file']}: {i['reason']}" for i in invalid])
    for address in report_to:
        ctx.mail(address, subject + (" (dry run)" if dry_run else ""), body)
    return {
        "path": str(root),
        "dry_run": dry_run,
        "files": len(files),
        "files_imported": len(imported),
        "files_skipped": len(skipped),
        "files_invalid": len(invalid),
        "certificates_imported": certificates,
        "imported": imported[:REPORT_LIMIT],
        "skipped": skipped[:REPORT_LIMIT],
        "invalid": invalid[:REPORT_LIMIT],
        "report_sent_to": report_to,
    }


# Expiry notifications


@dataclass(frozen=True)
class Notice:
    key: str
    text: str  # its entry in the mail


def _days_left(until: datetime, now: datetime) -> str:
    left = (until - now).days
    return f"{until:%Y-%m-%d %H:%M} UTC, {left} day{'' if left == 1 else 's'} left"


def _already_notified(ctx: JobContext) -> set[str]:
    with ctx.engine.connect() as conn:
        query = select(ProcessedItem.key).where(ProcessedItem.scope == ctx.item_scope)
        return set(conn.execute(query).scalars())


def _notify(
    ctx: JobContext, *, what: str, notices: list[Notice], recipients: list[str], days: int, dry_run: bool
) -> dict[str, Any]:
    """One mail per recipient listing the notices not yet sent, then remembers them as sent.

    The mail is queued in the outbox before the items are remembered: a run dying in between sends
    the list again on retry, rather than never."""
    notified = _already_notified(ctx)
    fresh = [n for n in notices if n.key not in notified]
    result: dict[str, Any] = {"days": days, "expiring": len(notices), "new": len(fresh), "dry_run": dry_run}
    if not recipients:
        ctx.warning("no recipients (set `recipients` or `operators`): nothing sent, nothing marked as notified")
        return {**result, "recipients": [], "mails": 0}
    mails = 0
    if fresh and not dry_run:
        subject = f"[Jobyard] {len(fresh)} {what} expiring within {days} days"
        link = f"\n\nRun: {ctx.app.settings.base_url}/runs/{ctx.run_id}" if ctx.app is not None else ""
        body = f"{len(fresh)} {what} expiring within {days} days:\n\n" + "\n".join(n.text for n in fresh) + link + "\n"
        for address in recipients:
            ctx.mail(address, subject, body)
            mails += 1
    listed = f"listed in the mail to {len(recipients)} recipient(s)"
    ctx.process_items(notices, lambda _notice: listed, key=lambda n: n.key, dry_run=dry_run)
    return {**result, "recipients": recipients, "mails": mails}


def _certificate_notices(ctx: JobContext, *, ca: bool, days: int) -> list[Notice]:
    c = certificates_table.c
    now = utcnow()
    query = (
        select(c.fingerprint_sha256, c.subject, c.sans, c.serial, c.not_after)
        .where(c.is_ca == ca, c.not_after > now, c.not_after <= now + timedelta(days=days))
        .order_by(c.not_after, c.id)
    )
    with ctx.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        Notice(
            f"{row.fingerprint_sha256}:{days}",
            f"- {row.subject or ', '.join(row.sans) or '(no subject)'}\n"
            f"  serial {row.serial}, expires {_days_left(row.not_after, now)}",
        )
        for row in rows
    ]


_NOTIFY_PARAMS = (
    Param("recipients", list, default=[], help="email addresses to notify"),
    Param("operators", list, default=[], help="usernames of operators to notify at their email address"),
    Param(
        "days",
        int,
        default=30,
        help=f"notify this many days before expiry (1 to {MAX_DAYS})",
        minimum=1,
        maximum=MAX_DAYS,
    ),
    Param("dry_run", bool, default=False, help="list what would be notified without sending anything"),
)


@job_type(
    "certificates.expiry_notification",
    title="Certificate Expiry Notification",
    description="Mails the chosen operators and addresses a list of the certificates that expire within the "
    "given number of days; each certificate is listed once per threshold.",
    params=_NOTIFY_PARAMS,
    exclusive=True,
    default_schedule=DAILY,
)
def certificate_expiry_notification(
    ctx: JobContext, recipients: list[Any], operators: list[Any], days: int, dry_run: bool
) -> dict[str, Any]:
    to = _recipients(ctx, recipients, operators)
    notices = _certificate_notices(ctx, ca=False, days=days)
    return _notify(ctx, what="certificate(s)", notices=notices, recipients=to, days=days, dry_run=dry_run)


@job_type(
    "certificates.device_ca_expiry_notification",
    title="Device CA Certificate Expiry Notification",
    description="Mails the chosen operators and addresses a list of the device CA certificates that expire "
    "within the given number of days; each CA certificate is listed once per threshold.",
    params=_NOTIFY_PARAMS,
    exclusive=True,
    default_schedule=DAILY,
)
def device_ca_expiry_notification(
    ctx: JobContext, recipients: list[Any], operators: list[Any], days: int, dry_run: bool
) -> dict[str, Any]:
    to = _recipients(ctx, recipients, operators)
    notices = _certificate_notices(ctx, ca=True, days=days)
    return _notify(ctx, what="device CA certificate(s)", notices=notices, recipients=to, days=days, dry_run=dry_run)


def _domain_notices(ctx: JobContext, *, validators: Sequence[str], days: int) -> list[Notice]:
    v = validated_domains_table.c
    now = utcnow()
    query = (
        select(v.domain, v.validated_by, v.validated_by_name, v.valid_until)
        .where(v.validated_by.in_(validators), v.valid_until > now, v.valid_until <= now + timedelta(days=days))
        .order_by(v.valid_until, v.domain, v.id)
    )
    with ctx.engine.connect() as conn:
        rows = conn.execute(query).all()
    # One notice per domain, soonest expiry first, even when several validations of it expire.
    lines: dict[str, list[str]] = {}
    for row in rows:
        by = f"{row.validated_by} {row.validated_by_name}"
        lines.setdefault(row.domain.lower(), []).append(
            f"  validated by {by}, valid until {_days_left(row.valid_until, now)}"
        )
    return [Notice(f"{domain}:{days}", "\n".join([f"- {domain}", *texts])) for domain, texts in lines.items()]


@job_type(
    "certificates.domain_validation_expiry_notification",
    title="Domain Validation Expiry Notification",
    description="Notifies the chosen operators and addresses of validated domains whose validation ends "
    "within the given number of days, for domains validated by operators, by users, or both.",
    params=[
        *_NOTIFY_PARAMS,
        Param("created_by", str, default="both", help="whose validations: operator, user or both"),
    ],
    exclusive=True,
    default_schedule=DAILY,
)
def domain_validation_expiry_notification(
    ctx: JobContext, recipients: list[Any], operators: list[Any], days: int, dry_run: bool, created_by: str
) -> dict[str, Any]:
    to = _recipients(ctx, recipients, operators)
    if created_by not in CREATED_BY:
        raise BadParameter("created_by", f"must be one of {', '.join(CREATED_BY)}, got {created_by!r}")
    validators = VALIDATORS if created_by == "both" else (created_by,)
    notices = _domain_notices(ctx, validators=validators, days=days)
    result = _notify(ctx, what="domain validation(s)", notices=notices, recipients=to, days=days, dry_run=dry_run)
    return {**result, "created_by": created_by}
