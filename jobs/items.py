"""Per-item processing (seed 002's stateful executor): items offered by the job, one result per item.

- An item processed successfully is remembered in ``processed_items`` under the run's scope (its
  schedule, else its job type) and skipped by later runs; items no longer offered are forgotten.
- Two runs of one scope may run at once (two workers, a Run now during a scheduled run): an attempt
  claims an item in ``item_claims`` before processing it, and the other run skips it while the claim
  holds. A claim holds while its attempt is the run's current one and still running; an attempt that
  died, timed out or was stopped has been settled, so its claims are taken over by whoever comes next.
- `dry_run` lists what would be processed and processes nothing.
- Each item's result is committed on its own (with its memory and the release of its claim), so a later
  failure does not undo earlier items.
- Without `continue_on_error` the first failing item fails the run (the items before it stay done);
  with it, every item is tried and failures make the run end `completed_with_warnings`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from core.db import utcnow
from core.hotsql import HotSQL, Row, Runner

if TYPE_CHECKING:
    from jobs.context import JobContext

MAX_KEY = 500
# SQLite (3.24+) and PostgreSQL both read `ON CONFLICT (...) DO NOTHING` as written here: insert-or-ignore.
_REMEMBERED = "SELECT key FROM processed_items WHERE scope = :scope"
_SERIES = "SELECT series FROM runs WHERE id = :run_id"
_RESULT = "INSERT INTO run_items (run_id, key, status, message, at) VALUES (:run_id, :key, :status, :message, :at)"
_REMEMBER = """
INSERT INTO processed_items (scope, key, run_id, at) VALUES (:scope, :key, :run_id, :at)
ON CONFLICT (scope, key) DO NOTHING
"""
_DONE_BY = "SELECT run_id FROM processed_items WHERE scope = :scope AND key = :key"
_FORGET = "DELETE FROM processed_items WHERE scope = :scope AND key = :key"
_CLAIM = """
INSERT INTO item_claims (scope, key, run_id, series, attempt, at) VALUES (:scope, :key, :run_id, :series, :attempt, :at)
ON CONFLICT (scope, key) DO NOTHING
"""
# The claim and the state of its attempt: the same fence (status, series, attempt) that the worker's
# outcome writes are conditional on (workers/recording.py).
_HOLDER = """
SELECT c.run_id, c.series, c.attempt, r.status, r.series AS run_series, r.attempt_count
FROM item_claims c LEFT JOIN runs r ON r.id = c.run_id
WHERE c.scope = :scope AND c.key = :key
"""
_TAKE_OVER = """
UPDATE item_claims SET run_id = :run_id, series = :series, attempt = :attempt, at = :at
WHERE scope = :scope AND key = :key AND run_id = :held_by AND series = :held_series AND attempt = :held_attempt
"""
_RELEASE = """
DELETE FROM item_claims
WHERE scope = :scope AND key = :key AND run_id = :run_id AND series = :series AND attempt = :attempt
"""
_RELEASE_LEFTOVERS = "DELETE FROM item_claims WHERE scope = :scope AND run_id = :run_id"


class ItemFailed(RuntimeError):
    """An item failed and the run does not continue on errors."""


def _holds(holder: Row) -> bool:
    return bool(
        holder.status == "running" and holder.run_series == holder.series and holder.attempt_count == holder.attempt
    )


def _claim(sql: Runner, claim: dict[str, Any]) -> str | None:
    """Claims the item for this attempt; returns None when it is ours now, else why it is skipped."""
    if not sql(_CLAIM, claim):
        holder = sql.one(_HOLDER, claim)
        if holder is not None and _holds(holder):
            return f"run {holder.run_id} is processing it at the same time"
        if holder is None:
            # Released between our insert and our read (PostgreSQL lets a concurrent commit in between).
            taken = sql(_CLAIM, claim)
        else:
            held = {"held_by": holder.run_id, "held_series": holder.series, "held_attempt": holder.attempt}
            taken = sql(_TAKE_OVER, {**claim, **held})
        if not taken:
            return "another run claimed it at the same time"
    # Checked after claiming, so that a run which remembered the item just before our claim is seen.
    done = sql.one(_DONE_BY, claim)
    if done is not None:
        sql(_RELEASE, claim)
        return f"already processed by run {done.run_id}"
    return None


def process_items(
    ctx: JobContext,
    items: Iterable[Any],
    handle: Callable[[Any], str | None],
    *,
    key: Callable[[Any], str] = str,
    dry_run: bool = False,
    continue_on_error: bool = False,
) -> dict[str, int]:
    hot = HotSQL(ctx.engine)
    scope = ctx.item_scope
    offered = [(key(item)[:MAX_KEY], item) for item in items]
    with hot.transaction() as sql:
        remembered = {row.key for row in sql.all(_REMEMBERED, {"scope": scope})}
        run = sql.one(_SERIES, {"run_id": ctx.run_id})
    mine = {"scope": scope, "run_id": ctx.run_id, "series": run.series if run else 1, "attempt": ctx.attempt}
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    total = len(offered)

    def record(item_key: str, status: str, message: str | None, *, claimed: bool = False) -> None:
        values = {"run_id": ctx.run_id, "key": item_key, "status": status, "message": message, "at": hot.ts(utcnow())}
        with hot.transaction() as sql:
            sql(_RESULT, values)
            if status == "ok":
                sql(_REMEMBER, {"scope": scope, "key": item_key, "run_id": ctx.run_id, "at": values["at"]})
            if claimed:
                sql(_RELEASE, {**mine, "key": item_key})
        counts[status] += 1

    for done, (item_key, item) in enumerate(offered, start=1):
        ctx.check_cancelled()
        if item_key in remembered:
            record(item_key, "skipped", "already processed by an earlier run")
        elif dry_run:
            record(item_key, "skipped", "dry run: would be processed")
        else:
            with hot.transaction() as sql:
                elsewhere = _claim(sql, {**mine, "key": item_key, "at": hot.ts(utcnow())})
            if elsewhere is not None:
                record(item_key, "skipped", elsewhere)
            else:
                # Should the attempt die inside `handle`, its claim stays until the attempt is settled, and
                # is then taken over: the item is neither lost nor processed twice while the claim holds.
                try:
                    message = handle(item)
                except Exception as exc:
                    record(item_key, "failed", f"{type(exc).__name__}: {exc}", claimed=True)
                    ctx.errors += 1
                    if not continue_on_error:
                        raise ItemFailed(f"item {item_key} failed: {exc}") from exc
                else:
                    record(item_key, "ok", message, claimed=True)
        ctx.progress(done, total)
    if not dry_run:
        # The memory keeps only what is still offered (seed 002: the queue is refreshed after a run).
        gone = remembered - {k for k, _ in offered}
        with hot.transaction() as sql:
            for item_key in gone:
                sql(_FORGET, {"scope": scope, "key": item_key})
            # Claims this run's earlier attempts left behind when they died (this attempt released its own).
            sql(_RELEASE_LEFTOVERS, mine)
    if counts["failed"]:
        ctx.warning(f"{counts['failed']} of {total} item(s) failed")
    return counts
