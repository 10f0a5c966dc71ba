"""Directory sync and Joiner/Mover/Leaver automation against real SCIM services (scim2-server), through real
workers: a CSV or SCIM source, the local directory copy, JML runs, identities provisioned, moved and disabled."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from core.app import Jobyard
from jobs.catalog.identity.directory_sources import read_scim
from jobs.catalog.identity.models import directory_groups_table, directory_users_table, identities_table
from jobs.models import Run, runs_table
from jobs.status import RunStatus
from tests.conftest import WorkerProcesses
from tests.integration.test_catalog_certificates import count, finished, run_job
from tests.scim import ScimServer

Workers = Callable[..., WorkerProcesses]
COLUMNS = ["user_name", "external_id", "display_name", "email", "department", "title", "active", "groups"]
PEOPLE = [
    {"user_name": "ada", "external_id": "E1", "display_name": "Ada Lovelace", "email": "ada@example.org",
     "department": "Research", "title": "Analyst", "groups": "staff;research"},
    {"user_name": "bob", "external_id": "E2", "display_name": "Bob Babbage", "email": "bob@example.org",
     "department": "Engineering", "title": "Engineer", "groups": "staff"},
    {"user_name": "cy", "external_id": "E3", "display_name": "Cy Former", "active": "false", "groups": "staff"},
]  # fmt: skip


def write_csv(path: Path, people: list[dict[str, str]], columns: list[str] = COLUMNS) -> str:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        writer.writerows(people)
    return str(path)


def changed(people: list[dict[str, str]], user_name: str, **values: str) -> list[dict[str, str]]:
    return [{**p, **values} if p["user_name"] == user_name else p for p in people]


def identity(app: Jobyard, user_name: str) -> Any:
    with app.engine.connect() as conn:
        return conn.execute(select(identities_table).where(identities_table.c.user_name == user_name)).first()


def jml_runs(app: Jobyard) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(runs_table.c.type == "identity.jml")).scalar_one())


def settled(app: Jobyard, sync: Run) -> list[Run]:
    """The sync's JML runs, once finished, and the provisioning runs they started, once finished too."""
    assert sync.status == RunStatus.COMPLETED, sync.error
    runs = [finished(app, run_id) for run_id in sync.result["jml_runs"]]
    for run in runs:
        assert run.status == RunStatus.COMPLETED, run.error
        for run_id in run.result["runs"].values():
            assert finished(app, run_id).status == RunStatus.COMPLETED
    return runs


@pytest.fixture
def targets(app: Jobyard, scim_target: ScimServer, scim_idp: ScimServer) -> tuple[ScimServer, ScimServer]:
    scim_target.register(app, "gws", "domain")
    scim_idp.register(app, "sso", "idp")
    return scim_target, scim_idp


def sync(app: Jobyard, path: str, **params: Any) -> Run:
    return run_job(app, "identity.directory_sync", path=path, platform="gws", **params)


def test_joiners_from_a_csv_get_identities_provisioned_and_a_second_sync_changes_nothing(
    app: Jobyard, targets: tuple[ScimServer, ScimServer], start_workers: Workers, tmp_path: Path
) -> None:
    domain, idp = targets
    path = write_csv(tmp_path / "hr.csv", PEOPLE)
    start_workers(1)
    first = sync(app, path)
    assert first.result["events"] == {"joiner": 2, "mover": 0, "leaver": 0}  # cy is inactive: no joiner
    assert (first.result["users_seen"], first.result["users_new"], first.result["groups_new"]) == (3, 3, 2)
    runs = settled(app, first)
    assert {r.result["user_name"]: r.result["action"] for r in runs} == {"ada": "created", "bob": "created"}
    ada = identity(app, "ada")
    assert (ada.status, ada.identity_type, ada.source) == ("provisioned", "human_interactive", f"directory:csv:{path}")
    assert (ada.department, ada.title, ada.email) == ("Research", "Analyst", "ada@example.org")
    assert identity(app, "cy") is None
    assert {u.user_name for u in domain.users()} == {u.user_name for u in idp.users()} == {"ada", "bob"}
    with app.engine.connect() as conn:
        rows = {r.user_name: r for r in conn.execute(select(directory_users_table))}
        groups = {g.display_name: g.members for g in conn.execute(select(directory_groups_table))}
    assert rows["ada"].source == f"csv:{path}" and rows["ada"].groups == ["research", "staff"]
    assert rows["cy"].active is False and groups == {"research": ["E1"], "staff": ["E1", "E2", "E3"]}

    again = sync(app, path)
    assert again.status == RunStatus.COMPLETED
    assert again.result["events"] == {"joiner": 0, "mover": 0, "leaver": 0} and again.result["jml_runs"] == []
    assert (again.result["users_new"], again.result["users_changed"], again.result["groups_changed"]) == (0, 0, 0)
    assert jml_runs(app) == 2 and len(domain.users()) == 2


