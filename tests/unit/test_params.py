from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core import crypto
from core.settings import ServerDirs
from jobs.params import InvalidJobRequest, resolve_type, seal_secrets, unseal_secrets, validate_params
from jobs.paths import EXPORT_OUTSIDE, OUTSIDE
from jobs.registry import DeclarationError, JobType, Param, Registry, job_type

NO_DIRS = ServerDirs()  # no server path parameter here


@pytest.fixture
def registry() -> Registry:
    registry = Registry()

    @job_type(
        "test.create_user",
        title="Create user",
        params=[
            Param("email", str),
            Param("quota", int, default=10),
            Param("ratio", float, default=0.5),
            Param("admin", bool, default=False),
            Param("token", str, secret=True, required=False),
        ],
        registry=registry,
    )
    def create_user(ctx: object, email: str, quota: int, ratio: float, admin: bool, token: str = "") -> None:
        return None

    return registry


def test_defaults_fill_in(registry: Registry) -> None:
    declared = resolve_type(registry, "test.create_user")
    assert validate_params(declared, {"email": "a@example.org"}, dirs=NO_DIRS) == {
        "email": "a@example.org",
        "quota": 10,
        "ratio": 0.5,
        "admin": False,
    }


def test_one_error_names_every_bad_field(registry: Registry) -> None:
    declared = resolve_type(registry, "test.create_user")
    with pytest.raises(InvalidJobRequest) as caught:
        validate_params(declared, {"quota": "ten", "admin": 1, "colour": "red", "size": 3}, dirs=NO_DIRS)
    fields = {(e.field, e.problem.split(",")[0]) for e in caught.value.errors}
    assert fields == {
        ("email", "is required"),
        ("quota", "must be an integer"),
        ("admin", "must be a boolean"),
        ("colour", "is not a parameter of this job type"),
        ("size", "is not a parameter of this job type"),
    }


def test_unknown_type_is_named(registry: Registry) -> None:
    with pytest.raises(InvalidJobRequest, match=r"unknown job type 'test\.nope'"):
        resolve_type(registry, "test.nope")


def test_bool_is_not_an_integer(registry: Registry) -> None:
    declared = resolve_type(registry, "test.create_user")
    with pytest.raises(InvalidJobRequest, match="quota: must be an integer, got bool"):
        validate_params(declared, {"email": "x", "quota": True}, dirs=NO_DIRS)


def test_text_values_are_coerced_for_the_command_line(registry: Registry) -> None:
    declared = resolve_type(registry, "test.create_user")
    params = validate_params(
        declared, {"email": "x", "quota": "3", "ratio": "2", "admin": "yes"}, dirs=NO_DIRS, from_text=True
    )
    assert params == {"email": "x", "quota": 3, "ratio": 2.0, "admin": True}
    with pytest.raises(InvalidJobRequest, match="quota: must be an integer, got 'three'"):
        validate_params(declared, {"email": "x", "quota": "three"}, dirs=NO_DIRS, from_text=True)


def test_secrets_are_sealed_and_masked(registry: Registry) -> None:
    declared = resolve_type(registry, "test.create_user")
    sealed = seal_secrets(declared, {"email": "x", "token": "hunter2"}, "k")
    assert sealed["email"] == "x"
    assert "hunter2" not in str(sealed)
    assert crypto.masked(sealed) == {"email": "x", "token": crypto.MASK}
    assert unseal_secrets(sealed, "k") == {"email": "x", "token": "hunter2"}
    with pytest.raises(ValueError, match="cannot be decrypted"):
        unseal_secrets(sealed, "another key")


def test_numbers_outside_their_declared_bounds_are_named() -> None:
    from jobs.params import InvalidJobRequest, validate_params
    from jobs.registry import JobType, Param

    declared = JobType(
        name="test.bounded", func=lambda ctx: None, title="Bounded",
        params=(Param("days", int, default=30, minimum=1, maximum=3650), Param("ratio", float, minimum=0.5)),
    )  # fmt: skip
    assert validate_params(declared, {"ratio": 0.5}, dirs=NO_DIRS) == {"days": 30, "ratio": 0.5}
    with pytest.raises(InvalidJobRequest) as caught:
        validate_params(declared, {"days": 0, "ratio": 0.1}, dirs=NO_DIRS)
    assert [str(e) for e in caught.value.errors] == [
        "days: must be at least 1, got 0",
        "ratio: must be at least 0.5, got 0.1",
    ]
    with pytest.raises(InvalidJobRequest, match="days: must be at most 3650"):
        validate_params(declared, {"days": 4000, "ratio": 1.0}, dirs=NO_DIRS)
    assert declared.params[0].schema()["minimum"] == 1 and declared.params[0].schema()["maximum"] == 3650


def test_only_numbers_may_have_bounds() -> None:
    from jobs.registry import DeclarationError, Registry, job_type

    with pytest.raises(DeclarationError, match="only numbers have bounds"):
        job_type("test.badbounds", title="x", params=[Param("name", str, minimum=1)], registry=Registry())(
            lambda ctx, name: None
        )


def test_a_server_path_is_confined_to_the_directories_of_its_kind(tmp_path: Path) -> None:
    declared = JobType(
        name="test.copy", func=lambda ctx: None, title="Copy",
        params=(Param("source", str, server_path="import"), Param("target", str, server_path="export")),
    )  # fmt: skip
    imports, exports = tmp_path / "in", tmp_path / "out"
    dirs = ServerDirs(imports=(imports,), exports=(exports,))
    assert validate_params(declared, {"source": "a.csv", "target": "b.csv"}, dirs=dirs) == {
        "source": "a.csv",
        "target": "b.csv",
    }
    with pytest.raises(InvalidJobRequest) as caught:
        validate_params(declared, {"source": str(exports / "b.csv"), "target": str(imports / "a.csv")}, dirs=dirs)
    assert [str(e) for e in caught.value.errors] == [f"source: {OUTSIDE}", f"target: {EXPORT_OUTSIDE}"]
    assert [p.schema()["x-server-path"] for p in declared.params] == ["import", "export"]


@pytest.mark.parametrize("kind", [True, "read", "imports"])
def test_a_server_path_is_declared_import_or_export(kind: Any) -> None:
    with pytest.raises(DeclarationError, match="server_path is 'import' or 'export'"):
        job_type("test.badpath", title="x", params=[Param("path", str, server_path=kind)], registry=Registry())(
            lambda ctx, path: None
        )
