"""Prometheus metrics at /metrics: authentication, the text format, and the figures behind each metric."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, update

from core.app import Jobyard
from core.db import utcnow
from dashboard.app import create_app
from dashboard.metrics import TTL_CONFIG_KEY, AttemptFigures, Tally
from jobs.enqueue import enqueue
from jobs.models import attempts_table, runs_table
from tests.conftest import make_settings
from tests.webclient import login
from workers.models import workers_table

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
TYPE = "test.follower"  # queue "default", like every test type


pytestmark = pytest.mark.both_databases


def scrape(client: Any, token: str) -> Samples:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def add_attempt(
    app: Jobyard, run_id: str, number: int, started: datetime, seconds: float | None, *, series: int = 1
) -> int:
    finished = started + timedelta(seconds=seconds) if seconds is not None else None
    with app.engine.begin() as conn:
        row = conn.execute(
            insert(attempts_table)
            .values(run_id=run_id, series=series, number=number, worker="w", started_at=started, finished_at=finished)
            .returning(attempts_table.c.id)
        )
        return int(row.scalar_one())


def set_status(app: Jobyard, run_id: str, status: str) -> None:
    with app.engine.begin() as conn:
        conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(status=status))


def test_an_anonymous_scrape_is_refused(web: Any) -> None:
    response = web.test_client().get("/metrics")
    assert response.status_code == 401
    assert "authentication required" in response.get_json()["error"]


def test_a_token_or_a_session_that_sees_everything_may_scrape(web: Any, users: Any) -> None:
    response = web.test_client().get("/metrics", headers={"Authorization": f"Bearer {users.token('prom', 'viewer')}"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    names = {family.name for family in text_string_to_metric_families(response.get_data(as_text=True))}
    assert {"jobyard_runs", "jobyard_queue_length", "jobyard_workers_alive", "jobyard_database_up"} <= names
    users.add("root", "admin")
    assert login(web, "root").get("/metrics").status_code == 200


def test_principals_confined_to_part_of_the_record_may_not_scrape(web: Any, users: Any) -> None:
    # The figures cover every job type and domain; these principals may see only some.
    users.add("olga", "operator")
    users.add("sam", "domain_admin", domain="sales")
    users.add("vera", "viewer", domain="sales")
    for name in ("olga", "sam", "vera"):
        assert login(web, name).get("/metrics").status_code == 403, name


def test_figures_follow_runs_attempts_queues_and_workers(app: Jobyard, web: Any, users: Any) -> None:
    done, running, retried = (enqueue(TYPE, app=app) for _ in range(3))
    enqueue(TYPE, at=utcnow() + timedelta(hours=1), app=app)
    assert app.flush()
    set_status(app, done, "completed")
    set_status(app, running, "running")
    set_status(app, retried, "failed")
    hour_ago = utcnow() - timedelta(hours=1)
    add_attempt(app, done, 1, hour_ago, 0.3)
    add_attempt(app, done, 2, hour_ago, 2.0)
    add_attempt(app, running, 1, hour_ago, None)  # unfinished: no duration yet
    add_attempt(app, retried, 1, hour_ago, 100.0)
    add_attempt(app, retried, 1, hour_ago, 0.05, series=2)  # first of a new series: not a retry
    now = utcnow()
    with app.engine.begin() as conn:
        conn.execute(
            insert(workers_table),
            [
                {"name": name, "hostname": "h", "pid": 1, "queues": "default", "started_at": now - age,
                 "last_seen_at": now - age, "stopped_at": stopped}
                for name, age, stopped in (
                    ("alive", timedelta(0), None),
                    ("silent", timedelta(hours=1), None),
                    ("stopped", timedelta(0), now),
                )
            ],
        )  # fmt: skip

    samples = scrape(web.test_client(), users.token("prom", "viewer"))

    assert value(samples, "jobyard_runs", type=TYPE, status="completed") == 1
    assert value(samples, "jobyard_runs", type=TYPE, status="running") == 1
    assert value(samples, "jobyard_runs", type=TYPE, status="failed") == 1
    assert value(samples, "jobyard_runs", type=TYPE, status="scheduled") == 1
    assert value(samples, "jobyard_runs", type=TYPE, status="cancelled") == 0
    histogram = "jobyard_attempt_duration_seconds"
    cumulative = {"0.1": 1, "0.25": 1, "0.5": 2, "1.0": 2, "2.5": 3, "60.0": 3, "120.0": 4, "3600.0": 4, "+Inf": 4}
    for le, count in cumulative.items():
        assert value(samples, f"{histogram}_bucket", type=TYPE, le=le) == count, le
    assert value(samples, f"{histogram}_count", type=TYPE) == 4
    assert value(samples, f"{histogram}_sum", type=TYPE) == pytest.approx(102.35, abs=0.01)
    assert value(samples, "jobyard_retries_total", type=TYPE) == 1
    assert value(samples, "jobyard_queue_length", queue="default") == 3
    assert value(samples, "jobyard_queue_scheduled", queue="default") == 1
    assert value(samples, "jobyard_workers_alive") == 1
    assert value(samples, "jobyard_database_up") == 1 and value(samples, "jobyard_redis_up") == 1


def test_figures_are_cached_per_app(app: Jobyard, web: Any, users: Any) -> None:
    token = users.token("prom", "viewer")
    enqueue(TYPE, app=app)
    cached = web.test_client()
    assert value(scrape(cached, token), "jobyard_runs", type=TYPE, status="pending") == 1
    enqueue(TYPE, app=app)
    assert value(scrape(cached, token), "jobyard_runs", type=TYPE, status="pending") == 1  # within the TTL
    uncached = create_app(app, {"TESTING": True, TTL_CONFIG_KEY: 0}).test_client()
    assert value(scrape(uncached, token), "jobyard_runs", type=TYPE, status="pending") == 2


def test_a_scrape_without_redis_still_answers_with_the_sql_figures(app: Jobyard, users: Any, tmp_path: Path) -> None:
    enqueue(TYPE, app=app)
    settings = make_settings(tmp_path / "other", app.settings.resolved_database_url, "redis://127.0.0.1:1/0")
    with Jobyard(settings) as cut_off:
        samples = scrape(create_app(cut_off).test_client(), users.token("prom", "viewer"))
    assert value(samples, "jobyard_redis_up") == 0
    assert value(samples, "jobyard_runs", type=TYPE, status="pending") == 1
    assert not any(name == "jobyard_queue_length" for name, _ in samples)


def full_read(app: Jobyard) -> dict[str, Tally]:
    with app.engine.connect() as conn:
        return AttemptFigures().read(conn, app.engine)


def assert_same(left: dict[str, Tally], right: dict[str, Tally]) -> None:
    """Equal but for the rounding of sums added up in another order."""
    assert left.keys() == right.keys()
    for name, tally in left.items():
        other = right[name]
        assert (tally.buckets, tally.count, tally.retries) == (other.buckets, other.count, other.retries), name
        assert tally.sum_s == pytest.approx(other.sum_s, abs=1e-3), name


@pytest.mark.parametrize("lookup_max", [0, 1000], ids=["join", "lookup"])
def test_settled_attempts_are_folded_once_and_the_rest_read_again(app: Jobyard, lookup_max: int) -> None:
    first, second, third = (enqueue(TYPE, app=app) for _ in range(3))
    long_ago, a_while_ago, just_now = (utcnow() - timedelta(minutes=m) for m in (120, 60, 1))
    add_attempt(app, first, 1, long_ago, 1.0)
    last_folded = add_attempt(app, first, 2, long_ago, 3.0)
    still_open = add_attempt(app, second, 1, a_while_ago, None)
    add_attempt(app, third, 1, a_while_ago, 0.2)  # settled, but past an open attempt: not folded yet
    recent = add_attempt(app, third, 2, just_now, 0.4)  # finished, but too recent to fold
    folder = AttemptFigures(lookup_max=lookup_max)

    def read() -> dict[str, Tally]:
        with app.engine.connect() as conn:
            return folder.read(conn, app.engine)

    first_read = read()
    assert folder.watermark == last_folded
    assert_same(first_read, full_read(app))
    assert first_read[TYPE].count == 4 and first_read[TYPE].retries == 2

    with app.engine.begin() as conn:
        conn.execute(
            update(attempts_table)
            .where(attempts_table.c.id == still_open)
            .values(finished_at=a_while_ago + timedelta(seconds=5))
        )
    add_attempt(app, second, 2, a_while_ago, 7.0)  # settled, after the recent one
    second_read = read()
    assert folder.watermark == recent - 1  # everything before the recent attempt, nothing after it
    assert_same(second_read, full_read(app))
    assert second_read[TYPE].count == 6 and second_read[TYPE].sum_s == pytest.approx(16.6, abs=0.01)
    assert_same(read(), second_read)  # folding again adds nothing twice
