"""The run page: what it shows, who sees it, its actions, and the live tail's JSON."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from core.app import Jobyard
from dashboard.auth.audit import entries
from jobs.enqueue import EnqueueRequest, enqueue_many
from jobs.models import attempts_table, run_logs_table, runs_table
from jobs.queries import run_items
from tests.conftest import WorkerProcesses, wait_for
from tests.webclient import login, post

NOW = datetime(2025, 3, 1, 14, 0, tzinfo=UTC)


def _run(app: Jobyard, type_name: str = "demo.noop", by: str = "root", **params: Any) -> str:
    [run_id] = enqueue_many([EnqueueRequest(type_name, params, triggered_by=by)], app=app)
    return run_id


def _set(app: Jobyard, run_id: str, **values: Any) -> None:
    with app.engine.begin() as conn:
        conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(**values))


def _row(app: Jobyard, run_id: str) -> Any:
    with app.engine.connect() as conn:
        return conn.execute(select(runs_table).where(runs_table.c.id == run_id)).one()


def _failed_run_with_history(app: Jobyard) -> str:
    run_id = _run(app, "demo.fail", times=3)
    _set(
        app, run_id, status="failed", attempt_count=2, started_at=NOW, finished_at=NOW + timedelta(seconds=75),
        error="DemoFailure: planned failure 2 of 3", progress_done=4, progress_total=8, progress_message="half way",
        result={"imported": 4},
    )  # fmt: skip
    with app.engine.begin() as conn:
        for number in (1, 2):
            conn.execute(
                insert(attempts_table).values(
                    run_id=run_id, series=1, number=number, worker="host.1", started_at=NOW, finished_at=NOW,
                    outcome="failed", error_class="DemoFailure", error_message=f"planned failure {number} of 3",
                    traceback=f"Traceback (most recent call last):\n  line {number}\nDemoFailure",
                )
            )  # fmt: skip
        for n in range(1, 4):
            conn.execute(insert(run_logs_table).values(run_id=run_id, at=NOW, level="info", message=f"line {n}"))
        for key, status in (("a", "ok"), ("b", "failed"), ("c", "skipped")):
            conn.execute(insert(run_items).values(run_id=run_id, key=key, status=status, message=f"{key}!", at=NOW))
    return run_id


def test_the_page_shows_timing_parameters_attempts_result_items_and_log(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin", email="root@example.org")
    run_id = _failed_run_with_history(app)
    page = html.unescape(login(web, "root").get(f"/runs/{run_id}").get_data(as_text=True))
    assert f'data-run-id="{run_id}"' in page and 'data-status="failed"' in page
    assert "2025-03-01 14:00:00" in page and "2025-03-01 14:01:15" in page and "1 min 15 s" in page
    assert 'data-param="times">3<' in page
    assert page.count("<details><summary>Traceback</summary>") == 2 and "planned failure 2 of 3" in page
    assert '"imported": 4' in page and '<progress max="8" value="4"' in page and "half way" in page
    assert "1 ok" in page and "1 failed" in page and "1 skipped" in page
    assert all(f'data-log-id="{n}"' in page for n in (1, 2, 3))
    assert 'name="retry"' in page and 'name="run-again"' in page and 'name="cancel"' not in page
    assert 'value="root@example.org"' in page  # "notify me" is prefilled with the principal's address
    assert 'data-final="true"' in page


def test_items_can_be_filtered_and_a_bad_filter_is_refused(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    run_id = _failed_run_with_history(app)
    client = login(web, "root")
    page = client.get(f"/runs/{run_id}?items=failed").get_data(as_text=True)
    assert re.findall(r'data-item-status="(\w+)"', page) == ["failed"]
    response = client.get(f"/runs/{run_id}?items=weird")
    assert response.status_code == 400 and "Bad filter items" in response.get_data(as_text=True)


def test_a_run_outside_the_principals_view_is_not_found(app: Jobyard, web: Any, users: Any) -> None:
    users.add("olga", "operator", grants=["demo.noop"])
    theirs = _run(app, by="root")
    client = login(web, "olga")
    assert client.get(f"/runs/{theirs}").status_code == 404
    assert client.get(f"/runs/{theirs}/live").status_code == 404
    assert post(client, f"/runs/{theirs}/cancel").status_code == 404
    assert post(client, f"/runs/{theirs}/notify", {"email": "olga@example.org"}).status_code == 404
    assert client.get("/runs/0123456789abcdef0123456789abcdef").status_code == 404
    assert _row(app, theirs).status == "pending"


def test_retry_cancel_and_run_again_from_the_page(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    failed = _failed_run_with_history(app)
    assert post(client, f"/runs/{failed}/retry").headers["Location"] == f"/runs/{failed}"
    row = _row(app, failed)
    assert (row.status, row.series, row.retried_by) == ("pending", 2, "root")

    pending = _run(app)
    assert 'name="cancel"' in client.get(f"/runs/{pending}").get_data(as_text=True)
    assert post(client, f"/runs/{pending}/cancel").status_code == 302
    assert _row(app, pending).status == "cancelled"
    response = post(client, f"/runs/{pending}/cancel", {"next": f"/runs/{pending}"})  # already final: a conflict
    assert response.status_code == 302
    assert "it has already ended" in client.get(f"/runs/{pending}").get_data(as_text=True)
    page = client.get(f"/runs/{pending}").get_data(as_text=True)  # an abort cannot be undone: only Run again
    assert 'name="run-again"' in page and 'name="retry"' not in page
    post(client, f"/runs/{pending}/retry", {"next": f"/runs/{pending}"})  # a stale page's button
    page = html.unescape(client.get(f"/runs/{pending}").get_data(as_text=True))
    assert "a cancelled run cannot be retried; Run again starts a new run" in page
    assert (_row(app, pending).status, _row(app, pending).series) == ("cancelled", 1)

    response = post(client, f"/runs/{pending}/run-again")
    new_id = response.headers["Location"].rsplit("/", 1)[1]
    assert new_id != pending and _row(app, new_id).status == "pending"
    assert {e.action for e in entries(app.engine, actor="root")} >= {"retry", "cancel", "run_again"}


def test_notify_me_adds_the_address_and_refuses_a_bad_one(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    run_id = _run(app)
    assert post(client, f"/runs/{run_id}/notify", {"email": "me@example.org"}).status_code == 302
    assert _row(app, run_id).notify == ["me@example.org"]
    response = post(client, f"/runs/{run_id}/notify", {"email": "not-an-address"})
    assert response.status_code == 400
    assert "email: not email addresses: not-an-address" in response.get_data(as_text=True)
    assert _row(app, run_id).notify == ["me@example.org"]


def test_a_viewer_sees_no_action_buttons_and_is_refused(app: Jobyard, web: Any, users: Any) -> None:
    users.add("vera", "viewer")
    failed = _failed_run_with_history(app)
    client = login(web, "vera")
    page = client.get(f"/runs/{failed}").get_data(as_text=True)
    assert not any(f'name="{b}"' in page for b in ("retry", "cancel", "run-again", "notify"))
    for action in ("retry", "cancel", "run-again", "notify"):
        assert post(client, f"/runs/{failed}/{action}", {"email": "vera@example.org"}).status_code == 403, action
    assert _row(app, failed).status == "failed"
    assert _row(app, failed).notify is None


def test_the_live_endpoint_returns_the_log_lines_after_an_id(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    run_id = _failed_run_with_history(app)
    client = login(web, "root")
    data = client.get(f"/runs/{run_id}/live").get_json()
    assert [line["message"] for line in data["logs"]] == ["line 1", "line 2", "line 3"]
    assert data["last_log_id"] == 3 and data["final"] is True and data["status"] == "failed"
    assert data["progress"] == {"done": 4, "total": 8, "message": "half way"}
    assert len(data["attempt_history"]) == 2 and "traceback" not in data["attempt_history"][0]
    later = client.get(f"/runs/{run_id}/live?after=2").get_json()
    assert [(line["id"], line["message"]) for line in later["logs"]] == [(3, "line 3")]
    assert client.get(f"/runs/{run_id}/live?after=3").get_json()["logs"] == []
    response = client.get(f"/runs/{run_id}/live?after=three")
    assert response.status_code == 400 and "after" in response.get_json()["error"]


def test_a_started_run_moves_through_retrying_to_completed(
    app: Jobyard, web: Any, users: Any, start_workers: Callable[..., WorkerProcesses]
) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    response = post(client, "/types/demo.fail/start", {"times": "1"})
    live = response.headers["Location"] + "/live"
    start_workers(1)

    def completed() -> bool:
        return bool(client.get(live).get_json()["final"])

    wait_for(completed, timeout=60, what="the run to end")
    data = client.get(live).get_json()
    assert data["status"] == "completed" and data["attempts"] == 2
    assert [a["outcome"] for a in data["attempt_history"]] == ["failed", "completed"]