def test_a_mover_gets_its_new_title_on_every_account_and_a_leaver_is_disabled(
    app: Jobyard, targets: tuple[ScimServer, ScimServer], start_workers: Workers, tmp_path: Path
) -> None:
    domain, idp = targets
    path = tmp_path / "hr.csv"
    start_workers(1)
    joiners = {run.result["user_name"]: run for run in settled(app, sync(app, write_csv(path, PEOPLE)))}

    moved = sync(app, write_csv(path, changed(PEOPLE, "ada", title="Lead Analyst")))
    assert moved.result["events"] == {"joiner": 0, "mover": 1, "leaver": 0}
    assert moved.result["event_list"] == [{"event": "mover", "user_name": "ada", "changed": ["title"]}]
    [mover] = settled(app, moved)
    assert (mover.result["action"], mover.result["changed"]) == ("updated", ["title"])
    assert len(mover.result["accounts"]) == 2
    assert identity(app, "ada").title == "Lead Analyst"
    assert domain.users(userName="ada")[0].title == idp.users(userName="ada")[0].title == "Lead Analyst"
    # The same event again changes nothing more.
    replay = run_job(app, "identity.jml", **{k: v for k, v in mover.params.items()})
    assert (replay.result["action"], replay.result["accounts"]) == ("unchanged", [])

    left = sync(
        app, write_csv(path, [p for p in changed(PEOPLE, "ada", title="Lead Analyst") if p["user_name"] != "bob"])
    )
    assert left.result["events"] == {"joiner": 0, "mover": 0, "leaver": 1} and left.result["users_removed"] == 1
    [leaver] = settled(app, left)
    assert leaver.result["action"] == "disabled"
    assert identity(app, "bob").disabled is True and identity(app, "ada").disabled is False
    assert domain.users(userName="bob")[0].active is False and idp.users(userName="bob")[0].active is False
    with app.engine.connect() as conn:
        removed = conn.execute(
            select(directory_users_table.c.removed_at).where(directory_users_table.c.user_name == "bob")
        )
        assert removed.scalar_one() is not None
    replay = run_job(app, "identity.jml", **{k: v for k, v in leaver.params.items()})
    assert (replay.result["action"], replay.result["accounts"]) == ("already disabled, unchanged", [])
    # Events that run late, after a later sync, are superseded: they do not undo what came after them.
    late = run_job(app, "identity.jml", **joiners["bob"].params)
    assert late.result["action"] == "superseded: the user has left since" and identity(app, "bob").disabled is True
    late = run_job(app, "identity.jml", **joiners["ada"].params | {"event": "mover"})
    assert late.result["action"] == "superseded: the user's attributes have changed again since"
    assert identity(app, "ada").title == "Lead Analyst"

    # Bob comes back, as he was: a joiner again, which re-enables his identity and accounts.
    back = sync(app, write_csv(path, changed(PEOPLE, "ada", title="Lead Analyst")))
    assert back.result["events"] == {"joiner": 1, "mover": 0, "leaver": 0}
    [joiner] = settled(app, back)
    assert joiner.result["action"] == "re-enabled" and identity(app, "bob").disabled is False
    assert domain.users(userName="bob")[0].active is True and idp.users(userName="bob")[0].active is True
    replay = run_job(app, "identity.jml", **{k: v for k, v in joiner.params.items()})
    assert replay.result["action"] == "already enabled, unchanged"
    assert count(app, identities_table) == 2


