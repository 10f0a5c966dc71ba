"""Role scoping in the service layer that both the pages and the API go through."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from core.app import Jobyard
from dashboard import operations as ops
from dashboard.auth.models import audit_table
from dashboard.auth.roles import Principal, Role
from jobs.models import runs_table
from jobs.run_search import RunFilter
from jobs.status import RunStatus

ADMIN = ops.Actor(Principal("root", Role.ADMIN))
ALICE = ops.Actor(Principal("alice", Role.OPERATOR, granted_types=frozenset({"test.follower", "test.reported"})))
BOB = ops.Actor(Principal("bob", Role.OPERATOR, granted_types=frozenset({"test.follower"})))
SALES = ops.Actor(Principal("sam", Role.DOMAIN_ADMIN, domain="sales"))
VIEWER = ops.Actor(Principal("vera", Role.VIEWER))


def _fail(app: Jobyard, run_id: str) -> None:
    with app.engine.begin() as conn:
        conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(status=RunStatus.FAILED, error="x"))


def _ids(app: Jobyard, actor: ops.Actor) -> set[str]:
    return {r["id"] for r in ops.list_runs(app, actor.principal, RunFilter()).runs}


def test_an_operator_sees_and_acts_only_on_their_own_runs(app: Jobyard) -> None:
    mine = ops.start(app, ALICE, "test.follower", {})
    theirs = ops.start(app, BOB, "test.follower", {})
    _fail(app, mine)
    _fail(app, theirs)
    assert _ids(app, ALICE) == {mine}
    assert ops.run(app, ALICE.principal, mine)["id"] == mine
    for action in (
        lambda: ops.run(app, ALICE.principal, theirs),
        lambda: ops.retry(app, ALICE, theirs),
        lambda: ops.cancel(app, ALICE, theirs),
        lambda: ops.run_again(app, ALICE, theirs),
        lambda: ops.notify(app, ALICE, theirs, ["a@example.org"]),
    ):
        with pytest.raises(ops.NotFound):
            action()
    ops.retry(app, ALICE, mine)
    assert ops.run(app, ADMIN.principal, mine)["status"] == RunStatus.PENDING
    assert ops.run(app, ADMIN.principal, theirs)["status"] == RunStatus.FAILED


def test_an_operator_starts_only_granted_types(app: Jobyard) -> None:
    assert {t.name for t in ops.visible_types(app, BOB.principal)} == {"test.follower"}
    with pytest.raises(ops.NotFound):
        ops.start(app, BOB, "test.reported", {})
    with pytest.raises(ops.Forbidden):
        ops.set_schedule_enabled(app, ALICE, "test.follower", False)


def test_a_domain_admin_sees_their_domain_only(app: Jobyard) -> None:
    sales = ops.start(app, ADMIN, "test.sales_sync", {})
    hr = ops.start(app, ADMIN, "test.hr_sync", {})
    installation = ops.start(app, ADMIN, "test.follower", {})
    assert _ids(app, SALES) == {sales}
    assert {t.name for t in ops.visible_types(app, SALES.principal)} == {"test.sales_sync"}
    with pytest.raises(ops.NotFound):
        ops.cancel(app, SALES, hr)
    with pytest.raises(ops.NotFound):
        ops.run(app, SALES.principal, installation)
    assert ops.cancel(app, SALES, sales) == "cancelled"
    own = ops.start(app, SALES, "test.sales_sync", {})
    assert ops.run(app, SALES.principal, own)["domain"] == "sales"


def test_a_viewer_reads_everything_and_changes_nothing(app: Jobyard) -> None:
    run_id = ops.start(app, ADMIN, "test.follower", {})
    _fail(app, run_id)
    assert run_id in _ids(app, VIEWER)
    for action in (
        lambda: ops.retry(app, VIEWER, run_id),
        lambda: ops.cancel(app, VIEWER, run_id),
        lambda: ops.run_again(app, VIEWER, run_id),
        lambda: ops.start(app, VIEWER, "test.follower", {}),
        lambda: ops.run_now(app, VIEWER, "test.follower"),
    ):
        with pytest.raises(ops.Forbidden):
            action()
    assert ops.run(app, ADMIN.principal, run_id)["status"] == RunStatus.FAILED


def test_actions_are_audited_with_who_and_what(app: Jobyard) -> None:
    run_id = ops.start(app, ADMIN, "test.follower", {})
    _fail(app, run_id)
    ops.retry(app, ADMIN, run_id)
    ops.cancel(app, ADMIN, run_id)
    with app.engine.connect() as conn:
        entries: list[Any] = conn.execute(audit_table.select().order_by(audit_table.c.id)).all()
    assert [(e.actor, e.action, e.target) for e in entries] == [
        ("root", "start", run_id),
        ("root", "retry", run_id),
        ("root", "cancel", run_id),
    ]


def test_a_conflicting_action_changes_nothing(app: Jobyard) -> None:
    run_id = ops.start(app, ADMIN, "test.follower", {})
    with pytest.raises(ops.Conflict, match="is pending; only failed runs can be retried"):
        ops.retry(app, ADMIN, run_id)
    assert ops.run(app, ADMIN.principal, run_id)["status"] == RunStatus.PENDING
    ops.cancel(app, ADMIN, run_id)
    with pytest.raises(ops.Conflict, match="a cancelled run cannot be retried; Run again starts a new run"):
        ops.retry(app, ADMIN, run_id)
    assert ops.run(app, ADMIN.principal, run_id)["status"] == RunStatus.CANCELLED
