"""jobs/paths.py: which paths `confine` allows, how JOBYARD_IMPORT_DIRS and JOBYARD_EXPORT_DIRS are read, and
how an export target creates its file."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from jobs import paths
from jobs.paths import EXPORT_OUTSIDE, OUTSIDE, PathRefused, confine, open_export, open_file


def test_a_relative_path_is_taken_from_the_first_import_dir(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert confine("path", "a/b.csv", [first, second]) == first / "a" / "b.csv"
    assert confine("path", str(second / "c.csv"), [first, second]) == second / "c.csv"
    assert confine("path", str(first), [first]) == first  # the directory itself, for a directory parameter


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("../x.csv", "must not contain '..'"),
        ("a/../../x.csv", "must not contain '..'"),
        ("/etc/passwd", OUTSIDE),
        ("/no/such/file", OUTSIDE),
        ("", "cannot be empty"),
        ("a\x00b", "contains a NUL character"),
        ("a" * 5000, "is longer than 4096 characters"),
    ],
)
def test_paths_out_of_the_import_dirs_are_refused(tmp_path: Path, value: str, problem: str) -> None:
    with pytest.raises(PathRefused) as refused:
        confine("path", value, [tmp_path])
    assert (refused.value.field, refused.value.problem) == ("path", problem)


def test_a_prefix_of_an_import_dir_is_not_inside_it(tmp_path: Path) -> None:
    (tmp_path / "imports-old").mkdir()
    with pytest.raises(PathRefused):
        confine("path", str(tmp_path / "imports-old" / "x.csv"), [tmp_path / "imports"])


def test_a_symlinked_import_dir_is_compared_resolved(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    assert confine("path", str(real / "x.csv"), [tmp_path / "alias"]) == real / "x.csv"


def test_no_import_dir_allows_nothing(tmp_path: Path) -> None:
    with pytest.raises(PathRefused, match="inside the import directories"):
        confine("path", str(tmp_path), [])


def test_open_file_refuses_what_is_no_regular_file_or_too_big(tmp_path: Path) -> None:
    (tmp_path / "big.csv").write_bytes(b"x" * 11)
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(PathRefused, match=r"big.csv is larger than 10 bytes"):
        open_file("path", "big.csv", [tmp_path], max_bytes=10)
    with pytest.raises(PathRefused, match=r"pipe is not a file"):  # and does not hang waiting for a writer
        open_file("path", "pipe", [tmp_path])
    source, file = open_file("path", "big.csv", [tmp_path], max_bytes=11)
    with file:
        assert (source, file.read()) == (tmp_path / "big.csv", b"x" * 11)


def test_import_dirs_come_from_the_environment_separated_like_path(tmp_path: Path) -> None:
    default = Settings.from_env({"JOBYARD_DATA_DIR": str(tmp_path)})
    assert default.import_dirs == () and default.allowed_import_dirs == (tmp_path / "imports",)
    listed = Settings.from_env(
        {"JOBYARD_DATA_DIR": str(tmp_path), "JOBYARD_IMPORT_DIRS": os.pathsep.join(["/srv/a", "", "/srv/b,c"])}
    )
    assert listed.allowed_import_dirs == (Path("/srv/a"), Path("/srv/b,c"))
    assert Settings.from_env(listed.as_env()).allowed_import_dirs == listed.allowed_import_dirs
    assert Settings.from_env(listed.as_env()).allowed_export_dirs == (tmp_path / "exports",)


def test_export_dirs_come_from_the_environment_and_are_no_import_dirs_unless_listed(tmp_path: Path) -> None:
    default = Settings.from_env({"JOBYARD_DATA_DIR": str(tmp_path)})
    assert default.export_dirs == () and default.allowed_export_dirs == (tmp_path / "exports",)
    assert default.server_dirs.of("export") == (tmp_path / "exports",)
    assert default.server_dirs.of("import") == (tmp_path / "imports",)
    listed = Settings.from_env(
        {"JOBYARD_DATA_DIR": str(tmp_path), "JOBYARD_EXPORT_DIRS": os.pathsep.join(["/srv/out", " ", "/srv/x,y"])}
    )
    assert listed.allowed_export_dirs == (Path("/srv/out"), Path("/srv/x,y"))
    assert listed.allowed_import_dirs == (tmp_path / "imports",)
    assert Settings.from_env(listed.as_env()).allowed_export_dirs == listed.allowed_export_dirs


# Exports


@pytest.fixture
def exports(tmp_path: Path) -> Path:
    place = tmp_path / "exports"
    place.mkdir()
    return place


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    place = tmp_path / "outside"
    place.mkdir()
    (place / "keep.txt").write_text("keep")
    return place


def test_an_export_path_names_a_file_in_a_directory_inside_the_export_dirs(exports: Path, outside: Path) -> None:
    assert confine("path", "a.tar", [exports], "export") == exports / "a.tar"
    assert confine("path", "2025/a.tar", [exports], "export") == exports / "2025" / "a.tar"  # need not exist yet
    (exports / "alias").symlink_to(exports / "real")
    assert confine("path", str(exports / "alias" / "a.tar"), [exports], "export") == exports / "real" / "a.tar"
    # A link as the name itself is kept as given (it exists, so creating fails later) while it leads inside.
    (exports / "link").symlink_to(exports / "elsewhere.tar")
    assert confine("path", "link", [exports], "export") == exports / "link"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("../outside/new.tar", "must not contain '..'"),
        ("{outside}/new.tar", EXPORT_OUTSIDE),
        ("{outside}/keep.txt", EXPORT_OUTSIDE),
        ("{exports}", EXPORT_OUTSIDE),  # the export directory itself is no file to create
        (".", EXPORT_OUTSIDE),
        ("sub/", "must name a file, not a directory"),
        ("dir-out/new.tar", EXPORT_OUTSIDE),
        ("dir-gone/new.tar", EXPORT_OUTSIDE),
        ("file-out", EXPORT_OUTSIDE),
        ("file-gone", EXPORT_OUTSIDE),
        ("{outside}/link-in", EXPORT_OUTSIDE),  # a link outside that leads in is still created outside
    ],
)
def test_export_paths_out_of_the_export_dirs_are_refused(
    exports: Path, outside: Path, value: str, problem: str
) -> None:
    (exports / "dir-out").symlink_to(outside)
    (exports / "dir-gone").symlink_to(outside / "missing")
    (exports / "file-out").symlink_to(outside / "keep.txt")
    (exports / "file-gone").symlink_to(outside / "missing.tar")
    (outside / "link-in").symlink_to(exports / "new.tar")
    with pytest.raises(PathRefused) as refused:
        confine("path", value.format(exports=exports, outside=outside), [exports], "export")
    assert (refused.value.field, refused.value.problem) == ("path", problem)
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt", "link-in"]


def written(value: str, exports: Path, data: bytes = b"archive") -> Path:
    with open_export("path", value, [exports]) as target:
        with target.create() as out:
            out.write(data)
        target.publish()
        return target.path


def test_an_export_is_created_through_its_partial_file_and_never_replaces_one(exports: Path) -> None:
    assert written("a.tar", exports) == exports / "a.tar"
    assert sorted(p.name for p in exports.iterdir()) == ["a.tar"]
    with open_export("path", "a.tar", [exports]) as target:
        existing = target.existing()
        assert existing is not None
        with existing:
            assert existing.read() == b"archive"
    with pytest.raises(PathRefused, match=r"a.tar already exists"):
        written("a.tar", exports, b"other")
    assert (exports / "a.tar").read_bytes() == b"archive" and sorted(p.name for p in exports.iterdir()) == ["a.tar"]


def test_a_file_that_appears_while_the_export_is_written_is_kept(exports: Path) -> None:
    with open_export("path", "a.tar", [exports]) as target:
        with target.create() as out:
            out.write(b"archive")
        (exports / "a.tar").write_bytes(b"someone else's")
        with pytest.raises(PathRefused, match=r"a.tar already exists"):
            target.publish()
    assert (exports / "a.tar").read_bytes() == b"someone else's"
    assert sorted(p.name for p in exports.iterdir()) == ["a.tar"]  # the partial file is gone too


def test_a_link_or_anything_but_a_file_at_the_export_path_is_taken_and_never_followed(
    exports: Path, outside: Path
) -> None:
    (exports / "link").symlink_to(exports / "new.tar")  # allowed by confine: it leads inside
    (exports / "dir").mkdir()
    os.mkfifo(exports / "pipe")
    for name in ("link", "dir", "pipe"):
        with open_export("path", name, [exports]) as target, pytest.raises(PathRefused, match=f"{name} already exists"):
            target.existing()
    with pytest.raises(PathRefused, match=r"link already exists"):
        written("link", exports)
    assert not (exports / "new.tar").exists()


def test_a_partial_file_left_behind_is_replaced_even_a_link_out_and_never_written_through(
    exports: Path, outside: Path
) -> None:
    (exports / "a.tar.partial").symlink_to(outside / "keep.txt")
    written("a.tar", exports)
    assert (exports / "a.tar").read_bytes() == b"archive" and (outside / "keep.txt").read_text() == "keep"
    assert not (exports / "a.tar.partial").exists()


def test_a_directory_swapped_after_the_check_does_not_redirect_the_write(exports: Path, outside: Path) -> None:
    (exports / "real").mkdir()
    with open_export("path", "real/a.tar", [exports]) as target:
        os.rename(exports / "real", exports / "moved")
        (exports / "real").symlink_to(outside)  # what the path names now leads out
        with target.scratch() as scratch:
            scratch.write(b"work")
        with target.create() as out:
            out.write(b"archive")
        target.publish()
    assert (exports / "moved" / "a.tar").read_bytes() == b"archive"
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in (exports / "moved").iterdir()) == ["a.tar"]  # the scratch file had no name


def test_the_export_directory_must_exist(exports: Path) -> None:
    with pytest.raises(PathRefused, match=r"directory .*/exports/no does not exist"):
        open_export("path", "no/a.tar", [exports])
    (exports / "file").write_text("")
    with pytest.raises(PathRefused, match=r"exports/file is not a directory"):
        open_export("path", "file/a.tar", [exports])


@pytest.mark.parametrize("name", ["there", "gone"])
def test_the_export_directory_is_checked_where_it_really_is_once_opened(
    exports: Path, outside: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    (exports / "a" / name).mkdir(parents=True)
    (outside / "there").mkdir()
    checked = paths.confine

    def swapped_after_the_check(*args: Any) -> Path:
        """`confine`, then a directory on the way is swapped for a link out, as someone racing the worker would."""
        allowed = checked(*args)
        if not (exports / "a").is_symlink():
            os.rename(exports / "a", exports / "a-old")
            (exports / "a").symlink_to(outside)
        return allowed

    monkeypatch.setattr(paths, "confine", swapped_after_the_check)
    with pytest.raises(PathRefused) as refused:
        open_export("path", f"a/{name}/x.tar", [exports])
    # The same answer whether the open found a directory outside or nothing.
    assert str(refused.value) == f"path: {EXPORT_OUTSIDE}"
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt", "there"] and not any((outside / "there").iterdir())


def test_without_hard_links_publishing_renames_yet_still_refuses_an_existing_file(
    exports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*_args: Any, **_kwargs: Any) -> None:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(paths.os, "link", no_links)
    written("a.tar", exports)
    assert sorted(p.name for p in exports.iterdir()) == ["a.tar"]
    with pytest.raises(PathRefused, match=r"a.tar already exists"):
        written("a.tar", exports, b"other")
    assert (exports / "a.tar").read_bytes() == b"archive"