def test_an_inactive_user_is_a_leaver_and_a_dry_run_writes_and_starts_nothing(
    app: Jobyard, targets: tuple[ScimServer, ScimServer], start_workers: Workers, tmp_path: Path
) -> None:
    path = tmp_path / "hr.csv"
    start_workers(1)
    dry = sync(app, write_csv(path, PEOPLE), dry_run=True)
    assert dry.status == RunStatus.COMPLETED and dry.result["events"]["joiner"] == 2
    assert [e["user_name"] for e in dry.result["event_list"]] == ["ada", "bob"]
    assert count(app, directory_users_table) == 0 and count(app, directory_groups_table) == 0
    assert jml_runs(app) == 0 and count(app, identities_table) == 0

    settled(app, sync(app, str(path)))
    dry = sync(app, write_csv(path, changed(PEOPLE, "ada", active="false")), dry_run=True)
    assert dry.result["event_list"] == [{"event": "leaver", "user_name": "ada"}] and jml_runs(app) == 2
    left = sync(app, str(path))
    [leaver] = settled(app, left)
    assert leaver.result["action"] == "disabled" and identity(app, "ada").disabled is True


def test_a_replayed_sync_never_fires_an_event_twice(
    app: Jobyard, targets: tuple[ScimServer, ScimServer], start_workers: Workers, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "hr.csv", PEOPLE)
    start_workers(1)
    first = sync(app, path)
    settled(app, first)
    # The local copy is lost (restored from an old backup, say): the same joiners come out of the next sync…
    with app.engine.begin() as conn:
        conn.execute(delete(directory_users_table))
        conn.execute(delete(directory_groups_table))
    replayed = sync(app, path)
    assert replayed.result["events"]["joiner"] == 2
    # …under the same idempotency keys, so they are the runs already made, not new ones.
    assert sorted(replayed.result["jml_runs"]) == sorted(first.result["jml_runs"]) and jml_runs(app) == 2


def test_a_sync_that_would_make_too_many_leavers_is_refused(
    app: Jobyard, targets: tuple[ScimServer, ScimServer], start_workers: Workers, tmp_path: Path
) -> None:
    people = [{"user_name": f"user{i}", "display_name": f"User {i}"} for i in range(8)]
    path = tmp_path / "hr.csv"
    start_workers(1)
    settled(app, sync(app, write_csv(path, people)))
    truncated = write_csv(path, people[:1])
    refused = sync(app, truncated)
    assert refused.status == RunStatus.FAILED and "max_leavers" in (refused.error or "")
    assert "7 of 8" in (refused.error or "")
    with app.engine.connect() as conn:
        assert (
            conn.execute(select(func.count()).where(directory_users_table.c.removed_at.is_not(None))).scalar_one() == 0
        )
    assert jml_runs(app) == 8
    dry = sync(app, truncated, dry_run=True)  # a dry run shows what the sync would do, and warns
    assert dry.status == RunStatus.COMPLETED_WITH_WARNINGS and dry.result["leaver_limit_exceeded"] is True
    assert dry.result["events"]["leaver"] == 7 and dry.result["leaver_limit"] == 5
    allowed = sync(app, truncated, max_leavers=7)
    assert allowed.result["events"]["leaver"] == 7 and allowed.result["leaver_limit"] == 7
    assert all(r.result["action"] == "disabled" for r in settled(app, allowed))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "target, path: give exactly one"),
        ({"target": "hr", "path": "x.csv"}, "target, path: give exactly one"),
        ({"target": "nowhere"}, "target: no SCIM target named 'nowhere'"),
        # Relative: taken from the first import directory (a path outside them: tests/integration/test_import_dirs.py).
        ({"path": "relative.csv"}, "/var/imports/relative.csv does not exist"),
        ({"path": "HEADER", "platform": "sso"}, "platform: no domain target named 'sso'"),
        ({"path": "HEADER", "idp_target": "gws"}, "idp_target: no idp target named 'gws'"),
        ({"path": "HEADER"}, "missing column(s): user_name; unknown column(s): 2"),
        ({"path": "ROWS"}, "line 3: active must be true or false, got 'maybe'"),
    ],
)
def test_bad_parameters_fail_the_run_naming_the_field_and_change_nothing(
    app: Jobyard, targets: tuple[ScimServer, ScimServer], start_workers: Workers, tmp_path: Path,
    params: dict[str, Any], message: str,
) -> None:  # fmt: skip
    params = dict(params)  # the parametrized dict is shared by both databases' runs
    if params.get("path") == "HEADER":
        params["path"] = write_csv(tmp_path / "bad.csv", [{"login": "ada", "shoe_size": "9"}], ["login", "shoe_size"])
    elif params.get("path") == "ROWS":
        rows = [{"user_name": "ada"}, {"user_name": "bob", "active": "maybe"}]
        params["path"] = write_csv(tmp_path / "bad.csv", rows, ["user_name", "active"])
    start_workers(1)
    run = run_job(app, "identity.directory_sync", **params)
    assert run.status == RunStatus.FAILED and message in (run.error or ""), run.error
    assert run.attempt_count == 1  # refused at once, not retried
    assert count(app, directory_users_table) == 0 and jml_runs(app) == 0


