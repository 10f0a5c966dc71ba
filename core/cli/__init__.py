"""`jobyard …`: the command line."""

from core.cli import access, identity, processes, runs, schedules  # noqa: F401  (registers the commands)
from core.cli.base import cli


def main() -> None:
    cli(prog_name="jobyard")


__all__ = ["cli", "main"]
