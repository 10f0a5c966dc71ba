"""Bulk import through real workers: CSV uploads and files, identities created row by row (real SCIM services
for the ones that need provisioning), per-row results, dry run, continue-on-error, idempotent re-import."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core import vault
from core.app import Jobyard
from jobs.catalog.identity import uploads
from jobs.catalog.identity.models import identities_table, operations_table, uploads_table
from jobs.enqueue import enqueue
from jobs.models import Run, run_logs_table, runs_table
from jobs.params import InvalidJobRequest
from jobs.queries import items_of
from jobs.status import RunStatus
from tests.conftest import WorkerProcesses
from tests.integration.test_catalog_certificates import count, finished, run_job
from tests.scim import ScimServer

Workers = Callable[..., WorkerProcesses]
COLUMNS = ["user_name", "identity_type", "display_name", "email", "platform", "title", "credential"]
SECRETS = ("svc-json-key-71d3", "api-key-93ab")
ROWS = [
    {"user_name": "ada", "identity_type": "human_interactive", "display_name": "Ada Lovelace",
     "email": "ada@example.org", "platform": "gws", "title": "Analyst"},
    {"user_name": "svc-backup", "identity_type": "service_account", "credential": SECRETS[0]},
    {"user_name": "ci-key", "identity_type": "api_key", "platform": "github", "credential": SECRETS[1]},
    {"user_name": "helpdesk", "identity_type": "shared_managed", "platform": "gws"},
]  # fmt: skip
BAD = {"user_name": "svc-nokey", "identity_type": "service_account"}  # no credential


pytestmark = pytest.mark.both_databases


def csv_bytes(rows: list[dict[str, str]], columns: list[str] = COLUMNS) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def upload(app: Jobyard, rows: list[dict[str, str]], columns: list[str] = COLUMNS) -> int:
    return uploads.store(app.engine, "people.csv", csv_bytes(rows, columns), "alice")


def identities_by_name(app: Jobyard) -> dict[str, Any]:
    with app.engine.connect() as conn:
        return {row.user_name: row for row in conn.execute(select(identities_table))}


def items(app: Jobyard, run: Run) -> dict[str, tuple[str, str | None]]:
    return {item["key"]: (item["status"], item["message"]) for item in items_of(app.engine, run.id)}


def recorded_text(app: Jobyard) -> str:
    """Everything the runs recorded: parameters, results, errors, log lines, item results."""
    with app.engine.connect() as conn:
        runs = conn.execute(select(runs_table.c.params, runs_table.c.result, runs_table.c.error)).all()
        logs = conn.execute(select(run_logs_table.c.message)).scalars().all()
    items_text = [str(items_of(app.engine, str(run_id))) for run_id in _run_ids(app)]
    return repr(runs) + repr(logs) + "".join(items_text)


def _run_ids(app: Jobyard) -> list[str]:
    with app.engine.connect() as conn:
        return list(conn.execute(select(runs_table.c.id)).scalars())


@pytest.fixture
def targets(app: Jobyard, scim_target: ScimServer, scim_idp: ScimServer) -> tuple[ScimServer, ScimServer]:
    scim_target.register(app, "gws", "domain")
    scim_idp.register(app, "sso", "idp")
    return scim_target, scim_idp


def test_an_upload_creates_every_identity_and_is_discarded(
    app: Jobyard, targets: tuple[ScimServer, ScimServer], start_workers: Workers
) -> None:
    domain, idp = targets
    upload_id = upload(app, ROWS)
    start_workers(1)
    run = run_job(app, "identity.bulk_import", upload_id=upload_id)
    assert run.status == RunStatus.COMPLETED, run.error
    assert (run.result["rows"], run.result["created"], run.result["failed"]) == (4, 4, 0)
    assert run.result["upload_discarded"] is True and count(app, uploads_table) == 0
    with pytest.raises(uploads.UploadNotFound):
        uploads.read(app.engine, upload_id)
    results = items(app, run)
    assert results["row 3: svc-backup"] == ("ok", "created, provisioned")
    assert results["row 2: ada"][0] == "ok" and "provision_idp_user run" in (results["row 2: ada"][1] or "")
    found = identities_by_name(app)
    assert {name: row.source for name, row in found.items()} == dict.fromkeys(
        ("ada", "svc-backup", "ci-key", "helpdesk"), "bulk"
    )
    # Self-credentialed: provisioned at once, the credential in the vault and nowhere else.
    for name, secret in zip(("svc-backup", "ci-key"), SECRETS, strict=True):
        assert found[name].status == "provisioned" and vault.get(app.engine, found[name].credential_secret) == secret
    assert found["ada"].created_by == f"bulk import (run {run.id})"
    # Human and managed shared ones wait for their provisioning runs, which the workers then carry out.
    with app.engine.connect() as conn:
        operations = conn.execute(select(operations_table.c.operation, operations_table.c.run_id)).all()
    assert sorted(op for op, _ in operations) == ["create_domain_user", "create_domain_user", "provision_idp_user"]
    for _, run_id in operations:
        assert finished(app, run_id).status == RunStatus.COMPLETED
    assert identities_by_name(app)["ada"].status == "provisioned"
    assert {u.user_name for u in domain.users()} == {"ada", "helpdesk"} and [u.user_name for u in idp.users()] == [
        "ada"
    ]
    assert not any(secret in recorded_text(app) for secret in SECRETS)


def test_a_dry_run_checks_every_row_and_creates_nothing(
    app: Jobyard, targets: tuple[ScimServer, ScimServer], start_workers: Workers
) -> None:
    upload_id = upload(app, [*ROWS, BAD])
    start_workers(1)
    run = run_job(app, "identity.bulk_import", upload_id=upload_id, dry_run=True)
    assert run.status == RunStatus.COMPLETED_WITH_WARNINGS  # the row that would fail is a warning
    assert (run.result["would_create"], run.result["would_fail"]) == (4, 1)
    assert run.result["rejected_rows"] == [
        {"row": 6, "user_name": "svc-nokey", "problem": "credential: is required for a service_account identity"}
    ]
    assert {status for status, _ in items(app, run).values()} == {"skipped"} and len(items(app, run)) == 5
    assert count(app, identities_table) == 0
    assert all(name.startswith("scim-target:") for name in vault.names(app.engine))  # no credential stored
    assert run.result["upload_discarded"] is False and uploads.read(app.engine, upload_id)[0] == "people.csv"
    # The real run afterwards is not short of anything the dry run looked at.
    real = run_job(app, "identity.bulk_import", upload_id=upload_id, continue_on_error=True)
    assert real.result["created"] == 4


def test_a_bad_row_stops_the_import_there_and_the_rows_before_it_stay(
    app: Jobyard, targets: tuple[ScimServer, ScimServer], start_workers: Workers
) -> None:
    upload_id = upload(app, [ROWS[1], BAD, ROWS[2]])
    start_workers(1)
    run = run_job(app, "identity.bulk_import", upload_id=upload_id)
    assert run.status == RunStatus.FAILED and run.attempt_count == 1  # another attempt would fail the same way
    assert "row 3: svc-nokey" in (run.error or "") and "credential: is required" in (run.error or "")
    assert set(identities_by_name(app)) == {"svc-backup"}
    assert items(app, run) == {
        "row 2: svc-backup": ("ok", "created, provisioned"),
        "row 3: svc-nokey": ("failed", "RowRejected: credential: is required for a service_account identity"),
    }
    assert count(app, uploads_table) == 1  # kept: the operator may import it again, going on after errors


def test_with_continue_on_error_every_good_row_is_created(
    app: Jobyard, targets: tuple[ScimServer, ScimServer], start_workers: Workers
) -> None:
    bad_email = {"user_name": "bea", "identity_type": "human_interactive", "email": "not-an-address"}
    upload_id = upload(app, [ROWS[1], BAD, ROWS[2], bad_email])
    start_workers(1)
    run = run_job(app, "identity.bulk_import", upload_id=upload_id, continue_on_error=True)
    assert run.status == RunStatus.COMPLETED_WITH_WARNINGS
    assert (run.result["created"], run.result["failed"]) == (2, 2)
    assert set(identities_by_name(app)) == {"svc-backup", "ci-key"}
    assert items(app, run)["row 5: bea"] == ("failed", "RowRejected: email: is not an email address: 'not-an-address'")
    assert [r["row"] for r in run.result["rejected_rows"]] == [3, 5]
    assert run.result["upload_discarded"] is True
    assert not any(secret in recorded_text(app) for secret in SECRETS)


def test_importing_the_same_file_again_creates_nothing_more(
    app: Jobyard, targets: tuple[ScimServer, ScimServer], start_workers: Workers, tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(csv_bytes(ROWS[1:3]))
    start_workers(1)
    first = run_job(app, "identity.bulk_import", path=str(path))
    assert first.result["created"] == 2
    before = {name: row.credential_secret for name, row in identities_by_name(app).items()}
    again = run_job(app, "identity.bulk_import", path=str(path))
    assert again.status == RunStatus.COMPLETED and again.result["created"] == 0
    assert {status for status, _ in items(app, again).values()} == {"skipped"}  # remembered from the first run
    # Another file naming the same identities on other rows: each is found and left as it was.
    path.write_bytes(csv_bytes([ROWS[2], ROWS[1]]))
    shifted = run_job(app, "identity.bulk_import", path=str(path))
    assert (shifted.result["created"], shifted.result["unchanged"]) == (0, 2)
    assert items(app, shifted) == {
        "row 2: ci-key": ("ok", "already exists, unchanged"),
        "row 3: svc-backup": ("ok", "already exists, unchanged"),
    }
    assert {name: row.credential_secret for name, row in identities_by_name(app).items()} == before


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "upload_id, path: give exactly one"),
        ({"upload_id": 999, "path": "people.csv"}, "upload_id, path: give exactly one"),
        ({"upload_id": 999}, "upload_id: no upload 999"),
        # Relative: taken from the first import directory (a path outside them: tests/integration/test_import_dirs.py).
        ({"path": "people.csv"}, "/var/imports/people.csv does not exist"),
        (
            {"upload_id": "HEADER"},
            "upload_id: bad header: missing column(s): identity_type; unknown column(s): password",
        ),
    ],
)
def test_bad_parameters_fail_the_run_naming_the_field_and_create_nothing(
    app: Jobyard, start_workers: Workers, params: dict[str, Any], message: str
) -> None:
    params = dict(params)  # the parametrized dict is shared by both databases' runs
    if params.get("upload_id") == "TOO_MANY":
        rows = [{"user_name": f"key{i}", "identity_type": "api_key", "credential": "k"} for i in range(20_001)]
        params["upload_id"] = upload(app, rows, ["user_name", "identity_type", "credential"])
    if params.get("upload_id") == "HEADER":
        params["upload_id"] = upload(app, [{"user_name": "x", "password": "hunter2"}], ["user_name", "password"])
    start_workers(1)
    run = run_job(app, "identity.bulk_import", **params)
    assert run.status == RunStatus.FAILED and message in (run.error or ""), run.error
    assert run.attempt_count == 1 and count(app, identities_table) == 0
    assert "hunter2" not in recorded_text(app)


def test_an_upload_id_below_one_is_refused_when_the_run_is_requested(app: Jobyard) -> None:
    with pytest.raises(InvalidJobRequest) as refused:
        enqueue("identity.bulk_import", {"upload_id": 0}, app=app)
    assert [e.field for e in refused.value.errors] == ["upload_id"]
