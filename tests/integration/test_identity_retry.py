"""Retry failed provisioning through real workers, against a real SCIM service (scim2-server) that is stopped
and started again.

Every failed run here failed for real (a target that refuses connections, an identity that does not exist).
A run spends five attempts and minutes of backoff before it is `failed`, and a retry waits minutes to hours:
to stand for that time passing, `failed_since` rewrites three columns of the run, and only those: its
``status`` (retrying -> failed: its attempts are used up), its ``finished_at`` (how long ago it failed) and,
for the series cap, its ``series`` (how many series it has used). Nothing else is set by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, update

from core import defaults
from core.app import Jobyard
from core.db import utcnow
from jobs.catalog.identity import identities
from jobs.catalog.identity.identities import NewIdentity
from jobs.catalog.identity.models import identities_table
from jobs.enqueue import enqueue
from jobs.models import run_logs_table, runs_table
from jobs.queries import items_of
from jobs.status import RunStatus
from tests.conftest import WorkerProcesses
from tests.helpers import attempts_of, run_of
from tests.integration.test_catalog_certificates import finished, run_job
from tests.scim import ScimServer

Workers = Callable[..., WorkerProcesses]
RETRY = "identity.retry_failed_provisioning"
GAPS_S = defaults.PROVISIONING_RETRY_GAPS_S
RETRYING = frozenset({RunStatus.RETRYING})


def managed(app: Jobyard, user_name: str) -> tuple[int, str]:
    """A managed shared credential: one Create domain user run on gws. Returns (identity id, run id)."""
    created = identities.create(app, NewIdentity(user_name, "shared_managed", platform="gws"), by="alice")
    return created.identity_id, created.runs["create_domain_user"]


def failed_since(app: Jobyard, run_id: str, *, seconds: float, series: int | None = None) -> None:
    """Time passing (see the module's docstring): the run failed `seconds` ago, in attempt series `series`."""
    values: dict[str, object] = {"status": RunStatus.FAILED.value, "finished_at": utcnow() - timedelta(seconds=seconds)}
    if series is not None:
        values["series"] = series
    with app.engine.begin() as conn:
        conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(**values))


def retry_lines(app: Jobyard, run_id: str) -> list[str]:
    with app.engine.connect() as conn:
        query = select(run_logs_table.c.message).where(
            run_logs_table.c.run_id == run_id, run_logs_table.c.message.like("retried by retry failed provisioning%")
        )
        return list(conn.execute(query).scalars())


def status_of(app: Jobyard, identity_id: int) -> str:
    with app.engine.connect() as conn:
        query = select(identities_table.c.status).where(identities_table.c.id == identity_id)
        return str(conn.execute(query).scalar_one())


def test_a_failed_run_is_retried_once_its_gap_has_passed_and_completes_when_the_target_is_back(
    app: Jobyard, scim_target: ScimServer, start_workers: Workers
) -> None:
    scim_target.register(app, "gws", "domain")
    scim_target.stop()  # the target is down
    identity_id, run_id = managed(app, "mailroom")
    start_workers(2)
    finished(app, run_id, statuses=RETRYING)  # a real failure: the target refuses the connection
    assert "RequestNetworkException" in (attempts_of(app, run_id)[0].error_class or "")

    failed_since(app, run_id, seconds=GAPS_S[0] - 60)
    early = run_job(app, RETRY)
    assert early.status == RunStatus.COMPLETED and early.result is not None
    assert (early.result["retried"], early.result["due"], early.result["waiting"]) == ([], [], 1)
    assert early.result["next_due_at"] is not None
    assert run_of(app, run_id).status == RunStatus.FAILED and run_of(app, run_id).series == 1

    scim_target.start()  # the target is back (same address, same token)
    failed_since(app, run_id, seconds=GAPS_S[0] + 1)
    # Two passes requested at once, with two workers: the run is retried once.
    requested = [enqueue(RETRY, {}, app=app) for _ in range(2)]
    passes = [finished(app, pass_id) for pass_id in requested]
    assert sorted(p.result["retried_count"] for p in passes if p.result is not None) == [0, 1]
    [first] = [p for p in passes if p.result is not None and p.result["retried"] == [run_id]]
    assert [(i["key"], i["status"]) for i in items_of(app.engine, first.id)] == [(f"{run_id}:1", "ok")]

    done = finished(app, run_id)
    assert done.status == RunStatus.COMPLETED and done.series == 2
    assert retry_lines(app, run_id) == ["retried by retry failed provisioning (attempt series 2)"]
    assert status_of(app, identity_id) == "provisioned" and len(scim_target.users(userName="mailroom")) == 1

    again = run_job(app, RETRY)  # nothing left to do
    assert again.result is not None and (again.result["failed"], again.result["retried"]) == (0, [])
    assert run_of(app, run_id).series == 2 and len(retry_lines(app, run_id)) == 1


