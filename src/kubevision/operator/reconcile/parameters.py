"""One search-space sub-space -> Katib `parameters[]`, with a warning for every lossy mapping.

Why these mappings (docs/operator-mapping.md has the table): Katib's random and tpe algorithms run on
hyperopt, which reads `feasibleSpace` as follows (katib pkg/suggestion/v1beta1/hyperopt/base_service.py):
int/double + uniform -> uniform / quniform(step) (int without step -> uniformint); logUniform ->
loguniform(log min, log max) / qloguniform(step); normal -> normal(mu=(min+max)/2, sigma=(max-min)/6)
/ qnormal; logNormal -> lognormal over log min/max the same way; categorical/discrete -> choice(list).
So every Azure distribution has an exact image, chosen to reproduce Azure's sampling:

- choice -> discrete (all numbers) or categorical (anything else), values in the spelling the trial
  program reads back (`--set key=value` is parsed as YAML): true/false, "3x2" tile grids, lowercase enums;
- randint(upper) -> discrete ["0", ..., str(upper-1)] (uniform over the integers, as Azure's);
  beyond 100 values an int [0, upper-1], where hyperopt's uniformint draws the two end values half as
  often (lossy, warned);
- uniform -> double [min, max]; quniform -> int (integral bounds and q) or double, with step q;
- loguniform / qloguniform -> double [exp(min), exp(max)], logUniform (Azure's bounds are natural logs);
- normal / qnormal -> double [mu - 3 sigma, mu + 3 sigma], normal (hyperopt gets mu and sigma back);
- lognormal / qlognormal -> double [exp(mu - 3 sigma), exp(mu + 3 sigma)], logNormal.

Values are substituted into the trial command, which Katib's StdOut collector re-joins with spaces
into `sh -c "..."`, so a categorical value must be a single shell word; every hyperparameter's
vocabulary is, and anything else is refused with a clear message rather than a broken trial.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.hyperparameters import HYPERPARAMETERS, normalise_choice
from kubevision.api.search_space import (
    Choice,
    LogNormal,
    LogUniform,
    Normal,
    QLogNormal,
    QLogUniform,
    QNormal,
    QUniform,
    RandInt,
    Uniform,
)
from kubevision.api.values import parse_bool, parse_tile_grid_size

__all__ = [
    "RANDINT_LIST_MAX",
    "SHELL_WORD",
    "ParameterPlan",
    "as_word",
    "grid_size",
    "katib_number",
    "katib_parameters",
]

RANDINT_LIST_MAX = 100
"""randint up to this many values becomes an exact discrete list; beyond, an int range (warned)."""

SHELL_WORD = re.compile(r"^[A-Za-z0-9_.,:+/@%=-]+$")
"""Characters that survive Katib's `sh -c` re-joining and its JSON string substitution unquoted."""


