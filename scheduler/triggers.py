"""When a schedule is due: cron, fixed interval, one-shot, weekly, and "after type X completes".

Pure functions of time (no clock inside), so the logic is tested with any instant. Every trigger
answers `next_after(instant)`: the first due time strictly after `instant`, or None when it will never
be due again (a one-shot already fired, or a dependent trigger, which is fired by completions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KINDS = ("cron", "interval", "at", "weekly", "after")
MIN_INTERVAL_S = 1
MAX_INTERVAL_S = 10 * 366 * 24 * 3600  # beyond ten years, date arithmetic overflows sooner or later


class TriggerError(ValueError):
    """A trigger that cannot be used; the message says what is wrong with it."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory such as "America"
        raise TriggerError(f"unknown timezone {name!r}") from None


@dataclass(frozen=True)
class Trigger:
    kind: str
    spec: dict[str, Any]
    timezone: str = "UTC"

    def next_after(self, instant: datetime) -> datetime | None:
        if instant.tzinfo is None:
            raise ValueError("instants must be timezone-aware")
        tz = zone(self.timezone)
        if self.kind == "cron":
            local = instant.astimezone(tz)
            nxt: datetime = croniter(self.spec["cron"], local).get_next(datetime)
            return nxt.astimezone(UTC)
        if self.kind == "interval":
            every = timedelta(seconds=self.spec["seconds"])
            anchor = datetime.fromisoformat(self.spec["anchor"])
            if instant < anchor:
                return anchor
            steps = (instant - anchor) // every + 1
            return anchor + steps * every
        if self.kind == "at":
            when = datetime.fromisoformat(self.spec["at"])
            return when if when > instant else None
        if self.kind == "weekly":
            return _next_weekly(self.spec["days"], self.spec["times"], tz, instant)
        return None  # "after": fired by completions, never by the clock

    def same_plan(self, other: Trigger) -> bool:
        """Equal but for an interval's anchor, which only says when its cadence started."""
        plain = {k: v for k, v in self.spec.items() if k != "anchor"}
        other_plain = {k: v for k, v in other.spec.items() if k != "anchor"}
        return (self.kind, self.timezone, plain) == (other.kind, other.timezone, other_plain)

    def first_due(self, now: datetime) -> datetime | None:
        """The first due time of a new or edited schedule; a one-shot in the past is due now."""
        if self.kind == "at":
            when = datetime.fromisoformat(self.spec["at"])
            return max(when, now)
        return self.next_after(now)

    def as_text(self) -> str:
        """The value `build(kind, value)` turns back into this trigger (what an edit form shows)."""
        if self.kind == "cron":
            return str(self.spec["cron"])
        if self.kind == "interval":
            return str(self.spec["seconds"])
        if self.kind == "at":
            return str(self.spec["at"])
        if self.kind == "weekly":
            return f"{','.join(self.spec['days'])}@{','.join(self.spec['times'])}"
        return str(self.spec["type"])

    def describe(self) -> str:
        if self.kind == "cron":
            return f"cron {self.spec['cron']} ({self.timezone})"
        if self.kind == "interval":
            return f"every {self.spec['seconds']}s"
        if self.kind == "at":
            return f"once at {self.spec['at']}"
        if self.kind == "weekly":
            return f"weekly {','.join(self.spec['days'])}@{','.join(self.spec['times'])} ({self.timezone})"
        return f"after {self.spec['type']} completes"


def _next_weekly(days: list[str], times: list[str], tz: ZoneInfo, instant: datetime) -> datetime:
    local = instant.astimezone(tz)
    wanted_days = {WEEKDAYS.index(d) for d in days}
    clock_times = sorted(time.fromisoformat(t) for t in times)
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        if day.weekday() not in wanted_days:
            continue
        for at in clock_times:
            candidate = datetime.combine(day, at, tzinfo=tz)
            if candidate > local:
                return candidate.astimezone(UTC)
    raise AssertionError("a weekly trigger always has a next time within eight days")


_WEEKLY = re.compile(r"^(?P<days>[a-z,]+)@(?P<times>[0-9:,]+)$")


def cron(expression: str, timezone: str = "UTC") -> Trigger:
    if not croniter.is_valid(expression):
        raise TriggerError(f"invalid cron expression {expression!r}")
    zone(timezone)
    trigger = Trigger("cron", {"cron": expression}, timezone)
    try:
        trigger.next_after(datetime.now(UTC))
    except (CroniterBadDateError, OverflowError):  # e.g. "0 0 30 2 *": February has no 30th
        raise TriggerError(f"cron expression {expression!r} never comes due") from None
    return trigger


