"""Checking requests against the schemas the OpenAPI document publishes (a subset of JSON Schema).

Only the keywords in `ASSERTIONS` are understood; `unsupported_keywords` names any other one a request
schema uses, and a test requires there are none, so a documented constraint is never silently unenforced.
Strings are also refused when the database could not store or compare them (NUL characters, lone
surrogates), whatever the schema says: PostgreSQL rejects them, and a 500 would be the answer otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from dashboard.api.errors import ApiError, FieldProblem, invalid
from dashboard.api.schemas import resolve

ASSERTIONS = frozenset(
    {"type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "minLength",
     "maxLength", "enum", "format", "minimum", "maximum", "$ref"}
)  # fmt: skip
ANNOTATIONS = frozenset({"description", "default", "title"})
MAX_DEPTH = 32
MIN_YEAR = 1000
MAX_PROBLEMS = 50
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def parse_instant(text: str, *, naive_is_utc: bool) -> datetime:
    """An aware UTC datetime from ISO 8601 text; ValueError says what is wrong."""
    try:
        # Upper case: RFC 3339 allows "t" and "z", which fromisoformat does not.
        value = datetime.fromisoformat(text.strip().upper())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date and time") from None
    if value.tzinfo is None:
        if not naive_is_utc:
            raise ValueError(f"{text!r} has no UTC offset (e.g. +00:00 or Z)")
        value = value.replace(tzinfo=UTC)
    out_of_range = f"{text!r} is out of range (years {MIN_YEAR} to 9999)"
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999, pushed past the calendar by its offset
        raise ValueError(out_of_range) from None
    # SQLite keeps instants as text, and reads back only four-digit years.
    if value.year < MIN_YEAR:
        raise ValueError(out_of_range)
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (lone surrogate)"
    return None


def text_problems(value: Any) -> list[FieldProblem]:
    """Unstorable strings anywhere in a JSON value, keys included; iterative, so depth cannot crash it."""
    problems: list[FieldProblem] = []
    stack: list[tuple[str, Any, int]] = [("", value, 0)]
    while stack and len(problems) < MAX_PROBLEMS:
        path, item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return [FieldProblem(path, f"nested deeper than {MAX_DEPTH} levels")]
        if isinstance(item, str):
            if (message := _text_problem(item)) is not None:
                problems.append(FieldProblem(path or "body", message))
        elif isinstance(item, dict):
            for key, child in item.items():
                if (message := _text_problem(key)) is not None:
                    problems.append(FieldProblem(_join(path, repr(key)), f"field name {message}"))
                    continue
                stack.append((_join(path, key), child, depth + 1))
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child, depth + 1) for index, child in enumerate(item))
    return problems


def _type_matches(value: Any, kinds: list[str]) -> bool:
    for kind in kinds:
        # JSON true is not the integer 1, whatever Python says.
        if isinstance(value, bool) and kind in ("integer", "number"):
            continue
        if isinstance(value, _JSON_TYPES[kind]):
            return True
    return False


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "integer", float: "number"}.get(type(value), "value")


def schema_problems(schema: Mapping[str, Any], value: Any, path: str = "") -> Iterator[FieldProblem]:
    schema = resolve(dict(schema))
    where = path or "body"
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        if not _type_matches(value, kinds):
            yield FieldProblem(where, f"must be {' or '.join(kinds)}, not {_describe(value)}")
            return
    if "enum" in schema and value not in schema["enum"]:
        yield FieldProblem(where, f"must be one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            yield FieldProblem(where, "must not be empty" if schema["minLength"] == 1 else "is too short")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            yield FieldProblem(where, f"must be at most {schema['maxLength']} characters")
        if schema.get("format") == "date-time":
            try:
                parse_instant(value, naive_is_utc=False)
            except ValueError as exc:
                yield FieldProblem(where, str(exc))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            yield FieldProblem(where, f"must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            yield FieldProblem(where, f"must be at most {schema['maximum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            yield FieldProblem(where, f"needs at least {schema['minItems']} item(s)")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            yield FieldProblem(where, f"takes at most {schema['maxItems']} items")
        if "items" in schema:
            for index, item in enumerate(value):
                yield from schema_problems(schema["items"], item, f"{path}[{index}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                yield FieldProblem(_join(path, name), "is required")
        for name, item in value.items():
            if name in properties:
                yield from schema_problems(properties[name], item, _join(path, name))
            elif schema.get("additionalProperties") is False:
                known = ", ".join(properties) or "none"
                yield FieldProblem(_join(path, name), f"is not a known field (known: {known})")


def unsupported_keywords(schema: Mapping[str, Any]) -> set[str]:
    """Keywords of `schema` (and the schemas it contains) that `schema_problems` would ignore."""
    schema = resolve(dict(schema))
    found = set(schema) - ASSERTIONS - ANNOTATIONS
    if schema.get("format", "date-time") != "date-time":
        found.add(f"format: {schema['format']}")
    for child in schema.get("properties", {}).values():
        found |= unsupported_keywords(child)
    if isinstance(schema.get("items"), dict):
        found |= unsupported_keywords(schema["items"])
    return found


def read_body(raw: bytes, schema: Mapping[str, Any], *, required: bool) -> tuple[dict[str, Any], list[FieldProblem]]:
    """The request body as a JSON object, with its problems against `schema`; 400 when it is not a JSON
    object at all."""
    if not raw.strip():
        if required:
            raise ApiError(400, "this request needs a JSON object body")
        return {}, []
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError(400, f"the body must be a JSON object, not {_describe(value)}")
    problems = text_problems(value) + list(schema_problems(schema, value))
    return value, problems[:MAX_PROBLEMS]


def parse_body(raw: bytes, schema: Mapping[str, Any], *, required: bool) -> dict[str, Any]:
    """The request body, valid for `schema`; 422 naming every bad field otherwise."""
    value, problems = read_body(raw, schema, required=required)
    if problems:
        raise invalid(problems)
    return value


def top_fields(problems: list[FieldProblem]) -> set[str]:
    """The body fields the problems are about: `params` for `params.x`, `ids` for `ids[3]`."""
    return {re.split(r"[.\[]", p.field, maxsplit=1)[0] for p in problems}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_query_value(name: str, schema: Mapping[str, Any], raw: str) -> tuple[Any, FieldProblem | None]:
    """One query parameter value, typed per its schema (`integer`; a `date-time` string becomes a UTC
    datetime, naive meaning UTC)."""
    if (message := _text_problem(raw)) is not None:
        return None, FieldProblem(name, message)
    value: Any = raw
    if schema.get("type") == "integer":
        if not _INTEGER.fullmatch(raw.strip()):
            return None, FieldProblem(name, f"must be an integer, not {raw!r}")
        value = int(raw)
    checked = {k: v for k, v in schema.items() if k != "format"}
    problem = next(schema_problems(checked, value, name), None)
    if problem is not None:
        return None, problem
    if schema.get("format") == "date-time":
        try:
            value = parse_instant(raw, naive_is_utc=True)
        except ValueError as exc:
            return None, FieldProblem(name, str(exc))
    return value, None
