"""`spec.searchSpace`: a list of sub-spaces, each mapping hyperparameter names to distributions.

Why a list: a conditional search space (reference 5.2) gives each model family its own ranges;
YOLOv5 takes `imageSize`, Faster R-CNN takes `minSize`. Each sub-space is sampled on its own.
Katib has no conditional spaces, so the operator turns each sub-space into one Experiment.

The distributions keep Azure's names and semantics, so an Azure job imports unchanged. They stay
plain data (model-dumpable); the sweep code turns them into Optuna distributions and the operator
into Katib parameters. `check_sub_space` checks a sub-space against the job's task and against the
hyperparameter table: unknown or inapplicable names, values and bounds outside a hyperparameter's
range, and models that do not belong to the task.

Integer hyperparameters may take continuous distributions; the sampled value is rounded
(`resolve_training_parameters`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from kubevision.api.base import KubeModel
from kubevision.api.hyperparameters import (
    HYPERPARAMETERS,
    RT_TO_CAMEL,
    SDK_TO_CAMEL,
    Hyperparameter,
)
from kubevision.api.spelling import did_you_mean
from kubevision.api.tasks import DEFAULT_MODEL, MODELS_BY_TASK, Task
from kubevision.api.values import show
from kubevision.api.violations import Loc, Violation, raise_violations

__all__ = [
    "DISTRIBUTION_TYPES",
    "Choice",
    "Distribution",
    "LogNormal",
    "LogUniform",
    "Normal",
    "QLogNormal",
    "QLogUniform",
    "QNormal",
    "QUniform",
    "RandInt",
    "SubSpace",
    "Uniform",
    "check_model_name",
    "check_sub_space",
    "sub_space_models",
]

ChoiceValue = str | int | float | bool


class Choice(KubeModel):
    """Pick one of `values` (discrete; the only distribution grid sampling takes)."""

    type: Literal["choice"] = Field(description="Distribution type.")
    values: list[ChoiceValue] = Field(min_length=1, description="Candidate values (non-empty, unique).")

    @model_validator(mode="after")
    def _unique(self) -> Choice:
        seen: dict[tuple[bool, Any], int] = {}
        dupes = []
        for i, value in enumerate(self.values):
            key = (isinstance(value, bool), value)
            if key in seen:
                dupes.append(
                    Violation(("values", i), f"{show(value)} is listed twice; values must be unique")
                )
            seen.setdefault(key, i)
        if dupes:
            raise_violations(dupes)
        return self


class RandInt(KubeModel):
    """A random integer in [0, upper) (Azure semantics: `upper` itself is never drawn)."""

    type: Literal["randint"] = Field(description="Distribution type.")
    upper: int = Field(ge=1, description="Exclusive upper bound; integers 0..upper-1 are drawn.")


class _Bounded(KubeModel):
    """Shared rule of the min/max distributions: the interval must not be empty."""

    type: str = Field(description="Distribution type.")
    min_value: float = Field(description="Lower bound.")
    max_value: float = Field(description="Upper bound (greater than minValue).")

    @model_validator(mode="after")
    def _ordered(self) -> _Bounded:
        if not self.min_value < self.max_value:
            raise_violations(
                [
                    Violation(
                        ("maxValue",),
                        f"got {show(self.max_value)}; expected a number greater than "
                        f"minValue {show(self.min_value)}",
                    )
                ]
            )
        return self


class Uniform(_Bounded):
    """Uniform in [minValue, maxValue]."""

    type: Literal["uniform"] = Field(description="Distribution type.")


class LogUniform(_Bounded):
    """exp(uniform(minValue, maxValue)): minValue and maxValue are NATURAL LOGS of the bounds.

    This is Azure's (and HyperDrive's) definition; for a learning rate between 1e-4 and 1e-2
    write minValue: -9.21, maxValue: -4.61 (ln 1e-4, ln 1e-2).
    """

    type: Literal["loguniform"] = Field(description="Distribution type; bounds are natural logs.")


class QUniform(_Bounded):
    """round(uniform(minValue, maxValue) / q) * q."""

    type: Literal["quniform"] = Field(description="Distribution type.")
    q: float = Field(gt=0, description="Quantisation step.")


class QLogUniform(_Bounded):
    """round(exp(uniform(minValue, maxValue)) / q) * q; bounds are natural logs as in loguniform."""

    type: Literal["qloguniform"] = Field(description="Distribution type; bounds are natural logs.")
    q: float = Field(gt=0, description="Quantisation step.")


class Normal(KubeModel):
    """Normal with mean `mu` and standard deviation `sigma`."""

    type: Literal["normal"] = Field(description="Distribution type.")
    mu: float = Field(description="Mean.")
    sigma: float = Field(gt=0, description="Standard deviation (> 0).")


class LogNormal(KubeModel):
    """exp(normal(mu, sigma))."""

    type: Literal["lognormal"] = Field(description="Distribution type.")
    mu: float = Field(description="Mean of the logarithm.")
    sigma: float = Field(gt=0, description="Standard deviation of the logarithm (> 0).")


class QNormal(KubeModel):
    """round(normal(mu, sigma) / q) * q."""

    type: Literal["qnormal"] = Field(description="Distribution type.")
    mu: float = Field(description="Mean.")
    sigma: float = Field(gt=0, description="Standard deviation (> 0).")
    q: float = Field(gt=0, description="Quantisation step.")


class QLogNormal(KubeModel):
    """round(exp(normal(mu, sigma)) / q) * q."""

    type: Literal["qlognormal"] = Field(description="Distribution type.")
    mu: float = Field(description="Mean of the logarithm.")
    sigma: float = Field(gt=0, description="Standard deviation of the logarithm (> 0).")
    q: float = Field(gt=0, description="Quantisation step.")


Distribution = Annotated[
    Choice
    | RandInt
    | Uniform
    | LogUniform
    | QUniform
    | QLogUniform
    | Normal
    | LogNormal
    | QNormal
    | QLogNormal,
    Field(discriminator="type"),
]
"""One hyperparameter's distribution, discriminated on `type`."""

