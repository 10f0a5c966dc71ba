"""`jobyard schedules …`: every trigger kind from the command line, --json, and exit 2 on bad input."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from click.testing import CliRunner, Result

from core.app import Jobyard
from core.cli import cli

Invoke = Callable[..., Result]


@pytest.fixture
def invoke(app: Jobyard, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    for key, value in app.child_env().items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    ("option", "value", "kind"),
    [
        ("--interval", "2", "interval"),
        ("--cron", "0 2 * * *", "cron"),
        ("--at", "2036-12-01T09:00:00+00:00", "at"),
        ("--weekly", "mon,thu@07:30", "weekly"),
        ("--after", "demo.fail", "after"),
    ],
)
def test_every_trigger_kind_can_be_set(invoke: Invoke, option: str, value: str, kind: str) -> None:
    result = invoke("schedules", "set", "demo.noop", option, value, "--by", "alice", "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert (row["type"], row["mode"], row["trigger_kind"], row["changed_by"]) == (
        "demo.noop",
        "scheduled",
        kind,
        "alice",
    )
    assert (row["next_run_at"] is None) == (kind == "after")
    listed = json.loads(invoke("schedules", "list", "--json").stdout)
    assert [r["type"] for r in listed] == ["demo.noop"]


def test_disable_enable_and_run_now(invoke: Invoke, app: Jobyard) -> None:
    invoke("schedules", "set", "demo.sleep", "--interval", "3600", "seconds=0.2")
    before = json.loads(invoke("schedules", "show", "demo.sleep", "--json").stdout)
    assert before["params"] == {"seconds": 0.2}
    off = json.loads(invoke("schedules", "disable", "demo.sleep", "--json").stdout)
    assert (off["mode"], off["next_run_at"]) == ("disabled", None)
    started = json.loads(invoke("schedules", "run-now", "demo.sleep", "--json").stdout)["id"]
    shown = json.loads(invoke("show", started, "--json").stdout)
    assert shown["params"] == {"seconds": 0.2} and shown["status"] == "pending"
    on = json.loads(invoke("schedules", "enable", "demo.sleep", "--json").stdout)
    assert on["mode"] == "scheduled" and on["next_run_at"] is not None
    text = invoke("schedules", "show", "demo.sleep").output
    assert "demo.sleep" in text and "every 3600s" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set", "demo.noop"), "give exactly one of --cron, --interval, --at, --weekly, --after"),
        (("set", "demo.noop", "--interval", "5", "--cron", "* * * * *"), "give exactly one of"),
        (("set", "demo.noop", "--cron", "99 * * * *"), "invalid cron expression '99 * * * *'"),
        (("set", "demo.noop", "--weekly", "mon@31:00"), "invalid time of day '31:00'"),
        (("set", "demo.noop", "--cron", "0 2 * * *", "--tz", "Nowhere/Land"), "unknown timezone 'Nowhere/Land'"),
        (("set", "demo.noop", "--interval", "0"), "interval must be a whole number of seconds"),
        (("set", "demo.nope", "--interval", "5"), "unknown job type 'demo.nope'"),
        (("set", "demo.sleep", "--interval", "5", "seconds=soon"), "seconds: must be a number"),
        (("set", "demo.noop", "--after", "demo.noop"), "cannot run after itself"),
        (("show", "demo.noop"), "no schedule for job type 'demo.noop'"),
        (("disable", "demo.noop"), "no schedule for job type 'demo.noop'"),
        (("run-now", "demo.nope"), "unknown job type 'demo.nope'"),
    ],
)
def test_bad_input_exits_2_and_stores_nothing(
    invoke: Invoke, app: Jobyard, args: tuple[str, ...], message: str
) -> None:
    result = invoke("schedules", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert json.loads(invoke("schedules", "list", "--json").stdout) == []
