"""The one way a run comes into being: validate, write the run row, commit, then push to Redis.

The commit is the acknowledgement; the push follows from a background thread (jobs/pusher.py). If it
never happens the run is still safe: it is `pending` in SQL and the reconciler pushes it. With the
caller's session, the push waits for the caller's commit and is dropped on rollback, so a job is
enqueued atomically with the caller's own changes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from redis import RedisError
from sqlalchemy import event
from sqlalchemy.orm import Session

from core import defaults
from core.db import utcnow
from core.hotsql import HotSQL, Runner
from jobs.dispatch import Delivery, Dispatcher, instance_queue
from jobs.params import FieldError, InvalidJobRequest, resolve_type, seal_secrets, validate_params
from jobs.pusher import Pusher
from jobs.status import RunStatus

if TYPE_CHECKING:
    from core.app import Jobyard

log = logging.getLogger(__name__)

_PENDING_KEY = "jobyard.pending_deliveries"


@dataclass(frozen=True)
class EnqueueRequest:
    type: str
    params: Mapping[str, Any] | None = None
    queue: str | None = None
    at: datetime | None = None
    triggered_by: str | None = None
    domain: str | None = None
    # A second request with the same key creates nothing and returns the first run's id.
    idempotency_key: str | None = None
    schedule_id: int | None = None
    # Runs that must complete first; the run waits in `waiting` until they have.
    depends_on: tuple[str, ...] = ()
    # A named instance that must run it (its own queue); see `jobyard worker --instance`.
    instance: str | None = None
    # Addresses to mail when the run ends ("notify me when finished").
    notify: tuple[str, ...] = ()


def _prepare(
    app: Jobyard, request: EnqueueRequest, now: datetime, *, from_text: bool, prefix: str = ""
) -> tuple[dict[str, Any], Delivery]:
    errors: list[FieldError] = []
    try:
        declared = resolve_type(app.registry, request.type)
        params = validate_params(declared, request.params, dirs=app.settings.server_dirs, from_text=from_text)
    except InvalidJobRequest as exc:
        raise InvalidJobRequest([FieldError(prefix + e.field, e.problem) for e in exc.errors]) from None
    if request.at is not None and request.at.tzinfo is None:
        errors.append(FieldError(prefix + "at", "must carry a timezone"))
    if request.queue is not None and not request.queue.strip():
        errors.append(FieldError(prefix + "queue", "cannot be empty"))
    if request.instance is not None and (request.queue is not None or not request.instance.strip()):
        errors.append(FieldError(prefix + "instance", "must be a name, and not given with a queue"))
    if errors:
        raise InvalidJobRequest(errors)
    run_id = uuid.uuid4().hex
    later = request.at is not None and request.at > now
    queue = instance_queue(request.instance) if request.instance else request.queue or declared.queue
    row = {
        "id": run_id,
        "type": declared.name,
        "queue": queue,
        "status": RunStatus.SCHEDULED if later else RunStatus.PENDING,
        "params": seal_secrets(declared, params, app.settings.secret_key),
        "domain": request.domain or declared.domain,
        "triggered_by": request.triggered_by,
        "created_at": now,
        "dispatched_at": now,
        "scheduled_for": request.at,
        "attempt_count": 0,
        "series": 1,
        "max_attempts": declared.retry.max_attempts,
        "timeout_s": declared.timeout_s,
        "schedule_id": request.schedule_id,
        "idempotency_key": request.idempotency_key,
        "finished_at": None,
        "error": None,
        "notify": list(request.notify) or None,
    }
    delivery = Delivery(run_id, declared.name, queue, declared.timeout_s, request.at if later else None)
    return row, delivery


_DEPENDENCY_STATUS = "SELECT id, status FROM runs WHERE id IN ({ids})"
_INSERT_DEPENDENCY = "INSERT INTO run_dependencies (run_id, depends_on_id) VALUES (:run_id, :depends_on_id)"


def _hold_dependents(
    app: Jobyard, requests: list[EnqueueRequest], rows: list[dict[str, Any]], session: Session | None
) -> tuple[set[str], list[dict[str, str]]]:
    """Marks runs with unfinished dependencies `waiting`, and cancels at once those depending on a run
    that already failed or was cancelled. Returns the runs not to push and the dependency rows."""
    wanted = sorted({d for r in requests for d in r.depends_on})
    params = {f"d{i}": run_id for i, run_id in enumerate(wanted)}
    sql_text = _DEPENDENCY_STATUS.format(ids=", ".join(":" + k for k in params))
    if session is not None:
        found = {row.id: row.status for row in Runner.joining(session.connection()).all(sql_text, params)}
    else:
        with app.hot.transaction() as sql:
            found = {row.id: row.status for row in sql.all(sql_text, params)}
    errors = [
        FieldError(f"[{i}].depends_on" if len(requests) > 1 else "depends_on", f"unknown run {run_id!r}")
        for i, request in enumerate(requests)
        for run_id in request.depends_on
        if run_id not in found
    ]
    if errors:
        raise InvalidJobRequest(errors)
    held: set[str] = set()
    dependencies: list[dict[str, str]] = []
    for request, row in zip(requests, rows, strict=True):
        dependencies.extend({"run_id": row["id"], "depends_on_id": d} for d in request.depends_on)
        doomed = next((d for d in request.depends_on if found[d] in ("failed", "cancelled")), None)
        if doomed is not None:
            row.update(status=RunStatus.CANCELLED, finished_at=row["created_at"],
                       error=f"cancelled: run {doomed}, which it depends on, {found[doomed]}")  # fmt: skip
            held.add(row["id"])
        elif any(found[d] not in ("completed", "completed_with_warnings") for d in request.depends_on):
            row["status"] = RunStatus.WAITING
            held.add(row["id"])
    return held, dependencies


def push_quietly(dispatcher: Dispatcher, deliveries: Sequence[Delivery]) -> None:
    """Pushes committed runs now; a Redis outage leaves them for the reconciler."""
    if not deliveries:
        return
    try:
        dispatcher.push(deliveries)
    except RedisError:
        log.warning("Redis unavailable; %d committed run(s) wait for the reconciler", len(deliveries), exc_info=True)


def _defer_to_commit(session: Session, pusher: Pusher, deliveries: list[Delivery]) -> None:
    pending: list[Delivery] | None = session.info.get(_PENDING_KEY)
    if pending is None:
        pending = session.info[_PENDING_KEY] = []

        @event.listens_for(session, "after_commit")
        def _push(sess: Session) -> None:
            ready = list(sess.info.get(_PENDING_KEY, []))
            sess.info[_PENDING_KEY] = []
            pusher.submit(ready)

        @event.listens_for(session, "after_rollback")
        def _drop(sess: Session) -> None:
            sess.info[_PENDING_KEY] = []

    pending.extend(deliveries)


def enqueue_many(
    requests: Iterable[EnqueueRequest],
    *,
    session: Session | None = None,
    app: Jobyard | None = None,
    from_text: bool = False,
) -> list[str]:
    """Enqueues several runs; all are validated first, and one bad request stores none of them."""
    if app is None:
        from core.app import Jobyard

        app = Jobyard.current()
    now = utcnow()
    requests = list(requests)
    rows: list[dict[str, Any]] = []
    deliveries: list[Delivery] = []
    errors: list[FieldError] = []
    for index, request in enumerate(requests):
        try:
            row, delivery = _prepare(
                app, request, now, from_text=from_text, prefix=f"[{index}]." if len(requests) > 1 else ""
            )
        except InvalidJobRequest as exc:
            errors.extend(exc.errors)
            continue
        rows.append(row)
        deliveries.append(delivery)
    if errors:
        raise InvalidJobRequest(errors)
    if not rows:
        return []
    held: set[str] = set()
    dependencies: list[dict[str, str]] = []
    if any(r.depends_on for r in requests):
        held, dependencies = _hold_dependents(app, requests, rows, session)
    if session is not None:
        ids = _insert(Runner.joining(session.connection()), app.hot, rows, dependencies)
    else:
        with app.hot.transaction() as sql:
            ids = _insert(sql, app.hot, rows, dependencies)
    to_push = ids.inserted - held
    ready = [d for d in deliveries if d.run_id in to_push]
    if session is not None:
        _defer_to_commit(session, app.pusher, ready)
    else:
        app.pusher.submit(ready)
    return ids.in_order


@dataclass(frozen=True)
class _Inserted:
    in_order: list[str]  # per request: its new run, or the run that already held its idempotency key
    inserted: set[str]


_COLUMNS = (
    "id", "type", "queue", "status", "params", "domain", "triggered_by", "created_at", "dispatched_at",
    "scheduled_for", "attempt_count", "series", "max_attempts", "timeout_s", "schedule_id", "idempotency_key",
    "finished_at", "error", "notify",
)  # fmt: skip
_INSERT_RUN = f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})"


def _insert(sql: Runner, hot: HotSQL, rows: list[dict[str, Any]], dependencies: list[dict[str, str]]) -> _Inserted:
    stamps: dict[datetime | None, Any] = {}  # a batch shares one `now`: format it once

    def ts(value: datetime | None) -> Any:
        if value not in stamps:
            stamps[value] = hot.ts(value)
        return stamps[value]

    values = [
        {
            **r,
            "params": hot.json(r["params"]),
            "created_at": ts(r["created_at"]),
            "dispatched_at": ts(r["dispatched_at"]),
            "scheduled_for": ts(r["scheduled_for"]),
            "finished_at": ts(r["finished_at"]),
            "notify": hot.json(r["notify"]) if r["notify"] else None,
        }
        for r in rows
    ]
    plain = [v for v in values if v["idempotency_key"] is None]
    keyed = [v for v in values if v["idempotency_key"] is not None]
    if plain:
        sql(_INSERT_RUN, plain)
    if not keyed:
        if dependencies:
            sql(_INSERT_DEPENDENCY, dependencies)
        return _Inserted([r["id"] for r in rows], {r["id"] for r in rows})
    sql(_INSERT_RUN + " ON CONFLICT (idempotency_key) DO NOTHING", keyed)
    holders: dict[str, str] = {}
    keys = sorted({v["idempotency_key"] for v in keyed})
    for start in range(0, len(keys), defaults.ENQUEUE_BATCH_SIZE):
        chunk = {f"k{i}": key for i, key in enumerate(keys[start : start + defaults.ENQUEUE_BATCH_SIZE])}
        found = sql.all(
            f"SELECT idempotency_key, id FROM runs WHERE idempotency_key IN ({', '.join(':' + k for k in chunk)})",
            chunk,
        )
        holders.update((row.idempotency_key, row.id) for row in found)
    in_order = [r["id"] if r["idempotency_key"] is None else holders[r["idempotency_key"]] for r in rows]
    inserted = {v["id"] for v in plain} | {v["id"] for v in keyed if holders[v["idempotency_key"]] == v["id"]}
    # A request that found its key taken created nothing, so it adds no dependency either.
    if kept := [d for d in dependencies if d["run_id"] in inserted]:
        sql(_INSERT_DEPENDENCY, kept)
    return _Inserted(in_order, inserted)


def enqueue(
    type: str,
    params: Mapping[str, Any] | None = None,
    *,
    queue: str | None = None,
    at: datetime | None = None,
    session: Session | None = None,
    triggered_by: str | None = None,
    domain: str | None = None,
    idempotency_key: str | None = None,
    depends_on: Sequence[str] = (),
    instance: str | None = None,
    app: Jobyard | None = None,
) -> str:
    """Enqueues one run of a declared job type and returns its id.

    Raises InvalidJobRequest naming every bad field; nothing is stored then.
    """
    request = EnqueueRequest(
        type, params, queue, at, triggered_by, domain, idempotency_key, None, tuple(depends_on), instance
    )
    return enqueue_many([request], session=session, app=app)[0]
