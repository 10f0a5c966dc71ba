"""Built-in job type "Import Archived Data" (seed 000): brings the runs of an archive file written by Data
Archiving (jobs/catalog/archive.py) into ``archived_runs``, never back into the live tables.

The file's HMAC and data digest are verified before any record is read (jobs/catalog/archive_file.py);
runs already imported are skipped, so importing a file twice imports nothing the second time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import insert, select

from core.db import utcnow
from jobs import paths
from jobs.archive_models import archived_runs_table as archived
from jobs.catalog.archive import LONG_TIMEOUT_S, MAX_PATH, BadParameter, archive_key, batches, writing
from jobs.catalog.archive_file import ArchiveIntegrityError, open_verified
from jobs.context import JobContext
from jobs.registry import Param, job_type

IMPORT_BATCH = 500  # runs stored per transaction


def _import_source(ctx: JobContext, path: str) -> tuple[Path, BinaryIO]:
    """The archive file, opened after checking (again: the disk may have changed since enqueue) that it lies
    inside the import directories."""
    source, file = paths.open_file("path", path, paths.import_dirs_of(ctx))
    if len(str(source)) > MAX_PATH:  # archived_runs.archive_file
        file.close()
        raise BadParameter("path", f"is longer than {MAX_PATH} characters once resolved")
    return source, file


def _when(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise ArchiveIntegrityError(f"a record's {field} is not a date: {value!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _archived_row(record: dict[str, Any], source: Path, run_id: str, now: datetime) -> dict[str, Any]:
    run = record["run"]
    created = _when(run.get("created_at"), "created_at")
    if not run.get("id") or not run.get("type") or not run.get("status") or created is None:
        raise ArchiveIntegrityError("a record lacks the run's id, type, status or creation time")
    return {
        "id": str(run["id"]),
        "type": str(run["type"]),
        "status": str(run["status"]),
        "domain": run.get("domain"),
        "triggered_by": run.get("triggered_by"),
        "created_at": created,
        "finished_at": _when(run.get("finished_at"), "finished_at"),
        "record": record,
        "archive_file": str(source),
        "imported_at": now,
        "imported_by_run": run_id,
    }


def _store(ctx: JobContext, rows: list[dict[str, Any]]) -> int:
    with writing(ctx) as conn:
        known = set(conn.execute(select(archived.c.id).where(archived.c.id.in_([r["id"] for r in rows]))).scalars())
        new = list({r["id"]: r for r in rows if r["id"] not in known}.values())
        if new:
            conn.execute(insert(archived), new)
    return len(new)


@job_type(
    "archive.import",
    title="Import Archived Data",
    description="Imports an archive file written by Data Archiving after checking its signature; the runs it "
    "holds can then be viewed in the dashboard's archive mode. Runs already imported are skipped.",
    params=[Param("path", str, server_path="import", help=f"the archive file to import, {paths.HELP}")],
    exclusive=True,
    timeout_s=LONG_TIMEOUT_S,
)
def import_archive(ctx: JobContext, path: str) -> dict[str, Any]:
    key = archive_key(ctx)
    source, file = _import_source(ctx, path)
    with file, open_verified(source, key, file=file) as archive:
        manifest = archive.manifest
        total = int(manifest.get("runs", 0))
        ctx.info(f"{source}: signature and data digest verified; {total} run(s), written {manifest.get('created_at')}")
        imported = seen = 0
        now = utcnow()
        for records in batches(archive.records(), IMPORT_BATCH):
            ctx.check_cancelled()
            imported += _store(ctx, [_archived_row(r, source, ctx.run_id, now) for r in records])
            seen += len(records)
            ctx.progress(seen, max(total, seen), f"imported {imported} of {seen} runs read")
    skipped = seen - imported
    ctx.info(f"Imported {imported} run(s) into the archive view; {skipped} were already imported")
    return {
        "path": str(source),
        "archive_created_at": manifest.get("created_at"),
        "types": manifest.get("types"),
        "runs": seen,
        "imported": imported,
        "already_imported": skipped,
    }
