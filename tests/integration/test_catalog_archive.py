"""Data Archiving and Import Archived Data on real runs: the file, the live tables, tampering, bad input."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, insert, select, update

from core.app import Jobyard
from core.db import utcnow
from core.integrity import derive_key, sign
from jobs.archive_models import archived_runs_table as archived
from jobs.cancel import Cancelled
from jobs.catalog import archive, archive_import
from jobs.catalog.archive_file import ArchiveIntegrityError, ArchiveWriter, open_verified
from jobs.context import JobContext
from jobs.enqueue import enqueue
from jobs.models import RunDependency, RunItem, attempts_table, run_logs_table, runs_table
from jobs.params import InvalidJobRequest
from jobs.paths import PathRefused
from jobs.status import FINAL, RunStatus
from tests.conftest import WorkerProcesses, free_port, wait_for
from tests.helpers import attempts_of, run_of
from tests.integration.test_notifications import Inbox

Workers = Callable[..., WorkerProcesses]
TYPES = ["test.items", "test.secretive", "demo.noop"]
LIVE_TABLES = {
    "runs": (runs_table, runs_table.c.id),
    "run_attempts": (attempts_table, attempts_table.c.run_id),
    "run_logs": (run_logs_table, run_logs_table.c.run_id),
    "run_items": (RunItem.__table__, RunItem.__table__.c.run_id),
    "run_dependencies": (RunDependency.__table__, RunDependency.__table__.c.run_id),
}


pytestmark = pytest.mark.both_databases


@pytest.fixture
def inbox(app: Jobyard, monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    handler, port = Inbox(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setattr(app, "settings", replace(app.settings, smtp_url=f"smtp://127.0.0.1:{port}"))
    yield handler
    controller.stop()


def finished(app: Jobyard, run_id: str) -> Any:
    return wait_for(lambda: (r := run_of(app, run_id)).status in FINAL and r, timeout=60, what=run_id)


def rows_of(app: Jobyard, run_id: str) -> dict[str, int]:
    """How many rows each live table holds for the run."""
    with app.engine.connect() as conn:
        return {
            name: int(conn.execute(select(func.count()).select_from(table).where(column == run_id)).scalar_one())
            for name, (table, column) in LIVE_TABLES.items()
        }


def backdate(app: Jobyard, run_id: str, days: float) -> None:
    moment = utcnow() - timedelta(days=days)
    with app.engine.begin() as conn:
        run = conn.execute(select(runs_table.c.finished_at).where(runs_table.c.id == run_id)).one()
        values: dict[str, Any] = {"created_at": moment, "dispatched_at": moment}
        if run.finished_at is not None:
            values.update(started_at=moment, finished_at=moment + timedelta(seconds=5))
        conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(**values))


def context(app: Jobyard, run_id: str, **kwargs: Any) -> JobContext:
    return JobContext(run_id=run_id, type="archive.export", attempt=1, params={}, engine=app.engine, app=app, **kwargs)


def worker_history(app: Jobyard) -> dict[str, str]:
    """Runs executed by the worker already started, some backdated past the 30-day cutoff."""
    ran = {
        "items": enqueue("test.items", {"count": 6, "fail_every": 3, "continue_on_error": True}, app=app),
        "secret": enqueue("test.secretive", {"token": "s3cret-value"}, app=app),
        "noop": enqueue("demo.noop", {}, app=app),
        "recent": enqueue("test.items", {"count": 2, "fail_every": 0}, app=app),
        "other": enqueue("test.follower", {}, app=app),
    }
    ran["dependent"] = enqueue("demo.noop", {}, depends_on=[ran["noop"]], app=app)
    for run_id in ran.values():
        finished(app, run_id)
    return ran


def synthetic_history(app: Jobyard, ran: dict[str, str]) -> dict[str, str]:
    """An old run that is not final, and an old final run it still waits on."""
    awaited = enqueue("demo.noop", {}, app=app, at=utcnow() + timedelta(days=1))
    waiting = enqueue("test.items", {}, app=app, at=utcnow() + timedelta(days=1))
    with app.engine.begin() as conn:
        conn.execute(
            update(runs_table).where(runs_table.c.id == awaited).values(status="completed", finished_at=utcnow())
        )
        conn.execute(insert(RunDependency.__table__).values(run_id=waiting, depends_on_id=awaited))
    return {**ran, "awaited": awaited, "waiting": waiting}


def prepared(app: Jobyard, start: Workers) -> dict[str, str]:
    start(1)
    runs = synthetic_history(app, worker_history(app))
    for name in ("items", "secret", "noop", "dependent", "other", "awaited", "waiting"):
        backdate(app, runs[name], 40)
    with app.engine.begin() as conn:  # a log line of the job's own, besides Jobyard's
        conn.execute(
            insert(run_logs_table).values(run_id=runs["items"], at=utcnow(), level="info", message="six items")
        )
    return runs


def test_export_moves_exactly_the_old_final_runs_and_import_brings_them_to_the_archive(
    app: Jobyard, inbox: Inbox, start_workers: Workers, tmp_path: Path
) -> None:
    runs = prepared(app, start_workers)
    moved = [runs[n] for n in ("items", "secret", "noop", "dependent")]
    kept = [runs[n] for n in ("recent", "other", "awaited", "waiting")]
    before = {run_id: rows_of(app, run_id) for run_id in moved + kept}
    assert before[runs["items"]]["run_items"] == 6 and before[runs["items"]]["run_logs"] >= 1
    assert before[runs["dependent"]]["run_dependencies"] == 1 and before[runs["items"]]["run_attempts"] == 1
    items_result = run_of(app, runs["items"]).result
    target = tmp_path / "archives" / "2025.jyarchive"
    target.parent.mkdir()

    params = {"types": TYPES, "older_than_days": 30, "path": str(target), "notify": ["ops@example.org"]}
    export = finished(app, enqueue("archive.export", params, app=app))

    assert export.status == RunStatus.COMPLETED, export.error
    assert (export.result["runs"], export.result["removed"], export.result["path"]) == (4, 4, str(target))
    assert sorted(p.name for p in target.parent.iterdir()) == ["2025.jyarchive"]  # no .partial left behind
    with tarfile.open(target) as tar:
        assert tar.getnames() == ["manifest.json", "runs.jsonl.gz", "manifest.hmac"]
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        lines = gzip.decompress(tar.extractfile("runs.jsonl.gz").read()).splitlines()  # type: ignore[union-attr]
    assert (manifest["runs"], manifest["types"], manifest["older_than_days"]) == (4, sorted(TYPES), 30)
    assert manifest["exported_by_run"] == export.id and len(lines) == 4
    assert {json.loads(line)["run"]["id"] for line in lines} == set(moved)
    for run_id in moved:
        assert rows_of(app, run_id) == dict.fromkeys(LIVE_TABLES, 0)
    for run_id in kept:
        assert rows_of(app, run_id) == before[run_id]
    [mail] = inbox.messages
    assert mail["To"] == "ops@example.org" and "4 run(s) archived" in mail["Subject"]

    imported = finished(app, enqueue("archive.import", {"path": str(target)}, app=app))

    assert imported.status == RunStatus.COMPLETED, imported.error
    assert (imported.result["imported"], imported.result["already_imported"]) == (4, 0)
    with app.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(archived))}
    assert set(rows) == set(moved)
    items = rows[runs["items"]]
    assert (items.type, items.status, items.archive_file, items.imported_by_run) == (
        "test.items", "completed_with_warnings", str(target), imported.id,
    )  # fmt: skip
    assert len(items.record["items"]) == 6 and len(items.record["attempts"]) == 1
    assert "six items" in [line["message"] for line in items.record["logs"]]
    assert items.record["run"]["result"] == items_result and items.record["items"][2]["status"] == "failed"
    assert rows[runs["dependent"]].record["depends_on"] == [runs["noop"]]
    assert "s3cret-value" not in json.dumps(rows[runs["secret"]].record)  # still sealed, as the record held it

    again = finished(app, enqueue("archive.import", {"path": str(target)}, app=app))
    assert (again.result["imported"], again.result["already_imported"]) == (0, 4)
    second = tmp_path / "archives" / "again.jyarchive"
    export_again = finished(app, enqueue("archive.export", {**params, "path": str(second)}, app=app))
    assert export_again.status == RunStatus.COMPLETED
    assert (export_again.result["runs"], export_again.result["path"]) == (0, None)
    assert not second.exists() and all(rows_of(app, run_id) == before[run_id] for run_id in kept)


def test_bad_parameters_fail_at_once_with_a_clear_message_and_change_nothing(
    app: Jobyard, start_workers: Workers, tmp_path: Path
) -> None:
    files = tmp_path / "files"
    files.mkdir()
    start_workers(1)
    old = enqueue("test.items", {"count": 1}, app=app)
    finished(app, old)
    backdate(app, old, 40)
    (files / "taken").write_bytes(b"someone else's file")
    good = {"types": ["test.items"], "older_than_days": 30, "path": str(files / "new.jyarchive")}
    imports, exports = app.settings.allowed_import_dirs[0], app.settings.allowed_export_dirs[0]
    cases = [
        (
            "archive.export",
            {**good, "types": ["test.items", "no.such_type"]},
            "types: unknown job type(s): no.such_type",
        ),
        ("archive.export", {**good, "types": []}, "types: choose at least one job type"),
        # Relative: taken from the first export directory, which nobody made here.
        ("archive.export", {**good, "path": "relative.jyarchive"}, f"path: directory {exports} does not exist"),
        ("archive.export", {**good, "path": str(files / "taken")}, f"path: {files / 'taken'} already exists"),
        ("archive.export", {**good, "path": str(files)}, f"path: {files} already exists"),
        ("archive.export", {**good, "path": str(files / "no" / "a.tar")}, f"directory {files / 'no'} does not"),
        ("archive.export", {**good, "notify": ["ops-at-example.org"]}, "notify: not email addresses"),
        # Relative: taken from the first import directory (tests/conftest.py make_settings).
        ("archive.import", {"path": "relative.jyarchive"}, f"path: {imports / 'relative.jyarchive'} does not exist"),
        ("archive.import", {"path": str(files / "missing")}, f"path: {files / 'missing'} does not exist"),
        ("archive.import", {"path": str(files)}, f"path: {files} is not a file"),
        ("archive.import", {"path": str(files / "taken")}, "integrity check failed: not a readable Jobyard archive"),
    ]
    ids = [enqueue(type_name, params, app=app) for type_name, params, _ in cases]
    for run_id, (_, _, error) in zip(ids, cases, strict=True):
        run = finished(app, run_id)
        assert run.status == RunStatus.FAILED and run.error is not None and error in run.error, run.error
        assert [a.outcome for a in attempts_of(app, run_id)] == ["rejected"]  # no retry
    with pytest.raises(InvalidJobRequest, match="older_than_days: must be at least 1, got 0"):
        enqueue("archive.export", {**good, "older_than_days": 0}, app=app)
    assert rows_of(app, old)["runs"] == 1 and not (files / "new.jyarchive").exists()
    assert sorted(p.name for p in files.iterdir()) == ["taken"]
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(archived)).scalar_one() == 0


# Tampering


def old_runs(app: Jobyard, count: int) -> list[str]:
    ids = [enqueue("demo.noop", {}, app=app) for _ in range(count)]
    with app.engine.begin() as conn:
        conn.execute(
            update(runs_table).where(runs_table.c.id.in_(ids)).values(status="completed", finished_at=utcnow())
        )
    for run_id in ids:
        backdate(app, run_id, 10)
    return ids


def exported(app: Jobyard, target: Path, count: int = 3) -> list[str]:
    ids = old_runs(app, count)
    result = archive.export_archive(
        context(app, enqueue("test.follower", {}, app=app)), ["demo.noop"], 5, str(target), []
    )
    assert result["runs"] == count
    return ids


def repack(source: Path, target: Path, **changes: bytes | None) -> None:
    """The archive again with members replaced (bytes) or left out (None)."""
    with tarfile.open(source) as tar, tarfile.open(target, "w") as out:
        for member in tar.getmembers():
            key = member.name.replace(".", "_")
            data = changes[key] if key in changes else tar.extractfile(member).read()  # type: ignore[union-attr]
            if data is not None:
                member.size = len(data)
                out.addfile(member, io.BytesIO(data))


def member(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        return tar.extractfile(name).read()  # type: ignore[union-attr]


def flip_data_byte(source: Path, target: Path) -> None:
    with tarfile.open(source) as tar:
        offset = tar.getmember("runs.jsonl.gz").offset_data + 20
    raw = bytearray(source.read_bytes())
    raw[offset] ^= 0x01
    target.write_bytes(bytes(raw))


def edited_manifest(source: Path, target: Path) -> None:
    manifest = json.loads(member(source, "manifest.json"))
    manifest["runs"] = 2
    repack(source, target, manifest_json=json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n")


def replaced_data_with_fresh_digest(source: Path, target: Path) -> None:
    """The forger's best try without the key: other data, and a manifest that describes it."""
    data = gzip.compress(b'{"run":{"id":"forged","type":"demo.noop","status":"completed"}}\n')
    manifest = json.loads(member(source, "manifest.json"))
    manifest["data"] = {"name": "runs.jsonl.gz", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    repack(source, target, manifest_json=manifest_bytes, runs_jsonl_gz=data)


def signed_with_another_key(source: Path, target: Path) -> None:
    mac = sign(derive_key("another-server-key", "archive"), member(source, "manifest.json"))
    repack(source, target, manifest_hmac=(mac + "\n").encode())


TAMPERINGS: dict[str, Callable[[Path, Path], None]] = {
    "a byte of the data flipped": flip_data_byte,
    "manifest edited": edited_manifest,
    "data and digest replaced": replaced_data_with_fresh_digest,
    "hmac changed": lambda s, t: repack(s, t, manifest_hmac=b"0" * 64 + b"\n"),
    "hmac stripped": lambda s, t: repack(s, t, manifest_hmac=None),
    "signed with another key": signed_with_another_key,
    "truncated": lambda s, t: t.write_bytes(s.read_bytes()[:2048]),
}


@pytest.mark.parametrize("tamper", list(TAMPERINGS))
def test_a_tampered_archive_is_refused_and_nothing_is_imported(app: Jobyard, tmp_path: Path, tamper: str) -> None:
    source, forged = tmp_path / "good.jyarchive", tmp_path / "forged.jyarchive"
    exported(app, source)
    TAMPERINGS[tamper](source, forged)
    ctx = context(app, enqueue("test.follower", {}, app=app))

    with pytest.raises(ArchiveIntegrityError, match=r"^the archive's integrity check failed: "):
        archive_import.import_archive(ctx, str(forged))

    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(archived)).scalar_one() == 0
    assert archive_import.import_archive(ctx, str(source))["imported"] == 3  # the untouched file still imports


