"""Bulk import given files it cannot use: a `path` naming a file that is no import file at all (whose content
must not come back in the run's record)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.app import Jobyard
from jobs.enqueue import enqueue
from jobs.status import RunStatus
from tests.conftest import WorkerProcesses
from tests.integration.test_catalog_certificates import finished
from tests.integration.test_identity_bulk_import import recorded_text

Workers = Callable[..., WorkerProcesses]


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
