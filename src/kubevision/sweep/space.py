"""Sampling Azure's ten distributions, enumerating grids, and the sweep checks the API cannot make.

Why our own sampling instead of Optuna's: Optuna's random sampler has no normal or lognormal, its
log-uniform takes the bounds themselves (Azure's takes their natural logs) and its stepped floats
count from `low` (Azure's q-variants are multiples of q). A user importing an Azure job must get
the values Azure would draw, so each distribution is sampled here from a `random.Random`, exactly
as defined in reference 5.2 (the hyperopt definitions Azure inherits):

    choice       one of values, uniformly          randint     integer in [0, upper)
    uniform      U(min, max)                       loguniform  exp(U(min, max))  (bounds are logs)
    quniform     round(U(min, max) / q) * q        qloguniform round(exp(U(min, max)) / q) * q
    normal       N(mu, sigma)                      lognormal   exp(N(mu, sigma))
    qnormal      round(N(mu, sigma) / q) * q       qlognormal  round(exp(N(mu, sigma)) / q) * q

`round` is round-half-to-even (hyperopt's numpy round). A q-variant gives an int when q is
integral, else a float tidied to q's decimals (0.1 * 3 is 0.3, not 0.30000000000000004).

Beyond Azure, for values a trial can actually train with (`sample_sub_space`):
- an integer hyperparameter (`numberOfEpochs: uniform(10, 20)`) gets the rounded value, which is
  what the trainer would use anyway (`resolve_training_parameters`), so reports show it;
- a draw outside the hyperparameter's range (a normal on `learningRate` drawing a negative
  number) is drawn again, so the distribution is truncated to the valid range. `check_sweep`
  rejects the distributions where that would reject most draws (the median is outside the range)
  or every draw (a q-variant whose quantised bounds fall outside it).

Bayesian sampling: Azure takes choice, uniform and quniform only. Optuna's TPE models log-scaled
and integer ranges natively, so kubevision also accepts loguniform, qloguniform and randint there
(`sweep_warnings` says this is an extension). The normal family stays refused: TPE needs bounded
ranges. (The API's own rule, `api.rules.sampling_algorithm`, still applies Azure's list; see
BAYESIAN_TYPES.)
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.hyperparameters import HYPERPARAMETERS, Hyperparameter
from kubevision.api.search_space import (
    Choice,
    Distribution,
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
from kubevision.api.values import show
from kubevision.api.violations import Loc, format_loc

if TYPE_CHECKING:
    from kubevision.api.models import AutoMLImageJob

__all__ = [
    "AZURE_BAYESIAN_TYPES",
    "BAYESIAN_TYPES",
    "MAX_DRAWS",
    "check_sweep",
    "grid_point_at",
    "grid_points",
    "grid_size",
    "individual_params",
    "quantize",
    "sample_sub_space",
    "sample_value",
    "sweep_warnings",
    "trainable_value",
]

AZURE_BAYESIAN_TYPES: tuple[str, ...] = ("choice", "uniform", "quniform")
"""What Azure's bayesian sampling takes (reference 5.3)."""

BAYESIAN_TYPES: tuple[str, ...] = (*AZURE_BAYESIAN_TYPES, "loguniform", "qloguniform", "randint")
"""What kubevision's bayesian sampling (Optuna TPE) takes: Azure's plus the bounded log/int ones."""

MAX_DRAWS = 1000
"""Draws of one value before giving up on hitting the hyperparameter's range (see module docstring).

`check_sweep` guarantees at least half of the draws land in range, so 1000 failures in a row
(probability below 2**-1000) means a bug, not bad luck."""

_NUMERIC = ("int", "float")
_UNBOUNDED = ("normal", "lognormal", "qnormal", "qlognormal")


def quantize(value: float, q: float) -> int | float:
    """round(value / q) * q, as an int when q is integral, else tidied to q's decimals."""
    steps = round(value / q)
    if float(q).is_integer():
        return int(steps * int(q))
    exponent = Decimal(repr(float(q))).as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return round(steps * q, decimals)


def sample_value(dist: Distribution, rng: random.Random) -> Any:
    """One draw from `dist` with Azure's semantics (see the module docstring)."""
    if isinstance(dist, Choice):
        return dist.values[rng.randrange(len(dist.values))]
    if isinstance(dist, RandInt):
        return rng.randrange(dist.upper)
    if isinstance(dist, Uniform):
        return rng.uniform(dist.min_value, dist.max_value)
    if isinstance(dist, LogUniform):
        return math.exp(rng.uniform(dist.min_value, dist.max_value))
    if isinstance(dist, QUniform):
        return quantize(rng.uniform(dist.min_value, dist.max_value), dist.q)
    if isinstance(dist, QLogUniform):
        return quantize(math.exp(rng.uniform(dist.min_value, dist.max_value)), dist.q)
    if isinstance(dist, Normal):
        return rng.normalvariate(dist.mu, dist.sigma)
    if isinstance(dist, LogNormal):
        return math.exp(rng.normalvariate(dist.mu, dist.sigma))
    if isinstance(dist, QNormal):
        return quantize(rng.normalvariate(dist.mu, dist.sigma), dist.q)
    if isinstance(dist, QLogNormal):
        return quantize(math.exp(rng.normalvariate(dist.mu, dist.sigma)), dist.q)
    raise TypeError(f"not a search-space distribution: {dist!r}")