SubSpace = Annotated[
    dict[str, Distribution],
    Field(min_length=1, description="Hyperparameter name (camelCase) -> distribution."),
]
"""One sub-space: hyperparameter name -> distribution."""

DISTRIBUTION_TYPES: tuple[str, ...] = (
    "choice",
    "randint",
    "uniform",
    "loguniform",
    "quniform",
    "qloguniform",
    "normal",
    "lognormal",
    "qnormal",
    "qlognormal",
)

_ALIASES = {**SDK_TO_CAMEL, **RT_TO_CAMEL}
_CATEGORICAL = ("bool", "enum", "str", "model", "tile_grid", "settings")


def check_model_name(task: Task, name: Any) -> str | None:
    """None if `name` is a model of `task`, else a message naming the task's models."""
    models = MODELS_BY_TASK[task]
    if isinstance(name, str) and name in models:
        return None
    other = [str(t) for t, ms in MODELS_BY_TASK.items() if isinstance(name, str) and name in ms]
    if other:
        return (
            f"{show(name)} is not a model for {task} (it is a model for {other[0]}); expected one of "
            f"{', '.join(models)}"
        )
    hint = did_you_mean(str(name), models)
    return f"{show(name)} is not a model for {task}; expected one of {', '.join(models)}{hint}"


def sub_space_models(
    task: Task, sub_space: dict[str, Any], fixed_model: str | None, *, fixed_valid: bool = True
) -> list[str] | None:
    """The models the trials of a sub-space may use (valid ones only); None when not known.

    Not known: `modelName` is swept with something else than `choice`, or the sub-space does not
    sweep it and the fixed `modelName` is invalid (`fixed_valid` False; reported elsewhere).
    """
    dist = sub_space.get("modelName")
    if dist is None:
        return [fixed_model or DEFAULT_MODEL[task]] if fixed_valid else None
    if not isinstance(dist, Choice):
        return None
    return [v for v in dist.values if isinstance(v, str) and v in MODELS_BY_TASK[task]]


def not_applicable(hp: Hyperparameter, task: Task, models: Iterable[str] | None, who: str) -> str | None:
    """Why `hp` cannot be used in this task / with these models (None if it can).

    `models` None means the models are not known (AutoMode picks them), so only the task is
    checked. `who` names the trials in the message ("the trials of this sub-space").
    """
    if not hp.applies_to_task(task):
        tasks = ", ".join(str(t) for t in Task if t in hp.tasks)
        if hp.models:
            tasks += f" with {', '.join(sorted(hp.models))}"
        why = f" ({hp.task_note})" if hp.task_note else ""
        return f"{hp.name} does not apply to {task}; it applies to {tasks}{why}"
    if models is None:
        return None
    models = list(models)
    if models and not any(hp.applies_to_model(m) for m in models):
        only = (
            f"only to {', '.join(sorted(hp.models))}"
            if hp.models
            else (f"to every model but {', '.join(sorted(hp.excluded_models))}")
        )
        why = f" ({hp.model_note})" if hp.model_note else ""
        return f"{hp.name} applies {only}{why}, but {who} use {', '.join(models)}"
    return None


