"""Bulk import (seed 003): identities created from a CSV file, one row at a time, with a result per row.

The file is an upload (uploads.py, discarded once a real run has gone through every row) or a file on disk.
Its header is checked before any row, and a file with more than BULK_IMPORT_MAX_ROWS rows is refused whole.
Each row goes through `identities.create` in its own transaction (per-item processing, jobs/items.py, keyed
``row <n>: <user_name>``), so a failing row leaves the rows before it created. A row whose user_name already
names an identity is left alone ("already exists, unchanged"), which makes importing a file twice harmless.

Owns no table. The ``credential`` column of self-credentialed identities goes to the vault (identities.py) and
nowhere else: item keys, messages, logs and the result carry user names and field errors, never its value.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import defaults
from jobs import paths
from jobs.catalog.identity import identities, lifecycle, uploads
from jobs.catalog.identity.identities import BadIdentity, IdentityExists, NewIdentity
from jobs.context import JobContext, PermanentFailure
from jobs.items import ItemFailed
from jobs.registry import Param, job_type

REQUIRED = ("user_name", "identity_type")
OPTIONAL = ("display_name", "email", "platform", "department", "title", "idp_target", "credential")
COLUMNS = (*REQUIRED, *OPTIONAL)
UNCHANGED = "already exists, unchanged"
KEY_NAME_CHARS = 200


class RowRejected(ValueError):
    """A row `identities.create` refuses; the message lists the field errors (never a credential)."""


@dataclass(frozen=True)
class Row:
    number: int  # the file's line the row starts on (the header is line 1)
    values: dict[str, str] = field(repr=False)  # may hold a credential
    problem: str | None = None

    @property
    def user_name(self) -> str:
        return self.values.get("user_name", "")

    @property
    def key(self) -> str:
        return f"row {self.number}: {self.user_name[:KEY_NAME_CHARS] or '(no user_name)'}"

    def identity(self) -> NewIdentity:
        v = self.values
        return NewIdentity(
            user_name=self.user_name, identity_type=v.get("identity_type", ""), display_name=v.get("display_name"),
            email=v.get("email"), platform=v.get("platform"), department=v.get("department"), title=v.get("title"),
            credential=v.get("credential"), idp_target=v.get("idp_target"),
        )  # fmt: skip


def _text(upload_id: int | None, path: str | None, engine: Any, import_dirs: Sequence[Path]) -> tuple[str, str]:
    """(what the file is, its text)."""
    if (upload_id is None) == (path is None):
        raise PermanentFailure("upload_id, path: give exactly one, an upload's id or a CSV file's path")
    if upload_id is not None:
        try:
            filename, text = uploads.read(engine, upload_id)
        except uploads.UploadNotFound:
            why = "already imported, expired, or never stored"
            raise PermanentFailure(f"upload_id: no upload {upload_id} ({why})") from None
        return f"upload {upload_id} ({filename})", text
    assert path is not None
    # Confined again, not only at enqueue: a link on the way may have been swapped since.
    source, file = paths.open_file("path", path, import_dirs, max_bytes=defaults.BULK_IMPORT_MAX_BYTES)
    try:
        with file:
            return str(source), file.read().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PermanentFailure(f"path: {source} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise PermanentFailure(f"path: {source} cannot be read: {exc.strerror}") from None


def parse(field_name: str, text: str) -> list[Row]:
    """The file's rows; raises PermanentFailure naming `field_name` for a bad header, too many rows, or text the
    CSV reader refuses (a field longer than its limit)."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return _rows(field_name, reader)
    except csv.Error as exc:  # its message quotes nothing of the file
        where = f"the row starting on line {reader.line_num + 1}"  # line_num: the lines read before it
        raise PermanentFailure(f"{field_name}: not readable as CSV, {where}: {exc}") from None


def _rows(field_name: str, reader: csv.DictReader[str]) -> list[Row]:
    header = [(name or "").strip().lower() for name in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in header]
    unknown = sorted({c for c in header if c not in COLUMNS})
    repeated = sorted({c for c in header if header.count(c) > 1})
    if missing or unknown or repeated:
        if field_name == "path":
            # A path names a file on the worker's disk (inside the import directories, jobs/paths.py, yet maybe put
            # there by someone else), which whoever starts the run may not read: its first line must not come back
            # as "unknown columns". An upload's header is the uploader's own, and is quoted.
            unknown = [f"{len(unknown)} (not quoted from a file on the worker's disk)"] if unknown else []
            repeated = [f"{len(repeated)} (not quoted)"] if repeated else []
        problems = [f"{label} column(s): {', '.join(names)}" for label, names in
                    (("missing", missing), ("unknown", unknown), ("repeated", repeated)) if names]  # fmt: skip
        known = f"; the columns are {', '.join(COLUMNS)} ({', '.join(REQUIRED)} required)"
        raise PermanentFailure(f"{field_name}: bad header: " + "; ".join(problems) + known)
    reader.fieldnames = header
    rows: list[Row] = []
    start = reader.line_num + 1
    for raw in reader:
        if len(rows) == defaults.BULK_IMPORT_MAX_ROWS:
            raise PermanentFailure(f"{field_name}: more than {defaults.BULK_IMPORT_MAX_ROWS} rows; split the file")
        if not any((value or "").strip() for name, value in raw.items() if name is not None):
            start = reader.line_num + 1
            continue  # a blank line
        values = {name: value if name == "credential" else value.strip() for name, value in raw.items()
                  if name is not None and value is not None and value.strip()}  # fmt: skip
        problem = "more fields than the header has columns" if None in raw else None
        rows.append(Row(start, values, problem))
        start = reader.line_num + 1
    return rows


