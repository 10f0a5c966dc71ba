"""Built-in record integrity job types (seed 000): Verify HMAC, Recompute HMAC, Recompute Upgrade HMAC.

Every run, attempt and audit entry carries an HMAC-SHA256 of its content (core/integrity.py): audit
entries from the moment they are written, runs and attempts once settled (scheduler/sealing.py). These
jobs walk the three tables in id order, INTEGRITY_BATCH rows at a time, reporting progress and noticing
a cancel between batches.

Verify HMAC ends `completed_with_warnings` when any row no longer matches, with one warning line per row
(up to INTEGRITY_REPORT_MAX_ROWS), rather than `failed`: the check itself worked, its report must stay
the run's result (a failed run keeps only an error message), and a retry would only repeat the same
finding. It is loud all the same: the report goes by mail to the type's report recipients and to the
`notify` addresses on every run, and its subject says how many rows failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, func, select

from core import defaults, integrity
from jobs.context import JobContext, PermanentFailure
from jobs.registry import Param, job_type
from jobs.status import FINAL
from jobs.type_settings import BadRecipients, clean_addresses, report_recipients
from scheduler.sealing import TABLES, settled, sign_rows, signed_select

LONG_TIMEOUT_S = 6 * 3600
FINAL_VALUES = frozenset(s.value for s in FINAL)


class BadParameter(PermanentFailure):
    """A parameter value the job refuses; names the field. Another attempt cannot fix it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")


def _key(ctx: JobContext) -> bytes:
    secret_key = ctx.app.settings.secret_key if ctx.app is not None else ""
    if not secret_key:
        raise PermanentFailure("JOBYARD_SECRET_KEY is not set: there is no key to sign or verify records with")
    return integrity.records_key(secret_key)


def _batches(ctx: JobContext, table: Table, where: ColumnElement[bool] | None = None) -> Iterator[Sequence[Row[Any]]]:
    """The rows of `table` (signed columns and HMAC) in id order, a batch at a time."""
    after: Any = None
    while True:
        ctx.check_cancelled()
        query = signed_select(table).order_by(table.c.id).limit(defaults.INTEGRITY_BATCH)
        if where is not None:
            query = query.where(where)
        if after is not None:
            query = query.where(table.c.id > after)
        with ctx.engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return
        yield rows
        after = rows[-1].id


def _is_settled(table: str, row: Row[Any]) -> bool:
    if table == "runs":
        return row.status in FINAL_VALUES
    if table == "run_attempts":
        return row.finished_at is not None
    return True


class _Progress:
    def __init__(self, ctx: JobContext, where: Callable[[Table], ColumnElement[bool] | None]) -> None:
        self.ctx = ctx
        self.done = 0
        with ctx.engine.connect() as conn:
            self.total = sum(
                int(conn.execute(select(func.count()).select_from(t).where(*_conditions(where(t)))).scalar_one())
                for t in TABLES.values()
            )
        ctx.progress(0, self.total)

    def advance(self, rows: int, table: str) -> None:
        self.done += rows
        self.ctx.progress(min(self.done, self.total), max(self.total, self.done), table)


def _conditions(condition: ColumnElement[bool] | None) -> list[ColumnElement[bool]]:
    return [] if condition is None else [condition]


# Verify HMAC


@dataclass
class _Findings:
    ok: int = 0
    mismatched: list[dict[str, Any]] = field(default_factory=list)
    unsigned: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, table: str, what: str) -> None:
        per_table = self.counts.setdefault(table, {"ok": 0, "mismatched": 0, "unsigned": 0})
        per_table[what] += 1


def _recipients(ctx: JobContext, notify: Sequence[Any]) -> list[str]:
    if not all(isinstance(a, str) for a in notify):
        raise BadParameter("notify", "must be a list of email addresses")
    try:
        return clean_addresses(notify)
    except BadRecipients as exc:
        raise BadParameter("notify", str(exc)) from None


def _report_text(report: dict[str, Any]) -> str:
    lines = [
        f"Rows checked: {report['checked']}",
        f"Matching: {report['ok']}",
        f"Not matching (changed since signed): {report['mismatched']}",
        f"Settled but unsigned: {report['unsigned']}",
        "",
    ]
    for table, counts in report["tables"].items():
        lines.append(f"{table}: {counts['ok']} ok, {counts['mismatched']} not matching, {counts['unsigned']} unsigned")
    if report["mismatched_rows"]:
        lines += ["", "Rows whose content no longer matches their HMAC:"]
        lines += [f"  {r['table']} {r['id']}" for r in report["mismatched_rows"]]
    if report["mismatched"] > len(report["mismatched_rows"]):
        lines.append(f"  … and {report['mismatched'] - len(report['mismatched_rows'])} more")
    if report["unsigned_rows"]:
        lines += ["", "Settled rows without an HMAC (Recompute Upgrade HMAC signs them):"]
        lines += [f"  {r['table']} {r['id']}" for r in report["unsigned_rows"]]
    return "\n".join(lines) + "\n"