def trainable_value(name: str, value: Any) -> tuple[Any, bool]:
    """(value as the trainer would use it, whether it is inside the hyperparameter's range).

    Integer hyperparameters are rounded; names outside the table and non-numbers pass unchanged.
    """
    hp = HYPERPARAMETERS.get(name)
    if hp is None or hp.kind not in _NUMERIC or isinstance(value, bool) or not isinstance(value, int | float):
        return value, True
    if not math.isfinite(value):
        return value, False
    if hp.kind == "int":
        value = round(value)
    return value, hp.in_range(value)


def sample_sub_space(sub_space: Mapping[str, Distribution], rng: random.Random) -> dict[str, Any]:
    """A trainable draw of every hyperparameter of `sub_space`, in its order (see module docstring)."""
    out: dict[str, Any] = {}
    for name, dist in sub_space.items():
        for _ in range(MAX_DRAWS):
            value, ok = trainable_value(name, sample_value(dist, rng))
            if ok:
                out[name] = value
                break
        else:
            hp = HYPERPARAMETERS[name]
            raise KubevisionError(
                f"{name}: {MAX_DRAWS} draws of {dist.type} all fell outside {hp.name}'s range "
                f"({hp.expected()}); narrow the distribution"
            )
    return out


def grid_points(sub_space: Mapping[str, Distribution]) -> list[dict[str, Any]]:
    """Every combination of the choices of `sub_space`: keys in the order written, last key fastest."""
    names = list(sub_space)
    columns = []
    for name in names:
        dist = sub_space[name]
        if not isinstance(dist, Choice):
            raise KubevisionError(
                f"grid sampling takes only choice distributions; {name} is {dist.type}",
                [Problem(f"got '{dist.type}'; grid sampling takes only choice distributions", field=name)],
            )
        columns.append(list(dist.values))
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*columns)]


def grid_point_at(sub_space: Mapping[str, Distribution], index: int) -> dict[str, Any]:
    """`grid_points(sub_space)[index]` without building the list (grids can have millions of points)."""
    size = grid_size(sub_space)
    if not 0 <= index < size:
        raise IndexError(f"grid index {index} outside 0..{size - 1}")
    out: dict[str, Any] = {}
    for name in reversed(list(sub_space)):
        dist = sub_space[name]
        assert isinstance(dist, Choice)
        index, position = divmod(index, len(dist.values))
        out[name] = dist.values[position]
    return {name: out[name] for name in sub_space}


def grid_size(sub_space: Mapping[str, Distribution]) -> int:
    """How many points `grid_points(sub_space)` has (without building them)."""
    return math.prod(len(d.values) if isinstance(d, Choice) else 0 for d in sub_space.values())


def individual_params(job: AutoMLImageJob) -> dict[str, Any]:
    """The hyperparameters a single trial (maxTrials 1, no search space) sets: the fixed ones, camelCase."""
    return job.spec.training_parameters.model_dump(by_alias=True, exclude_none=True, mode="json")


# ---- checks ---------------------------------------------------------------------------------------


def _field(loc: Loc) -> str:
    return "spec." + format_loc(loc)


def check_sweep(job: AutoMLImageJob) -> None:
    """Raise a KubevisionError listing every problem of the job's sweep that sampling would hit.

    Most of these are also API rules (so a parsed job rarely fails here); this is the sampler's own
    guard for jobs built in code or read from an older CR, plus the rules only the sampler knows:
    quantised bounds and normal-family medians outside a hyperparameter's range.
    """
    problems = _sweep_problems(job)
    if problems:
        name = job.metadata.name or "the job"
        raise KubevisionError(f"{name}: the search space cannot be swept ({len(problems)} problems)", problems)


