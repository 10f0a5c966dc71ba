"""The schedules page: edit with every trigger kind, refusals that store nothing, enable/disable, run now."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from core.app import Jobyard
from core.crypto import is_sealed
from dashboard import operations
from dashboard.auth.roles import Principal, Role
from jobs.models import runs_table
from jobs.params import unseal_secrets
from scheduler import schedules, triggers
from tests.webclient import login, post

ROOT = operations.Actor(Principal("root", Role.ADMIN))


def _edit(kind: str, value: str, timezone: str = "UTC", **params: str) -> dict[str, str]:
    form = {"trigger_kind": kind, "trigger_value": value, "trigger_timezone": timezone}
    form.update({f"param.{name}": text for name, text in params.items()})
    return form


def test_the_page_lists_visible_schedules_and_offers_to_create_one(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    operations.set_schedule(app, ROOT, "demo.sleep", triggers.cron("0 5 * * *"), {"seconds": 2.0})
    client = login(web, "root")
    page = client.get("/schedules").get_data(as_text=True)
    assert 'data-schedule="demo.sleep"' in page and "cron 0 5 * * * (UTC)" in page and 'data-mode="scheduled"' in page
    assert 'name="disable"' in page and 'name="run-now"' in page and "/schedules/demo.sleep/edit" in page
    assert '<option value="demo.noop">' in page  # a type without a schedule can get one
    response = client.get("/schedules/new?type=demo.noop")
    assert response.status_code == 302 and response.headers["Location"] == "/schedules/demo.noop/edit"
    assert "Create the schedule of No-op" in client.get("/schedules/demo.noop/edit").get_data(as_text=True)


@pytest.mark.parametrize(
    ("form", "kind", "described"),
    [
        (_edit("cron", "30 2 * * 1", "Europe/Paris"), "cron", "cron 30 2 * * 1 (Europe/Paris)"),
        (_edit("interval", "900"), "interval", "every 900s"),
        (_edit("at", "2031-06-01T03:00", "Europe/Paris"), "at", "once at 2031-06-01T01:00:00+00:00"),
        (_edit("weekly", "mon,fri@03:00", "UTC"), "weekly", "weekly mon,fri@03:00 (UTC)"),
        (_edit("after", "demo.noop"), "after", "after demo.noop completes"),
    ],
    ids=["cron", "interval", "at", "weekly", "after"],
)
def test_a_schedule_is_saved_with_each_trigger_kind(
    app: Jobyard, web: Any, users: Any, form: dict[str, str], kind: str, described: str
) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    response = post(client, "/schedules/demo.sleep", {**form, "param.seconds": "2.5"})
    assert response.status_code == 302, response.get_data(as_text=True)[-2000:]
    row = schedules.get(app, "demo.sleep")
    assert (row.trigger.kind, row.trigger.describe(), row.mode, row.params) == (
        kind, described, "scheduled", {"seconds": 2.5},
    )  # fmt: skip
    assert row.changed_by == "root"
    edit_page = client.get("/schedules/demo.sleep/edit").get_data(as_text=True)
    assert f'<option value="{kind}" selected>' in edit_page and 'value="2.5"' in edit_page


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (_edit("cron", "61 * * * *"), "trigger_value: invalid cron expression"),
        (_edit("interval", "soon"), "an interval is a whole number of seconds"),
        (_edit("weekly", "someday@03:00"), "unknown weekday"),
        (_edit("after", "demo.sleep"), "a job type cannot run after itself"),
        (_edit("cron", "0 1 * * *", "Mars/Olympus"), "unknown timezone"),
        (_edit("cron", "0 1 * * *", seconds="long"), "seconds: must be a number"),
        (_edit("lunar", "full moon"), "trigger_kind: choose one of"),
    ],
    ids=["bad-cron", "bad-interval", "bad-weekly", "after-itself", "bad-timezone", "bad-param", "bad-kind"],
)
def test_bad_input_is_refused_with_400_and_nothing_changes(
    app: Jobyard, web: Any, users: Any, form: dict[str, str], message: str
) -> None:
    users.add("root", "admin")
    operations.set_schedule(app, ROOT, "demo.sleep", triggers.cron("0 5 * * *"), {"seconds": 2.0})
    before = schedules.get(app, "demo.sleep").as_dict()
    client = login(web, "root")
    response = post(client, "/schedules/demo.sleep", form)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert schedules.get(app, "demo.sleep").as_dict() == before


def test_a_stored_secret_is_kept_when_its_field_is_left_blank(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    assert post(client, "/schedules/test.secretive", _edit("interval", "60", token="s3cret")).status_code == 302
    edit_page = client.get("/schedules/test.secretive/edit").get_data(as_text=True)
    assert "s3cret" not in edit_page and "stored — leave blank to keep" in edit_page
    assert post(client, "/schedules/test.secretive", _edit("interval", "120", token="")).status_code == 302
    row = schedules.get(app, "test.secretive")
    assert row.trigger.spec["seconds"] == 120 and is_sealed(row.params["token"])
    run_id = operations.run_now(app, ROOT, "test.secretive")

    with app.engine.connect() as conn:
        params = conn.execute(select(runs_table.c.params).where(runs_table.c.id == run_id)).scalar_one()
    assert unseal_secrets(params, app.settings.secret_key) == {"token": "s3cret"}


def test_disable_enable_and_run_now(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    operations.set_schedule(app, ROOT, "demo.sleep", triggers.interval(3600), {"seconds": 0.5})
    client = login(web, "root")
    assert post(client, "/schedules/demo.sleep/disable").status_code == 302
    row = schedules.get(app, "demo.sleep")
    assert row.mode == "disabled" and row.next_run_at is None
    assert 'name="enable"' in client.get("/schedules").get_data(as_text=True)
    assert post(client, "/schedules/demo.sleep/enable").status_code == 302
    assert schedules.get(app, "demo.sleep").mode == "scheduled"

    response = post(client, "/schedules/demo.sleep/run-now", {"next": "/schedules"})
    assert response.status_code == 302 and response.headers["Location"] == "/schedules"
    with app.engine.connect() as conn:
        run = conn.execute(select(runs_table)).one()
    assert (run.type, run.params, run.schedule_id, run.triggered_by) == ("demo.sleep", {"seconds": 0.5}, row.id, "root")
    assert f"/runs/{run.id}" in client.get("/schedules").get_data(as_text=True)
    assert post(client, "/schedules/demo.noop/disable").status_code == 404  # it has no schedule


def test_only_who_may_configure_edits_and_a_viewer_cannot_act(app: Jobyard, web: Any, users: Any) -> None:
    users.add("olga", "operator", grants=["demo.sleep"])
    users.add("vera", "viewer")
    operations.set_schedule(app, ROOT, "demo.sleep", triggers.cron("0 5 * * *"), {"seconds": 1.0})
    before = schedules.get(app, "demo.sleep").as_dict()
    operator = login(web, "olga")
    page = operator.get("/schedules").get_data(as_text=True)
    assert 'data-schedule="demo.sleep"' in page and "/schedules/demo.sleep/edit" not in page
    assert 'name="run-now"' in page  # an operator may start a granted type
    assert operator.get("/schedules/demo.sleep/edit").status_code == 403
    assert post(operator, "/schedules/demo.sleep", _edit("interval", "60")).status_code == 403
    assert post(operator, "/schedules/demo.sleep/disable").status_code == 403
    viewer = login(web, "vera")
    assert 'name="run-now"' not in viewer.get("/schedules").get_data(as_text=True)
    for action in ("disable", "enable", "run-now"):
        assert post(viewer, f"/schedules/demo.sleep/{action}").status_code == 403, action
    assert schedules.get(app, "demo.sleep").as_dict() == before