@job_type(
    "integrity.verify_hmac",
    title="Verify HMAC",
    description=(
        "Checks the HMAC of every run, attempt and audit entry against its content under the current server key, "
        "and reports each row whose content no longer matches, by table and id, with counts of matching and "
        "unsigned rows. The report is the run's result and is mailed to the report recipients; any mismatch ends "
        "the run with warnings."
    ),
    params=[Param("notify", list, default=[], help="email addresses the report is also sent to")],
    timeout_s=LONG_TIMEOUT_S,
    exclusive=True,
)
def verify_hmac(ctx: JobContext, notify: list[Any]) -> dict[str, Any]:
    extra = _recipients(ctx, notify)
    key = _key(ctx)
    found = _Findings()
    progress = _Progress(ctx, lambda t: None)
    cap = defaults.INTEGRITY_REPORT_MAX_ROWS
    for name, table in TABLES.items():
        found.counts.setdefault(name, {"ok": 0, "mismatched": 0, "unsigned": 0})
        for rows in _batches(ctx, table):
            for row in rows:
                if row.hmac is None:
                    if _is_settled(name, row):
                        found.count(name, "unsigned")
                        if len(found.unsigned) < cap:
                            found.unsigned.append({"table": name, "id": row.id})
                elif integrity.verify(key, integrity.canonical(name, row._mapping), row.hmac):
                    found.ok += 1
                    found.count(name, "ok")
                else:
                    found.count(name, "mismatched")
                    if len(found.mismatched) < cap:
                        found.mismatched.append({"table": name, "id": row.id})
                        ctx.warning(f"{name} {row.id}: content does not match its HMAC")
            progress.advance(len(rows), name)
    mismatched = sum(c["mismatched"] for c in found.counts.values())
    unsigned = sum(c["unsigned"] for c in found.counts.values())
    report: dict[str, Any] = {
        "checked": found.ok + mismatched + unsigned,
        "ok": found.ok,
        "mismatched": mismatched,
        "unsigned": unsigned,
        "tables": found.counts,
        "mismatched_rows": found.mismatched,
        "unsigned_rows": found.unsigned,
    }
    if mismatched > len(found.mismatched):
        ctx.warning(f"{mismatched - len(found.mismatched)} more rows do not match (not listed)")
    if mismatched:
        ctx.error(f"integrity check failed: {mismatched} row(s) no longer match their HMAC")
    recipients = sorted({*extra, *report_recipients(ctx.engine, _declared(ctx))})
    subject = (
        f"Jobyard integrity: {mismatched} row(s) do NOT match their HMAC"
        if mismatched
        else f"Jobyard integrity: all {found.ok} signed rows match"
    )
    body = _report_text(report)
    for address in recipients:
        ctx.mail(address, subject, body)
    report["report_sent_to"] = recipients
    return report


def _declared(ctx: JobContext) -> Any:
    declared = ctx.app.registry.get(ctx.type) if ctx.app is not None else None
    if declared is None:
        raise PermanentFailure(f"job type {ctx.type} is not declared here")
    return declared


# Recompute HMAC, Recompute Upgrade HMAC


def _resign(ctx: JobContext, *, only_unsigned: bool) -> dict[str, Any]:
    key = _key(ctx)

    def scope(table: Table) -> ColumnElement[bool]:
        condition = settled(table)
        return condition & table.c.hmac.is_(None) if only_unsigned else condition

    progress = _Progress(ctx, scope)
    counts: dict[str, dict[str, int]] = {}
    for name, table in TABLES.items():
        seen = signed_count = 0
        # Upgrade: each batch signs what it read, so the next one starts past it by id all the same.
        for rows in _batches(ctx, table, scope(table)):
            seen += len(rows)
            signed_count += sign_rows(ctx.engine, key, table, rows, only_unsigned=only_unsigned)
            progress.advance(len(rows), name)
        counts[name] = {"settled_rows" if not only_unsigned else "unsigned_rows": seen, "signed": signed_count}
    total = sum(c["signed"] for c in counts.values())
    ctx.info(f"signed {total} row(s)")
    return {"signed": total, "tables": counts}


@job_type(
    "integrity.recompute_hmac",
    title="Recompute HMAC",
    description=(
        "Signs every settled run, attempt and audit entry again under the current server key, as needed after the "
        "key changed. Rows whose HMAC is already right are left as they are, so a second run changes nothing."
    ),
    timeout_s=LONG_TIMEOUT_S,
    exclusive=True,
)
def recompute_hmac(ctx: JobContext) -> dict[str, Any]:
    return _resign(ctx, only_unsigned=False)


@job_type(
    "integrity.recompute_upgrade_hmac",
    title="Recompute Upgrade HMAC",
    description=(
        "Signs only the settled runs, attempts and audit entries that have no HMAC yet, such as rows written by an "
        "upgrade or an import; rows already signed keep their HMAC."
    ),
    timeout_s=LONG_TIMEOUT_S,
    exclusive=True,
)
def recompute_upgrade_hmac(ctx: JobContext) -> dict[str, Any]:
    return _resign(ctx, only_unsigned=True)