def _sweep_problems(job: AutoMLImageJob) -> list[Problem]:
    spec = job.spec
    sweep = spec.effective_sweep
    if sweep is None or not spec.search_space:
        return []
    algorithm = sweep.sampling_algorithm
    out: list[Problem] = []
    for i, sub in enumerate(spec.search_space):
        for name, dist in sub.items():
            loc: Loc = ("searchSpace", i, name)
            if algorithm == "grid" and not isinstance(dist, Choice):
                out.append(
                    Problem(f"got '{dist.type}'; grid sampling takes only choice distributions", field=_field(loc))
                )
            if algorithm == "bayesian" and dist.type not in BAYESIAN_TYPES:
                out.append(
                    Problem(
                        f"got '{dist.type}'; bayesian sampling takes {', '.join(BAYESIAN_TYPES)} "
                        "(bounded ranges TPE can model); use random sampling for normal distributions",
                        field=_field(loc),
                    )
                )
            hp = HYPERPARAMETERS.get(name)
            if hp is not None and hp.kind in _NUMERIC:
                out.extend(_range_problems(hp, dist, loc))
    if algorithm == "bayesian" and len(spec.search_space) > 1:
        out.append(
            Problem(
                f"bayesian sampling takes one sub-space, got {len(spec.search_space)}; conditional search "
                "spaces need random or grid sampling",
                field=_field(("searchSpace", 1)),
            )
        )
    if algorithm == "bayesian" and sweep.early_termination is not None:
        out.append(
            Problem(
                "bayesian sampling does not support early termination (stopped trials would mislead "
                "it); remove earlyTermination or use random or grid sampling",
                field=_field(("sweep", "earlyTermination")),
            )
        )
    return out


def _range_problems(hp: Hyperparameter, dist: Distribution, loc: Loc) -> list[Problem]:
    """Distributions that would draw values outside the hyperparameter's range always or mostly."""
    expected = f"{hp.name} takes {hp.expected()}"
    if isinstance(dist, QUniform | QLogUniform):
        log = isinstance(dist, QLogUniform)
        ends = [(math.exp(v) if v < 700 else math.inf) if log else v for v in (dist.min_value, dist.max_value)]
        bad = [
            (end, q)
            for end in ends
            if not trainable_value(hp.name, q := quantize(end, dist.q) if math.isfinite(end) else end)[1]
        ]
        if bad:
            end, q = bad[0]
            return [
                Problem(
                    f"q {show(dist.q)} rounds {end:.4g} to {show(q)}, outside the range; {expected}. "
                    "Use a smaller q or move the bounds",
                    field=_field((*loc, "q")),
                )
            ]
    elif isinstance(dist, Normal | LogNormal | QNormal | QLogNormal):
        median: float = dist.mu
        if isinstance(dist, LogNormal | QLogNormal):
            median = math.exp(dist.mu) if dist.mu < 700 else math.inf
        if isinstance(dist, QNormal | QLogNormal) and math.isfinite(median):
            median = quantize(median, dist.q)
        if not trainable_value(hp.name, median)[1]:
            return [
                Problem(
                    f"{dist.type} with mu {show(dist.mu)} draws {show(median)} or beyond half of the time, "
                    f"outside the range; {expected}"
                    + (" (lognormal's mu is the log of the median)" if "log" in dist.type else ""),
                    field=_field((*loc, "mu")),
                )
            ]
    return []


def sweep_warnings(job: AutoMLImageJob) -> list[Problem]:
    """Things worth telling the user about a valid sweep (printed by the runner, never fatal)."""
    spec = job.spec
    sweep = spec.effective_sweep
    if sweep is None or not spec.search_space:
        return []
    out: list[Problem] = []
    max_trials = spec.limits.max_trials
    if sweep.sampling_algorithm == "grid":
        points = sum(grid_size(sub) for sub in spec.search_space)
        if points > max_trials:
            out.append(
                Problem(
                    f"the grid has {points} points but limits.maxTrials is {max_trials}: only the first "
                    f"{max_trials} points run",
                    field="spec.limits.maxTrials",
                )
            )
        elif points < max_trials:
            out.append(
                Problem(
                    f"the grid has {points} points: the sweep ends after {points} trials, below "
                    f"limits.maxTrials {max_trials}",
                    field="spec.searchSpace",
                )
            )
    if sweep.sampling_algorithm == "bayesian" and spec.search_space:
        sub = spec.search_space[0]
        for name, dist in sub.items():
            if dist.type not in AZURE_BAYESIAN_TYPES and dist.type in BAYESIAN_TYPES:
                out.append(
                    Problem(
                        f"{dist.type} with bayesian sampling is a kubevision extension (Azure takes choice, "
                        "uniform and quniform); this job will not import into Azure unchanged",
                        field=_field(("searchSpace", 0, name)),
                    )
                )
        wanted = 20 * len(sub)
        if max_trials < wanted:
            out.append(
                Problem(
                    f"bayesian sampling works best with limits.maxTrials >= 20 x {len(sub)} swept "
                    f"hyperparameters = {wanted} (got {max_trials})",
                    field="spec.limits.maxTrials",
                )
            )
    for i, sub in enumerate(spec.search_space):
        for name, dist in sub.items():
            hp = HYPERPARAMETERS.get(name)
            if hp is not None and hp.kind in _NUMERIC and dist.type in _UNBOUNDED:
                out.append(
                    Problem(
                        f"{dist.type} is unbounded; draws outside {hp.name}'s range ({hp.expected()}) are drawn again",
                        field=_field(("searchSpace", i, name)),
                    )
                )
    return out