def interval(seconds: int, *, anchor: datetime | None = None) -> Trigger:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not MIN_INTERVAL_S <= seconds <= MAX_INTERVAL_S:
        raise TriggerError(
            f"interval must be a whole number of seconds from {MIN_INTERVAL_S} to {MAX_INTERVAL_S}, got {seconds!r}"
        )
    # Whole-second due times: rq-scheduler scores entries in whole seconds.
    anchor = (anchor or datetime.now(UTC)).replace(microsecond=0)
    return Trigger("interval", {"seconds": seconds, "anchor": anchor.isoformat()})


def at(when: datetime) -> Trigger:
    if when.tzinfo is None:
        raise TriggerError("a one-shot time must carry a timezone")
    try:
        utc = when.astimezone(UTC)
    except OverflowError:
        raise TriggerError(f"{when.isoformat()} is out of range") from None
    return Trigger("at", {"at": utc.replace(microsecond=0).isoformat()})


def weekly(expression: str, timezone: str = "UTC") -> Trigger:
    """`mon,thu@07:30` or `mon,tue,wed,thu,fri@07:30,18:00`."""
    match = _WEEKLY.match(expression.strip().lower())
    if not match:
        raise TriggerError(f"weekly trigger must look like 'mon,thu@07:30', got {expression!r}")
    days = [d for d in match["days"].split(",") if d]
    bad_days = [d for d in days if d not in WEEKDAYS]
    if bad_days or not days:
        raise TriggerError(f"unknown weekday(s) {', '.join(bad_days) or '(none)'}; use {','.join(WEEKDAYS)}")
    times = [t for t in match["times"].split(",") if t]
    for text in times:
        try:
            parsed = time.fromisoformat(text)
        except ValueError:
            raise TriggerError(f"invalid time of day {text!r}; use HH:MM") from None
        if parsed.second or parsed.microsecond:
            raise TriggerError(f"times of day are HH:MM, got {text!r}")
    if not times:
        raise TriggerError("a weekly trigger needs at least one time of day")
    zone(timezone)
    ordered_days = sorted(set(days), key=WEEKDAYS.index)
    return Trigger("weekly", {"days": ordered_days, "times": sorted(set(times))}, timezone)


def after(type_name: str) -> Trigger:
    if not type_name:
        raise TriggerError("a dependent trigger names the job type it follows")
    return Trigger("after", {"type": type_name})


def from_dict(kind: str, spec: dict[str, Any], timezone: str = "UTC") -> Trigger:
    """Rebuilds a stored trigger, re-validating it."""
    if kind not in KINDS:
        raise TriggerError(f"unknown trigger kind {kind!r}; use one of {', '.join(KINDS)}")
    try:
        if kind == "cron":
            return cron(spec["cron"], timezone)
        if kind == "interval":
            return interval(spec["seconds"], anchor=datetime.fromisoformat(spec["anchor"]))
        if kind == "at":
            return at(datetime.fromisoformat(spec["at"]))
        if kind == "weekly":
            return weekly(f"{','.join(spec['days'])}@{','.join(spec['times'])}", timezone)
        return after(spec["type"])
    except (KeyError, TypeError) as exc:
        raise TriggerError(f"malformed {kind} trigger: missing {exc}") from None


def build(kind: str, value: str, timezone: str = "UTC") -> Trigger:
    """A trigger from the text an operator typed (form field, API body, command-line option):
    cron "0 3 * * *", interval "3600" (seconds), at "2026-12-01T03:00:00+00:00", weekly "mon,fri@03:00",
    after "other.type"."""
    value = value.strip()
    if kind not in KINDS:
        raise TriggerError(f"unknown trigger kind {kind!r}; use one of {', '.join(KINDS)}")
    if kind == "cron":
        return cron(value, timezone)
    if kind == "interval":
        try:
            seconds = int(value)
        except ValueError:
            raise TriggerError(f"an interval is a whole number of seconds, not {value!r}") from None
        return interval(seconds)
    if kind == "at":
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise TriggerError(f"'at' needs an ISO 8601 date and time, not {value!r}") from None
        return at(when if when.tzinfo else when.replace(tzinfo=zone(timezone)))
    if kind == "weekly":
        return weekly(value, timezone)
    return after(value)