def test_jml_refuses_an_unknown_event_and_a_joiner_it_cannot_provision(app: Jobyard, start_workers: Workers) -> None:
    start_workers(1)
    bad = run_job(app, "identity.jml", event="transfer", source="csv:/x", user_name="ada")
    assert bad.status == RunStatus.FAILED and "event: must be one of joiner, mover, leaver" in (bad.error or "")
    # No identity provider target is configured: the plan is impossible, the field errors say why.
    joiner = run_job(app, "identity.jml", event="joiner", source="csv:/x", user_name="ada", attributes={})
    assert joiner.status == RunStatus.FAILED and "identity_type: a human interactive identity needs" in (
        joiner.error or ""
    )
    assert joiner.attempt_count == 1 and count(app, identities_table) == 0


def test_a_scim_source_is_read_a_page_at_a_time_with_department_and_groups(
    app: Jobyard, scim_target: ScimServer, scim_idp: ScimServer, start_workers: Workers
) -> None:
    scim_target.register(app, "gws", "domain")
    scim_idp.register(app, "hr", "idp")  # the identity provider is the source of record
    with scim_idp.client() as scim:
        model = scim.get_resource_model("User")
        enterprise = model.get_extension_model("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        made = {}
        for i in range(5):
            emails = [{"value": f"other{i}@example.org"}, {"value": f"user{i}@example.org", "primary": True}]
            user = model(user_name=f"user{i}", display_name=f"User {i}", title="Clerk", active=i != 4, emails=emails)
            user[enterprise] = enterprise(department="Finance")
            made[i] = scim.create(user)
        made[5] = scim.create(model(user_name="user5", external_id="HR-5"))
        group = scim.get_resource_model("Group")
        scim.create(group(display_name="finance", members=[{"value": made[i].id, "type": "User"} for i in (0, 1, 5)]))
    snapshot = read_scim(app.engine, "hr", page_size=2, check_cancelled=lambda: None)
    assert sorted(snapshot.users) == ["HR-5", "user0", "user1", "user2", "user3", "user4"]
    user0 = snapshot.users["user0"]
    assert (user0.email, user0.department, user0.title, user0.groups) == (
        "user0@example.org",
        "Finance",
        "Clerk",
        ("finance",),
    )
    assert snapshot.users["user4"].active is False and snapshot.users["HR-5"].user_name == "user5"
    assert snapshot.groups["finance"].members == ("HR-5", "user0", "user1")

    start_workers(1)
    first = run_job(app, "identity.directory_sync", target="hr", platform="gws")
    assert first.result["source"] == "scim:hr" and first.result["events"]["joiner"] == 5
    assert first.result["users_seen"] == 6 and first.result["groups_seen"] == 1
    settled(app, first)
    assert identity(app, "user0").department == "Finance" and len(scim_target.users()) == 5
    again = run_job(app, "identity.directory_sync", target="hr", platform="gws")
    assert again.result["events"] == {"joiner": 0, "mover": 0, "leaver": 0} and jml_runs(app) == 5
