"""Bulk import uploads are kept IDENTITY_UPLOAD_RETENTION_S at most: one a dry or failed run left behind (it may
hold credentials, encrypted) is pruned by a later upload, and an expired one no run may read any more."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core import defaults
from core.app import Jobyard
from core.db import utcnow
from jobs.catalog.identity import uploads
from jobs.catalog.identity.models import identities_table, uploads_table
from jobs.status import RunStatus
from tests.conftest import WorkerProcesses
from tests.integration.test_catalog_certificates import count, run_job
from tests.integration.test_identity_bulk_import import csv_bytes

Workers = Callable[..., WorkerProcesses]
KEYS = [{"user_name": "ci-key", "identity_type": "api_key", "credential": "api-key-5e21"}]
COLUMNS = ["user_name", "identity_type", "credential"]


pytestmark = pytest.mark.both_databases


def store(app: Jobyard) -> int:
    return uploads.store(app.engine, "keys.csv", csv_bytes(KEYS, COLUMNS), "alice")


def age(app: Jobyard, upload_id: int, seconds: float) -> None:
    """Makes the upload `seconds` old."""
    with app.engine.begin() as conn:
        conn.execute(
            update(uploads_table)
            .where(uploads_table.c.id == upload_id)
            .values(uploaded_at=utcnow() - timedelta(seconds=seconds))
        )


def stored_ids(app: Jobyard) -> set[int]:
    with app.engine.connect() as conn:
        return set(conn.execute(select(uploads_table.c.id)).scalars())


def test_a_new_upload_prunes_the_ones_older_than_the_retention(app: Jobyard) -> None:
    expired, kept = store(app), store(app)
    age(app, expired, defaults.IDENTITY_UPLOAD_RETENTION_S + 60)
    age(app, kept, defaults.IDENTITY_UPLOAD_RETENTION_S - 60)
    new = store(app)
    assert stored_ids(app) == {kept, new}
    assert uploads.read(app.engine, kept)[0] == "keys.csv"


def test_an_expired_upload_not_yet_pruned_cannot_be_read_or_imported(app: Jobyard, start_workers: Workers) -> None:
    upload_id = store(app)
    age(app, upload_id, defaults.IDENTITY_UPLOAD_RETENTION_S + 60)
    with pytest.raises(uploads.UploadNotFound):
        uploads.read(app.engine, upload_id)
    start_workers(1)
    run = run_job(app, "identity.bulk_import", upload_id=upload_id)
    assert run.status == RunStatus.FAILED and run.attempt_count == 1, (run.status, run.error)
    assert f"upload_id: no upload {upload_id}" in (run.error or "")
    assert count(app, identities_table) == 0
