"""The job types page: the list, Start (parameters, confirm, refusal naming the field), and Configure."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select, update

from core.app import Jobyard
from dashboard.auth.audit import entries
from jobs.enqueue import EnqueueRequest, enqueue_many
from jobs.models import runs_table
from jobs.queries import run_detail
from jobs.type_settings import report_recipients, type_settings
from scheduler import schedules
from scheduler.schedules import ScheduleNotFound
from tests.webclient import login, post


def _run_count(app: Jobyard) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(runs_table)).scalar_one())


def _schedule_or_none(app: Jobyard, type_name: str) -> schedules.ScheduleRow | None:
    try:
        return schedules.get(app, type_name)
    except ScheduleNotFound:
        return None


def test_the_page_lists_each_type_with_its_plan_last_run_and_actions(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    [done, failed] = enqueue_many(
        [EnqueueRequest("demo.noop", triggered_by="root"), EnqueueRequest("demo.fail", triggered_by="root")], app=app
    )
    with app.engine.begin() as conn:
        conn.execute(update(runs_table).where(runs_table.c.id == done).values(status="completed"))
        conn.execute(update(runs_table).where(runs_table.c.id == failed).values(status="failed"))
    page = login(web, "root").get("/").get_data(as_text=True)
    assert "Fail, then succeed" in page and "Raises on its first" in page
    assert 'data-planning="manual only"' in page
    assert f'data-run-id="{done}"' in page and 'data-status="completed"' in page
    assert f'data-run-id="{failed}"' in page and 'data-status="failed"' in page
    assert 'data-open-dialog="start-demo.fail"' in page and 'name="times"' in page
    assert "/types/demo.fail/configure" in page and "/runs?type=demo.fail" in page
    assert "Start Fail, then succeed?" in page  # the confirm step of the dialog


def test_start_creates_the_run_audits_it_and_goes_to_its_page(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    response = post(client, "/types/demo.fail/start", {"times": "2", "yes": "yes"})
    assert response.status_code == 302
    match = re.fullmatch(r"/runs/([0-9a-f]{32})", response.headers["Location"])
    assert match, response.headers["Location"]
    run_id = match.group(1)
    detail = run_detail(app.engine, run_id)
    assert detail is not None
    assert detail["params"] == {"times": 2} and detail["triggered_by"] == "root" and detail["status"] == "pending"
    [entry] = entries(app.engine, action="start")
    assert entry.actor == "root" and entry.target == run_id
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Fail, then succeed started" in page and f'href="/runs/{run_id}"' in page


def test_bad_parameters_are_refused_naming_the_field_and_nothing_is_created(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    response = post(client, "/types/demo.fail/start", {"times": "abc"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "times: must be an integer" in page
    assert "data-autoopen" in page and 'value="abc"' in page  # the dialog opens again with what was typed
    response = post(client, "/types/test.touch/start", {})
    assert response.status_code == 400 and "path: is required" in response.get_data(as_text=True)
    assert _run_count(app) == 0


def test_secret_parameters_are_password_inputs_and_never_shown(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    page = client.get("/").get_data(as_text=True)
    assert re.search(r'name="token" type="password"', page)
    response = post(client, "/types/test.secretive/start", {"token": "hunter2-very-secret"})
    assert response.status_code == 302
    run_page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "•••" in run_page and "hunter2-very-secret" not in run_page


def test_an_operator_sees_and_starts_only_granted_types(app: Jobyard, web: Any, users: Any) -> None:
    users.add("olga", "operator", grants=["demo.fail"])
    client = login(web, "olga")
    page = client.get("/").get_data(as_text=True)
    assert 'data-type="demo.fail"' in page and 'data-type="demo.noop"' not in page
    assert "/types/demo.fail/configure" not in page
    assert client.get("/types/demo.fail/configure").status_code == 403
    assert post(client, "/types/demo.noop/start", {}).status_code == 404
    assert post(client, "/types/demo.fail/start", {"times": "0"}).status_code == 302
    assert _run_count(app) == 1


def test_a_viewer_sees_no_start_button_and_cannot_start(app: Jobyard, web: Any, users: Any) -> None:
    users.add("vera", "viewer")
    client = login(web, "vera")
    page = client.get("/").get_data(as_text=True)
    assert 'data-type="demo.fail"' in page
    assert 'name="start"' not in page and "<dialog" not in page and "/configure" not in page
    assert post(client, "/types/demo.fail/start", {"times": "1"}).status_code == 403
    assert post(client, "/types/demo.fail/configuration", {"mode": "disabled"}).status_code == 403
    assert _run_count(app) == 0


def test_configure_sets_the_plan_and_the_report_recipients(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    assert "Send report" in client.get("/types/demo.noop/configure").get_data(as_text=True)
    form = {
        "mode": "scheduled",
        "trigger_kind": "cron",
        "trigger_value": "0 4 * * *",
        "trigger_timezone": "Europe/Paris",
        "send_report": "on",
        "report_to": "ops@example.org, lead@example.org",
    }
    assert post(client, "/types/demo.noop/configuration", form).status_code == 302
    row = schedules.get(app, "demo.noop")
    assert (row.mode, row.trigger.kind, row.trigger.spec["cron"], row.trigger.timezone) == (
        "scheduled", "cron", "0 4 * * *", "Europe/Paris",
    )  # fmt: skip
    declared = app.registry.get("demo.noop")
    assert declared is not None
    assert report_recipients(app.engine, declared) == ("lead@example.org", "ops@example.org")

    disabled = {**form, "mode": "disabled", "send_report": ""}
    assert post(client, "/types/demo.noop/configuration", disabled).status_code == 302
    row = schedules.get(app, "demo.noop")
    assert row.mode == "disabled" and row.next_run_at is None
    assert report_recipients(app.engine, declared) == ()

    nightly = {"mode": "automatic", "trigger_kind": "cron", "trigger_value": "", "report_to": ""}
    assert post(client, "/types/test.nightly/configuration", nightly).status_code == 302
    assert schedules.get(app, "test.nightly").mode == "automatic"
    actions = [e.action for e in entries(app.engine, actor="root")]
    assert "schedule_set" in actions and "schedule_disable" in actions and "schedule_enable" in actions


def test_configure_refuses_bad_input_and_stores_nothing(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    good = {"mode": "scheduled", "trigger_kind": "cron", "trigger_value": "0 4 * * *", "report_to": ""}
    cases = [
        ({**good, "trigger_value": "not a cron"}, "trigger_value: invalid cron expression"),
        ({**good, "trigger_timezone": "Mars/Olympus"}, "unknown timezone"),
        ({**good, "send_report": "on", "report_to": "nobody"}, "report_to: not email addresses: nobody"),
        ({**good, "mode": "automatic"}, "mode: this job type declares no automatic plan"),
        ({**good, "mode": "sometimes"}, "mode: choose one of"),
    ]
    for form, message in cases:
        response = post(client, "/types/demo.noop/configuration", form)
        assert response.status_code == 400, form
        assert message in response.get_data(as_text=True), message
    assert _schedule_or_none(app, "demo.noop") is None
    with app.engine.connect() as conn:
        assert conn.execute(select(type_settings)).first() is None


def test_saving_an_unchanged_configuration_writes_nothing(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    form = {
        "mode": "scheduled", "trigger_kind": "interval", "trigger_value": "600",
        "send_report": "on", "report_to": "reports@example.org",  # the declared recipients
    }  # fmt: skip
    assert post(client, "/types/test.reported/configuration", form).status_code == 302
    before = schedules.get(app, "test.reported")
    assert post(client, "/types/test.reported/configuration", form).status_code == 302
    after = schedules.get(app, "test.reported")
    assert (after.trigger.spec, after.changed_at) == (before.trigger.spec, before.changed_at)  # the cadence stays
    with app.engine.connect() as conn:
        assert conn.execute(select(type_settings)).first() is None
    manual = {"mode": "disabled", "trigger_kind": "cron", "trigger_value": "0 1 * * *"}
    assert post(client, "/types/demo.noop/configuration", manual).status_code == 302
    assert _schedule_or_none(app, "demo.noop") is None  # "manual starts only" needs no schedule
