"""Job types that read a file on the server by path read only inside the import directories.

At enqueue, `..`, an absolute path elsewhere and a symlink leading out are refused naming the parameter (422 in
the API, exit 2 and one line in the CLI), in the same words whether or not anything exists outside. The worker
checks again before it opens: a link swapped after enqueue fails the run the same way. The test settings allow
the default import directory and the test's tmp_path (tests/conftest.py make_settings); "outside" is a directory
of the pytest session, beside tmp_path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.app import Jobyard
from jobs.enqueue import enqueue
from jobs.params import InvalidJobRequest
from jobs.paths import OUTSIDE
from jobs.status import RunStatus
from tests.conftest import WorkerProcesses, run_cli
from tests.integration.test_api_runs import run_count
from tests.integration.test_catalog_certificates import finished
from tests.integration.test_identity_bulk_import import recorded_text

Workers = Callable[..., WorkerProcesses]
API = "/api/v1"
# Every type that reads a server path, with the parameter naming it.
PATH_TYPES = ["identity.bulk_import", "archive.import", "certificates.import", "identity.directory_sync"]
SECRET = "DB_PASSWORD=Hunter2Secret"


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory no import directory holds, with one file and one subdirectory in it."""
    place = tmp_path_factory.mktemp("outside")
    (place / "secret.csv").write_text(f"user_name,identity_type\n{SECRET},api_key\n")
    (place / "certs").mkdir()
    return place


def refused_paths(tmp_path: Path, outside: Path) -> dict[str, str]:
    """Paths every type must refuse, by what they try; links are made inside tmp_path, an import directory."""
    (tmp_path / "link-out").symlink_to(outside / "secret.csv")
    (tmp_path / "link-out-dir").symlink_to(outside / "certs")
    (tmp_path / "link-gone").symlink_to(outside / "missing.csv")
    return {
        "dot-dot": "../outside/secret.csv",
        "dot-dot-absolute": f"{tmp_path}/../{outside.name}/secret.csv",
        "absolute-file": str(outside / "secret.csv"),
        "absolute-dir": str(outside / "certs"),
        "absolute-missing": str(outside / "missing.csv"),
        "symlink-out": str(tmp_path / "link-out"),
        "symlink-out-dir": str(tmp_path / "link-out-dir"),
        "dangling-symlink-out": str(tmp_path / "link-gone"),
    }


def test_exactly_the_path_reading_types_declare_an_import_path(app: Jobyard) -> None:
    declared = sorted(t.name for t in app.registry for p in t.params if p.server_path == "import")
    assert declared == sorted(PATH_TYPES)
    assert all(t.param("path") is not None for t in app.registry if t.name in PATH_TYPES)
    schema = app.registry.get("archive.import").schema()  # type: ignore[union-attr]
    assert schema["properties"]["path"]["x-server-path"] == "import"
    assert "import directories" in schema["properties"]["path"]["description"]


