"""The runs page: filters as query parameters, keyset pages, bad filters, and bulk actions."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, update

from core.app import Jobyard
from core.defaults import RUNS_PAGE_SIZE
from jobs.enqueue import EnqueueRequest, enqueue_many
from jobs.models import runs_table
from tests.helpers import mixed_runs, run_rows
from tests.webclient import login, post

ROW = re.compile(r'<tr data-run-id="([0-9a-f]{32})"')
FLASH = re.compile(r'<p class="flash (\w+)" role="status">(.*?)</p>', re.S)


pytestmark = pytest.mark.both_databases


def _runs(app: Jobyard, type_name: str, count: int = 1, by: str = "root", **params: Any) -> list[str]:
    return enqueue_many([EnqueueRequest(type_name, params, triggered_by=by) for _ in range(count)], app=app)


def _set(app: Jobyard, run_id: str, **values: Any) -> None:
    with app.engine.begin() as conn:
        conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(**values))


def _status(app: Jobyard, run_id: str) -> str:
    with app.engine.connect() as conn:
        return str(conn.execute(select(runs_table.c.status).where(runs_table.c.id == run_id)).scalar_one())


def test_the_list_shows_runs_with_their_columns_and_filters(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    [noop] = _runs(app, "demo.noop")
    [progress] = _runs(app, "demo.progress")
    _set(app, progress, status="running", progress_done=3, progress_total=10, started_at=datetime.now(UTC))
    client = login(web, "root")
    page = client.get("/runs").get_data(as_text=True)
    assert set(ROW.findall(page)) == {noop, progress}
    assert '<progress max="10" value="3">' in page and "0/5" in page  # progress bar; attempts n/max
    assert 'data-status="running"' in page and 'data-status="pending"' in page
    only_running = client.get("/runs?status=running").get_data(as_text=True)
    assert ROW.findall(only_running) == [progress]
    by_type = client.get("/runs?type=demo.noop&type=demo.sleep").get_data(as_text=True)
    assert ROW.findall(by_type) == [noop]
    assert ROW.findall(client.get("/runs?q=progress").get_data(as_text=True)) == [progress]
    assert ROW.findall(client.get("/runs?triggered_by=someone-else").get_data(as_text=True)) == []


def test_created_times_are_read_as_utc(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    [old, _new] = _runs(app, "demo.noop", 2)
    _set(app, old, created_at=datetime(2024, 1, 1, 10, 0, tzinfo=UTC))
    page = login(web, "root").get("/runs?created_from=2024-01-01T09:30&created_to=2024-01-01T10:30")
    assert ROW.findall(page.get_data(as_text=True)) == [old]


def test_bad_filters_answer_400_naming_the_field(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    client = login(web, "root")
    for query, field in (
        ("status=sleeping", "status"),
        ("created_from=yesterday", "created_from"),
        ("created_from=2024-02-01T00:00&created_to=2024-01-01T00:00", "created_from"),
        ("cursor=garbage!", "cursor"),
    ):
        response = client.get(f"/runs?{query}")
        assert response.status_code == 400, query
        assert f'data-field="{field}"' in response.get_data(as_text=True), query


def test_pages_go_back_in_time_and_keep_the_filters(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    ids = _runs(app, "demo.noop", RUNS_PAGE_SIZE + 5)
    _runs(app, "demo.sleep", 2)
    client = login(web, "root")
    first = client.get("/runs?type=demo.noop").get_data(as_text=True)
    assert len(ROW.findall(first)) == RUNS_PAGE_SIZE
    older = re.search(r'href="([^"]+)" id="older"', first)
    assert older, "no 'Older' link"
    link = older.group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(link).query)["type"] == ["demo.noop"]
    second = client.get(link).get_data(as_text=True)
    assert len(ROW.findall(second)) == 5
    assert set(ROW.findall(first)) | set(ROW.findall(second)) == set(ids)
    assert 'id="newest"' in second and 'id="older"' not in second


def flashes(page: str) -> list[tuple[str, str]]:
    return FLASH.findall(page)


def test_bulk_actions_answer_with_one_summary(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    failed, pending, other = _runs(app, "demo.noop", 3)
    _set(app, failed, status="failed", finished_at=datetime.now(UTC))
    client = login(web, "root")
    response = post(client, "/runs/bulk", {"action": "retry", "run_ids": [failed, pending], "next": "/runs?q=x"})
    assert response.status_code == 302 and response.headers["Location"] == "/runs?q=x"
    page = client.get("/runs").get_data(as_text=True)
    assert _status(app, failed) == "pending"
    assert flashes(page) == [("info", "Retry: retried 1, skipped 1: 1 pending")]
    assert post(client, "/runs/bulk", {"action": "cancel", "run_ids": [pending, other]}).status_code == 302
    assert _status(app, pending) == _status(app, other) == "cancelled"
    assert flashes(client.get("/runs").get_data(as_text=True)) == [("success", "Cancel: cancelled 2")]
    assert post(client, "/runs/bulk", {"action": "run_again", "run_ids": [other, "0" * 32]}).status_code == 302
    page = client.get("/runs").get_data(as_text=True)
    assert flashes(page) == [("info", "Run again: ran 1 again, skipped 1: 1 not found")]
    assert len(ROW.findall(page)) == 4


def test_bulk_retry_of_a_mixed_page_retries_only_the_failed_runs(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    mixed = mixed_runs(app)
    before = run_rows(app, mixed.all)
    client = login(web, "root")
    selection = ROW.findall(client.get("/runs").get_data(as_text=True))  # the whole page, as "select all" does
    assert set(selection) == mixed.all
    assert post(client, "/runs/bulk", {"action": "retry", "run_ids": selection}).status_code == 302
    page = client.get("/runs").get_data(as_text=True)
    assert flashes(page) == [("info", "Retry: retried 3, skipped 6: 3 cancelled, 2 waiting on a dependency, 1 pending")]
    after = run_rows(app, mixed.all)
    for run_id in mixed.failed:  # a new attempt series, queued
        assert after[run_id][:3] == ("pending", 2, 0) and after[run_id][4] == "root", run_id
    assert {r: after[r] for r in mixed.all - set(mixed.failed)} == {r: before[r] for r in mixed.all - set(mixed.failed)}
    assert flashes(client.get("/runs").get_data(as_text=True)) == []  # said once, not again


def test_bulk_without_runs_or_with_an_unknown_action_changes_nothing(app: Jobyard, web: Any, users: Any) -> None:
    users.add("root", "admin")
    [run_id] = _runs(app, "demo.noop")
    client = login(web, "root")
    assert post(client, "/runs/bulk", {"action": "cancel"}).status_code == 302
    assert "Select at least one run" in client.get("/runs").get_data(as_text=True)
    assert post(client, "/runs/bulk", {"action": "explode", "run_ids": [run_id]}).status_code == 302
    assert "unknown action" in client.get("/runs").get_data(as_text=True)
    assert _status(app, run_id) == "pending"


def test_an_operator_sees_only_their_runs_and_a_viewer_cannot_act(app: Jobyard, web: Any, users: Any) -> None:
    users.add("olga", "operator", grants=["demo.noop"])
    users.add("vera", "viewer")
    [mine] = _runs(app, "demo.noop", by="olga")
    [theirs] = _runs(app, "demo.noop", by="root")
    assert ROW.findall(login(web, "olga").get("/runs").get_data(as_text=True)) == [mine]
    viewer = login(web, "vera")
    page = viewer.get("/runs").get_data(as_text=True)
    assert set(ROW.findall(page)) == {mine, theirs}
    assert 'name="run_ids"' not in page and 'value="retry"' not in page
    assert post(viewer, "/runs/bulk", {"action": "cancel", "run_ids": [mine]}).status_code == 403
    assert _status(app, mine) == "pending"
