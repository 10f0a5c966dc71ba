"""Operator-facing operations on schedules: set, enable, disable, run now, list, defaults at start."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.crypto import masked
from core.db import utcnow
from jobs.enqueue import EnqueueRequest, enqueue_many
from jobs.params import resolve_type, seal_secrets, unseal_secrets, validate_params
from scheduler.models import schedules_table as schedules
from scheduler.triggers import Trigger, TriggerError

if TYPE_CHECKING:
    from core.app import Jobyard

log = logging.getLogger("jobyard.scheduler")
SYSTEM = "system:declaration"


class ScheduleNotFound(LookupError):
    def __init__(self, type_name: str) -> None:
        super().__init__(f"no schedule for job type {type_name!r}")


@dataclass(frozen=True)
class ScheduleRow:
    id: int
    type: str
    params: dict[str, Any]
    trigger: Trigger
    mode: str
    next_run_at: datetime | None
    last_run_id: str | None
    last_fired_at: datetime | None
    misfires: int
    last_misfire_at: datetime | None
    changed_at: datetime
    changed_by: str

    @classmethod
    def from_row(cls, row: Any) -> ScheduleRow:
        return cls(
            id=row.id, type=row.type, params=row.params,
            trigger=Trigger(row.trigger_kind, row.trigger_spec, row.timezone), mode=row.mode,
            next_run_at=row.next_run_at, last_run_id=row.last_run_id, last_fired_at=row.last_fired_at,
            misfires=row.misfires, last_misfire_at=row.last_misfire_at, changed_at=row.changed_at,
            changed_by=row.changed_by,
        )  # fmt: skip

    @property
    def active(self) -> bool:
        return self.mode != "disabled" and self.next_run_at is not None

    def as_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "type": self.type, "mode": self.mode, "trigger": self.trigger.describe(),
            "trigger_kind": self.trigger.kind, "trigger_spec": self.trigger.spec, "timezone": self.trigger.timezone,
            "params": masked(self.params), "next_run_at": iso(self.next_run_at), "last_run_id": self.last_run_id,
            "last_fired_at": iso(self.last_fired_at), "misfires": self.misfires,
            "last_misfire_at": iso(self.last_misfire_at), "changed_at": iso(self.changed_at),
            "changed_by": self.changed_by,
        }  # fmt: skip


def get(app: Jobyard, type_name: str) -> ScheduleRow:
    with app.engine.connect() as conn:
        row = conn.execute(select(schedules).where(schedules.c.type == type_name)).first()
    if row is None:
        raise ScheduleNotFound(type_name)
    return ScheduleRow.from_row(row)


def get_by_id(app: Jobyard, schedule_id: int) -> ScheduleRow:
    with app.engine.connect() as conn:
        row = conn.execute(select(schedules).where(schedules.c.id == schedule_id)).first()
    if row is None:
        raise ScheduleNotFound(f"#{schedule_id}")
    return ScheduleRow.from_row(row)


def list_all(app: Jobyard) -> list[ScheduleRow]:
    with app.engine.connect() as conn:
        return [ScheduleRow.from_row(r) for r in conn.execute(select(schedules).order_by(schedules.c.type))]


def _check(
    app: Jobyard, type_name: str, trigger: Trigger, params: dict[str, Any] | None, from_text: bool
) -> dict[str, Any]:
    declared = resolve_type(app.registry, type_name)
    clean = validate_params(declared, params or {}, dirs=app.settings.server_dirs, from_text=from_text)
    if trigger.kind == "after":
        followed = trigger.spec["type"]
        if followed not in app.registry:
            raise TriggerError(f"--after names unknown job type {followed!r}")
        if followed == type_name:
            raise TriggerError("a job type cannot run after itself")
    return clean


def set_schedule(
    app: Jobyard,
    type_name: str,
    trigger: Trigger,
    *,
    by: str,
    params: dict[str, Any] | None = None,
    from_text: bool = False,
    mode: str = "scheduled",
) -> ScheduleRow:
    """Creates or replaces the plan of a job type; its next execution moves at once.

    Raises InvalidJobRequest or TriggerError and stores nothing when the input is bad."""
    clean = _check(app, type_name, trigger, params, from_text)
    now = utcnow()
    # Secret parameters are kept sealed, as on runs; the scheduler unseals them to start a run.
    sealed = seal_secrets(resolve_type(app.registry, type_name), clean, app.settings.secret_key)
    values = {
        "params": sealed, "trigger_kind": trigger.kind, "trigger_spec": trigger.spec, "timezone": trigger.timezone,
        "mode": mode, "next_run_at": trigger.first_due(now), "changed_at": now, "changed_by": by,
    }  # fmt: skip
    with app.engine.begin() as conn:
        updated = conn.execute(update(schedules).where(schedules.c.type == type_name).values(**values)).rowcount
        if not updated:
            conn.execute(insert(schedules).values(type=type_name, created_at=now, misfires=0, **values))
    row = get(app, type_name)
    app.clock.put(row)
    return row


def set_mode(app: Jobyard, type_name: str, *, enabled: bool, by: str) -> ScheduleRow:
    current = get(app, type_name)
    now = utcnow()
    if enabled:
        declared = app.registry.get(type_name)
        default = declared.default_schedule if declared is not None else None
        is_default = default is not None and default.same_plan(current.trigger)
        mode, next_run_at = ("automatic" if is_default else "scheduled"), current.trigger.first_due(now)
    else:
        mode, next_run_at = "disabled", None
    with app.engine.begin() as conn:
        conn.execute(
            update(schedules)
            .where(schedules.c.type == type_name)
            .values(mode=mode, next_run_at=next_run_at, changed_at=now, changed_by=by)
        )
    row = get(app, type_name)
    app.clock.put(row)
    return row


def remove(app: Jobyard, type_name: str) -> None:
    row = get(app, type_name)
    with app.engine.begin() as conn:
        conn.execute(delete(schedules).where(schedules.c.id == row.id))
    app.clock.drop(row.id)


def run_now(
    app: Jobyard, type_name: str, *, by: str, params: dict[str, Any] | None = None, from_text: bool = False
) -> str:
    """Starts a run at once, with the schedule's parameters (overridden by `params`); the schedule's
    next execution does not move."""
    declared = resolve_type(app.registry, type_name)
    base: dict[str, Any] = {}
    schedule_id = None
    try:
        existing = get(app, type_name)
        base, schedule_id = unseal_secrets(existing.params, app.settings.secret_key), existing.id
    except ScheduleNotFound:
        pass
    # Validated here too so that a bad override is reported against the merged set, field by field.
    merged = validate_params(declared, {**base, **(params or {})}, dirs=app.settings.server_dirs, from_text=from_text)
    [run_id] = enqueue_many([EnqueueRequest(type_name, merged, triggered_by=by, schedule_id=schedule_id)], app=app)
    return run_id


def ensure_defaults(app: Jobyard) -> tuple[list[str], list[str]]:
    """Creates the declared default schedules that are missing and removes schedules of types that no
    longer exist. An operator's change (mode scheduled or disabled) is never overwritten."""
    created: list[str] = []
    now = utcnow()
    with app.engine.begin() as conn:
        existing = {r.type: r for r in conn.execute(select(schedules))}
        for declared in app.registry:
            trigger = declared.default_schedule
            if trigger is None:
                continue
            row = existing.get(declared.name)
            if row is None:
                # Two schedulers starting at once both find it missing: the second insert does nothing.
                dialect_insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
                inserted = conn.execute(
                    dialect_insert(schedules)
                    .values(
                        type=declared.name, params={}, trigger_kind=trigger.kind, trigger_spec=trigger.spec,
                        timezone=trigger.timezone, mode="automatic", next_run_at=trigger.first_due(now),
                        created_at=now, changed_at=now, changed_by=SYSTEM, misfires=0,
                    )
                    .on_conflict_do_nothing(index_elements=["type"])
                ).rowcount  # fmt: skip
                if inserted:
                    created.append(declared.name)
            elif row.mode == "automatic" and not Trigger(row.trigger_kind, row.trigger_spec, row.timezone).same_plan(
                trigger
            ):
                # The declaration changed and nobody overrode it: follow the declaration.
                conn.execute(
                    update(schedules)
                    .where(schedules.c.id == row.id)
                    .values(trigger_kind=trigger.kind, trigger_spec=trigger.spec, timezone=trigger.timezone,
                            next_run_at=trigger.first_due(now), changed_at=now, changed_by=SYSTEM)
                )  # fmt: skip
        gone = sorted(t for t in existing if t not in app.registry)
        if gone:
            conn.execute(delete(schedules).where(schedules.c.type.in_(gone)))
    for type_name in gone:
        log.warning("removed the schedule of job type %s, which is no longer declared", type_name)
    return created, gone
