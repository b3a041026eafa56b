"""Parsing and display of the scalar values that appear in job files.

Why one module: the same value may arrive as a fixed training parameter, as a `choice` value in a
search space, or in an error message, and it must be read and shown the same way in all three. A
`tileGridSize` of "(3, 2)" has to become "3x2" whether it is fixed or swept, and an error has to
show `true`, not Python's `True`, to someone who wrote YAML.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any

__all__ = [
    "FALSE_STRINGS",
    "TRUE_STRINGS",
    "describe_range",
    "parse_bool",
    "parse_tile_grid_size",
    "show",
]

# The training runtime's (RT) spellings of booleans; pydantic's lax bool accepts exactly these too.
TRUE_STRINGS = frozenset({"y", "yes", "t", "true", "on", "1"})
FALSE_STRINGS = frozenset({"n", "no", "f", "false", "off", "0"})

_TILE_GRID = re.compile(r"^\s*\(?\s*(-?\d+)\s*(?:[xX]|,)\s*(-?\d+)\s*\)?\s*$")


def parse_bool(value: object) -> bool | None:
    """True/False for a bool, 0/1 or one of the RT strings (any case); None if it is none of those."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in TRUE_STRINGS:
            return True
        if low in FALSE_STRINGS:
            return False
    return None


def parse_tile_grid_size(value: object) -> str:
    """Normalise a tile grid ("3x2", "3X2", "(3, 2)", [3, 2]) to "3x2"; ValueError with a message if bad.

    Azure accepts all three string spellings (reference 4.3 and 6); the runtime needs two positive
    integers and refuses 1x1, which would be the whole image again.
    """
    cols: int | None = None
    rows: int | None = None
    if isinstance(value, str):
        match = _TILE_GRID.match(value)
        if match:
            cols, rows = int(match.group(1)), int(match.group(2))
    elif (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        cols, rows = int(value[0]), int(value[1])
    if cols is None or rows is None:
        raise ValueError(f"got {show(value)}; expected a tile grid such as '3x2' (columns x rows)")
    if cols < 1 or rows < 1:
        raise ValueError(f"got {show(value)}; both tile counts must be positive integers, e.g. '3x2'")
    if cols == 1 and rows == 1:
        raise ValueError(f"got {show(value)}; a 1x1 grid is the whole image (tiling off): omit tileGridSize")
    return f"{cols}x{rows}"


def show(value: Any, limit: int = 60) -> str:
    """A value as the user would have written it in YAML/JSON, shortened for one-line messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # YAML `0` parsed into a float field reads back as the user wrote it
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        text = value if len(value) <= limit else value[: limit - 3] + "..."
        return f"'{text}'"
    if isinstance(value, datetime | date):
        return value.isoformat()
    try:
        text = json.dumps(value, default=str, separators=(", ", ": "))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_range(ge: float | None, gt: float | None, le: float | None, lt: float | None) -> str:
    """Bounds as in pydantic's Field, as a phrase: ' from 1 to 1000', ' > 0 and <= 1', ' >= 1' or ''."""
    low = f"{_num(ge)}" if ge is not None else None
    high = f"{_num(le)}" if le is not None else None
    if low is not None and high is not None:
        return f" from {low} to {high}"
    parts = []
    if ge is not None:
        parts.append(f">= {_num(ge)}")
    if gt is not None:
        parts.append(f"> {_num(gt)}")
    if le is not None:
        parts.append(f"<= {_num(le)}")
    if lt is not None:
        parts.append(f"< {_num(lt)}")
    return (" " + " and ".join(parts)) if parts else ""


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)
