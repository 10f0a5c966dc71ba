"""A click group whose subcommands are imported when they are used (click's documented lazy-loading pattern).

Importing every subcommand module at start pulled in SQLAlchemy, redis, rq and the dashboard's service layer
before even `--help` could answer. Here `list_commands` and the help listing read a table of names and short
help, and `get_command` imports one command's module when that command is run or its own help is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import click

from core.cli.base import CliError


class LazyCommand(NamedTuple):
    target: str  # "package.module:attribute"
    # What the listing shows without importing the module: the first line of the command's docstring (a unit
    # test holds them equal, so that they cannot drift apart).
    short_help: str


def _printable(arg: str) -> str:
    """An argument as the bytes the shell gave, undecodable ones shown as \\xNN."""
    return arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def undecodable(args: Sequence[str]) -> str | None:
    """Says which argument is not valid UTF-8 (Python keeps its bytes as lone surrogates); None when all are."""
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return f"argument '{_printable(arg)}' is not valid UTF-8"
    return None


class LazyGroup(click.Group):
    def __init__(self, *args: Any, lazy_commands: Mapping[str, LazyCommand] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = self.lazy_commands.get(cmd_name)
        if entry is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = entry.target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{entry.target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, but the short help of a lazy command comes from the table: no module is imported."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            entry = self.lazy_commands.get(name)
            command = click.Command(name, help=entry.short_help) if entry else self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class OneLineErrors(LazyGroup):
    """The top-level group: bad input anywhere exits 2 with one line.

    click prints a usage error as the usage line, a hint and the error; here it is the error and the hint on one
    line, as the commands' own errors are. Arguments that are not valid UTF-8 (argv decoded with
    surrogateescape) are refused before any command sees them: they could be neither stored nor printed."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        bad = undecodable(args)
        if bad is not None:
            raise CliError(bad)
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _one_line(exc) from None


# click >= 8.2 answers a group given no subcommand with its help, raised as a usage error: that one stays as it is.
_HELP_AS_ERROR: tuple[type[Exception], ...] = tuple(
    e for e in (getattr(click.exceptions, "NoArgsIsHelpError", None),) if e is not None
)


def _one_line(exc: click.UsageError) -> click.ClickException:
    if isinstance(exc, _HELP_AS_ERROR):
        return exc
    message = " ".join(exc.format_message().split())
    if exc.ctx is not None:
        message = f"{message.rstrip('.')} (see '{exc.ctx.command_path} --help')"
    return CliError(message)
