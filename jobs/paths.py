"""Server paths in job parameters: a job reads only files inside the installation's import directories.

A parameter declared ``Param(..., server_path=True)`` names a file or directory on the worker's disk. Whoever
starts a run may not be allowed to read that disk, so such a path must lie inside one of the import directories
(``Settings.allowed_import_dirs``: ``JOBYARD_IMPORT_DIRS``, os.pathsep-separated, else ``<data dir>/imports``).
A relative path is taken from the first import directory; a ``..`` component is refused outright.

`confine` is the one check. Enqueue runs it (jobs/params.py), so a bad path is a 422 / exit 2 naming the
parameter; the job runs it again before opening, because the file system may have changed in between (a symlink
swapped after enqueue). It resolves every symlink (os.path.realpath) and compares the *resolved* path with the
resolved import directories, and it decides from the path alone: its answer for a path outside never depends on
whether that file exists, what it is or how big it is, so a refusal tells nothing about the disk outside.

`open_file` and `check_directory` then open what was checked and, where the platform says what an open
descriptor is (Linux's /proc/self/fd), check the opened file's real location again, which closes the window
between resolving and opening.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import BinaryIO

from core import defaults
from jobs.context import JobContext, PermanentFailure

OUTSIDE = "must name a file or directory inside the import directories (JOBYARD_IMPORT_DIRS)"
HELP = "inside the import directories (JOBYARD_IMPORT_DIRS); a relative path is taken from the first one"
_PROC_FD = Path("/proc/self/fd")
# O_NONBLOCK: opening a FIFO planted in an import directory must not hang the worker (it is refused as no file).
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class PathRefused(PermanentFailure):
    """A path parameter a job may not use; names the parameter, and the resolved path when it lies inside the
    import directories. Another attempt cannot fix it."""

    def __init__(self, field: str, problem: str, where: Path | None = None) -> None:
        super().__init__(f"{field}: {problem}" if where is None else f"{field}: {where} {problem}")
        self.field = field
        self.problem = problem


def _roots(import_dirs: Sequence[Path]) -> list[Path]:
    return [Path(os.path.realpath(d)) for d in import_dirs]


def _inside(resolved: Path, roots: Sequence[Path]) -> bool:
    return any(resolved.is_relative_to(root) for root in roots)


def confine(field: str, value: str, import_dirs: Sequence[Path]) -> Path:
    """The resolved path `value` names, when it lies inside an import directory; else PathRefused.

    Reads nothing but symlinks along the way: a path that resolves outside is refused with the same words
    whether or not anything is there."""
    if not value.strip():
        raise PathRefused(field, "cannot be empty")
    if "\x00" in value:
        raise PathRefused(field, "contains a NUL character")
    if len(value) > defaults.SERVER_PATH_MAX_CHARS:
        raise PathRefused(field, f"is longer than {defaults.SERVER_PATH_MAX_CHARS} characters")
    given = PurePath(value)
    if ".." in given.parts:
        raise PathRefused(field, "must not contain '..'")
    if not import_dirs:
        raise PathRefused(field, OUTSIDE)
    candidate = Path(given) if given.is_absolute() else Path(import_dirs[0]) / given
    resolved = Path(os.path.realpath(candidate))
    if not _inside(resolved, _roots(import_dirs)):
        raise PathRefused(field, OUTSIDE)
    return resolved


def inside(path: Path, import_dirs: Sequence[Path]) -> bool:
    """Whether `path` (absolute) resolves inside an import directory; for entries found while listing one."""
    return _inside(Path(os.path.realpath(path)), _roots(import_dirs))


def absolute(value: str, import_dirs: Sequence[Path]) -> str:
    """`value` made absolute as `confine` reads it (an absolute one unchanged), without resolving symlinks: a
    stable name for what the parameter means, whatever file is behind it today, e.g. to key a source by."""
    if PurePath(value).is_absolute() or not import_dirs:
        return value
    return str(Path(import_dirs[0]).absolute() / value)


def import_dirs_of(ctx: JobContext) -> tuple[Path, ...]:
    if ctx.app is None:
        raise PermanentFailure("reading a file by path needs the worker's settings (its import directories)")
    return ctx.app.settings.allowed_import_dirs


def _opened_inside(fd: int, resolved: Path, import_dirs: Sequence[Path]) -> bool:
    """Whether the open descriptor `fd` is the file at `resolved`, inside an import directory."""
    link = _PROC_FD / str(fd)
    try:
        return _inside(Path(os.readlink(link)), _roots(import_dirs))
    except OSError:
        pass  # no /proc: the path, resolved again, must still lead to the very file opened
    try:
        return os.path.samestat(os.fstat(fd), os.stat(os.path.realpath(resolved))) and inside(resolved, import_dirs)
    except OSError:
        return False


def _open(field: str, value: str, import_dirs: Sequence[Path], extra_flags: int) -> tuple[int, Path]:
    resolved = confine(field, value, import_dirs)
    try:
        fd = os.open(resolved, _OPEN_FLAGS | extra_flags)
    except FileNotFoundError:
        raise PathRefused(field, "does not exist", resolved) from None
    except NotADirectoryError:
        problem = "is not a directory" if extra_flags else "does not exist"  # a file is in the way
        raise PathRefused(field, problem, resolved) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            # O_NOFOLLOW: its last component became a symlink after `confine` resolved it.
            raise PathRefused(field, "changed while it was opened; try again", resolved) from None
        raise PathRefused(field, f"cannot be read: {exc.strerror or exc}", resolved) from None
    if not _opened_inside(fd, resolved, import_dirs):
        os.close(fd)
        raise PathRefused(field, OUTSIDE)
    return fd, resolved


def open_file(
    field: str, value: str, import_dirs: Sequence[Path], *, max_bytes: int | None = None
) -> tuple[Path, BinaryIO]:
    """(the resolved path, the regular file it names opened for reading) after `confine` allowed it; PathRefused
    otherwise. The size checked is that of the open file, not of whatever the path names a moment later."""
    fd, resolved = _open(field, value, import_dirs, 0)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise PathRefused(field, "is not a file", resolved)
        if max_bytes is not None and status.st_size > max_bytes:
            raise PathRefused(field, f"is larger than {max_bytes} bytes", resolved)
        os.set_blocking(fd, True)
        return resolved, os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_directory(field: str, value: str, import_dirs: Sequence[Path]) -> Path:
    """The resolved directory `value` names, after `confine` allowed it and it opened as a readable directory.
    Files found in it are confined again when opened (`open_file`), and links out of it are refused there."""
    fd, resolved = _open(field, value, import_dirs, getattr(os, "O_DIRECTORY", 0))
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise PathRefused(field, "is not a directory", resolved)
        if not os.access(resolved, os.R_OK | os.X_OK):
            raise PathRefused(field, "cannot be read", resolved)
    finally:
        os.close(fd)
    return resolved
