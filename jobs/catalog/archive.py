"""Built-in archive job types (seed 000): Data Archiving and Import Archived Data.

``archive.export`` moves final runs of the chosen types, older than N days (created and finished before
the cutoff), with their attempts, log lines, item results and dependency rows, out of the live tables
into an archive file (format: jobs/catalog/archive_file.py). Runs that are not final are never taken,
nor a final run some unfinished run still waits on.

``path`` names a file to create inside the export directories (``JOBYARD_EXPORT_DIRS``, jobs/paths.py): checked
when the run is requested, and again right before the file is created, relative to the directory opened then, so
a symlink or directory swapped in between cannot redirect the write. ``<path>`` is never replaced, and a symlink
there is never followed: it counts as an existing file.

Crash safety, in this order:
1. the records are written to ``<path>.partial`` (fsynced; one left by an attempt that died while writing is
   removed first), which is then linked to ``<path>`` only if nothing took that name meanwhile, and the
   directory fsynced; a failure before that removes the partial file and changes nothing;
2. the finished file is read back and verified (HMAC and data digest);
3. the live rows are deleted in batches, one transaction each, keyed by the run ids *in that file*, and
   only while those runs are still final (a run retried by hand meanwhile stays live, and is counted as
   kept). A cancel is honoured while writing; once the file exists the move is completed.
A run that dies between publishing and the end of the deletes is retried with the same parameters: it
finds ``<path>`` holding a valid archive it wrote itself (the manifest names the exporting run) and
resumes at step 2, so nothing is written twice. Anything else at ``<path>`` is refused.

With nothing to archive no file is created; the result says so (a second export is thus a no-op).

``archive.import`` verifies a file's HMAC and data digest before reading a record, then stores each run
in ``archived_runs`` (never back in the live tables), skipping runs already imported: importing a file
twice imports nothing the second time. The dashboard's archive view (dashboard/pages/archive.py) shows them.
It reads only inside the import directories: to import an archive where it was exported, the installation
lists that export directory in ``JOBYARD_IMPORT_DIRS`` too (or moves the file into an import directory).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

from sqlalchemy import ColumnElement, Connection, Table, and_, delete, exists, func, or_, select

from core.db import utcnow
from core.hotsql import sqlite_write_lock
from core.integrity import derive_key
from jobs import paths
from jobs.catalog.archive_file import ArchiveIntegrityError, ArchiveWriter, VerifiedArchive, open_verified
from jobs.context import JobContext, PermanentFailure
from jobs.models import RunDependency, RunItem, attempts_table, run_logs_table, runs_table
from jobs.registry import REGISTRY, Param, job_type
from jobs.status import FINAL, RunStatus
from jobs.type_settings import BadRecipients, clean_addresses

MAX_DAYS = 36_500
MAX_PATH = 1000  # archived_runs.archive_file
EXPORT_BATCH = 200  # runs read (with all their rows) per query round
DELETE_BATCH = 200  # runs removed per transaction
LONG_TIMEOUT_S = 6 * 3600
FINAL_VALUES = tuple(sorted(s.value for s in FINAL))
NOT_FINAL = tuple(sorted(s.value for s in RunStatus if s not in FINAL))
runs = runs_table
dependencies = cast(Table, RunDependency.__table__)
items_table = cast(Table, RunItem.__table__)
T = TypeVar("T")


class BadParameter(PermanentFailure):
    """A parameter the declaration cannot check; names the field. Another attempt cannot fix it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")


# Parameters


def archive_key(ctx: JobContext) -> bytes:
    if ctx.app is None:
        raise PermanentFailure("archive jobs need the worker's settings (the server key)")
    try:
        return derive_key(ctx.app.settings.secret_key, "archive")
    except ValueError as exc:
        raise PermanentFailure(str(exc)) from None


def _types(ctx: JobContext, names: Sequence[Any]) -> list[str]:
    """Declared types, or types that still have runs (a type removed from the code can be archived too)."""
    if not all(isinstance(n, str) for n in names):
        raise BadParameter("types", "must be a list of job type names")
    wanted = sorted({n.strip() for n in names if n.strip()})
    if not wanted:
        raise BadParameter("types", "choose at least one job type")
    registry = ctx.app.registry if ctx.app is not None else REGISTRY
    with ctx.engine.connect() as conn:
        with_runs = set(conn.execute(select(runs.c.type).where(runs.c.type.in_(wanted)).distinct()).scalars())
    unknown = [n for n in wanted if n not in registry and n not in with_runs]
    if unknown:
        raise BadParameter("types", f"unknown job type(s): {', '.join(unknown)}")
    return wanted


def _export_target(ctx: JobContext, path: str) -> paths.ExportTarget:
    """The archive file to create, checked again (the disk may have changed since enqueue) to lie inside the
    export directories, its directory held open to create it in."""
    target = paths.open_export("path", path, paths.export_dirs_of(ctx))
    if len(str(target.path)) > MAX_PATH:  # archived_runs.archive_file, once imported
        target.close()
        raise BadParameter("path", f"is longer than {MAX_PATH} characters once resolved")
    return target