def test_rejected_done_and_exhausted_runs_are_not_retried_and_a_dry_run_changes_nothing(
    app: Jobyard, scim_target: ScimServer, start_workers: Workers
) -> None:
    scim_target.register(app, "gws", "domain")
    start_workers(1)
    # Rejected: bad input, which another try cannot fix.
    unknown = run_job(app, "identity.create_domain_user", identity_id=9999, target="gws")
    rotation = run_job(app, "identity.rotate_credential", identity_id=9999)
    for rejected in (unknown, rotation):
        assert rejected.status == RunStatus.FAILED
        assert [a.outcome for a in attempts_of(app, rejected.id)] == ["rejected"]
        failed_since(app, rejected.id, seconds=GAPS_S[-1] + 1)
    # Two runs that failed for real on a target that was down.
    scim_target.stop()
    names = ("ada", "bob", "cy", "dee")
    (_, exhausted), (done_id, done_elsewhere), (_, due), (_, third) = (managed(app, name) for name in names)
    for run_id in (exhausted, done_elsewhere, due, third):
        finished(app, run_id, statuses=RETRYING)
        if run_id == exhausted:
            failed_since(app, run_id, seconds=GAPS_S[-1] + 1, series=len(GAPS_S) + 1)  # used every series
        elif run_id == third:  # its third series failed: the second gap has passed, not the third
            failed_since(app, run_id, seconds=GAPS_S[1] + 60, series=3)
        else:
            failed_since(app, run_id, seconds=GAPS_S[0] + 1)

    dry = run_job(app, RETRY, dry_run=True)
    assert dry.result is not None and dry.result["dry_run"] is True
    assert sorted(dry.result["due"]) == sorted([done_elsewhere, due]) and dry.result["retried"] == []
    assert sorted(dry.result["rejected"]) == sorted([unknown.id, rotation.id])
    assert dry.result["exhausted"] == [exhausted] and dry.result["waiting"] == 1
    assert {i["status"] for i in items_of(app.engine, dry.id)} == {"skipped"}
    for run_id in (exhausted, done_elsewhere, due, third, unknown.id, rotation.id):
        run = run_of(app, run_id)
        assert run.status == RunStatus.FAILED and retry_lines(app, run_id) == []

    scim_target.start()
    other = run_job(app, "identity.create_domain_user", identity_id=done_id, target="gws")
    assert other.status == RunStatus.COMPLETED and status_of(app, done_id) == "provisioned"

    real = run_job(app, RETRY)
    assert real.status == RunStatus.COMPLETED_WITH_WARNINGS and real.result is not None
    assert real.result["retried"] == [due] and real.result["done_elsewhere"] == [done_elsewhere]
    assert real.result["exhausted"] == real.result["exhausted_new"] == [exhausted] and real.result["waiting"] == 1
    with app.engine.connect() as conn:
        query = select(run_logs_table.c.message).where(
            run_logs_table.c.run_id == real.id, run_logs_table.c.level == "warning"
        )
        [warning] = conn.execute(query).scalars()
    assert f"used all {len(GAPS_S) + 1} attempt series and are not retried: {exhausted}" in warning
    items = {i["key"]: i for i in items_of(app.engine, real.id)}
    assert items[f"{exhausted}:{len(GAPS_S) + 1}"]["message"].startswith("not retried: all 6 attempt series failed")
    assert finished(app, due).status == RunStatus.COMPLETED
    for run_id in (exhausted, done_elsewhere, third, unknown.id, rotation.id):
        assert run_of(app, run_id).status == RunStatus.FAILED and retry_lines(app, run_id) == []

    # The exhausted run is reported once, not every minute.
    quiet = run_job(app, RETRY)
    assert quiet.status == RunStatus.COMPLETED and quiet.result is not None
    assert quiet.result["exhausted"] == [exhausted] and quiet.result["exhausted_new"] == []
    assert run_of(app, exhausted).series == len(GAPS_S) + 1 and retry_lines(app, exhausted) == []
