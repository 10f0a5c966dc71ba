"""Per-item processing (seed 002's stateful executor): items offered by the job, one result per item.

- An item processed successfully is remembered in ``processed_items`` under the run's scope (its
  schedule, else its job type) and skipped by later runs; items no longer offered are forgotten.
- `dry_run` lists what would be processed and processes nothing.
- Each item's result is committed on its own, so a later failure does not undo earlier items.
- Without `continue_on_error` the first failing item fails the run (the items before it stay done);
  with it, every item is tried and failures make the run end `completed_with_warnings`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from core.db import utcnow
from core.hotsql import HotSQL

if TYPE_CHECKING:
    from jobs.context import JobContext

MAX_KEY = 500
_REMEMBERED = "SELECT key FROM processed_items WHERE scope = :scope"
_RESULT = "INSERT INTO run_items (run_id, key, status, message, at) VALUES (:run_id, :key, :status, :message, :at)"
_REMEMBER = "INSERT INTO processed_items (scope, key, run_id, at) VALUES (:scope, :key, :run_id, :at)"
_FORGET = "DELETE FROM processed_items WHERE scope = :scope AND key = :key"


class ItemFailed(RuntimeError):
    """An item failed and the run does not continue on errors."""


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
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    total = len(offered)

    def record(item_key: str, status: str, message: str | None, remember: bool = False) -> None:
        values = {"run_id": ctx.run_id, "key": item_key, "status": status, "message": message, "at": hot.ts(utcnow())}
        with hot.transaction() as sql:
            sql(_RESULT, values)
            if remember:
                sql(_REMEMBER, {"scope": scope, "key": item_key, "run_id": ctx.run_id, "at": values["at"]})
        counts[status] += 1

    for done, (item_key, item) in enumerate(offered, start=1):
        ctx.check_cancelled()
        if item_key in remembered:
            record(item_key, "skipped", "already processed by an earlier run")
        elif dry_run:
            record(item_key, "skipped", "dry run: would be processed")
        else:
            try:
                message = handle(item)
            except Exception as exc:
                record(item_key, "failed", f"{type(exc).__name__}: {exc}")
                ctx.errors += 1
                if not continue_on_error:
                    raise ItemFailed(f"item {item_key} failed: {exc}") from exc
            else:
                record(item_key, "ok", message, remember=True)
        ctx.progress(done, total)
    if not dry_run:
        # The memory keeps only what is still offered (seed 002: the queue is refreshed after a run).
        gone = remembered - {k for k, _ in offered}
        with hot.transaction() as sql:
            for item_key in gone:
                sql(_FORGET, {"scope": scope, "key": item_key})
    if counts["failed"]:
        ctx.warning(f"{counts['failed']} of {total} item(s) failed")
    return counts