@pytest.mark.parametrize("type_name", PATH_TYPES)
def test_the_api_refuses_paths_out_of_the_import_dirs_naming_the_parameter(
    app: Jobyard, web: Any, users: Any, tmp_path: Path, outside: Path, type_name: str
) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    problems: dict[str, list[dict[str, str]]] = {}
    for what, path in refused_paths(tmp_path, outside).items():
        response = client.post(
            f"{API}/runs",
            json={"type": type_name, "params": {"path": path}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 422, (what, response.get_data(as_text=True))
        problems[what] = response.json["errors"]
        assert [e["field"] for e in problems[what]] == ["params.path"], (what, problems[what])
    assert (
        problems.pop("dot-dot")
        == problems.pop("dot-dot-absolute")
        == [{"field": "params.path", "message": "must not contain '..'"}]
    )
    # One answer for a file, a directory, nothing at all, and links to each: nothing tells what is outside.
    assert all(found == [{"field": "params.path", "message": OUTSIDE}] for found in problems.values()), problems
    assert SECRET not in str(problems) and str(outside) not in str(problems)
    assert run_count(app) == 0


@pytest.mark.parametrize("type_name", PATH_TYPES)
def test_the_cli_refuses_paths_out_of_the_import_dirs_in_one_line(
    app: Jobyard, tmp_path: Path, outside: Path, type_name: str
) -> None:
    paths = refused_paths(tmp_path, outside)
    for what in ("dot-dot", "absolute-file", "symlink-out"):
        result = run_cli(app, "enqueue", type_name, f"path={paths[what]}")
        assert result.returncode == 2, (what, result.stdout, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert "path: " in line and SECRET not in line, (what, line)
        assert ("must not contain '..'" if what == "dot-dot" else OUTSIDE) in line, (what, line)
    assert run_count(app) == 0


def test_enqueue_takes_a_relative_path_from_the_first_import_dir_and_refuses_an_empty_one(app: Jobyard) -> None:
    first = app.settings.allowed_import_dirs[0]
    assert first == app.settings.data_dir / "imports"
    run_id = enqueue("archive.import", {"path": "2025/runs.jyarchive"}, app=app)  # need not exist yet: a schedule
    assert run_id
    with pytest.raises(InvalidJobRequest, match="path: cannot be empty"):
        enqueue("archive.import", {"path": ""}, app=app)
    with pytest.raises(InvalidJobRequest, match="path: contains a NUL character"):
        enqueue("archive.import", {"path": "a\x00b"}, app=app)


def test_the_worker_checks_again_a_link_swapped_after_enqueue(
    app: Jobyard, start_workers: Workers, tmp_path: Path, outside: Path
) -> None:
    inside = tmp_path / "inside"
    inside.mkdir()
    runs: dict[tuple[str, str], str] = {}
    for type_name in PATH_TYPES:
        for target in ("secret.csv", "missing.csv"):
            link = tmp_path / f"{type_name}-{target}"
            link.symlink_to(inside / target)  # allowed at enqueue
            runs[type_name, target] = enqueue(type_name, {"path": str(link)}, app=app)
            if type_name == "certificates.import":  # it reads a directory
                swap(link, outside / ("certs" if target == "secret.csv" else "gone"))
            else:
                swap(link, outside / target)
    start_workers(1)
    for (type_name, target), run_id in runs.items():
        run = finished(app, run_id)
        assert run.status == RunStatus.FAILED and run.attempt_count == 1, (type_name, run.status, run.error)
        assert run.error is not None and f"path: {OUTSIDE}" in run.error, (type_name, run.error)
        # The same error whether or not the file outside exists.
        assert run.error == finished(app, runs[type_name, "secret.csv"]).error, (type_name, target)
    recorded = recorded_text(app)
    assert SECRET not in recorded and str(outside) not in recorded


def test_certificates_import_lists_links_out_of_its_directory_alike_whatever_they_point_at(
    app: Jobyard, start_workers: Workers, tmp_path: Path, outside: Path
) -> None:
    root = tmp_path / "certs"
    root.mkdir()
    (root / "to-file.pem").symlink_to(outside / "secret.csv")
    (root / "to-nothing.pem").symlink_to(outside / "missing.pem")
    (root / "to-dir.pem").symlink_to(outside / "certs")
    start_workers(1)
    run = finished(app, enqueue("certificates.import", {"path": str(root)}, app=app))
    assert run.result is not None, run.error
    reason = "leads outside the import directories"
    assert run.result["invalid"] == [
        {"file": "to-dir.pem", "reason": reason},
        {"file": "to-file.pem", "reason": reason},
        {"file": "to-nothing.pem", "reason": reason},
    ]
    assert SECRET not in recorded_text(app)


def swap(link: Path, target: Path) -> None:
    """Points `link` at `target` in one step, as someone racing the worker would."""
    fresh = link.with_name(link.name + ".new")
    fresh.symlink_to(target)
    os.replace(fresh, link)
