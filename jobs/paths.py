"""Server paths in job parameters: a job reads files only inside the installation's import directories, and
creates files only inside its export directories.

A parameter declared ``Param(..., server_path="import")`` names a file or directory on the worker's disk that the
job reads; ``server_path="export"`` names a file the job creates. Whoever starts a run may not be allowed to read
or write that disk, so such a path must lie inside one of the import directories (``Settings.allowed_import_dirs``:
``JOBYARD_IMPORT_DIRS``, os.pathsep-separated, else ``<data dir>/imports``), respectively the export directories
(``Settings.allowed_export_dirs``: ``JOBYARD_EXPORT_DIRS``, else ``<data dir>/exports``). A relative path is taken
from the first directory of its kind; a ``..`` component is refused outright. The two lists are independent: a
file one job exported is read back by path (Import Archived Data) only when its directory is listed as an import
directory too, because every reading type would then read it.

`confine` is the one check. Enqueue runs it (jobs/params.py), so a bad path is a 422 / exit 2 naming the
parameter; the job runs it again before opening or creating, because the file system may have changed in between
(a symlink swapped after enqueue). It resolves every symlink (os.path.realpath) and compares the *resolved* path
with the resolved directories, and it decides from the path alone: its answer for a path outside never depends on
whether that file exists, what it is or how big it is, so a refusal tells nothing about the disk outside.

`open_file` and `check_directory` then open what was checked and, where the platform says what an open
descriptor is (Linux's /proc/self/fd), check the opened file's real location again, which closes the window
between resolving and opening. `open_export` does the same for the directory an export is created in, and
`ExportTarget` creates, renames and reads the file only relative to that open directory, never following a
symlink and never replacing an existing file, so nothing swapped after the check can redirect the write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path, PurePath
from types import TracebackType
from typing import BinaryIO

from core import defaults
from core.settings import ServerPath
from jobs.context import JobContext, PermanentFailure

OUTSIDE = "must name a file or directory inside the import directories (JOBYARD_IMPORT_DIRS)"
HELP = "inside the import directories (JOBYARD_IMPORT_DIRS); a relative path is taken from the first one"
EXPORT_OUTSIDE = "must name a file inside the export directories (JOBYARD_EXPORT_DIRS)"
EXPORT_HELP = "inside the export directories (JOBYARD_EXPORT_DIRS); a relative path is taken from the first one"
_OUTSIDE: dict[ServerPath, str] = {"import": OUTSIDE, "export": EXPORT_OUTSIDE}
_PROC_FD = Path("/proc/self/fd")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# O_NONBLOCK: opening a FIFO planted in an import directory must not hang the worker (it is refused as no file).
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW | _CLOEXEC
_DIRECTORY_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
# O_EXCL: never a file that exists, nor through a symlink (O_NOFOLLOW alone would still follow a dangling one).
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
_SCRATCH_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
# A file system that has no hard links answers link() so; publishing falls back to a rename there.
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


class PathRefused(PermanentFailure):
    """A path parameter a job may not use; names the parameter, and the resolved path when it lies inside the
    import directories. Another attempt cannot fix it."""

    def __init__(self, field: str, problem: str, where: Path | None = None) -> None:
        super().__init__(f"{field}: {problem}" if where is None else f"{field}: {where} {problem}")
        self.field = field
        self.problem = problem


def _roots(dirs: Sequence[Path]) -> list[Path]:
    return [Path(os.path.realpath(d)) for d in dirs]


def _inside(resolved: Path, roots: Sequence[Path]) -> bool:
    return any(resolved.is_relative_to(root) for root in roots)


def confine(field: str, value: str, dirs: Sequence[Path], kind: ServerPath = "import") -> Path:
    """The path `value` names, when it lies inside one of `dirs` (the import or the export directories, as `kind`
    says); else PathRefused.

    "import": the resolved path. "export": the resolved directory and the name to create in it, taken as given (a
    symlink there is a file that exists); the directory must lie inside, and so must what a symlink there leads to.
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
    if kind == "export" and value.endswith(("/", os.sep)):
        raise PathRefused(field, "must name a file, not a directory")
    if not dirs:
        raise PathRefused(field, _OUTSIDE[kind])
    candidate = Path(given) if given.is_absolute() else Path(dirs[0]) / given
    resolved, roots = Path(os.path.realpath(candidate)), _roots(dirs)
    if not _inside(resolved, roots):
        raise PathRefused(field, _OUTSIDE[kind])
    if kind == "import":
        return resolved
    # The directory the file goes in must be inside too: an export directory itself is no file to create, and a
    # link outside that leads in would be created through a directory nobody allowed.
    directory = Path(os.path.realpath(candidate.parent))
    if not _inside(directory, roots) or not candidate.name:
        raise PathRefused(field, EXPORT_OUTSIDE)
    return directory / candidate.name


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


def export_dirs_of(ctx: JobContext) -> tuple[Path, ...]:
    if ctx.app is None:
        raise PermanentFailure("writing a file by path needs the worker's settings (its export directories)")
    return ctx.app.settings.allowed_export_dirs


def _opened_inside(fd: int, resolved: Path, dirs: Sequence[Path]) -> bool:
    """Whether the open descriptor `fd` is the file or directory at `resolved`, inside one of `dirs`."""
    link = _PROC_FD / str(fd)
    try:
        return _inside(Path(os.readlink(link)), _roots(dirs))
    except OSError:
        pass  # no /proc: the path, resolved again, must still lead to the very file opened
    try:
        return os.path.samestat(os.fstat(fd), os.stat(os.path.realpath(resolved))) and inside(resolved, dirs)
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


