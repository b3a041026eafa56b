"""Parameter assignments as Katib's suggestion services produce them: `random` and `grid`.

Why these two: they are what the operator asks Katib for besides `tpe` (bayesian), and the e2e
scenario needs a search it can reason about. The rules follow Katib's services:

- random (hyperopt, `pkg/suggestion/v1beta1/hyperopt/base_service.py`): categorical and discrete
  draw uniformly from the list; int without a step is `uniformint` (both ends inclusive), with a step
  `quniform`; double is `uniform`, `loguniform` over the logs of the bounds, `normal` with mu = the
  middle and sigma = a sixth of the range, or `lognormal` the same over the logs; a step rounds to a
  multiple of it. Values are sent as Python's `str()` of the number (`1e-05`, not `1.0e-05`), as the
  gRPC reply of the service does.
- grid (optuna's GridSampler over `HyperParameterSearchSpace.convert_to_combinations`): int ranges
  `range(min, max + 1, step)`, double `numpy.arange(min, max + step, step)` without a last point past
  max, lists as they are; every combination exactly once, in a seeded random order (GridSampler picks
  a random unvisited grid point); then the search is exhausted.

The draws are not hyperopt's or optuna's own random streams (same distributions, other numbers);
`random_state` in algorithmSettings seeds them, else the player's seed.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = ["SUPPORTED_ALGORITHMS", "GridSuggester", "RandomSuggester", "Suggester", "make_suggester", "trial_suffix"]

SUPPORTED_ALGORITHMS = ("random", "grid")
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""k8s.io/apimachinery/pkg/util/rand's alphabet (no vowels, no ambiguous characters): Katib's trial suffixes."""

Assignment = dict[str, str]


class Suggester(Protocol):
    def suggest(self, count: int) -> list[list[Assignment]]:
        """Up to `count` new assignments ([{name, value}] each); fewer (or none) once the search is exhausted."""
        ...


def trial_suffix(rng: random.Random) -> str:
    """8 random characters, as `utilrand.String(8)` names Katib's trials `<experiment>-<suffix>`."""
    return "".join(rng.choice(_NAME_ALPHABET) for _ in range(8))


def _space(param: Mapping[str, Any]) -> Mapping[str, Any]:
    return param.get("feasibleSpace") or {}


def _round_to(value: float, step: str | None) -> float:
    if not step:
        return value
    q = float(step)
    return round(value / q) * q


class RandomSuggester:
    """hyperopt's random search over Katib parameters."""

    def __init__(self, parameters: Sequence[Mapping[str, Any]], rng: random.Random) -> None:
        self.parameters = list(parameters)
        self.rng = rng

    def _value(self, param: Mapping[str, Any]) -> str:
        space = _space(param)
        kind = param.get("parameterType")
        if kind in ("categorical", "discrete"):
            return str(self.rng.choice(list(space["list"])))
        low, high = float(space["min"]), float(space["max"])
        step = space.get("step")
        if kind == "int":
            if not step:
                return str(self.rng.randint(int(low), int(high)))
            return str(int(_round_to(self.rng.uniform(low, high), step)))
        distribution = space.get("distribution") or "uniform"
        if distribution == "logUniform":
            value = math.exp(self.rng.uniform(math.log(low), math.log(high)))
        elif distribution == "normal":
            value = self.rng.gauss((low + high) / 2, (high - low) / 6)
        elif distribution == "logNormal":
            mu = (math.log(low) + math.log(high)) / 2
            value = math.exp(self.rng.gauss(mu, (math.log(high) - math.log(low)) / 6))
        else:
            value = self.rng.uniform(low, high)
        return str(float(_round_to(value, step)))

    def suggest(self, count: int) -> list[list[Assignment]]:
        return [[{"name": str(p["name"]), "value": self._value(p)} for p in self.parameters] for _ in range(count)]


def _grid_values(param: Mapping[str, Any]) -> list[str]:
    space = _space(param)
    kind = param.get("parameterType")
    if kind in ("categorical", "discrete"):
        return [str(v) for v in space["list"]]
    if kind == "int":
        return [str(v) for v in range(int(space["min"]), int(space["max"]) + 1, int(space.get("step") or 1))]
    if not space.get("step"):
        raise ValueError(f"grid: double parameter {param.get('name')!r} needs a step (Katib refuses it)")
    low, high, step = float(space["min"]), float(space["max"]), float(space["step"])
    values = [low + i * step for i in range(math.ceil((high + step - low) / step))]  # numpy.arange's points
    if values and values[-1] > high:
        values = values[:-1]
    return [str(v) for v in values]


class GridSuggester:
    """optuna's GridSampler: each combination once, in a seeded random order, then exhausted."""

    def __init__(self, parameters: Sequence[Mapping[str, Any]], rng: random.Random) -> None:
        names = [str(p["name"]) for p in parameters]
        grid = list(itertools.product(*(_grid_values(p) for p in parameters)))
        rng.shuffle(grid)
        self._left = [[{"name": n, "value": v} for n, v in zip(names, point, strict=True)] for point in grid]

    @property
    def remaining(self) -> int:
        return len(self._left)

    def suggest(self, count: int) -> list[list[Assignment]]:
        taken, self._left = self._left[:count], self._left[count:]
        return taken


def make_suggester(spec: Mapping[str, Any], seed: int) -> Suggester:
    """The suggester for an Experiment spec (`random_state` in algorithmSettings wins over `seed`)."""
    algorithm = spec.get("algorithm") or {}
    name = algorithm.get("algorithmName")
    settings = {s.get("name"): s.get("value") for s in algorithm.get("algorithmSettings") or []}
    rng = random.Random(int(settings["random_state"]) if settings.get("random_state") else seed)
    parameters = spec.get("parameters") or []
    if name == "random":
        return RandomSuggester(parameters, rng)
    if name == "grid":
        return GridSuggester(parameters, rng)
    raise ValueError(f"the Katib player samples {' and '.join(SUPPORTED_ALGORITHMS)} only, not {name!r}")