def _errors(exc: BadIdentity) -> str:
    return "; ".join(str(e) for e in exc.errors)


@dataclass
class Tally:
    created: int = 0
    unchanged: int = 0
    failed: int = 0
    invalid: list[dict[str, Any]] = field(default_factory=list)  # the first few failed rows

    def reject(self, row: Row, problem: str) -> None:
        self.failed += 1
        if len(self.invalid) < defaults.IDENTITY_REPORT_MAX_ITEMS:
            self.invalid.append({"row": row.number, "user_name": row.user_name, "problem": problem})


def _preview(ctx: JobContext, rows: list[Row], tally: Tally) -> None:
    """A dry run: checks every row as `create` would, storing nothing (per-item processing only lists rows)."""
    assert ctx.app is not None
    for row in rows:
        ctx.check_cancelled()
        if row.problem is not None:
            tally.reject(row, row.problem)
        elif lifecycle.find(ctx.engine, row.user_name) is not None:
            tally.unchanged += 1
        else:
            try:
                identities.create(ctx.app, row.identity(), by="dry run", source="bulk", dry_run=True)
            except BadIdentity as exc:
                tally.reject(row, _errors(exc))
                ctx.warning(f"{row.key}: {_errors(exc)}")
            else:
                tally.created += 1


@job_type(
    "identity.bulk_import",
    title="Bulk import",
    description="Processes a CSV bulk import file: creates one identity per row (columns user_name, "
    "identity_type, display_name, email, platform, department, title, idp_target, credential), with a "
    "result per row. Rows naming an existing identity are left unchanged, so importing a file twice is harmless.",
    params=[
        Param("upload_id", int, required=False, minimum=1, help="the uploaded CSV file to import"),
        Param(
            "path",
            str,
            required=False,
            server_path="import",
            help=f"a CSV file to import instead of an upload, {paths.HELP}",
        ),
        Param("dry_run", bool, default=False, help="check every row and report, creating nothing"),
        Param("continue_on_error", bool, default=False, help="go on with the next rows after a bad row"),
    ],
    timeout_s=3600,
)
def bulk_import(
    ctx: JobContext,
    upload_id: int | None = None,
    path: str | None = None,
    dry_run: bool = False,
    continue_on_error: bool = False,
) -> dict[str, Any]:
    app = ctx.app
    if app is None:
        raise PermanentFailure("Bulk import runs in a worker")
    what, text = _text(upload_id, path, ctx.engine, paths.import_dirs_of(ctx) if path is not None else ())
    rows = parse("upload_id" if upload_id is not None else "path", text)
    ctx.info(f"{what}: {len(rows)} row(s)" + (" (dry run: nothing is created)" if dry_run else ""))
    tally = Tally()
    by = f"bulk import (run {ctx.run_id})"

    def handle(row: Row) -> str:
        if row.problem is not None:
            tally.reject(row, row.problem)
            raise RowRejected(row.problem)
        if lifecycle.find(ctx.engine, row.user_name) is not None:
            tally.unchanged += 1
            return UNCHANGED
        try:
            created = identities.create(app, row.identity(), by=by, source="bulk")
        except IdentityExists:
            tally.unchanged += 1
            return UNCHANGED
        except BadIdentity as exc:
            tally.reject(row, _errors(exc))
            raise RowRejected(_errors(exc)) from None
        tally.created += 1
        runs = "".join(f"; {operation} run {run_id}" for operation, run_id in sorted(created.runs.items()))
        return f"created, {created.status}{runs}"

    if dry_run:
        _preview(ctx, rows, tally)
    try:
        counts = ctx.process_items(
            rows, handle, key=lambda row: row.key, dry_run=dry_run, continue_on_error=continue_on_error
        )
    except ItemFailed as exc:
        if isinstance(exc.__cause__, RowRejected):  # the same row would fail every attempt
            raise PermanentFailure(f"{exc}; the rows before it were imported") from None
        raise
    discarded = not dry_run and upload_id is not None and uploads.discard(ctx.engine, upload_id)
    if discarded:
        ctx.info(f"upload {upload_id} discarded")
    if dry_run:
        ctx.info(f"dry run: {tally.created} would be created, {tally.unchanged} unchanged, {tally.failed} would fail")
        counts = {"would_create": tally.created, "unchanged": tally.unchanged, "would_fail": tally.failed}
    else:
        skipped = counts["skipped"]  # rows an earlier run of the same file already imported
        ctx.info(f"{tally.created} created, {tally.unchanged} unchanged, {tally.failed} failed, {skipped} skipped")
        counts = {"created": tally.created, "unchanged": tally.unchanged, "failed": tally.failed, "skipped": skipped}
    return {
        "file": what, "dry_run": dry_run, "rows": len(rows), **counts, "rejected_rows": tally.invalid,
        "upload_discarded": discarded,
    }  # fmt: skip
