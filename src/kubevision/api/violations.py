"""Rule violations that point at the exact field, raised from inside pydantic validators.

Why this exists: pydantic reports a failed model validator as ONE error at the model's location,
so a cross-field rule ("grid sampling takes only choice distributions") would point at `spec`
instead of at `spec.searchSpace[1].learningRate.type`, and a job breaking three rules would show
only the first. A validator therefore collects every `Violation` (location relative to its model)
and raises them together as one `PydanticCustomError` of type `RULES_ERROR_TYPE` whose context
carries the list; `kubevision.api.problems` expands them into one Problem each, with a line
number. Code that calls `model_validate` directly still gets every message in `str(error)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn

from pydantic_core import PydanticCustomError

__all__ = ["RULES_ERROR_TYPE", "Loc", "Violation", "format_loc", "raise_violations"]

RULES_ERROR_TYPE = "kubevision_rules"

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Violation:
    """One broken rule: where (camelCase path relative to the validating model) and what."""

    loc: Loc
    message: str


def format_loc(loc: Iterable[str | int]) -> str:
    """`('searchSpace', 0, 'learningRate')` -> `searchSpace[0].learningRate`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def raise_violations(violations: list[Violation]) -> NoReturn:
    """Raise all violations as one pydantic error (see the module docstring)."""
    summary = "; ".join(f"{format_loc(v.loc)}: {v.message}" if v.loc else v.message for v in violations)
    raise PydanticCustomError(
        RULES_ERROR_TYPE,
        "{summary}",
        {"summary": summary, "violations": [(v.loc, v.message) for v in violations]},
    )
