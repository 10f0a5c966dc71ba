"""Data Archiving creates its file only inside the export directories.

At enqueue, `..`, an absolute path elsewhere, a symlinked directory leading out and a link out as the file itself
are refused naming the parameter (422 in the API, exit 2 and one line in the CLI), in the same words whether or
not anything exists outside. The worker checks again right before it creates the file: a link swapped after
enqueue fails the run the same way, and nothing is written outside. The test settings allow the default export
directory and the test's tmp_path (tests/conftest.py make_settings); "outside" is a directory of the pytest
session, beside tmp_path (tests/integration/test_import_dirs.py). How the file is created once allowed (never
through a link, never over a file, relative to the opened directory): tests/unit/test_paths.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core.app import Jobyard
from jobs.catalog import archive
from jobs.enqueue import enqueue
from jobs.params import InvalidJobRequest
from jobs.paths import EXPORT_OUTSIDE, OUTSIDE
from jobs.status import RunStatus
from tests.conftest import WorkerProcesses, run_cli
from tests.integration.test_api_runs import run_count
from tests.integration.test_catalog_archive import context, old_runs
from tests.integration.test_catalog_certificates import finished
from tests.integration.test_identity_bulk_import import recorded_text
from tests.integration.test_import_dirs import SECRET, swap

Workers = Callable[..., WorkerProcesses]
API = "/api/v1"
EXPORT = {"types": ["demo.noop"], "older_than_days": 30}


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory no export directory holds, with one file and one subdirectory in it."""
    place = tmp_path_factory.mktemp("outside")
    (place / "secret.csv").write_text(f"user_name,identity_type\n{SECRET},api_key\n")
    (place / "certs").mkdir()
    return place


def contents(place: Path) -> dict[str, str]:
    """Every entry under `place` with what it holds, to prove nothing outside was written."""
    return {str(p.relative_to(place)): p.read_text() if p.is_file() else "" for p in sorted(place.rglob("*"))}


def refused_exports(tmp_path: Path, outside: Path) -> dict[str, str]:
    """Paths archive.export must refuse, by what they try; links are made inside tmp_path, an export directory."""
    (tmp_path / "dir-out").symlink_to(outside / "certs")
    (tmp_path / "dir-gone").symlink_to(outside / "missing")
    (tmp_path / "file-out").symlink_to(outside / "secret.csv")
    (tmp_path / "file-gone").symlink_to(outside / "missing.jyarchive")
    return {
        "dot-dot": "../outside/new.jyarchive",
        "dot-dot-absolute": f"{tmp_path}/../{outside.name}/new.jyarchive",
        "absolute-new": str(outside / "new.jyarchive"),
        "absolute-existing": str(outside / "secret.csv"),
        "absolute-in-missing-dir": str(outside / "missing" / "new.jyarchive"),
        "symlinked-dir-out": str(tmp_path / "dir-out" / "new.jyarchive"),
        "dangling-symlinked-dir-out": str(tmp_path / "dir-gone" / "new.jyarchive"),
        "symlink-out": str(tmp_path / "file-out"),
        "dangling-symlink-out": str(tmp_path / "file-gone"),
        "an-export-dir-itself": str(tmp_path),
    }


def test_exactly_archive_export_declares_an_export_path(app: Jobyard) -> None:
    declared = sorted(t.name for t in app.registry for p in t.params if p.server_path == "export")
    assert declared == ["archive.export"]
    schema = app.registry.get("archive.export").schema()  # type: ignore[union-attr]
    assert schema["properties"]["path"]["x-server-path"] == "export"
    assert "export directories" in schema["properties"]["path"]["description"]


