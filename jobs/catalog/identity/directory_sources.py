"""Reading a directory source for Directory sync: a SCIM target's Users and Groups, or a CSV file.

Either gives a `Snapshot`: every user, keyed by its externalId (else its userName), with the names of its
groups, and every group, keyed by its externalId (else its name), with its members' keys. Reading writes
nothing and owns no table. A source that cannot be read whole (a bad header or row, a duplicate key, a value
too long for directory_users, a field longer than the CSV reader takes) raises `BadSource` naming the parameter
and the place, before the sync touches a row: a half-read source must never look like a crowd of leavers. A CSV
file's unknown or repeated header columns are counted, never quoted: `path` names a file on the worker's disk
(inside the import directories, jobs/paths.py) that whoever starts the run may not be allowed to read.

CSV columns: ``user_name`` (required), ``external_id``, ``display_name``, ``email``, ``department``,
``title``, ``active`` (true/false, default true), ``groups`` (group names separated by ``;``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import defaults
from jobs import paths
from jobs.catalog.identity.scim_users import user_model
from jobs.catalog.identity.targets import TargetNotFound, call, connect
from jobs.context import PermanentFailure

if TYPE_CHECKING:
    from scim2_client.engines.httpx2 import SyncSCIMClient

ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CSV_COLUMNS = ("user_name", "external_id", "display_name", "email", "department", "title", "active", "groups")
CSV_REQUIRED = ("user_name",)
TRUE, FALSE = ("true", "yes", "1"), ("false", "no", "0")
# Column limits of directory_users / directory_groups (models.py).
LIMITS = {"external_key": 500, "user_name": 200, "display_name": 200, "email": 320, "department": 200, "title": 200}
GROUP_NAME_LIMIT = 200


class BadSource(PermanentFailure):
    """A source the sync refuses to read; names the parameter (``target`` or ``path``) and where it is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True)
class SourceUser:
    external_key: str
    user_name: str
    display_name: str | None
    email: str | None
    department: str | None
    title: str | None
    active: bool
    groups: tuple[str, ...]  # group names, sorted


@dataclass(frozen=True)
class SourceGroup:
    external_key: str
    display_name: str
    members: tuple[str, ...]  # users' external keys, sorted


@dataclass(frozen=True)
class Snapshot:
    users: dict[str, SourceUser]  # by external key
    groups: dict[str, SourceGroup]


