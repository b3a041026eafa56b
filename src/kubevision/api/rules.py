"""The rules of an AutoMLImageJob spec that span several fields or depend on the task.

Why a module of plain functions: each rule is a short function returning `Violation`s that point at
the exact field (so every rule is testable alone and reported with its own line), and the list
`RULES` reads as the specification. They run after pydantic has checked every field's type and
range, from `AutoMLImageJobSpec`'s model validator.

Decisions where Azure is silent or lenient:
- a searchSpace with `limits.maxTrials: 1` is an error (Azure would run one trial and sweep
  nothing, which is never what was meant);
- a `sweep` without a searchSpace is an error; a searchSpace without `sweep` samples at random;
- early termination with bayesian sampling is an error (HyperDrive: "Bayesian sampling does not
  support any early termination policy");
- model-specific checks (YOLOv5-only parameters, ViT crop sizes) run whenever the trials' models
  are known: the fixed or default model of a single trial or sub-space, or a sub-space's
  `modelName` choices. In AutoMode without a fixed model they are skipped: AutoMode picks models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kubevision.api.hyperparameters import HYPERPARAMETERS, VIT_MODELS
from kubevision.api.search_space import (
    Choice,
    check_model_name,
    check_sub_space,
    not_applicable,
    sub_space_models,
)
from kubevision.api.tasks import DEFAULT_MODEL, PRIMARY_METRIC, is_classification
from kubevision.api.values import show
from kubevision.api.violations import Loc, Violation

if TYPE_CHECKING:
    from kubevision.api.models import AutoMLImageJobSpec

__all__ = ["RULES", "job_violations", "trial_groups"]

_BAYESIAN_TYPES = ("choice", "uniform", "quniform")


def job_violations(spec: AutoMLImageJobSpec) -> list[Violation]:
    """Every rule violation of `spec`, locations relative to the spec."""
    return [v for rule in RULES for v in rule(spec)]


def _fixed_model(spec: AutoMLImageJobSpec) -> str | None:
    """trainingParameters.modelName if it is a model of the task (an invalid one is reported apart)."""
    name = spec.training_parameters.model_name
    return name if name is not None and check_model_name(spec.task, name) is None else None


def _fixed_valid(spec: AutoMLImageJobSpec) -> bool:
    """False when trainingParameters.modelName is set but not a model of the task."""
    return spec.training_parameters.model_name is None or _fixed_model(spec) is not None


def trial_groups(spec: AutoMLImageJobSpec) -> list[tuple[Loc, list[str] | None]]:
    """(location, models) of each group of trials: one per sub-space, or the job itself.

    `models` is None where they are not known in advance (AutoMode without a fixed model, or an
    invalid fixed model, which is reported on its own).
    """
    fixed, valid = _fixed_model(spec), _fixed_valid(spec)
    if spec.search_space:
        return [
            (("searchSpace", i), sub_space_models(spec.task, sub, fixed, fixed_valid=valid))
            for i, sub in enumerate(spec.search_space)
        ]
    if not valid or (spec.is_automode and spec.training_parameters.model_name is None):
        return [((), None)]
    return [((), [fixed or DEFAULT_MODEL[spec.task]])]


def primary_metric(spec: AutoMLImageJobSpec) -> list[Violation]:
    """primaryMetric, if given, must be the task's only metric (reference 1.1)."""
    expected = PRIMARY_METRIC[spec.task]
    if spec.primary_metric is not None and spec.primary_metric != expected:
        return [
            Violation(
                ("primaryMetric",), f"got {show(spec.primary_metric)}; {spec.task} supports only '{expected}'"
            )
        ]
    return []


def sweep_needs_search_space(spec: AutoMLImageJobSpec) -> list[Violation]:
    """A sweep samples a search space; without one there is nothing to sample."""
    if spec.sweep is not None and not spec.search_space:
        return [
            Violation(
                ("sweep",),
                "a sweep needs a searchSpace; remove sweep to run AutoMode "
                "(limits.maxTrials > 1) or a single trial",
            )
        ]
    return []


def search_space_needs_trials(spec: AutoMLImageJobSpec) -> list[Violation]:
    """A manual sweep runs more than one trial (reference 5.1)."""
    if spec.search_space and spec.limits.max_trials == 1:
        explicit = "limits" in spec.model_fields_set and "max_trials" in spec.limits.model_fields_set
        loc: Loc = ("limits", "maxTrials") if explicit else ("searchSpace",)
        return [
            Violation(loc, "a searchSpace is swept over several trials; set limits.maxTrials above 1 (got 1)")
        ]
    return []


