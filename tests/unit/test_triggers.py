"""Trigger logic on a controllable clock: every instant is given, none is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler import triggers
from scheduler.triggers import TriggerError

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # a Monday


def walk(trigger: triggers.Trigger, start: datetime, count: int) -> list[datetime]:
    out: list[datetime] = []
    instant = start
    for _ in range(count):
        nxt = trigger.next_after(instant)
        if nxt is None:
            break
        out.append(nxt)
        instant = nxt
    return out


def test_cron_in_a_timezone() -> None:
    nightly = triggers.cron("0 2 * * *", "Europe/Paris")
    due = walk(nightly, T0, 3)
    # 02:00 in Paris is 01:00 UTC in November.
    assert due == [datetime(2026, 11, d, 1, 0, tzinfo=UTC) for d in (24, 25, 26)]


def test_interval_keeps_its_cadence_from_the_anchor() -> None:
    every = triggers.interval(900, anchor=T0)
    assert walk(every, T0, 3) == [T0 + timedelta(minutes=15 * k) for k in (1, 2, 3)]
    # Asked late (a scheduler that was down), it still lands on the cadence.
    assert every.next_after(T0 + timedelta(minutes=47)) == T0 + timedelta(minutes=60)
    assert every.next_after(T0 - timedelta(hours=1)) == T0


def test_one_shot_fires_once_and_in_the_past_means_now() -> None:
    later = triggers.at(T0 + timedelta(days=4))
    assert walk(later, T0, 5) == [T0 + timedelta(days=4)]
    past = triggers.at(T0 - timedelta(days=1))
    assert past.first_due(T0) == T0
    assert past.next_after(T0) is None


def test_weekly_on_chosen_days_and_times() -> None:
    plan = triggers.weekly("mon,thu@07:30,18:00", "Europe/Paris")
    due = walk(plan, T0, 5)
    assert [d.astimezone(triggers.zone("Europe/Paris")).strftime("%a %H:%M") for d in due] == [
        "Mon 07:30",
        "Mon 18:00",
        "Thu 07:30",
        "Thu 18:00",
        "Mon 07:30",
    ]


def test_weekly_across_a_daylight_saving_change() -> None:
    plan = triggers.weekly("sun@07:30", "Europe/Paris")
    before = datetime(2027, 3, 20, 12, 0, tzinfo=UTC)  # clocks go forward on Sunday 28 March
    first, second = walk(plan, before, 2)
    assert (first.hour, second.hour) == (6, 5)  # 07:30 CET, then 07:30 CEST


def test_dependent_trigger_is_never_due_by_the_clock() -> None:
    assert triggers.after("identity.directory_sync").next_after(T0) is None


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: triggers.cron("61 * * * *"), "invalid cron expression '61 * * * *'"),
        (lambda: triggers.cron("0 2 * * *", "Mars/Olympus"), "unknown timezone 'Mars/Olympus'"),
        (lambda: triggers.interval(0), "interval must be a whole number of seconds from 1 to"),
        (lambda: triggers.interval(1.5), "interval must be a whole number of seconds"),  # type: ignore[arg-type]
        (lambda: triggers.at(datetime(2026, 1, 1)), "must carry a timezone"),
        (lambda: triggers.weekly("mon,thu"), "must look like 'mon,thu@07:30'"),
        (lambda: triggers.weekly("mon,fun@07:30"), "unknown weekday(s) fun"),
        (lambda: triggers.weekly("mon@25:00"), "invalid time of day '25:00'"),
        (lambda: triggers.after(""), "names the job type"),
        (lambda: triggers.from_dict("hourly", {}), "unknown trigger kind 'hourly'"),
        (lambda: triggers.from_dict("cron", {}), "malformed cron trigger"),
    ],
)
def test_invalid_triggers_are_refused_with_a_specific_message(build: object, message: str) -> None:
    with pytest.raises(TriggerError) as caught:
        build()  # type: ignore[operator]
    assert message in str(caught.value)


def test_stored_triggers_round_trip() -> None:
    for trigger in (
        triggers.cron("*/5 * * * *", "UTC"),
        triggers.interval(60, anchor=T0),
        triggers.at(T0),
        triggers.weekly("fri@09:00", "America/New_York"),
        triggers.after("demo.noop"),
    ):
        assert triggers.from_dict(trigger.kind, trigger.spec, trigger.timezone) == trigger


@pytest.mark.parametrize(
    ("kind", "value"),
    [("cron", "0 3 * * *"), ("interval", "3600"), ("at", "2030-01-02T03:04:00+00:00"), ("weekly", "mon,fri@03:00"),
     ("after", "demo.noop")],
)  # fmt: skip
def test_build_reads_back_what_as_text_writes(kind: str, value: str) -> None:
    trigger = triggers.build(kind, value)
    assert trigger.kind == kind
    assert triggers.build(kind, trigger.as_text()).spec == trigger.spec or kind == "interval"


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [("cron", "every day", "invalid cron"), ("interval", "soon", "whole number"), ("at", "tomorrow", "ISO 8601"),
     ("weekly", "someday", "weekly trigger"), ("hourly", "1", "unknown trigger kind")],
)  # fmt: skip
def test_build_rejects_bad_text_with_a_specific_message(kind: str, value: str, message: str) -> None:
    with pytest.raises(triggers.TriggerError, match=message):
        triggers.build(kind, value)


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [("cron", "0 0 30 2 *", "never comes due"), ("interval", str(10**20), "from 1 to"),
     ("at", "9999-12-31T23:00:00-05:00", "out of range")],
)  # fmt: skip
def test_triggers_that_would_overflow_later_are_refused_now(kind: str, value: str, message: str) -> None:
    with pytest.raises(triggers.TriggerError, match=message):
        triggers.build(kind, value)


def test_a_timezone_that_names_a_directory_is_refused() -> None:
    with pytest.raises(TriggerError, match="unknown timezone"):
        triggers.zone("America")
