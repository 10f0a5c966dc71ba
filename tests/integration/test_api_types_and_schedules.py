"""Job types and schedules through the API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from core.app import Jobyard
from dashboard.auth import audit
from jobs.models import runs_table as runs
from scheduler.models import schedules_table as schedules

API = "/api/v1"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def schedule_count(app: Jobyard) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schedules)).scalar_one())


def fields_of(response: Any) -> set[str]:
    assert response.status_code == 422, response.get_data(as_text=True)
    return {e["field"] for e in response.json["errors"]}


def test_job_types_describe_their_parameters_and_default_schedule(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    listed = client.get(f"{API}/types", headers=bearer(token))
    assert listed.status_code == 200
    names = [t["name"] for t in listed.json["types"]]
    assert names == sorted(names) and {"demo.noop", "test.slow", "test.nightly"} <= set(names)
    slow = client.get(f"{API}/types/test.slow", headers=bearer(token)).json
    assert slow["max_attempts"] == 2 and slow["timeout_s"] == 1 and slow["exclusive"] is False
    assert slow["params_schema"]["required"] == ["seconds"]
    assert slow["params_schema"]["properties"]["seconds"]["type"] == "number"
    assert slow["default_schedule"] is None and slow["may_start"] is True
    nightly = client.get(f"{API}/types/test.nightly", headers=bearer(token)).json
    assert nightly["default_schedule"] == {
        "kind": "cron",
        "value": "0 2 * * *",
        "timezone": "Europe/Paris",
        "description": "cron 0 2 * * * (Europe/Paris)",
    }
    assert client.get(f"{API}/types/no.such_type", headers=bearer(token)).status_code == 404


def test_a_schedule_is_created_replaced_disabled_run_and_removed(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    path = f"{API}/schedules/test.nightly"
    assert client.get(path, headers=bearer(token)).status_code == 404
    body = {
        "trigger": {"kind": "weekly", "value": "mon,fri@07:30", "timezone": "Europe/Paris"},
        "params": {"label": "weekly"},
        "report_to": ["ops@example.org"],
    }
    created = client.put(path, json=body, headers=bearer(token))
    assert created.status_code == 201 and created.headers["Location"] == path
    assert created.json["mode"] == "scheduled" and created.json["params"] == {"label": "weekly"}
    assert created.json["trigger"]["value"] == "mon,fri@07:30" and created.json["next_run_at"]
    assert created.json["report_to"] == ["ops@example.org"]
    replaced = client.put(path, json={"trigger": {"kind": "interval", "value": 3600}}, headers=bearer(token))
    assert replaced.status_code == 200 and replaced.json["trigger"]["value"] == "3600"
    assert replaced.json["report_to"] == ["ops@example.org"]  # left out: unchanged
    assert [s["type"] for s in client.get(f"{API}/schedules", headers=bearer(token)).json["schedules"]] == [
        "test.nightly"
    ]
    disabled = client.post(f"{path}/disable", headers=bearer(token))
    assert disabled.status_code == 200 and disabled.json["mode"] == "disabled" and disabled.json["next_run_at"] is None
    enabled = client.post(f"{path}/enable", json={}, headers=bearer(token))
    assert enabled.json["mode"] == "scheduled" and enabled.json["next_run_at"]
    ran = client.post(f"{path}/run-now", json={"params": {"label": "by hand"}}, headers=bearer(token))
    assert ran.status_code == 201
    detail = client.get(ran.headers["Location"], headers=bearer(token)).json
    assert detail["type"] == "test.nightly" and detail["params"] == {"label": "by hand"}
    removed = client.delete(path, headers=bearer(token))
    assert removed.status_code == 200 and removed.json == {"type": "test.nightly", "deleted": True}
    assert client.get(path, headers=bearer(token)).status_code == 404
    assert client.delete(path, headers=bearer(token)).status_code == 404
    actions = [e.action for e in audit.entries(app.engine, actor="token:svc")]
    assert {"schedule_set", "schedule_disable", "schedule_enable", "run_now", "schedule_delete"} <= set(actions)


def test_every_bad_field_of_a_schedule_is_named_and_nothing_is_stored(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    path = f"{API}/schedules/test.nightly"
    body = {"trigger": {"kind": "cron", "value": "61 * * * *"}, "params": {"label": 3}, "report_to": ["nobody"]}
    assert fields_of(client.put(path, json=body, headers=bearer(token))) == {
        "trigger.value",
        "params.label",
        "report_to",
    }
    for trigger, field in (
        ({"kind": "hourly", "value": "1"}, "trigger.kind"),
        ({"kind": "cron", "value": "0 3 * * *", "timezone": "America"}, "trigger.timezone"),
        ({"kind": "cron", "value": "0 3 * * *", "timezone": "Mars/Olympus"}, "trigger.timezone"),
        ({"kind": "cron", "value": "0 0 30 2 *"}, "trigger.value"),
        ({"kind": "interval", "value": 10**20}, "trigger.value"),
        ({"kind": "at", "value": "9999-12-31T23:59:59-05:00"}, "trigger.value"),
        ({"kind": "after", "value": "test.nightly"}, "trigger.value"),
        ({"kind": "after", "value": "no.such_type"}, "trigger.value"),
        ({"kind": "interval"}, "trigger.value"),
    ):
        assert fields_of(client.put(path, json={"trigger": trigger}, headers=bearer(token))) == {field}, trigger
    assert fields_of(client.put(path, json={"trigger": {"kind": "interval", "value": 60}, "mode": "x"},
                                headers=bearer(token))) == {"mode"}  # fmt: skip
    assert schedule_count(app) == 0


def test_run_now_names_bad_parameters(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    response = client.post(
        f"{API}/schedules/test.slow/run-now", json={"params": {"seconds": "x"}}, headers=bearer(token)
    )
    assert fields_of(response) == {"params.seconds"}
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(runs)).scalar_one() == 0
    assert client.post(f"{API}/schedules/no.such_type/run-now", headers=bearer(token)).status_code == 404


def test_enable_or_disable_without_a_schedule_is_404(app: Jobyard, web: Any, users: Any) -> None:
    token, client = users.token("svc", "admin"), web.test_client()
    assert client.post(f"{API}/schedules/test.slow/enable", headers=bearer(token)).status_code == 404
    assert client.post(f"{API}/schedules/no.such_type/disable", headers=bearer(token)).status_code == 404