def check_sub_space(
    task: Task,
    sub_space: dict[str, Any],
    fixed_model: str | None,
    prefix: Loc = (),
    *,
    fixed_valid: bool = True,
) -> list[Violation]:
    """Every problem of one sub-space for a job of `task`; locations start with `prefix`.

    `fixed_model` is `trainingParameters.modelName`, the model of trials whose sub-space does not
    choose one (`fixed_valid` False: it is not a model of the task).
    """
    out: list[Violation] = []
    model_dist = sub_space.get("modelName")
    if model_dist is not None:
        if isinstance(model_dist, Choice):
            for i, value in enumerate(model_dist.values):
                msg = check_model_name(task, value)
                if msg:
                    out.append(Violation((*prefix, "modelName", "values", i), msg))
        else:
            out.append(
                Violation(
                    (*prefix, "modelName", "type"),
                    f"got {show(model_dist.type)}; modelName can only be swept with choice",
                )
            )
    models = sub_space_models(task, sub_space, fixed_model, fixed_valid=fixed_valid)
    for name, dist in sub_space.items():
        if name == "modelName":
            continue
        loc = (*prefix, name)
        hp = HYPERPARAMETERS.get(name)
        if hp is None:
            names = [h.name for h in HYPERPARAMETERS.values() if h.applies_to_task(task)]
            out.append(
                Violation(loc, f"unknown hyperparameter '{name}'{did_you_mean(name, names, _ALIASES)}")
            )
            continue
        if not hp.sweepable:
            out.append(Violation(loc, f"{name} cannot be swept; set it in trainingParameters"))
            continue
        reason = not_applicable(hp, task, models, "the trials of this sub-space")
        if reason:
            out.append(Violation(loc, reason))
            continue
        out.extend(_check_distribution(hp, dist, loc))
    return out


def _check_distribution(hp: Hyperparameter, dist: Any, loc: Loc) -> list[Violation]:
    """Values and bounds of one distribution against the hyperparameter's type and range."""
    if isinstance(dist, Choice):
        return [
            Violation((*loc, "values", i), msg)
            for i, value in enumerate(dist.values)
            if (msg := hp.check(value)) is not None
        ]
    if hp.kind in _CATEGORICAL:
        return [
            Violation(
                (*loc, "type"),
                f"got {show(dist.type)}; {hp.name} takes {hp.expected()}, so only choice can sweep it",
            )
        ]
    out: list[Violation] = []
    expected = f"{hp.name} takes {hp.expected()}"
    if isinstance(dist, Uniform | QUniform):
        for key, value in (("minValue", dist.min_value), ("maxValue", dist.max_value)):
            if not hp.in_range(value):
                out.append(Violation((*loc, key), f"got {show(value)}; {expected}"))
    elif isinstance(dist, LogUniform | QLogUniform):
        for key, value in (("minValue", dist.min_value), ("maxValue", dist.max_value)):
            sampled = math.exp(value) if value < 700 else math.inf
            if not hp.in_range(sampled):
                out.append(
                    Violation(
                        (*loc, key),
                        (
                            f"got {show(value)}, which samples exp({show(value)}) = {sampled:.4g}; "
                            f"{expected}. {dist.type} bounds are natural logs"
                            f"{_log_hint(hp, dist.min_value, dist.max_value)}"
                        ),
                    )
                )
                break
    elif isinstance(dist, RandInt):
        for value in (0, dist.upper - 1):
            if not hp.in_range(value):
                out.append(
                    Violation(
                        (*loc, "upper"),
                        (
                            f"randint draws integers 0..upper-1 and could draw {value}; {expected}"
                            "; use quniform or choice instead"
                        ),
                    )
                )
                break
    return out


def _log_hint(hp: Hyperparameter, low: float, high: float) -> str:
    """If the user wrote the bounds themselves (both in range), show the logs they meant."""
    if 0 < low < high and hp.in_range(low) and hp.in_range(high):
        return (
            f": for {show(low)}..{show(high)} write minValue: {math.log(low):.4g}, "
            f"maxValue: {math.log(high):.4g}"
        )
    return ""