def _addresses(values: Sequence[Any]) -> list[str]:
    if not all(isinstance(v, str) for v in values):
        raise BadParameter("notify", "must be a list of email addresses")
    try:
        return clean_addresses(values)
    except BadRecipients as exc:
        raise BadParameter("notify", str(exc)) from None


# Export


@contextmanager
def writing(ctx: JobContext) -> Iterator[Connection]:
    """A write transaction; on SQLite behind the same file lock as the hot paths (core/hotsql.py)."""
    lock = sqlite_write_lock(ctx.engine) if ctx.engine.dialect.name == "sqlite" else None
    if lock is not None:
        lock.acquire()
    try:
        with ctx.engine.begin() as conn:
            yield conn
    finally:
        if lock is not None:
            lock.release()


def batches(values: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(values)
    while batch := list(islice(iterator, size)):
        yield batch


def _archivable(types: list[str], cutoff: datetime) -> ColumnElement[bool]:
    dependent = runs.alias("dependent")
    awaited = exists().where(
        dependencies.c.depends_on_id == runs.c.id,
        dependent.c.id == dependencies.c.run_id,
        dependent.c.status.in_(NOT_FINAL),
    )
    return and_(
        runs.c.type.in_(types),
        runs.c.status.in_(FINAL_VALUES),
        runs.c.created_at < cutoff,
        or_(runs.c.finished_at.is_(None), runs.c.finished_at < cutoff),
        ~awaited,
    )


def _rows(conn: Connection, table: Any, ids: list[str], *order: Any) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in ids}
    for row in conn.execute(select(table).where(table.c.run_id.in_(ids)).order_by(*order)):
        grouped[row.run_id].append(dict(row._mapping))
    return grouped


def _records(ctx: JobContext, condition: ColumnElement[bool]) -> Iterator[dict[str, Any]]:
    """Every archivable run with its rows, oldest first, read EXPORT_BATCH runs per round (keyset)."""
    last: tuple[datetime, str] | None = None
    while True:
        ctx.check_cancelled()
        query = select(runs).where(condition).order_by(runs.c.created_at, runs.c.id).limit(EXPORT_BATCH)
        if last is not None:
            query = query.where(
                or_(runs.c.created_at > last[0], and_(runs.c.created_at == last[0], runs.c.id > last[1]))
            )
        with ctx.engine.connect() as conn:
            found = [dict(row._mapping) for row in conn.execute(query)]
            if not found:
                return
            ids = [run["id"] for run in found]
            attempts = _rows(conn, attempts_table, ids, attempts_table.c.series, attempts_table.c.number)
            logs = _rows(conn, run_logs_table, ids, run_logs_table.c.id)
            items = _rows(conn, items_table, ids, items_table.c.id)
            depends = _rows(conn, dependencies, ids, dependencies.c.depends_on_id)
        for run in found:
            yield {
                "run": run,
                "attempts": attempts[run["id"]],
                "logs": logs[run["id"]],
                "items": items[run["id"]],
                "depends_on": [d["depends_on_id"] for d in depends[run["id"]]],
            }
        last = (found[-1]["created_at"], found[-1]["id"])


def _write(
    ctx: JobContext, target: paths.ExportTarget, key: bytes, header: dict[str, Any], condition: ColumnElement[bool]
) -> int:
    """Writes the archive to `target` through `<target>.partial`; returns how many runs it holds. On failure the
    partial file goes when `target` is closed."""
    with ctx.engine.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(runs).where(condition)).scalar_one())
    if total == 0:
        return 0
    writer = ArchiveWriter(target.scratch())
    try:
        for record in _records(ctx, condition):
            writer.add(record)
            if writer.count % EXPORT_BATCH == 0:
                ctx.progress(writer.count, 2 * total, f"writing the archive: {writer.count} runs")
        ctx.check_cancelled()
        with target.create() as out:
            writer.finish(out, key, header)
        target.publish()
    except BaseException:
        writer.close()
        raise
    ctx.progress(writer.count, 2 * writer.count, f"archive written: {writer.count} runs")
    return writer.count


def _remove(ctx: JobContext, archive: VerifiedArchive) -> dict[str, int]:
    """Deletes the archive's runs from the live tables while they are still final, DELETE_BATCH per
    transaction; the rows of the other live tables go with their run."""
    total, done = int(archive.manifest["runs"]), 0
    removed = kept = gone = 0
    for ids in batches(archive.run_ids(), DELETE_BATCH):
        with writing(ctx) as conn:
            # FOR UPDATE: a retry by hand cannot turn a run live again between this read and the delete.
            found = dict(
                conn.execute(select(runs.c.id, runs.c.status).where(runs.c.id.in_(ids)).with_for_update()).all()
            )
            final = [run_id for run_id, status in found.items() if status in FINAL_VALUES]
            if final:
                for table in (dependencies, items_table, run_logs_table, attempts_table):
                    conn.execute(delete(table).where(table.c.run_id.in_(final)))
                conn.execute(delete(runs).where(runs.c.id.in_(final)))
        removed, kept, gone = removed + len(final), kept + len(found) - len(final), gone + len(ids) - len(found)
        done += len(ids)
        ctx.progress(total + done, 2 * total, f"removing from the live tables: {removed} runs")
    if kept:
        ctx.warning(f"{kept} archived run(s) were retried meanwhile and stay in the live tables too")
    return {"removed": removed, "kept_live": kept, "already_removed": gone}