def _value(field: str, where: str, name: str, value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if len(text) > limit or "\x00" in text:
        raise BadSource(field, f"{where}: {name} must be at most {limit} characters, without NUL")
    return text or None


def _user(field: str, where: str, raw: dict[str, Any], groups: list[str]) -> SourceUser:
    values = {name: _value(field, where, name, raw.get(name), limit) for name, limit in LIMITS.items()}
    user_name = values["user_name"]
    if user_name is None:
        raise BadSource(field, f"{where}: user_name is required")
    return SourceUser(
        external_key=values["external_key"] or user_name, user_name=user_name, display_name=values["display_name"],
        email=values["email"], department=values["department"], title=values["title"], active=bool(raw["active"]),
        groups=tuple(sorted(set(groups))),
    )  # fmt: skip


def _add(field: str, where: str, users: dict[str, SourceUser], user: SourceUser) -> None:
    if user.external_key in users:
        raise BadSource(field, f"{where}: user key {user.external_key!r} is listed twice")
    users[user.external_key] = user


def _groups_of(users: dict[str, SourceUser], names: dict[str, str]) -> dict[str, SourceGroup]:
    """Groups as the users' memberships describe them; `names` maps a group's key to its name."""
    members: dict[str, list[str]] = {key: [] for key in names}
    by_name = {name: key for key, name in names.items()}
    for user in users.values():
        for name in user.groups:
            members[by_name[name]].append(user.external_key)
    return {key: SourceGroup(key, names[key], tuple(sorted(keys))) for key, keys in members.items()}


# CSV


def _flag(where: str, text: str | None) -> bool:
    value = (text or "").strip().lower()
    if not value or value in TRUE:
        return True
    if value in FALSE:
        return False
    raise BadSource("path", f"{where}: active must be true or false, got {text!r}")


def read_csv(path: str, import_dirs: Sequence[Path]) -> Snapshot:
    """Reads the CSV file at `path`, which must lie inside the import directories (checked again here: a link on
    the way may have been swapped since enqueue); checks the header before any row."""
    source, file = paths.open_file("path", path, import_dirs, max_bytes=defaults.DIRECTORY_CSV_MAX_BYTES)
    try:
        with file:
            text = file.read().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadSource("path", f"{source} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise BadSource("path", f"{source} cannot be read: {exc.strerror}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return _csv_snapshot(path, reader)
    except csv.Error as exc:  # a field longer than the reader's limit; its message quotes nothing of the file
        where = f"the row starting on line {reader.line_num + 1}"  # line_num: the lines read before it
        raise BadSource("path", f"{path} is not readable as CSV, {where}: {exc}") from None


def _csv_snapshot(path: str, reader: csv.DictReader[str]) -> Snapshot:
    header = [(name or "").strip().lower() for name in reader.fieldnames or []]
    missing = [c for c in CSV_REQUIRED if c not in header]
    unknown = sorted({c for c in header if c not in CSV_COLUMNS})
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if missing or unknown or duplicated:
        # The path names a file on the worker's disk, which whoever starts the run may not be allowed to read: its
        # first line must not come back as column names. Only counts are given.
        problems = [f"missing column(s): {', '.join(missing)}"] if missing else []
        problems += [f"{label} column(s): {len(names)} (not quoted from a file on the worker's disk)"
                     for label, names in (("unknown", unknown), ("repeated", duplicated)) if names]  # fmt: skip
        known = f"; the columns are {', '.join(CSV_COLUMNS)} ({', '.join(CSV_REQUIRED)} required)"
        raise BadSource("path", f"bad header in {path}: " + "; ".join(problems) + known)
    reader.fieldnames = header
    users: dict[str, SourceUser] = {}
    group_names: set[str] = set()
    for raw in reader:
        where = f"line {reader.line_num}"
        if None in raw:
            raise BadSource("path", f"{where}: more fields than the header has columns")
        groups = [g.strip() for g in (raw.get("groups") or "").split(";") if g.strip()]
        for group in groups:
            _value("path", where, "groups", group, GROUP_NAME_LIMIT)
        fields = {**raw, "external_key": raw.get("external_id"), "active": _flag(where, raw.get("active"))}
        _add("path", where, users, _user("path", where, fields, groups))
        group_names.update(groups)
    return Snapshot(users, _groups_of(users, {name: name for name in group_names}))


# SCIM


def _pages(scim: SyncSCIMClient, model: Any, page_size: int, check_cancelled: Callable[[], None]) -> Iterator[Any]:
    """Every resource of `model`, a page at a time (RFC 7644 §3.4.2.4: startIndex is 1-based)."""
    start = 1
    while True:
        check_cancelled()
        page: Any = call(scim.query, model, query_parameters={"startIndex": start, "count": page_size})
        resources = list(getattr(page, "resources", None) or [])
        yield from resources
        total = getattr(page, "total_results", None)
        start += len(resources)
        if not resources or (total is not None and start > total) or (total is None and len(resources) < page_size):
            return


def _primary_email(user: Any) -> str | None:
    emails = [e for e in user.emails or [] if getattr(e, "value", None)]
    primary = next((e for e in emails if e.primary), emails[0] if emails else None)
    return None if primary is None else str(primary.value)


def _department(user: Any, extension: Any) -> str | None:
    if extension is None:
        return None
    values = user[extension]
    return None if values is None else values.department


def read_scim(
    engine: Any, target: str, *, page_size: int = defaults.SCIM_PAGE_SIZE, check_cancelled: Callable[[], None]
) -> Snapshot:
    """Reads every user and group of SCIM target `target`; group memberships come from the Groups' members."""
    try:
        with connect(engine, target) as scim:
            model = user_model(scim)
            extension = model.get_extension_model(ENTERPRISE_USER)
            listed = list(_pages(scim, model, page_size, check_cancelled))
            group_model = scim.get_resource_model("Group")
            groups = [] if group_model is None else list(_pages(scim, group_model, page_size, check_cancelled))
    except TargetNotFound as exc:
        raise BadSource("target", str(exc)) from None
    keys_by_id: dict[str, str] = {}
    users: dict[str, SourceUser] = {}
    memberships: dict[str, list[str]] = {}
    for user in listed:
        where = f"user {user.id}"
        raw = {
            "user_name": user.user_name, "external_key": user.external_id, "display_name": user.display_name,
            "email": _primary_email(user), "department": _department(user, extension), "title": user.title,
            "active": user.active is not False,
        }  # fmt: skip
        parsed = _user("target", where, raw, [])
        _add("target", where, users, parsed)
        keys_by_id[str(user.id)] = parsed.external_key
        memberships[parsed.external_key] = []
    found: dict[str, SourceGroup] = {}
    for group in groups:
        where = f"group {group.id}"
        name = _value("target", where, "displayName", group.display_name, GROUP_NAME_LIMIT) or str(group.id)
        key = _value("target", where, "externalId", group.external_id, LIMITS["external_key"]) or name
        if key in found:
            raise BadSource("target", f"{where}: group key {key!r} is listed twice")
        # Members that are groups (nesting) or unknown users are not users of this source.
        members = {k for m in group.members or [] if (k := keys_by_id.get(str(m.value))) is not None}
        for user_key in members:
            memberships[user_key].append(name)
        found[key] = SourceGroup(key, name, tuple(sorted(members)))
    users = {key: replace(user, groups=tuple(sorted(set(memberships[key])))) for key, user in users.items()}
    return Snapshot(users, found)