def katib_number(value: float) -> str:
    """A number as Katib and the trial's YAML parser both read it back exactly.

    Integral values print as integers ("600"); other floats as Python's shortest round-trip repr,
    with ".0" added before a bare exponent ("1e-05" -> "1.0e-05"), because PyYAML reads "1e-05" as a
    string but "1.0e-05" as a float (Go's ParseFloat takes both).
    """
    if isinstance(value, bool):
        raise TypeError("booleans are not numbers here")
    if isinstance(value, int):
        return str(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    text = repr(number)
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text


@dataclass(frozen=True)
class ParameterPlan:
    """The Katib parameters of one sub-space and what was lost translating it."""

    parameters: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


def _choice_value(name: str, value: Any) -> Any:
    """A choice value in the canonical form the trial program reads back."""
    hp = HYPERPARAMETERS.get(name)
    kind = hp.kind if hp is not None else None
    if kind == "tile_grid":
        return parse_tile_grid_size(value)
    if kind == "bool":
        parsed = parse_bool(value)
        return parsed if parsed is not None else value
    if kind == "enum":
        return normalise_choice(name, value)
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def as_word(value: Any) -> str:
    """A value as one command-line word the trial's `--set` parser reads back (true/false, exact numbers)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return katib_number(value)
    return str(value)


def _tidy(x: float) -> float:
    """A computed bound (exp, mu +- 3 sigma) to 15 significant digits: 0.0002, not 0.00019999999999999998."""
    return float(f"{x:.15g}")


def _positive_exp(x: float, where: str, warnings: list[str]) -> float:
    """exp(x) for a log-space bound; Katib takes the log again, so 0 (underflow) is lifted to the tiniest float."""
    if x > 709:
        raise KubevisionError(
            "the search space cannot run on Katib",
            [Problem(f"exp({x!r}) overflows a double; log-space bounds are natural logs", field=where)],
        )
    value = _tidy(math.exp(x))
    if value == 0.0:
        warnings.append(
            f"{where}: exp({x!r}) underflows to 0, which Katib cannot take the log of; "
            f"the bound is raised to {sys.float_info.min!r}"
        )
        return sys.float_info.min
    return value


def _choice(name: str, dist: Choice, where: str, warnings: list[str]) -> dict[str, Any]:
    values: list[Any] = []
    for raw in dist.values:
        value = _choice_value(name, raw)
        if any(type(value) is type(v) and value == v for v in values):
            warnings.append(
                f"{where}: {raw!r} is the same value as an earlier one once normalised ({as_word(value)}); "
                "it is listed once"
            )
            continue
        values.append(value)
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    words = [as_word(v) for v in values]
    bad = [w for w in words if not SHELL_WORD.match(w)]
    if bad:
        raise KubevisionError(
            "the search space cannot run on Katib",
            [
                Problem(
                    f"choice value {w!r} contains spaces, quotes or shell characters; Katib substitutes values "
                    "into a shell command line, so use a value made of letters, digits and _.,:+/@%=-",
                    field=where,
                )
                for w in bad
            ],
        )
    return {
        "name": name,
        "parameterType": "discrete" if numeric else "categorical",
        "feasibleSpace": {"list": words},
    }


def _double(
    name: str, low: float, high: float, *, distribution: str | None = None, step: float | None = None
) -> dict[str, Any]:
    space: dict[str, Any] = {"min": katib_number(low), "max": katib_number(high)}
    if step is not None:
        space["step"] = katib_number(step)
    if distribution is not None:
        space["distribution"] = distribution
    return {"name": name, "parameterType": "double", "feasibleSpace": space}


def _integral(*values: float) -> bool:
    return all(float(v).is_integer() for v in values)


def _parameter(name: str, dist: Any, where: str, warnings: list[str]) -> dict[str, Any]:
    """One distribution -> one Katib parameter (see the module docstring for the table)."""
    if isinstance(dist, Choice):
        return _choice(name, dist, where, warnings)
    if isinstance(dist, RandInt):
        if dist.upper <= RANDINT_LIST_MAX:
            return {
                "name": name,
                "parameterType": "discrete",
                "feasibleSpace": {"list": [str(i) for i in range(dist.upper)]},
            }
        warnings.append(
            f"{where}: randint(upper={dist.upper}) runs as a Katib int range [0, {dist.upper - 1}], where "
            "hyperopt draws the two end values half as often as the others (Azure draws all equally)"
        )
        return {
            "name": name,
            "parameterType": "int",
            "feasibleSpace": {"min": "0", "max": str(dist.upper - 1)},
        }
    if isinstance(dist, QUniform):
        if _integral(dist.min_value, dist.max_value, dist.q):
            return {
                "name": name,
                "parameterType": "int",
                "feasibleSpace": {
                    "min": katib_number(dist.min_value),
                    "max": katib_number(dist.max_value),
                    "step": katib_number(dist.q),
                },
            }
        return _double(name, dist.min_value, dist.max_value, step=dist.q)
    if isinstance(dist, Uniform):
        return _double(name, dist.min_value, dist.max_value)
    if isinstance(dist, QLogUniform | LogUniform):
        low = _positive_exp(dist.min_value, f"{where}.minValue", warnings)
        high = _positive_exp(dist.max_value, f"{where}.maxValue", warnings)
        step = dist.q if isinstance(dist, QLogUniform) else None
        return _double(name, low, high, distribution="logUniform", step=step)
    if isinstance(dist, QNormal | Normal):
        step = dist.q if isinstance(dist, QNormal) else None
        low, high = _tidy(dist.mu - 3 * dist.sigma), _tidy(dist.mu + 3 * dist.sigma)
        return _double(name, low, high, distribution="normal", step=step)
    if isinstance(dist, QLogNormal | LogNormal):
        low = _positive_exp(dist.mu - 3 * dist.sigma, f"{where}.mu", warnings)
        high = _positive_exp(dist.mu + 3 * dist.sigma, f"{where}.mu", warnings)
        step = dist.q if isinstance(dist, QLogNormal) else None
        return _double(name, low, high, distribution="logNormal", step=step)
    raise TypeError(f"unknown distribution {type(dist).__name__}")  # the API's union is closed


def katib_parameters(sub_space: Mapping[str, Any], *, where: str) -> ParameterPlan:
    """The Katib parameters of one sub-space, in the sub-space's order; `where` prefixes warnings."""
    warnings: list[str] = []
    params = [_parameter(name, dist, f"{where}.{name}", warnings) for name, dist in sub_space.items()]
    return ParameterPlan(params, warnings)


def grid_size(parameters: list[dict[str, Any]]) -> int | None:
    """Number of grid points (product of the list lengths); None when a parameter is not a list."""
    size = 1
    for param in parameters:
        values = param["feasibleSpace"].get("list")
        if values is None:
            return None
        size *= len(values)
    return size
