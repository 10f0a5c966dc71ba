from __future__ import annotations

import pytest

from jobs.registry import REGISTRY, DeclarationError, Param, Registry, job_type, load_job_modules


def test_builtin_demo_types_are_declared() -> None:
    load_job_modules()
    assert {"demo.noop", "demo.sleep", "demo.fail", "demo.progress"} <= {t.name for t in REGISTRY}
    fail = REGISTRY.get("demo.fail")
    assert fail is not None
    assert fail.retry.backoff_base_s == 1.0
    assert fail.retry.max_attempts == 5
    assert fail.timeout_s == 120


@pytest.mark.parametrize("name", ["noop", "Demo.Noop", "demo.", "demo..x", "1demo.x"])
def test_names_must_be_dotted_lowercase(name: str) -> None:
    with pytest.raises(DeclarationError, match="must look like"):
        job_type(name, title="x", registry=Registry())


def test_params_must_match_the_function() -> None:
    with pytest.raises(DeclarationError, match="'count' is not an argument"):

        @job_type("test.bad", title="x", params=[Param("count", int)], registry=Registry())
        def bad(ctx: object) -> None:
            return None


def test_a_name_cannot_be_declared_twice() -> None:
    registry = Registry()

    @job_type("test.one", title="x", registry=registry)
    def first(ctx: object) -> None:
        return None

    with pytest.raises(DeclarationError, match="declared twice"):

        @job_type("test.one", title="y", registry=registry)
        def second(ctx: object) -> None:
            return None


def test_schema_lists_required_and_secret_params() -> None:
    registry = Registry()

    @job_type(
        "test.schema", title="x", params=[Param("a", int), Param("b", str, secret=True, default="")], registry=registry
    )
    def schema(ctx: object, a: int, b: str) -> None:
        return None

    declared = registry.get("test.schema")
    assert declared is not None
    assert declared.schema()["required"] == ["a"]
    assert declared.schema()["properties"]["b"]["writeOnly"] is True
