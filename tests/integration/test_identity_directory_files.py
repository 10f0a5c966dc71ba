"""Directory sync given CSV files it cannot use: a `path` naming a file that is no directory file at all (whose
content must not come back in the run's record), and a field longer than the CSV reader takes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.app import Jobyard
from jobs.catalog.identity.models import directory_users_table
from jobs.enqueue import enqueue
from jobs.status import FINAL, RunStatus
from tests.conftest import WorkerProcesses
from tests.integration.test_catalog_certificates import count, finished
from tests.integration.test_identity_bulk_import import recorded_text
from tests.integration.test_identity_directory import jml_runs, write_csv

Workers = Callable[..., WorkerProcesses]
ENDED_OR_RETRYING = FINAL | {RunStatus.RETRYING}


def test_a_path_to_a_file_that_is_no_directory_file_does_not_quote_it(
    app: Jobyard, start_workers: Workers, tmp_path: Path
) -> None:
    # A file the worker may read but whoever starts the run may not (a key file, /proc/self/environ...).
    private = tmp_path / "private.env"
    private.write_text("DB_PASSWORD=Hunter2Secret,API_TOKEN=tok-Zq81,user_name\n")
    start_workers(1)
    run = finished(app, enqueue("identity.directory_sync", {"path": str(private)}, app=app))
    assert run.status == RunStatus.FAILED and run.attempt_count == 1, (run.status, run.error)
    assert "path: bad header" in (run.error or "") and "unknown column(s): 2" in (run.error or ""), run.error
    recorded = recorded_text(app).lower()
    assert "hunter2secret" not in recorded and "tok-zq81" not in recorded
    assert count(app, directory_users_table) == 0


def test_a_missing_user_name_column_is_named(app: Jobyard, start_workers: Workers, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "hr.csv", [{"login": "ada", "email": "ada@example.org"}], ["login", "email"])
    start_workers(1)
    run = finished(app, enqueue("identity.directory_sync", {"path": path}, app=app))
    assert run.status == RunStatus.FAILED, run.error
    assert "missing column(s): user_name; unknown column(s): 1" in (run.error or ""), run.error
    assert "login" not in (run.error or "")


def test_a_field_longer_than_the_csv_reader_takes_fails_the_run_at_once_naming_the_line(
    app: Jobyard, start_workers: Workers, tmp_path: Path
) -> None:
    people = [{"user_name": "ada", "title": "Analyst"}, {"user_name": "bob", "title": "t" * 200_000}]
    path = write_csv(tmp_path / "hr.csv", people, ["user_name", "title"])
    start_workers(1)
    run = finished(app, enqueue("identity.directory_sync", {"path": path}, app=app), statuses=ENDED_OR_RETRYING)
    assert run.status == RunStatus.FAILED and run.attempt_count == 1, (run.status, run.error)
    assert "path: " in (run.error or "") and "line 3" in (run.error or ""), run.error
    assert count(app, directory_users_table) == 0 and jml_runs(app) == 0