def open_export(field: str, value: str, export_dirs: Sequence[Path]) -> ExportTarget:
    """The file `value` names, to be created, after `confine` allowed it and its directory opened inside the
    export directories (checked again on the open descriptor); PathRefused otherwise. The caller closes it."""
    path = confine(field, value, export_dirs, "export")
    try:
        fd = os.open(path.parent, _DIRECTORY_FLAGS)
    except OSError as exc:
        # Checked again first: had a directory on the way been swapped for a link out since, what the open found
        # outside (nothing, a file) must not show in the message.
        confine(field, value, export_dirs, "export")
        if isinstance(exc, FileNotFoundError):
            raise PathRefused(field, f"directory {path.parent} does not exist") from None
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):  # a file in the way, or (O_NOFOLLOW) a link swapped in
            raise PathRefused(field, f"{path.parent} is not a directory") from None
        raise PathRefused(field, f"cannot be written: {exc.strerror or exc}", path) from None
    if not _opened_inside(fd, path.parent, export_dirs):
        os.close(fd)
        raise PathRefused(field, EXPORT_OUTSIDE)
    return ExportTarget(field, path, fd)


class ExportTarget:
    """A file a job is about to create in an export directory, whose directory `open_export` holds open.

    Every operation is relative to that descriptor (openat, linkat, unlinkat) and never follows a symlink, so a
    directory or link swapped after the check cannot redirect the write; and the file is never replaced: the work
    is written to `<name>.partial`, which `publish` links to the name only if nothing is there yet. Leaving the
    `with` block removes a partial file that was not published."""

    def __init__(self, field: str, path: Path, directory_fd: int) -> None:
        self.field = field
        self.path = path
        self.name = path.name
        self.partial_name = f"{path.name}.partial"
        self._dir = directory_fd
        self._partial_made = False

    def taken(self) -> PathRefused:
        return PathRefused(self.field, "already exists", self.path)

    def _failed(self, exc: OSError) -> PathRefused:
        return PathRefused(self.field, f"cannot be written: {exc.strerror or exc}", self.path)

    def existing(self) -> BinaryIO | None:
        """The regular file already at the path, opened for reading; None when nothing is there. Anything else
        (a symlink, wherever it leads, a directory, a pipe) is refused as taken, never followed."""
        try:
            fd = os.open(self.name, _OPEN_FLAGS, dir_fd=self._dir)
        except FileNotFoundError:
            return None
        except OSError as exc:
            # ELOOP: O_NOFOLLOW met a link; ENXIO: a socket. A permission error may be the file's or the directory's.
            if exc.errno in (errno.ELOOP, errno.ENXIO) or self._exists(self.name):
                raise self.taken() from None
            raise self._failed(exc) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise self.taken()
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def scratch(self) -> BinaryIO:
        """A nameless file in the directory for work in progress (on the target's file system, not in /tmp): a
        crash leaves nothing behind."""
        try:
            tmpfile = getattr(os, "O_TMPFILE", 0)
            if tmpfile:
                try:
                    return os.fdopen(os.open(".", tmpfile | os.O_RDWR | _CLOEXEC, 0o600, dir_fd=self._dir), "w+b")
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                        raise
            # No O_TMPFILE on this file system: a fresh name, removed as soon as it is open.
            name = f".jobyard-{secrets.token_hex(8)}.tmp"
            fd = os.open(name, _SCRATCH_FLAGS, 0o600, dir_fd=self._dir)
            os.unlink(name, dir_fd=self._dir)
            return os.fdopen(fd, "w+b")
        except OSError as exc:
            raise self._failed(exc) from None

    def create(self) -> BinaryIO:
        """`<name>.partial`, newly created for writing. One left by an attempt that died while writing is removed
        first, as the entry it is: a symlink planted there is removed, never written through."""
        try:
            try:
                fd = os.open(self.partial_name, _CREATE_FLAGS, 0o666, dir_fd=self._dir)
            except FileExistsError:
                os.unlink(self.partial_name, dir_fd=self._dir)
                fd = os.open(self.partial_name, _CREATE_FLAGS, 0o666, dir_fd=self._dir)
        except FileExistsError:
            raise PathRefused(self.field, "changed while it was written; try again", self.path) from None
        except OSError as exc:
            raise self._failed(exc) from None
        self._partial_made = True
        return os.fdopen(fd, "wb")

    def publish(self) -> None:
        """Gives the written partial file the name, durably (the directory is synced), unless something took the
        name meanwhile: then `taken`, and nothing there is replaced."""
        try:
            try:
                os.link(self.partial_name, self.name, src_dir_fd=self._dir, dst_dir_fd=self._dir, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in _NO_HARD_LINKS:
                    raise
                # No hard links on this file system (FAT, some FUSE mounts): checked, then renamed. Only here can a
                # file made in between be replaced.
                if self._exists(self.name):
                    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST)) from None
                os.rename(self.partial_name, self.name, src_dir_fd=self._dir, dst_dir_fd=self._dir)
            else:
                os.unlink(self.partial_name, dir_fd=self._dir)
            self._partial_made = False
            os.fsync(self._dir)
        except FileExistsError:
            raise self.taken() from None
        except OSError as exc:
            raise self._failed(exc) from None

    def _exists(self, name: str) -> bool:
        try:
            os.stat(name, dir_fd=self._dir, follow_symlinks=False)
        except OSError:
            return False
        return True

    def discard(self) -> None:
        """Removes the partial file this target made and did not publish."""
        if self._partial_made:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.partial_name, dir_fd=self._dir)
            self._partial_made = False

    def close(self) -> None:
        self.discard()
        if self._dir >= 0:
            os.close(self._dir)
            self._dir = -1

    def __enter__(self) -> ExportTarget:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