def test_a_tampered_archive_fails_its_import_run_at_once(app: Jobyard, start_workers: Workers, tmp_path: Path) -> None:
    source, forged = tmp_path / "good.jyarchive", tmp_path / "forged.jyarchive"
    exported(app, source)
    flip_data_byte(source, forged)
    start_workers(1)

    run = finished(app, enqueue("archive.import", {"path": str(forged)}, app=app))

    assert run.status == RunStatus.FAILED and run.error is not None
    assert "the archive's integrity check failed: the data's SHA-256 does not match the manifest" in run.error
    assert [a.outcome for a in attempts_of(app, run.id)] == ["rejected"]
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(archived)).scalar_one() == 0


# Crash safety


def test_a_crash_between_rename_and_delete_is_resumed_by_the_same_run_without_duplicates(
    app: Jobyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = old_runs(app, 3)
    target, ctx = tmp_path / "a.jyarchive", context(app, enqueue("test.follower", {}, app=app))

    def dies(*_args: Any) -> None:
        raise RuntimeError("worker died")

    with monkeypatch.context() as patched:
        patched.setattr(archive, "_remove", dies)
        with pytest.raises(RuntimeError):
            archive.export_archive(ctx, ["demo.noop"], 5, str(target), [])
    assert target.exists() and all(rows_of(app, i)["runs"] == 1 for i in ids)
    with app.engine.begin() as conn:  # retried by hand meanwhile: it is live again, so it stays
        conn.execute(update(runs_table).where(runs_table.c.id == ids[0]).values(status="pending"))

    other = context(app, enqueue("test.follower", {}, app=app))
    with pytest.raises(PathRefused, match="already exists"):
        archive.export_archive(other, ["demo.noop"], 5, str(target), [])
    resumed = archive.export_archive(ctx, ["demo.noop"], 5, str(target), [])

    assert (resumed["resumed"], resumed["runs"], resumed["removed"], resumed["kept_live"]) == (True, 3, 2, 1)
    assert [rows_of(app, i)["runs"] for i in ids] == [1, 0, 0]
    with tarfile.open(target) as tar:
        assert len(gzip.decompress(tar.extractfile("runs.jsonl.gz").read()).splitlines()) == 3  # type: ignore[union-attr]


def test_a_cancelled_export_leaves_no_file_and_every_run(app: Jobyard, tmp_path: Path) -> None:
    ids = old_runs(app, 2)
    ctx = context(app, enqueue("test.follower", {}, app=app), cancel_requested=lambda: True)
    files = tmp_path / "files"
    files.mkdir()

    with pytest.raises(Cancelled):
        archive.export_archive(ctx, ["demo.noop"], 5, str(files / "a.jyarchive"), [])

    assert list(files.iterdir()) == [] and all(rows_of(app, i)["runs"] == 1 for i in ids)


def test_a_file_written_by_this_server_reads_back_byte_for_byte(app: Jobyard, tmp_path: Path) -> None:
    key = derive_key(app.settings.secret_key, "archive")
    writer = ArchiveWriter(tempfile.TemporaryFile(dir=tmp_path))  # noqa: SIM115 (the writer closes it)
    records = [
        {"run": {"id": f"r{n}", "created_at": utcnow()}, "attempts": [], "logs": [], "items": []} for n in range(3)
    ]
    for record in records:
        writer.add(record)
    with open(tmp_path / "x", "wb") as out:
        writer.finish(out, key, {"exported_by_run": "test"})

    with open_verified(tmp_path / "x", key) as verified:
        back = list(verified.records())
    assert [r["run"]["id"] for r in back] == ["r0", "r1", "r2"]
    assert back[0]["run"]["created_at"] == records[0]["run"]["created_at"].isoformat()
