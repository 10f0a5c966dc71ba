"""Bulk import given files it cannot use: a field longer than the CSV reader takes, and a `path` naming a file
that is no import file at all (whose content must not come back in the run's record)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.app import Jobyard
from jobs.catalog.identity.models import identities_table
from jobs.enqueue import enqueue
from jobs.status import FINAL, RunStatus
from tests.conftest import WorkerProcesses
from tests.integration.test_catalog_certificates import count, finished
from tests.integration.test_identity_bulk_import import recorded_text, upload

Workers = Callable[..., WorkerProcesses]
ENDED_OR_RETRYING = FINAL | {RunStatus.RETRYING}


def test_a_field_longer_than_the_csv_reader_takes_fails_the_run_at_once_naming_the_upload(
    app: Jobyard, start_workers: Workers
) -> None:
    rows = [{"user_name": "svc", "identity_type": "api_key", "credential": "k" * 200_000}]
    upload_id = upload(app, rows, ["user_name", "identity_type", "credential"])
    start_workers(1)
    run = finished(app, enqueue("identity.bulk_import", {"upload_id": upload_id}, app=app), statuses=ENDED_OR_RETRYING)
    assert run.status == RunStatus.FAILED and run.attempt_count == 1, (run.status, run.error)
    assert "upload_id: " in (run.error or "") and "line 2" in (run.error or "")
    assert count(app, identities_table) == 0


def test_a_path_to_a_file_that_is_no_import_file_does_not_quote_it(
    app: Jobyard, start_workers: Workers, tmp_path: Path
) -> None:
    # A file the worker may read but whoever starts the run may not (a key file, /proc/self/environ...).
    private = tmp_path / "private.env"
    private.write_text("DB_PASSWORD=Hunter2Secret,API_TOKEN=tok-Zq81\n")
    start_workers(1)
    run = finished(app, enqueue("identity.bulk_import", {"path": str(private)}, app=app))
    assert run.status == RunStatus.FAILED and "path: bad header" in (run.error or ""), run.error
    assert "missing column(s): user_name, identity_type" in (run.error or "")
    recorded = recorded_text(app).lower()
    assert "hunter2secret" not in recorded and "tok-zq81" not in recorded
