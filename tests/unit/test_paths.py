"""jobs/paths.py: which paths `confine` allows, and how JOBYARD_IMPORT_DIRS is read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.settings import Settings
from jobs.paths import OUTSIDE, PathRefused, confine, open_file


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
