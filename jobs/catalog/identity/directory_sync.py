"""Directory sync (seed 003): reads a source's users and groups, keeps the local copy, emits JML events.

Owns the rows of ``directory_users`` and ``directory_groups`` (models.py) under one source key:
``scim:<target>`` or ``csv:<path>``. Reading the source (directory_sources.py) comes first and writes nothing;
then, in ONE transaction, the local rows are upserted and one ``identity.jml`` run is enqueued per event, so the
rows and the runs commit together: a crash leaves either the old copy and no runs, or the new copy and all of
them. Events, per user:

- joiner: a new active user, or one active again after being inactive or no longer listed;
- mover: an active user whose display name, email, department, title or groups changed;
- leaver: an active user now inactive, or no longer listed (its row gets ``removed_at``).

Each JML run carries an idempotency key hashed from (source, user key, event, the new state, when the row
was last seen before this sync), so a replayed sync never fires an event twice, while a user who leaves and
later rejoins with the very same attributes still gets a second joiner. A sync that would make leavers of
more than ``max(DIRECTORY_SYNC_LEAVERS_FLOOR, DIRECTORY_SYNC_LEAVERS_SHARE × known active users)`` fails
unless `max_leavers` allows them: an empty or truncated source must not disable everyone.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.orm import Session

from core import defaults
from core.db import utcnow
from jobs import paths
from jobs.catalog.identity.directory_sources import BadSource, Snapshot, SourceUser, read_csv, read_scim
from jobs.catalog.identity.models import directory_groups_table, directory_users_table, scim_targets_table
from jobs.context import JobContext, PermanentFailure
from jobs.enqueue import EnqueueRequest, enqueue_many
from jobs.registry import Param, job_type

JML_TYPE = "identity.jml"
MOVER_FIELDS = ("display_name", "email", "department", "title", "groups")
ATTRIBUTES = ("display_name", "email", "department", "title")
STATE_FIELDS = ("user_name", *MOVER_FIELDS, "active")
MAX_SOURCE = 190  # "directory:" + the source key fits identities.source (200)


@dataclass(frozen=True)
class Event:
    kind: str  # joiner | mover | leaver
    user: SourceUser
    changed: tuple[str, ...] = ()
    seen_before: datetime | None = None  # the row's last_seen_at before this sync; None for a new user

    def idempotency_key(self, source: str) -> str:
        state = {name: getattr(self.user, name) for name in STATE_FIELDS}
        before = None if self.seen_before is None else self.seen_before.isoformat()
        material = json.dumps([source, self.user.external_key, self.kind, state, before], sort_keys=True)
        return f"jml:{self.kind}:{hashlib.sha256(material.encode()).hexdigest()}"


@dataclass
class Changes:
    """What a sync does to the local copy; computed without writing."""

    users_new: list[SourceUser] = field(default_factory=list)
    users_changed: list[tuple[int, SourceUser]] = field(default_factory=list)  # (row id, new state)
    users_removed: list[int] = field(default_factory=list)  # row ids
    groups_new: list[Any] = field(default_factory=list)
    groups_changed: list[tuple[int, Any]] = field(default_factory=list)
    groups_removed: list[int] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    known_active: int = 0


# Parameters


def _source_key(target: str | None, path: str | None, import_dirs: Sequence[Path]) -> str:
    if (target is None) == (path is None):
        raise PermanentFailure("target, path: give exactly one source, a SCIM target's name or a CSV file's path")
    # A relative path is keyed as the absolute one it means, so that both name the same source.
    key = f"scim:{target}" if target is not None else f"csv:{paths.absolute(path or '', import_dirs)}"
    if len(key) > MAX_SOURCE:
        raise BadSource("target" if target is not None else "path", f"must be at most {MAX_SOURCE - 4} characters")
    return key


def _check_target(ctx: JobContext, field_name: str, name: str | None, role: str) -> None:
    if name is None:
        return
    c = scim_targets_table.c
    with ctx.engine.connect() as conn:
        found = conn.execute(select(c.role).where(c.name == name)).scalar_one_or_none()
    if found != role:
        raise PermanentFailure(f"{field_name}: no {role} target named {name!r}")


# Comparing the source with the local copy


def _state(row: Any) -> SourceUser:
    return SourceUser(
        external_key=row.external_key, user_name=row.user_name, display_name=row.display_name, email=row.email,
        department=row.department, title=row.title, active=bool(row.active), groups=tuple(row.groups or ()),
    )  # fmt: skip


def compare(conn: Connection, source: str, snapshot: Snapshot) -> Changes:
    u, g = directory_users_table.c, directory_groups_table.c
    users = {row.external_key: row for row in conn.execute(select(directory_users_table).where(u.source == source))}
    changes = Changes(known_active=sum(1 for r in users.values() if r.active and r.removed_at is None))
    for key, new in sorted(snapshot.users.items()):
        row = users.get(key)
        if row is None:
            changes.users_new.append(new)
            if new.active:
                changes.events.append(Event("joiner", new))
            continue
        old = _state(row)
        was_active = old.active and row.removed_at is None
        if old != new or row.removed_at is not None:
            changes.users_changed.append((row.id, new))
        if new.active and not was_active:
            changes.events.append(Event("joiner", new, seen_before=row.last_seen_at))
        elif was_active and not new.active:
            changes.events.append(Event("leaver", new, seen_before=row.last_seen_at))
        elif was_active and (moved := tuple(f for f in MOVER_FIELDS if getattr(old, f) != getattr(new, f))):
            changes.events.append(Event("mover", new, moved, seen_before=row.last_seen_at))
    for key, row in sorted(users.items()):
        if key not in snapshot.users and row.removed_at is None:
            changes.users_removed.append(row.id)
            if row.active:
                gone = replace(_state(row), active=False)
                changes.events.append(Event("leaver", gone, seen_before=row.last_seen_at))
    groups = {row.external_key: row for row in conn.execute(select(directory_groups_table).where(g.source == source))}
    for key, group in sorted(snapshot.groups.items()):
        known = groups.get(key)
        if known is None:
            changes.groups_new.append(group)
        elif (known.display_name, tuple(known.members or ())) != (group.display_name, group.members) or (
            known.removed_at is not None
        ):
            changes.groups_changed.append((known.id, group))
    changes.groups_removed = [r.id for k, r in groups.items() if k not in snapshot.groups and r.removed_at is None]
    return changes


def _leaver_limit(changes: Changes, max_leavers: int | None) -> int:
    if max_leavers is not None:
        return max_leavers
    share = int(changes.known_active * defaults.DIRECTORY_SYNC_LEAVERS_SHARE)
    return max(defaults.DIRECTORY_SYNC_LEAVERS_FLOOR, share)


# Writing


def _user_values(user: SourceUser) -> dict[str, Any]:
    return {
        "user_name": user.user_name, "display_name": user.display_name, "email": user.email,
        "department": user.department, "title": user.title, "active": user.active, "groups": list(user.groups),
    }  # fmt: skip


def _write(conn: Connection, source: str, changes: Changes, now: datetime) -> None:
    u, g = directory_users_table.c, directory_groups_table.c
    if changes.users_new:
        conn.execute(
            insert(directory_users_table),
            [{"source": source, "external_key": user.external_key, **_user_values(user), "first_seen_at": now,
              "last_seen_at": now, "removed_at": None} for user in changes.users_new],
        )  # fmt: skip
    for row_id, user in changes.users_changed:
        conn.execute(update(directory_users_table).where(u.id == row_id).values(**_user_values(user), removed_at=None))
    for row_id in changes.users_removed:
        conn.execute(update(directory_users_table).where(u.id == row_id).values(removed_at=now))
    if changes.groups_new:
        conn.execute(
            insert(directory_groups_table),
            [{"source": source, "external_key": group.external_key, "display_name": group.display_name,
              "members": list(group.members), "first_seen_at": now, "last_seen_at": now, "removed_at": None}
             for group in changes.groups_new],
        )  # fmt: skip
    for row_id, group in changes.groups_changed:
        conn.execute(
            update(directory_groups_table)
            .where(g.id == row_id)
            .values(display_name=group.display_name, members=list(group.members), removed_at=None)
        )
    for row_id in changes.groups_removed:
        conn.execute(update(directory_groups_table).where(g.id == row_id).values(removed_at=now))
    # Whatever is still listed was seen now (rows just marked removed are not).
    for table in (directory_users_table, directory_groups_table):
        conn.execute(
            update(table).where(table.c.source == source, table.c.removed_at.is_(None)).values(last_seen_at=now)
        )


def _jml_request(ctx: JobContext, source: str, event: Event, platform: str | None, idp_target: str | None) -> Any:
    params: dict[str, Any] = {
        "event": event.kind, "source": source, "user_name": event.user.user_name,
        "attributes": {name: getattr(event.user, name) for name in ATTRIBUTES},
    }  # fmt: skip
    if platform is not None:
        params["platform"] = platform
    if idp_target is not None:
        params["idp_target"] = idp_target
    return EnqueueRequest(
        JML_TYPE, params, triggered_by=f"directory sync (run {ctx.run_id})",
        idempotency_key=event.idempotency_key(source),
    )  # fmt: skip


@job_type(
    "identity.directory_sync",
    title="Directory sync",
    description="Synchronizes users and groups from an identity source (a SCIM target or a CSV file) into the "
    "local directory copy, and starts Joiner/Mover/Leaver automation for each user who joined, moved or left. "
    "Refuses to make leavers of more than a quarter of the known active users (at least 5) unless max_leavers "
    "allows it.",
    params=[
        Param("target", str, required=False, help="the SCIM target to read users and groups from"),
        Param(
            "path", str, required=False, server_path="import",
            help=f"a CSV file to read users from instead of a target, {paths.HELP}",
        ),
        Param("platform", str, required=False, help="the domain target joiners get their domain user on"),
        Param("idp_target", str, required=False, help="the identity provider joiners get their SSO user on"),
        Param("dry_run", bool, default=False, help="report the events without storing or starting anything"),
        Param(
            "max_leavers", int, required=False, minimum=0,
            help="the most leavers one sync may make (default: a quarter of the known active users, at least 5)",
        ),
    ],
    exclusive=True,
    timeout_s=1800,
)  # fmt: skip
def directory_sync(
    ctx: JobContext,
    target: str | None = None,
    path: str | None = None,
    platform: str | None = None,
    idp_target: str | None = None,
    dry_run: bool = False,
    max_leavers: int | None = None,
) -> dict[str, Any]:
    if ctx.app is None:
        raise PermanentFailure("Directory sync runs in a worker")
    import_dirs = paths.import_dirs_of(ctx)
    source = _source_key(target, path, import_dirs)
    _check_target(ctx, "platform", platform, "domain")
    _check_target(ctx, "idp_target", idp_target, "idp")
    if target is not None:
        snapshot = read_scim(ctx.engine, target, check_cancelled=ctx.check_cancelled)
    else:
        assert path is not None
        snapshot = read_csv(path, import_dirs)
    ctx.info(f"{source}: {len(snapshot.users)} user(s), {len(snapshot.groups)} group(s) read")
    listed = defaults.IDENTITY_REPORT_MAX_ITEMS
    run_ids: list[str] = []
    # No ctx logging inside this transaction: a log line is a write of its own, which on SQLite would wait for
    # the very lock this transaction holds.
    with Session(ctx.engine) as session, session.begin():
        conn = session.connection()
        changes = compare(conn, source, snapshot)
        kinds = Counter(e.kind for e in changes.events)
        limit = _leaver_limit(changes, max_leavers)
        problem = None
        if kinds["leaver"] > limit:
            problem = (
                f"max_leavers: the sync would make {kinds['leaver']} of {changes.known_active} known active user(s) "
                f"leavers, more than the limit of {limit}; check the source, or give max_leavers to allow it"
            )
            if not dry_run:
                raise PermanentFailure(problem)
        if not dry_run:
            _write(conn, source, changes, utcnow())
            requests = [_jml_request(ctx, source, e, platform, idp_target) for e in changes.events]
            run_ids = enqueue_many(requests, session=session, app=ctx.app) if requests else []
    if problem is not None:
        ctx.warning(problem)
    for event in changes.events[:listed]:
        detail = f" ({', '.join(event.changed)})" if event.changed else ""
        ctx.info(f"{event.kind}: {event.user.user_name}{detail}" + (" (dry run)" if dry_run else ""))
    return {
        "source": source, "dry_run": dry_run,
        "users_seen": len(snapshot.users), "users_new": len(changes.users_new),
        "users_changed": len(changes.users_changed), "users_removed": len(changes.users_removed),
        "groups_seen": len(snapshot.groups), "groups_new": len(changes.groups_new),
        "groups_changed": len(changes.groups_changed), "groups_removed": len(changes.groups_removed),
        "events": {kind: kinds[kind] for kind in ("joiner", "mover", "leaver")},
        "leaver_limit": limit, "leaver_limit_exceeded": problem is not None,
        "event_list": [
            {"event": e.kind, "user_name": e.user.user_name, **({"changed": list(e.changed)} if e.changed else {})}
            for e in changes.events[:listed]
        ],
        "jml_runs": run_ids[:listed],
    }  # fmt: skip
