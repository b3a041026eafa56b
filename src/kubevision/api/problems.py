"""Turn a pydantic ValidationError into Problems a person can act on.

Why: pydantic's messages ("Input should be greater than or equal to 1") name neither the value
found nor the whole allowed range, use Python's spelling of values, and put discriminator tags
and union member names into the location (`searchSpace.0.lr.uniform.minValue`). Each error is
rewritten as "got <value>; expected <what is allowed>", its location cleaned to the camelCase path
the user wrote (`spec.searchSpace[0].lr.minValue`) and, when the manifest came from a file, given
the line of that key. Allowed values and ranges are read from the model's own type annotations
and Field constraints, so the messages cannot drift from the validation.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from kubevision.api.errors import Problem
from kubevision.api.hyperparameters import RT_TO_CAMEL, SDK_TO_CAMEL
from kubevision.api.spelling import did_you_mean
from kubevision.api.values import describe_range, show
from kubevision.api.violations import RULES_ERROR_TYPE, Loc, format_loc
from kubevision.api.yaml_lines import Lines, line_of

__all__ = ["problems_from_validation_error"]

_ALIASES = {**SDK_TO_CAMEL, **RT_TO_CAMEL}
_PLAIN_MEMBERS = {"str", "int", "float", "bool", "none"}
_TYPE_ERRORS_WITHOUT_VALUE = {"missing", "extra_forbidden"}


@dataclass
class _Resolved:
    """Where an error location leads in the model: clean path, target type, constraints, owner."""

    path: list[str | int] = field(default_factory=list)
    target: Any = None
    constraints: list[Any] = field(default_factory=list)
    owner: type[BaseModel] | None = None
    union: Any = None


def problems_from_validation_error(
    err: ValidationError, root: type[BaseModel], *, source: str | None, lines: Lines | None
) -> list[Problem]:
    """One Problem per error (rule errors expand to one per rule), sorted by line."""
    out: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for error in err.errors(include_url=False):
        resolved = _resolve(root, error["loc"])
        items: Iterable[tuple[Loc, str]]
        if error["type"] == RULES_ERROR_TYPE:
            ctx = error.get("ctx") or {}
            items = [((*resolved.path, *loc), msg) for loc, msg in ctx.get("violations", [])]
        else:
            items = [(tuple(resolved.path), _message(error, resolved))]
        for path, message in items:
            dotted = format_loc(path)
            if (dotted, message) in seen:
                continue
            seen.add((dotted, message))
            line = line_of(lines, tuple(path)) if lines is not None else None
            out.append(Problem(message, file=source, line=line, field=dotted or None))
    return sorted(out, key=lambda p: p.line or 0)


# ---- walking a location through the model's types ---------------------------------------------


def _unwrap(tp: Any, constraints: list[Any]) -> Any:
    """Strip Annotated (collecting constraints) and Optional."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            args = get_args(tp)
            for meta in args[1:]:
                constraints.extend(meta.metadata if isinstance(meta, FieldInfo) else [meta])
            tp = args[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _tagged_members(tp: Any) -> dict[str, type[BaseModel]]:
    """For a union of models discriminated on `type`: tag -> model; else empty."""
    if get_origin(tp) not in (Union, types.UnionType):
        return {}
    out: dict[str, type[BaseModel]] = {}
    for member in get_args(tp):
        if (
            not (isinstance(member, type) and issubclass(member, BaseModel))
            or "type" not in member.model_fields
        ):
            return {}
        for tag in get_args(member.model_fields["type"].annotation):
            out[str(tag)] = member
    return out


def _field(model: type[BaseModel], key: str) -> FieldInfo | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def _resolve(root: type[BaseModel], loc: tuple[str | int, ...]) -> _Resolved:
    out = _Resolved(target=root)
    tp: Any = root
    for item in loc:
        constraints: list[Any] = []
        tp = _unwrap(tp, constraints)
        tagged = _tagged_members(tp)
        if tagged and item in tagged:
            out.union, tp = tp, tagged[str(item)]
            continue
        if get_origin(tp) in (Union, types.UnionType) and isinstance(item, str):
            member = next(
                (m for m in get_args(tp) if getattr(m, "__name__", "").lower() == item.lower()), None
            )
            if member is not None or item in _PLAIN_MEMBERS:
                out.union, tp = tp, member
                continue
        out.path.append(item)
        out.constraints = []
        out.union = None
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(item, str):
            out.owner = tp
            info = _field(tp, item)
            tp = info.annotation if info is not None else None
            out.constraints = list(info.metadata) if info is not None else []
        elif get_origin(tp) in (list, tuple) and isinstance(item, int):
            tp = get_args(tp)[0] if get_args(tp) else None
            out.owner = None
        elif get_origin(tp) is dict:
            args = get_args(tp)
            if item == "[key]":
                out.path.pop()
                tp = args[0] if args else None
            else:
                tp = args[1] if len(args) == 2 else None
            out.owner = None
        else:
            tp = None
            out.owner = None
    more: list[Any] = []
    out.target = _unwrap(tp, more)
    out.constraints += more
    return out


# ---- what a type accepts, in words ------------------------------------------------------------


def _choices(tp: Any) -> list[str]:
    if get_origin(tp) is Literal:
        return [str(a) for a in get_args(tp)]
    if isinstance(tp, type) and issubclass(tp, Enum):
        return [str(m.value) for m in tp]
    return []


def _expected(tp: Any, constraints: list[Any]) -> str | None:
    bounds: dict[str, float | None] = {"ge": None, "gt": None, "le": None, "lt": None}
    min_len = None
    for c in constraints:
        for name in bounds:
            if hasattr(c, name) and isinstance(c, annotated_types.BaseMetadata):
                bounds[name] = getattr(c, name)
        if isinstance(c, annotated_types.MinLen):
            min_len = c.min_length
    choices = _choices(tp)
    if choices:
        return "one of " + ", ".join(choices)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer" + describe_range(**bounds)
    if tp is float:
        return "a number" + describe_range(**bounds)
    if tp is str:
        return "a non-empty string" if min_len else "a string"
    if tp is datetime:
        return "a date and time such as 2026-01-31T12:00:00Z"
    if _tagged_members(tp):
        return "a mapping with a type (" + ", ".join(_tagged_members(tp)) + ")"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "a mapping"
    origin = get_origin(tp)
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a mapping"
    if origin in (Union, types.UnionType):
        if set(get_args(tp)) <= {str, int, float, bool}:
            return "a string, number or boolean"
        parts = [_expected(a, []) for a in get_args(tp) if a is not type(None)]
        return " or ".join(p for p in parts if p) or None
    return None


# ---- the message of one error -----------------------------------------------------------------


def _message(error: ErrorDetails, resolved: _Resolved) -> str:
    kind = error["type"]
    value = error.get("input")
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    name = str(resolved.path[-1]) if resolved.path else ""
    target = (
        resolved.union
        if resolved.union is not None and kind not in _TYPE_ERRORS_WITHOUT_VALUE
        else resolved.target
    )
    expected = _expected(target, resolved.constraints)

    if kind == "missing":
        hint = f"; expected {expected}" if expected and expected.startswith("one of") else ""
        return f"required field '{name}' is missing{hint}"
    if kind == "extra_forbidden":
        known = [info.alias or n for n, info in resolved.owner.model_fields.items()] if resolved.owner else []
        hint = did_you_mean(name, known, _ALIASES)
        if not hint and known and len(known) <= 12:
            hint = "; expected one of " + ", ".join(known)
        return f"unknown field '{name}'{hint}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = list(_tagged_members(resolved.target)) or [
            t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")
        ]
        what = "distribution type" if "choice" in tags else "type"
        if kind == "union_tag_not_found":
            return f"missing 'type'; expected one of {', '.join(tags)}"
        tag = str(ctx.get("tag"))
        return f"unknown {what} '{tag}'; expected one of {', '.join(tags)}{did_you_mean(tag, tags)}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", error["msg"]))
    if kind in ("too_short", "too_long"):
        length = ctx.get("actual_length", len(value) if hasattr(value, "__len__") else 0)
        noun = "mapping" if isinstance(value, dict) else "list"
        limit = ctx.get("min_length", 1) if kind == "too_short" else ctx.get("max_length", 0)
        bound = f"at least {_items(limit)}" if kind == "too_short" else f"at most {_items(limit)}"
        got = f"an empty {noun}" if not length else _items(length)
        return f"got {got}; expected {bound}"
    if kind == "string_too_short":
        return "got an empty string; expected a non-empty string"
    if kind in ("literal_error", "enum"):
        hint = did_you_mean(value, _choices(target)) if isinstance(value, str) else ""
        return f"got {show(value)}; expected {expected or ctx.get('expected')}{hint}"
    if expected:
        return f"got {show(value)}; expected {expected}"
    return f"got {show(value)}; {error['msg'][:1].lower()}{error['msg'][1:]}"


def _items(count: int) -> str:
    return f"{count} item{'s' if count != 1 else ''}"