def sampling_algorithm(spec: AutoMLImageJobSpec) -> list[Violation]:
    """grid: choice only; bayesian: choice/uniform/quniform, one sub-space, no early termination."""
    sweep = spec.effective_sweep
    if sweep is None or not spec.search_space:
        return []
    out = []
    algorithm = sweep.sampling_algorithm
    for i, sub in enumerate(spec.search_space):
        for name, dist in sub.items():
            if algorithm == "grid" and not isinstance(dist, Choice):
                out.append(
                    Violation(
                        ("searchSpace", i, name, "type"),
                        f"got '{dist.type}'; grid sampling takes only choice distributions",
                    )
                )
            if algorithm == "bayesian" and dist.type not in _BAYESIAN_TYPES:
                out.append(
                    Violation(
                        ("searchSpace", i, name, "type"),
                        f"got '{dist.type}'; bayesian sampling takes only choice, uniform "
                        "and quniform distributions",
                    )
                )
    if algorithm == "bayesian" and len(spec.search_space) > 1:
        out.append(
            Violation(
                ("searchSpace", 1),
                f"bayesian sampling takes one sub-space, got {len(spec.search_space)}; "
                "conditional search spaces need random or grid sampling",
            )
        )
    if algorithm == "bayesian" and sweep.early_termination is not None:
        out.append(
            Violation(
                ("sweep", "earlyTermination"),
                "bayesian sampling does not support early termination (each trial informs the "
                "next, so stopped trials would mislead it); remove earlyTermination or use "
                "random or grid sampling",
            )
        )
    return out


def fixed_parameters(spec: AutoMLImageJobSpec) -> list[Violation]:
    """trainingParameters: the model belongs to the task; each parameter suits the task and models."""
    out = []
    params = spec.training_parameters
    if params.model_name is not None:
        msg = check_model_name(spec.task, params.model_name)
        if msg:
            out.append(Violation(("trainingParameters", "modelName"), msg))
    groups = trial_groups(spec)
    models: list[str] | None = []
    for _, group in groups:
        if group is None or models is None:
            models = None
        else:
            models += [m for m in group if m not in models]
    who = "this job's trials"
    if params.model_name is None and not spec.search_space and models is not None:
        who += " (no modelName: the task's default)"
    for name in params.model_dump(by_alias=True, exclude_none=True):
        if name == "modelName":
            continue
        reason = not_applicable(HYPERPARAMETERS[name], spec.task, models, who)
        if reason:
            out.append(Violation(("trainingParameters", name), reason))
    return out


def search_space(spec: AutoMLImageJobSpec) -> list[Violation]:
    """Each sub-space against the task and the hyperparameter table (see search_space.check_sub_space)."""
    fixed, valid = _fixed_model(spec), _fixed_valid(spec)
    return [
        v
        for i, sub in enumerate(spec.search_space or [])
        for v in check_sub_space(spec.task, sub, fixed, prefix=("searchSpace", i), fixed_valid=valid)
    ]


def vit_crop_sizes(spec: AutoMLImageJobSpec) -> list[Violation]:
    """ViT models need validationCropSize == trainingCropSize (reference 3.1), fixed or swept."""
    if not is_classification(spec.task):
        return []
    out = []
    for prefix, models in trial_groups(spec):
        vits = [m for m in models or [] if m in VIT_MODELS]
        if not vits:
            continue
        sub: dict[str, Any] = {}
        if prefix and spec.search_space:
            sub = spec.search_space[int(prefix[1])]
        valid, valid_loc = _candidates(spec, sub, prefix, "validationCropSize")
        train, train_loc = _candidates(spec, sub, prefix, "trainingCropSize")
        swept = [x for x in (valid_loc, train_loc) if x and x[0] == "searchSpace"]
        loc = swept[0] if swept else (train_loc or valid_loc)
        if loc is None:
            continue
        if valid is None or train is None:
            out.append(
                Violation(
                    loc,
                    f"{vits[0]} needs validationCropSize == trainingCropSize, which a "
                    "continuous distribution cannot guarantee; fix both to one value",
                )
            )
            continue
        pairs = [(v, t) for v in valid for t in train if v != t]
        if pairs:
            v, t = pairs[0]
            out.append(
                Violation(
                    loc,
                    f"{vits[0]} needs validationCropSize == trainingCropSize, but "
                    f"validationCropSize can be {show(v)} and trainingCropSize {show(t)}",
                )
            )
    return out


def _candidates(
    spec: AutoMLImageJobSpec, sub: dict[str, Any], prefix: Loc, name: str
) -> tuple[list[Any] | None, Loc | None]:
    """Values a trial of this group may get for `name`, and where they were set (None: default)."""
    if name in sub:
        dist = sub[name]
        return (list(dist.values) if isinstance(dist, Choice) else None), (*prefix, name)
    fixed = spec.training_parameters.model_dump(by_alias=True, exclude_none=True).get(name)
    if fixed is not None:
        return [fixed], ("trainingParameters", name)
    return [HYPERPARAMETERS[name].default(spec.task, "vitb16r224")], None


def one_checkpoint_source(spec: AutoMLImageJobSpec) -> list[Violation]:
    """Incremental training starts from one model: spec.checkpoint or Azure's checkpointRunId."""
    if spec.checkpoint is not None and spec.training_parameters.checkpoint_run_id is not None:
        return [
            Violation(
                ("trainingParameters", "checkpointRunId"),
                "give spec.checkpoint or trainingParameters.checkpointRunId, not both",
            )
        ]
    return []


RULES: tuple[Callable[[AutoMLImageJobSpec], list[Violation]], ...] = (
    primary_metric,
    sweep_needs_search_space,
    search_space_needs_trials,
    sampling_algorithm,
    fixed_parameters,
    search_space,
    vit_crop_sizes,
    one_checkpoint_source,
)
