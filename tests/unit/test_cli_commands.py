"""The command line's shape, without a database: the lazy table against the commands, --json everywhere, help
that imports nothing heavy, one-line errors, and the table helper."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from core.cli import COMMANDS, WITHOUT_JSON, choices, cli
from core.cli.base import CliError, parse_assignments, table
from tests.conftest import REPO


def leaf_commands(
    group: click.Group = cli, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*path, name))
        else:
            yield (*path, name), command


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_listing_shows_each_commands_own_first_docstring_line(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None and command.name == name
    assert COMMANDS[name].short_help == inspect.cleandoc(command.help or "").splitlines()[0]


def test_every_command_takes_json_but_the_long_running_processes() -> None:
    without = {" ".join(path) for path, command in leaf_commands() if "--json" not in _options(command)}
    assert without == WITHOUT_JSON
    assert len(list(leaf_commands())) >= 35


def _options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in param.opts}


def test_the_copied_choices_equal_their_sources() -> None:
    from dashboard import identity_operations
    from dashboard.auth.roles import Role
    from jobs.catalog.identity.identities import IDENTITY_TYPES
    from jobs.catalog.identity.models import TARGET_ROLES
    from jobs.status import RunStatus

    assert tuple(s.value for s in RunStatus) == choices.RUN_STATUSES
    assert tuple(r.value for r in Role) == choices.ROLES
    assert choices.TARGET_ROLES == TARGET_ROLES
    assert choices.IDENTITY_TYPES == IDENTITY_TYPES
    assert choices.IDENTITY_DISPLAY_STATUSES == identity_operations.DISPLAY_STATUSES
    assert choices.IDENTITY_PAGE_SIZE == identity_operations.MAX_PAGE_SIZE


HEAVY = ("sqlalchemy", "redis", "rq", "alembic", "flask", "cryptography", "core.app", "jobs", "dashboard", "workers")


def test_help_of_every_command_imports_nothing_heavy() -> None:
    """In a fresh interpreter, as `jobyard --help` and `jobyard X --help` start."""
    paths = [(), *((name,) for name in sorted(COMMANDS)), *(path for path, _ in leaf_commands() if len(path) > 1)]
    script = f"""
import sys
from click.testing import CliRunner
from core.cli import cli
for path in {paths!r}:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0 and "Usage: " in result.output, (path, result.output)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r} or m in {HEAVY!r})
assert not heavy, heavy
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "abc\udcffdef"], "Error: argument 'abc\\xffdef' is not valid UTF-8"),
        (["enqueue", "demo.noop", "x=\udce9"], "Error: argument 'x=\\xe9' is not valid UTF-8"),
        (["runs", "--status", "sideways"], "Error: Invalid value for '--status': 'sideways' is not one of"),
        (["runs", "--limit", "0"], "(see 'jobyard runs --help')"),
        (["nosuch"], "Error: No such command 'nosuch' (see 'jobyard --help')"),
        (["users", "add"], "Error: Missing argument 'USERNAME' (see 'jobyard users add --help')"),
        (["worker", "--json"], "(see 'jobyard worker --help')"),
    ],
)
def test_bad_input_before_any_database_exits_2_with_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, args, prog_name="jobyard")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_a_repeated_parameter_is_refused_naming_it() -> None:
    assert parse_assignments(("seconds=1", "other=x=y")) == {"seconds": "1", "other": "x=y"}
    with pytest.raises(CliError, match="parameter 'seconds' is given more than once"):
        parse_assignments(("seconds=1", "seconds=2"))


def test_table_columns_are_as_wide_as_their_widest_cell() -> None:
    lines = table(
        ("NAME", "N", "NOTE"),
        [("identity.retry_provisioning", 7, "long"), ("a", 12, None), ("日本語", 3, "wide")],
    )
    assert lines == [
        "NAME                          N  NOTE",
        "identity.retry_provisioning   7  long",
        "a                            12  -",
        "日本語                        3  wide",
    ]
    assert table(("A", "B"), []) == ["A  B"]
    assert table(None, [("key", "value")], indent="  ") == ["  key  value"]


def test_an_error_of_several_lines_is_told_in_one() -> None:
    error = CliError("database error: connection failed\n\tIs the server running on that host?\n")
    assert error.format_message() == "database error: connection failed Is the server running on that host?"