def _read_back(target: paths.ExportTarget, key: bytes) -> VerifiedArchive:
    """The archive just published at `target`, verified from the file itself."""
    file = target.existing()
    if file is None:
        raise PermanentFailure(f"path: {target.path} was removed while it was written")
    with file:
        return open_verified(target.path, key, file=file)


def _resumable(ctx: JobContext, target: paths.ExportTarget, file: BinaryIO, key: bytes) -> VerifiedArchive:
    """The archive an earlier attempt of this very run published at `target` (`file`, open), else the path is
    taken."""
    with file:
        try:
            archive: VerifiedArchive | None = open_verified(target.path, key, file=file)
        except ArchiveIntegrityError:
            archive = None
    if archive is None or archive.manifest.get("exported_by_run") != ctx.run_id:
        if archive is not None:
            archive.close()
        raise target.taken()
    return archive


def _report(path: Path, result: dict[str, Any]) -> str:
    lines = [
        f"Data archiving of {', '.join(result['types'])} (runs older than {result['older_than_days']} days).",
        "",
        f"Archive file: {path if result['runs'] else '(none: nothing to archive)'}",
        f"Runs archived: {result['runs']}",
        f"Removed from the live tables: {result['removed']}",
    ]
    if result["kept_live"]:
        lines.append(f"Retried meanwhile, so kept live as well: {result['kept_live']}")
    return "\n".join(lines) + "\n"


@job_type(
    "archive.export",
    title="Data Archiving",
    description="Moves finished runs of the chosen job types older than the given number of days, with their "
    "attempts, log lines and item results, out of the live tables into a compressed, signed archive file for "
    "long-term retention, and mails the outcome to the addresses given.",
    params=[
        Param("types", list, help="names of the job types whose runs are archived"),
        Param(
            "older_than_days",
            int,
            help=f"archive runs finished more than this many days ago (1 to {MAX_DAYS})",
            minimum=1,
            maximum=MAX_DAYS,
        ),
        Param(
            "path",
            str,
            server_path="export",
            help=f"the archive file to write, {paths.EXPORT_HELP}; it must not exist yet",
        ),
        Param("notify", list, default=[], help="email addresses told when the archiving is done"),
    ],
    exclusive=True,
    timeout_s=LONG_TIMEOUT_S,
)
def export_archive(
    ctx: JobContext, types: list[Any], older_than_days: int, path: str, notify: list[Any]
) -> dict[str, Any]:
    chosen, days = _types(ctx, types), older_than_days
    report_to, key = _addresses(notify), archive_key(ctx)
    with _export_target(ctx, path) as target:
        return _export(ctx, target, chosen, days, report_to, key)


def _export(
    ctx: JobContext, target: paths.ExportTarget, chosen: list[str], days: int, report_to: list[str], key: bytes
) -> dict[str, Any]:
    now = utcnow()
    cutoff = now - timedelta(days=days)
    existing = target.existing()
    resumed = existing is not None
    if existing is not None:
        archive: VerifiedArchive | None = _resumable(ctx, target, existing, key)
        ctx.info(f"{target.path} was written by an earlier attempt of this run: removing its runs from the live tables")
    else:
        header = {
            "created_at": now.isoformat(),
            "exported_by_run": ctx.run_id,
            "types": chosen,
            "older_than_days": days,
            "cutoff": cutoff.isoformat(),
        }
        written = _write(ctx, target, key, header, _archivable(chosen, cutoff))
        # Read back and verified before a single live row goes: the file is all that will be left of them.
        archive = _read_back(target, key) if written else None
    if archive is None:
        ctx.info(f"Nothing to archive: no final run of {', '.join(chosen)} finished before {cutoff:%Y-%m-%d %H:%M} UTC")
        outcome = {"removed": 0, "kept_live": 0, "already_removed": 0}
        count, file = 0, None
    else:
        with archive:
            outcome = _remove(ctx, archive)
            count, file = int(archive.manifest["runs"]), str(target.path)
        ctx.info(f"Archived {count} run(s) to {target.path}; {outcome['removed']} removed from the live tables")
    result = {
        "types": chosen,
        "older_than_days": days,
        "cutoff": cutoff.isoformat(),
        "path": file,
        "runs": count,
        "resumed": resumed,
        **outcome,
        "notified": report_to,
    }
    for address in report_to:
        ctx.mail(address, f"[Jobyard] Data archiving: {count} run(s) archived", _report(target.path, result))
    return result
