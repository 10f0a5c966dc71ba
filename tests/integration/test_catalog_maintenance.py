"""The maintenance catalogue on real data: idle sessions, undelivered mail and old logs, run by a real
worker against SQLite and PostgreSQL. Rows are written with explicit timestamps on both sides of each
cutoff, and each test checks that exactly the old ones are gone, that a second run removes nothing more,
and that a bad parameter fails the run before anything changes."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from core.app import Jobyard
from core.db import utcnow
from core.mail import outbox
from dashboard.auth.models import sessions_table, users_table
from jobs.cancel import Cancelled
from jobs.catalog import maintenance
from jobs.context import JobContext
from jobs.enqueue import enqueue
from jobs.models import attempts_table, run_logs_table, runs_table
from jobs.params import InvalidJobRequest
from jobs.queries import run_detail
from tests.webclient import login
from workers.worker import JobyardWorker

DAY = timedelta(days=1)
run_items_table = maintenance.run_items_table


pytestmark = pytest.mark.both_databases


def run(app: Jobyard, type_name: str, **params: Any) -> dict[str, Any]:
    """Enqueues one run and lets a real worker execute it."""
    run_id = enqueue(type_name, params, app=app)
    assert app.flush()
    JobyardWorker(["default"], app=app).work(burst=True)
    detail = run_detail(app.engine, run_id)
    assert detail is not None
    return detail


def messages(detail: dict[str, Any]) -> list[str]:
    return [line["message"] for line in detail["logs"]]


def add_run(app: Jobyard, status: str, created_at: datetime | None = None) -> str:
    run_id = uuid.uuid4().hex
    at = created_at or utcnow()
    with app.engine.begin() as conn:
        conn.execute(
            insert(runs_table).values(
                id=run_id, type="demo.noop", queue="default", status=status, params={}, created_at=at,
                dispatched_at=at, attempt_count=0, series=1, max_attempts=5, timeout_s=120,
            )
        )  # fmt: skip
    return run_id


def test_the_four_types_are_declared_installation_wide_with_their_defaults(app: Jobyard) -> None:
    declared = {t.name: t for t in app.registry if t.name.startswith("maintenance.")}
    assert {name: t.title for name, t in declared.items()} == {
        "maintenance.clean_idle_sessions": "Clean Idle Sessions",
        "maintenance.delete_undelivered_emails": "Delete Undelivered Emails",
        "maintenance.purge_old_logs": "Purge Old Logs",
        "maintenance.reorganise_indexes": "Reorganise or Rebuild Indexing",
    }
    assert all(t.domain is None and t.exclusive and t.description for t in declared.values())
    defaults = {name: {p.name: p.default for p in t.params} for name, t in declared.items()}
    assert defaults == {
        "maintenance.clean_idle_sessions": {"idle_hours": 4},
        "maintenance.delete_undelivered_emails": {"older_than_days": 30},
        "maintenance.purge_old_logs": {"older_than_days": 90},
        "maintenance.reorganise_indexes": {"vacuum": True},
    }
    plans = {name: t.default_schedule.describe() if t.default_schedule else None for name, t in declared.items()}
    assert plans == {
        "maintenance.clean_idle_sessions": "every 3600s",
        "maintenance.delete_undelivered_emails": None,
        "maintenance.purge_old_logs": None,
        "maintenance.reorganise_indexes": "weekly sun@03:00 (UTC)",
    }


# Clean idle sessions


def add_session(app: Jobyard, user_id: int, *, idle: timedelta, expires_in: timedelta) -> str:
    token_hash = uuid.uuid4().hex
    now = utcnow()
    with app.engine.begin() as conn:
        conn.execute(
            insert(sessions_table).values(
                token_hash=token_hash, user_id=user_id, created_at=now - idle - DAY, last_seen_at=now - idle,
                expires_at=now + expires_in,
            )
        )  # fmt: skip
    return token_hash


def session_hashes(app: Jobyard) -> set[str]:
    with app.engine.connect() as conn:
        return set(conn.execute(select(sessions_table.c.token_hash)).scalars())


@pytest.fixture
def user_id(app: Jobyard, users: Any) -> int:
    users.add("ada", "admin")
    with app.engine.connect() as conn:
        return int(conn.execute(select(users_table.c.id).where(users_table.c.username == "ada")).scalar_one())


def test_idle_and_expired_sessions_go_and_live_ones_stay(app: Jobyard, web: Any, user_id: int) -> None:
    browser = login(web, "ada")  # a real session, in use right now
    [live] = session_hashes(app)
    recent = add_session(app, user_id, idle=timedelta(hours=3, minutes=50), expires_in=timedelta(hours=2))
    add_session(app, user_id, idle=timedelta(hours=5), expires_in=timedelta(hours=2))  # idle
    add_session(app, user_id, idle=timedelta(hours=30), expires_in=timedelta(hours=1))  # idle
    add_session(app, user_id, idle=timedelta(minutes=1), expires_in=-timedelta(seconds=1))  # expired
    add_session(app, user_id, idle=timedelta(hours=9), expires_in=-timedelta(hours=1))  # both: counted once

    first = run(app, "maintenance.clean_idle_sessions")
    assert first["status"] == "completed"
    assert first["result"] == {"idle_hours": 4, "expired_removed": 2, "idle_removed": 2, "removed": 4}
    assert session_hashes(app) == {live, recent}
    assert messages(first) == ["Removed 4 dashboard sessions: 2 expired, 2 idle for more than 4 h"]
    assert browser.get("/").status_code == 200  # the live session still works

    again = run(app, "maintenance.clean_idle_sessions")
    assert again["result"]["removed"] == 0 and session_hashes(app) == {live, recent}
    assert messages(again) == ["Nothing to remove: no dashboard session is expired or idle for more than 4 h"]

    shorter = run(app, "maintenance.clean_idle_sessions", idle_hours=1)
    assert shorter["result"]["idle_removed"] == 1 and session_hashes(app) == {live}


@pytest.mark.parametrize(("hours", "problem"), [(0, "at least 1"), (-3, "at least 1"), (10**9, "at most 876000")])
def test_a_bad_idle_time_is_refused_and_removes_nothing(app: Jobyard, user_id: int, hours: int, problem: str) -> None:
    idle = add_session(app, user_id, idle=timedelta(hours=50), expires_in=-DAY)
    with pytest.raises(InvalidJobRequest, match=f"idle_hours: must be {problem}, got {hours}"):
        enqueue("maintenance.clean_idle_sessions", {"idle_hours": hours}, app=app)
    assert session_hashes(app) == {idle}
    with pytest.raises(InvalidJobRequest, match="idle_hours: must be an integer"):
        enqueue("maintenance.clean_idle_sessions", {"idle_hours": "4"}, app=app)


# Delete undelivered emails


def add_mail(app: Jobyard, status: str, age: timedelta) -> int:
    created = utcnow() - age
    with app.engine.begin() as conn:
        return int(
            conn.execute(
                insert(outbox)
                .values(to_addr="ops@example.org", subject=f"{status} {age}", body="b", status=status, attempts=3,
                        created_at=created, next_attempt_at=created)
                .returning(outbox.c.id)
            ).scalar_one()
        )  # fmt: skip


def mail_ids(app: Jobyard) -> set[int]:
    with app.engine.connect() as conn:
        return set(conn.execute(select(outbox.c.id)).scalars())


def test_only_old_undelivered_mail_is_deleted(app: Jobyard) -> None:
    keep = {
        add_mail(app, "undelivered", 10 * DAY),
        add_mail(app, "pending", 400 * DAY),
        add_mail(app, "sent", 400 * DAY),
        add_mail(app, "undelivered", 29 * DAY),
    }
    add_mail(app, "undelivered", 31 * DAY)
    add_mail(app, "undelivered", 400 * DAY)

    first = run(app, "maintenance.delete_undelivered_emails")
    assert first["status"] == "completed"
    assert first["result"]["removed"] == 2 and first["result"]["older_than_days"] == 30
    assert mail_ids(app) == keep
    assert messages(first)[0].startswith("Deleted 2 undelivered emails queued before ")

    again = run(app, "maintenance.delete_undelivered_emails")
    assert again["result"]["removed"] == 0 and mail_ids(app) == keep
    assert messages(again)[0].startswith("Nothing to delete: no undelivered email was queued before ")

    everything = run(app, "maintenance.delete_undelivered_emails", older_than_days=0)
    assert everything["result"]["removed"] == 2
    with app.engine.connect() as conn:
        assert sorted(conn.execute(select(outbox.c.status)).scalars()) == ["pending", "sent"]


@pytest.mark.parametrize(("days", "problem"), [(-1, "at least 0"), (36_501, "at most 36500")])
def test_a_bad_age_of_mail_is_refused_and_deletes_nothing(app: Jobyard, days: int, problem: str) -> None:
    old = add_mail(app, "undelivered", 400 * DAY)
    with pytest.raises(InvalidJobRequest, match=f"older_than_days: must be {problem}, got {days}"):
        enqueue("maintenance.delete_undelivered_emails", {"older_than_days": days}, app=app)
    assert mail_ids(app) == {old}


# Purge old logs


def add_line(app: Jobyard, run_id: str, age: timedelta, message: str) -> None:
    with app.engine.begin() as conn:
        conn.execute(insert(run_logs_table).values(run_id=run_id, at=utcnow() - age, level="info", message=message))


def add_item(app: Jobyard, run_id: str, age: timedelta, key: str) -> None:
    with app.engine.begin() as conn:
        conn.execute(insert(run_items_table).values(run_id=run_id, key=key, status="ok", at=utcnow() - age))


def remaining_lines(app: Jobyard) -> list[str]:
    with app.engine.connect() as conn:
        return sorted(conn.execute(select(run_logs_table.c.message)).scalars())


def remaining_items(app: Jobyard) -> list[str]:
    with app.engine.connect() as conn:
        return sorted(conn.execute(select(run_items_table.c.key)).scalars())


UNFINISHED = ("pending", "running", "retrying", "waiting", "scheduled")


def test_old_lines_and_items_of_finished_runs_go_and_the_runs_stay(app: Jobyard) -> None:
    old, recent = 200 * DAY, 89 * DAY
    finished = {status: add_run(app, status, utcnow() - 300 * DAY) for status in ("completed", "failed", "cancelled")}
    unfinished = {status: add_run(app, status, utcnow() - 300 * DAY) for status in UNFINISHED}
    with app.engine.begin() as conn:
        conn.execute(
            insert(attempts_table).values(
                run_id=finished["completed"], series=1, number=1, worker="w", started_at=utcnow() - old,
                finished_at=utcnow() - old, outcome="completed",
            )
        )  # fmt: skip
    # Recent rows first: ids and times need not go together.
    for status, run_id in finished.items():
        add_line(app, run_id, recent, f"recent {status}")
        add_item(app, run_id, recent, f"recent {status}")
    for status, run_id in {**finished, **unfinished}.items():
        add_line(app, run_id, old, f"old {status}")
        add_item(app, run_id, old, f"old {status}")
    add_line(app, finished["completed"], 91 * DAY, "just over 90 days")

    first = run(app, "maintenance.purge_old_logs")
    assert first["status"] == "completed"
    result = first["result"]
    assert (result["log_lines_removed"], result["item_results_removed"], result["older_than_days"]) == (4, 3, 90)
    kept = sorted([f"old {s}" for s in UNFINISHED] + [f"recent {s}" for s in finished])
    assert remaining_items(app) == kept
    own = [m for m in remaining_lines(app) if m in set(messages(first))]
    assert sorted(set(remaining_lines(app)) - set(own)) == kept
    assert messages(first)[-1].startswith("Removed 4 log lines and 3 item results from before ")
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(runs_table)).scalar_one() == 9  # 8 + the purge's own
        assert conn.execute(select(func.count()).select_from(attempts_table)).scalar_one() == 2

    again = run(app, "maintenance.purge_old_logs")
    assert again["result"]["log_lines_removed"] == again["result"]["item_results_removed"] == 0
    assert remaining_items(app) == kept
    assert messages(again)[-1].startswith("Nothing to remove: no log line or item result of a finished run dates ")


def test_a_large_purge_goes_in_batches_with_progress(app: Jobyard, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small batches and windows stand for 5,000 and 250,000; the worker's work horse inherits them.
    monkeypatch.setattr(maintenance, "PURGE_BATCH", 7)
    monkeypatch.setattr(maintenance, "SCAN_WINDOW", 30)
    done = add_run(app, "completed")
    with app.engine.begin() as conn:
        conn.execute(
            insert(run_logs_table),
            [{"run_id": done, "at": utcnow() - (100 if n % 3 else 1) * DAY, "level": "info", "message": f"l{n}"}
             for n in range(150)],
        )  # fmt: skip
    detail = run(app, "maintenance.purge_old_logs")
    assert detail["result"]["log_lines_removed"] == 100
    assert detail["result"]["batches"] >= 100 // 7
    assert [m for m in remaining_lines(app) if m.startswith("l")] == sorted(f"l{n}" for n in range(0, 150, 3))
    assert detail["progress"]["done"] == detail["progress"]["total"] > 0


def test_a_cancel_stops_the_purge_between_batches(app: Jobyard, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maintenance, "PURGE_BATCH", 10)
    done = add_run(app, "completed")
    for n in range(35):
        add_line(app, done, 100 * DAY, f"l{n}")
    asked: list[bool] = []

    def cancel_after_first_batch() -> bool:
        asked.append(True)
        return len(asked) > 1

    purge = add_run(app, "running")
    ctx = JobContext(run_id=purge, type="maintenance.purge_old_logs", attempt=1, params={}, engine=app.engine,
                     app=app, cancel_requested=cancel_after_first_batch)  # fmt: skip
    monkeypatch.setattr("jobs.context.CANCEL_POLL_S", 0.0)
    with pytest.raises(Cancelled):
        maintenance.purge_old_logs(ctx, older_than_days=90)
    assert remaining_lines(app) == sorted(f"l{n}" for n in range(10, 35))  # the first batch stays done


@pytest.mark.parametrize("days", [0, -5])
def test_a_bad_age_of_logs_is_refused_and_removes_nothing(app: Jobyard, days: int) -> None:
    done = add_run(app, "completed")
    add_line(app, done, 400 * DAY, "ancient")
    with pytest.raises(InvalidJobRequest, match=f"older_than_days: must be at least 1, got {days}"):
        enqueue("maintenance.purge_old_logs", {"older_than_days": days}, app=app)
    assert "ancient" in remaining_lines(app)


# Reorganise or rebuild indexing


def bloat(app: Jobyard, rows: int = 4000) -> None:
    """Deletes every other log line of the first half and all of the second: half-empty pages in the
    table and its indexes, and empty ones at the end."""
    done = add_run(app, "completed")
    with app.engine.begin() as conn:
        conn.execute(
            insert(run_logs_table),
            [{"run_id": done, "at": utcnow(), "level": "info", "message": "x" * 200} for _ in range(rows)],
        )
    with app.engine.begin() as conn:
        conn.execute(delete(run_logs_table).where((run_logs_table.c.id % 2 == 0) | (run_logs_table.c.id > rows // 2)))


def test_reorganising_rebuilds_the_indexes_and_reports_every_table_before_and_after(app: Jobyard) -> None:
    bloat(app)
    first = run(app, "maintenance.reorganise_indexes")
    assert first["status"] == "completed", first["error"]
    result = first["result"]
    tables = result["tables"]
    assert {"runs", "run_attempts", "run_logs", "run_items", "web_sessions", "outbox_emails"} <= set(tables)
    assert "alembic_version" not in tables
    assert all(t["rows_before"] == t["rows_after"] for t in tables.values())
    assert tables["runs"]["rows_after"] == 2 and tables["run_logs"]["rows_after"] == 1000
    assert tables["run_logs"]["bytes_after"] < tables["run_logs"]["bytes_before"]
    assert result["bytes_after"] < result["bytes_before"]
    lines = messages(first)
    assert len(lines) == len(tables) + 1
    assert any(line.startswith("run_logs: 1,000 rows, ") and " → 1,000 rows, " in line for line in lines)
    with app.engine.connect() as conn:
        if app.engine.dialect.name == "sqlite":
            assert result["statements"] == ["REINDEX", "VACUUM", "ANALYZE"]
            assert result["file_bytes_after"] < result["file_bytes_before"] and result["free_pages_after"] == 0
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
            analysed = set(conn.exec_driver_sql("SELECT tbl FROM sqlite_stat1").scalars())
        else:
            assert result["statements"] == ["REINDEX TABLE CONCURRENTLY", "VACUUM (ANALYZE)"]
            assert not conn.exec_driver_sql("SELECT 1 FROM pg_index WHERE NOT indisvalid").all()
            analysed = set(conn.exec_driver_sql("SELECT relname FROM pg_class WHERE reltuples > 0").scalars())
        assert {"runs", "run_logs"} <= analysed
    assert lines[-1].startswith(f"{' + '.join(result['statements'])} on {len(tables)} tables ")

    again = run(app, "maintenance.reorganise_indexes")
    assert again["status"] == "completed"
    for name, figures in again["result"]["tables"].items():
        assert figures["rows_before"] == figures["rows_after"], name
    # Next to nothing is left to reclaim: only the room the runs' own writes left in between.
    reclaimed = result["bytes_before"] - result["bytes_after"]
    assert 0 <= again["result"]["bytes_before"] - again["result"]["bytes_after"] < reclaimed / 10


def test_without_vacuum_the_free_room_stays(app: Jobyard) -> None:
    bloat(app)
    detail = run(app, "maintenance.reorganise_indexes", vacuum=False)
    assert detail["status"] == "completed"
    result = detail["result"]
    if app.engine.dialect.name == "sqlite":
        assert result["statements"] == ["REINDEX", "ANALYZE"]
        assert result["free_pages_after"] > 0 and result["file_bytes_after"] == result["file_bytes_before"]
    else:
        assert result["statements"] == ["REINDEX TABLE CONCURRENTLY", "ANALYZE"]
    with pytest.raises(InvalidJobRequest, match="vacuum: must be a boolean"):
        enqueue("maintenance.reorganise_indexes", {"vacuum": "no"}, app=app)


def test_an_invalid_index_left_by_an_interrupted_concurrent_build_is_reported(app: Jobyard) -> None:
    if app.engine.dialect.name != "postgresql":
        pytest.skip("invalid indexes exist only on PostgreSQL")
    done = add_run(app, "completed")
    add_line(app, done, DAY, "one")
    add_line(app, done, DAY, "two")  # same level: a unique index on it cannot be built
    with app.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        with pytest.raises(IntegrityError, match="could not create unique index"):
            conn.exec_driver_sql("CREATE UNIQUE INDEX CONCURRENTLY ix_test_broken ON run_logs (level)")
    try:
        detail = run(app, "maintenance.reorganise_indexes")
    finally:
        with app.engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX IF EXISTS ix_test_broken")
    assert detail["status"] == "completed_with_warnings"
    warnings = [line["message"] for line in detail["logs"] if line["level"] == "warning"]
    assert warnings == [
        "index ix_test_broken of run_logs is invalid (an interrupted concurrent rebuild leaves one behind): "
        "drop it with DROP INDEX CONCURRENTLY"
    ]