def test_the_api_refuses_export_paths_out_of_the_export_dirs_naming_the_parameter(
    app: Jobyard, web: Any, users: Any, tmp_path: Path, outside: Path
) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    before = contents(outside)
    problems: dict[str, list[dict[str, str]]] = {}
    for what, path in refused_exports(tmp_path, outside).items():
        response = client.post(
            f"{API}/runs",
            json={"type": "archive.export", "params": {**EXPORT, "path": path}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 422, (what, response.get_data(as_text=True))
        problems[what] = response.json["errors"]
    assert (
        problems.pop("dot-dot")
        == problems.pop("dot-dot-absolute")
        == [{"field": "params.path", "message": "must not contain '..'"}]
    )
    # One answer for a new name, an existing file, a missing directory, and links to each: nothing tells what is
    # outside.
    assert all(found == [{"field": "params.path", "message": EXPORT_OUTSIDE}] for found in problems.values()), problems
    assert SECRET not in str(problems) and str(outside) not in str(problems)
    assert run_count(app) == 0 and contents(outside) == before


def test_the_cli_refuses_export_paths_out_of_the_export_dirs_in_one_line(
    app: Jobyard, tmp_path: Path, outside: Path
) -> None:
    paths = refused_exports(tmp_path, outside)
    for what in ("dot-dot", "absolute-new", "symlinked-dir-out", "symlink-out"):
        result = run_cli(
            app, "enqueue", "archive.export", 'types=["demo.noop"]', "older_than_days=30", f"path={paths[what]}"
        )
        assert result.returncode == 2, (what, result.stdout, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert "path: " in line and SECRET not in line and str(outside) not in line, (what, line)
        assert ("must not contain '..'" if what == "dot-dot" else EXPORT_OUTSIDE) in line, (what, line)
    assert run_count(app) == 0


def test_a_relative_export_path_is_taken_from_the_first_export_dir(app: Jobyard) -> None:
    first = app.settings.allowed_export_dirs[0]
    assert first == app.settings.data_dir / "exports"
    assert enqueue("archive.export", {**EXPORT, "path": "2025/runs.jyarchive"}, app=app)  # need not exist yet
    with pytest.raises(InvalidJobRequest, match="path: cannot be empty"):
        enqueue("archive.export", {**EXPORT, "path": ""}, app=app)
    with pytest.raises(InvalidJobRequest, match="path: must name a file, not a directory"):
        enqueue("archive.export", {**EXPORT, "path": "2025/"}, app=app)

    (first / "2025").mkdir(parents=True)
    old_runs(app, 2)
    result = archive.export_archive(
        context(app, enqueue("test.follower", {}, app=app)), ["demo.noop"], 5, "2025/runs.jyarchive", []
    )
    assert (result["runs"], result["path"]) == (2, str(first / "2025" / "runs.jyarchive"))
    assert sorted(p.name for p in (first / "2025").iterdir()) == ["runs.jyarchive"]


def test_the_worker_checks_again_a_link_swapped_after_enqueue(
    app: Jobyard, start_workers: Workers, tmp_path: Path, outside: Path
) -> None:
    inside = tmp_path / "inside"
    inside.mkdir()
    before = contents(outside)
    runs: dict[tuple[str, str], str] = {}
    for swapped, leads_to in {
        "directory": {"there": outside / "certs", "gone": outside / "missing"},
        "file": {"there": outside / "secret.csv", "gone": outside / "missing.jyarchive"},
    }.items():
        for which, target in leads_to.items():
            link = tmp_path / f"{swapped}-{which}"
            if swapped == "directory":
                link.symlink_to(inside)  # allowed at enqueue
                path = link / "new.jyarchive"
            else:
                link.symlink_to(inside / "new.jyarchive")
                path = link
            runs[swapped, which] = enqueue("archive.export", {**EXPORT, "path": str(path)}, app=app)
            swap(link, target)
    start_workers(1)
    for (swapped, which), run_id in runs.items():
        run = finished(app, run_id)
        assert run.status == RunStatus.FAILED and run.attempt_count == 1, (swapped, which, run.status, run.error)
        assert run.error is not None and f"path: {EXPORT_OUTSIDE}" in run.error, (swapped, which, run.error)
        # The same error whether or not anything is there outside.
        assert run.error == finished(app, runs[swapped, "there"]).error, (swapped, which)
    assert contents(outside) == before and list(inside.iterdir()) == []
    recorded = recorded_text(app)
    assert SECRET not in recorded and str(outside) not in recorded


def test_an_exported_archive_is_imported_by_path_only_from_a_directory_listed_for_imports(
    app: Jobyard, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = app.settings.data_dir
    # The defaults: <data dir>/imports and <data dir>/exports, neither holding the other.
    monkeypatch.setattr(app, "settings", replace(app.settings, import_dirs=(), export_dirs=()))
    exported = str(data / "exports" / "2025.jyarchive")
    assert enqueue("archive.export", {**EXPORT, "path": exported}, app=app)
    with pytest.raises(InvalidJobRequest) as refused:
        enqueue("archive.import", {"path": exported}, app=app)
    assert [str(e) for e in refused.value.errors] == [f"path: {OUTSIDE}"]

    listed = (data / "imports", data / "exports")  # JOBYARD_IMPORT_DIRS=<data dir>/imports:<data dir>/exports
    monkeypatch.setattr(app, "settings", replace(app.settings, import_dirs=listed))
    assert enqueue("archive.import", {"path": exported}, app=app)
