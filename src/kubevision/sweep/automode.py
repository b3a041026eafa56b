"""AutoMode (reference 5.5): an ordered portfolio of configs per task, then local search around the best.

Why a fixed, ordered portfolio: Azure does not publish its AutoMode algorithm, only its contract
(N trials that vary the architecture and a few key hyperparameters, scaled to N, with batch sizes
the hardware can hold). With the budgets AutoMode is meant for (10-20 trials), a model-based
sampler has too few observations to beat a list of strong, diverse configs tried in a sensible
order; and a list is reproducible, explainable (docs/automode.md prints it) and identical on a
workstation and a cluster (the operator hands it to Katib as a list of indices). Past the list,
`automode_search_space` gives TPE a small neighbourhood of the best config to refine.

Order: the task's default model with its defaults first (so trial 1 is the baseline Azure users
know); then other architecture families at their own defaults (the biggest single lever); then
learning-rate and schedule variants of the strongest families; the most expensive models last.
`portfolio` takes the first P(N) entries: all N trials when N <= 4, else N - N // 4, leaving a
quarter of the budget for the local search (capped by the table's length).

Batch size: `trainingBatchSize` is per GPU. A model's training memory is modelled as a fixed part
(weights, gradients and two optimizer states at 4 bytes each, plus 1 GiB of CUDA context and
workspace) and a part per image at the reference resolution (224 crop for classification, 600 x
800 for detection/segmentation, 640 x 640 for YOLOv5) that scales with the image's pixel count.
The per-image numbers are ESTIMATES for mixed-precision training, calibrated so that Azure's default
batch sizes (tuned for the 16 GiB V100s Azure recommends) fit 85% of 16 GiB; they are not
measurements on our trainer. The fitted batch is min(default, fit); when it is below the default,
`gradientAccumulationStep` keeps the effective batch (so the default learning rate stays valid):
a default of 48 with room for 41 trains 2 steps of 24.
A bigger GPU does not get bigger batches: the learning-rate defaults belong to the default batch.
A model whose batch of one does not fit is left out. Without a GPU (`device_memory_bytes` None)
the batch is at most 16 (classification) / 2 (detection) and the heaviest models (> 55 M
parameters) other than the task's default are left out: a CPU epoch of those takes hours.

Fixed training parameters (`fixed`, the job's trainingParameters) are never overridden: their keys
are left out of every config, and configs they make identical are kept once (a fixed modelName
turns the architecture entries into learning-rate and schedule variants of that model). ViTs are
left out when fixed crop sizes differ (a ViT needs trainingCropSize == validationCropSize).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubevision.api.hyperparameters import VIT_MODELS, default_hyperparameters
from kubevision.api.search_space import Choice, Distribution, LogUniform, QUniform
from kubevision.api.tasks import DEFAULT_MODEL, MODELS_BY_TASK, Task, is_classification

__all__ = [
    "CPU_BATCH",
    "MEMORY_HEADROOM",
    "MODEL_COST",
    "PORTFOLIOS",
    "Candidate",
    "ModelCost",
    "automode_search_space",
    "fit_batch",
    "portfolio",
    "portfolio_size",
]

MiB = 1024 * 1024
GiB = 1024 * MiB

MEMORY_HEADROOM = 0.85
"""Share of the GPU's memory a trial may plan for (allocator fragmentation, cuDNN autotuning)."""

CPU_BATCH = {"classification": 16, "detection": 2}
"""Largest training batch on CPU: bigger batches do not make a CPU epoch faster, only hungrier."""

_CONTEXT_BYTES = 1 * GiB
_STATE_BYTES_PER_PARAM = 16  # weights, gradients, two optimizer states (AdamW), fp32
_HEAVY_PARAMS_M = 55.0
_VALIDATION_SHARE = 3  # inference keeps no activations for backward: about a third of training's


@dataclass(frozen=True)
class ModelCost:
    """Memory model of one architecture (see the module docstring)."""

    params_m: float
    """Parameters, millions."""
    mib_per_image: float
    """Training activation memory per image at the reference resolution, MiB (estimate, mixed precision)."""

    @property
    def fixed_bytes(self) -> float:
        return self.params_m * 1e6 * _STATE_BYTES_PER_PARAM + _CONTEXT_BYTES

    @property
    def heavy(self) -> bool:
        return self.params_m > _HEAVY_PARAMS_M


MODEL_COST: Mapping[str, ModelCost] = {
    # classification, 224 x 224
    "mobilenetv2": ModelCost(3.5, 50),
    "resnet18": ModelCost(11.7, 25),
    "resnet34": ModelCost(21.8, 35),
    "resnet50": ModelCost(25.6, 60),
    "resnet101": ModelCost(44.5, 90),
    "resnet152": ModelCost(60.2, 130),
    "resnest50": ModelCost(27.5, 90),
    "resnest101": ModelCost(48.3, 140),
    "seresnext": ModelCost(27.6, 95),
    "vits16r224": ModelCost(22.1, 45),
    "vitb16r224": ModelCost(86.6, 110),
    "vitl16r224": ModelCost(304.3, 300),
    # detection / segmentation, shorter side 600 (600 x 800)
    "fasterrcnn_resnet18_fpn": ModelCost(28.3, 350),
    "fasterrcnn_resnet34_fpn": ModelCost(38.4, 450),
    "fasterrcnn_resnet50_fpn": ModelCost(41.8, 600),
    "fasterrcnn_resnet101_fpn": ModelCost(60.8, 800),
    "fasterrcnn_resnet152_fpn": ModelCost(76.4, 1000),
    "retinanet_resnet50_fpn": ModelCost(34.0, 700),
    "yolov5": ModelCost(21.2, 400),
    "maskrcnn_resnet18_fpn": ModelCost(30.9, 500),
    "maskrcnn_resnet34_fpn": ModelCost(41.0, 600),
    "maskrcnn_resnet50_fpn": ModelCost(44.4, 800),
    "maskrcnn_resnet101_fpn": ModelCost(63.4, 1000),
    "maskrcnn_resnet152_fpn": ModelCost(79.0, 1250),
}
"""Memory model per architecture; every model of api.tasks.MODELS_BY_TASK has an entry."""


@dataclass(frozen=True)
class Candidate:
    """One portfolio entry: a model at its defaults, scaled by factors, plus explicit extras."""

    model: str
    lr_factor: float = 1.0
    """Multiplies the model's default learningRate."""
    epoch_factor: float = 1.0
    """Multiplies the model's default numberOfEpochs."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Further hyperparameters (camelCase), e.g. a larger minSize."""
    why: str = ""


_CLASSIFICATION: tuple[Candidate, ...] = (
    Candidate("vitb16r224", why="task default (Azure how-to), defaults"),
    Candidate("seresnext", why="strongest CNN family; Azure's other documented default"),
    Candidate("resnet50", why="robust CNN baseline, cheap"),
    Candidate("vits16r224", why="small ViT: fast, good on small datasets"),
    Candidate("vitb16r224", lr_factor=1 / 3, why="default model, lower learning rate"),
    Candidate("resnest50", why="split-attention ResNet, a third CNN family"),
    Candidate("seresnext", lr_factor=3, why="CNNs often prefer a higher SGD rate"),
    Candidate("vitb16r224", epoch_factor=2, why="default model, twice the schedule"),
    Candidate("mobilenetv2", why="lightweight; wins on tiny datasets"),
    Candidate("resnet101", why="deeper ResNet"),
    Candidate("seresnext", epoch_factor=2, why="second family, twice the schedule"),
    Candidate("vitl16r224", why="largest ViT: best with much data, most expensive"),
)

_DETECTION: tuple[Candidate, ...] = (
    Candidate("fasterrcnn_resnet50_fpn", why="task default, defaults"),
    Candidate("retinanet_resnet50_fpn", why="one-stage detector (focal loss): a different family"),
    Candidate("fasterrcnn_resnet101_fpn", why="deeper backbone"),
    Candidate("fasterrcnn_resnet50_fpn", lr_factor=2, why="default model, higher learning rate"),
    Candidate("fasterrcnn_resnet50_fpn", extra={"minSize": 800}, why="larger images: small objects"),
    Candidate("fasterrcnn_resnet34_fpn", why="lighter backbone"),
    Candidate("fasterrcnn_resnet50_fpn", epoch_factor=2, why="default model, twice the schedule"),
    Candidate("retinanet_resnet50_fpn", lr_factor=0.5, why="RetinaNet, lower learning rate"),
    Candidate("fasterrcnn_resnet152_fpn", why="deepest backbone, most expensive"),
    Candidate("fasterrcnn_resnet50_fpn", lr_factor=0.5, why="default model, lower learning rate"),
    Candidate("fasterrcnn_resnet18_fpn", why="lightest backbone"),
    Candidate("fasterrcnn_resnet101_fpn", epoch_factor=2, why="deeper backbone, twice the schedule"),
)

_SEGMENTATION: tuple[Candidate, ...] = (
    Candidate("maskrcnn_resnet50_fpn", why="task default, defaults"),
    Candidate("maskrcnn_resnet101_fpn", why="deeper backbone"),
    Candidate("maskrcnn_resnet50_fpn", lr_factor=2, why="default model, higher learning rate"),
    Candidate("maskrcnn_resnet34_fpn", why="lighter backbone"),
    Candidate("maskrcnn_resnet50_fpn", extra={"minSize": 800}, why="larger images: finer masks"),
    Candidate("maskrcnn_resnet50_fpn", epoch_factor=2, why="default model, twice the schedule"),
    Candidate("maskrcnn_resnet152_fpn", why="deepest backbone, most expensive"),
    Candidate("maskrcnn_resnet50_fpn", lr_factor=0.5, why="default model, lower learning rate"),
    Candidate("maskrcnn_resnet18_fpn", why="lightest backbone"),
    Candidate("maskrcnn_resnet101_fpn", epoch_factor=2, why="deeper backbone, twice the schedule"),
)

PORTFOLIOS: Mapping[Task, tuple[Candidate, ...]] = {
    Task.IMAGE_CLASSIFICATION: _CLASSIFICATION,
    Task.IMAGE_CLASSIFICATION_MULTILABEL: _CLASSIFICATION,
    Task.IMAGE_OBJECT_DETECTION: _DETECTION,
    Task.IMAGE_INSTANCE_SEGMENTATION: _SEGMENTATION,
}
"""The ordered candidates per task (YOLOv5 is left out: an optional backend a default must not need)."""


def portfolio_size(max_trials: int, available: int) -> int:
    """P(N): portfolio trials out of `max_trials` (see the module docstring), at most `available`."""
    wanted = max_trials if max_trials <= 4 else max_trials - max_trials // 4
    return max(0, min(wanted, available))


def _round_lr(value: float) -> float:
    """Three significant digits (0.0125 / 3 = 0.00417), within the hyperparameter's (0, 1]."""
    return min(1.0, float(f"{value:.3g}"))


def _pixels_factor(task: Task, model: str, params: Mapping[str, Any]) -> float:
    """Pixels of one training image relative to the reference resolution of MODEL_COST."""
    if is_classification(task):
        crop = int(params.get("trainingCropSize") or 224)
        return (crop / 224) ** 2
    if model == "yolov5":
        size = int(params.get("imageSize") or 640)
        return (size / 640) ** 2
    short = int(params.get("minSize") or 600)
    long = min(int(params.get("maxSize") or 1333), round(short * 4 / 3))
    return short * long / (600 * 800)


def fit_batch(
    task: Task | str,
    model: str,
    default_batch: int,
    *,
    device_memory_bytes: int | None,
    params: Mapping[str, Any] | None = None,
    validation: bool = False,
) -> int:
    """The batch size of `model` that fits the device: min(default, what fits); 0 if one image does not fit.

    `params` holds the image-size hyperparameters in effect (trainingCropSize, minSize, maxSize,
    imageSize); missing ones take their defaults.
    """
    task = Task(task)
    if device_memory_bytes is None:
        cap = CPU_BATCH["classification" if is_classification(task) else "detection"]
        return max(1, min(default_batch, cap))
    cost = MODEL_COST[model]
    per_image = cost.mib_per_image * MiB * _pixels_factor(task, model, params or {})
    if validation:
        per_image /= _VALIDATION_SHARE
    usable = device_memory_bytes * MEMORY_HEADROOM - cost.fixed_bytes
    fits = math.floor(usable / per_image) if usable > 0 else 0
    return max(0, min(default_batch, fits))


def _vit_allowed(fixed: Mapping[str, Any]) -> bool:
    """ViTs need trainingCropSize == validationCropSize; fixed values may forbid them (default 224)."""
    train = fixed.get("trainingCropSize", 224)
    valid = fixed.get("validationCropSize", 224)
    return bool(train == valid)


def _config(
    task: Task,
    candidate: Candidate,
    fixed: Mapping[str, Any],
    device_memory_bytes: int | None,
) -> dict[str, Any] | None:
    """The hyperparameters of one candidate (keys of `fixed` left out); None if it cannot run here."""
    model = str(fixed.get("modelName") or candidate.model)
    defaults = default_hyperparameters(task, model)
    effective = {**defaults, **candidate.extra, **fixed}
    config: dict[str, Any] = {
        "modelName": model,
        "learningRate": _round_lr(defaults["learningRate"] * candidate.lr_factor),
        "numberOfEpochs": max(1, round(defaults["numberOfEpochs"] * candidate.epoch_factor)),
    }
    if "trainingBatchSize" not in fixed:
        default_batch = int(defaults["trainingBatchSize"])
        batch = fit_batch(task, model, default_batch, device_memory_bytes=device_memory_bytes, params=effective)
        if batch == 0:
            if "modelName" not in fixed:
                return None
            batch = 1
        if batch < default_batch and "gradientAccumulationStep" not in fixed:
            # Keep the effective batch at the default: 48 with room for 41 is 2 steps of 24.
            steps = math.ceil(default_batch / batch)
            batch = math.ceil(default_batch / steps)
            config["trainingBatchSize"] = batch
            config["gradientAccumulationStep"] = steps
        else:
            config["trainingBatchSize"] = batch
    if "validationBatchSize" not in fixed:
        default_valid = int(defaults["validationBatchSize"])
        valid = fit_batch(
            task, model, default_valid, device_memory_bytes=device_memory_bytes, params=effective, validation=True
        )
        config["validationBatchSize"] = max(1, valid)
    config.update(candidate.extra)
    return {k: v for k, v in config.items() if k not in fixed}


def portfolio(
    task: Task,
    max_trials: int,
    *,
    device_memory_bytes: int | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The AutoMode configs to try first, in order (camelCase keys, none of `fixed`'s keys).

    At most `portfolio_size(max_trials, ...)` entries; the remaining trials are for
    `automode_search_space`. Configs that become identical once `fixed` applies (a fixed modelName
    turns the architecture entries into copies) are kept once.
    """
    task = Task(task)
    fixed = dict(fixed or {})
    fixed_model = fixed.get("modelName")
    configs: list[dict[str, Any]] = []
    for candidate in PORTFOLIOS[task]:
        if fixed_model is None:
            if candidate.model in VIT_MODELS and not _vit_allowed(fixed):
                continue
            heavy = MODEL_COST[candidate.model].heavy and candidate.model != DEFAULT_MODEL[task]
            if device_memory_bytes is None and heavy:
                continue
        config = _config(task, candidate, fixed, device_memory_bytes)
        if config is not None and config not in configs:
            configs.append(config)
    if not configs:
        # Every candidate was left out (a GPU too small for any): the default model, batch 1.
        model = DEFAULT_MODEL[task]
        config = _config(task, Candidate(model), {**fixed, "modelName": model}, device_memory_bytes) or {}
        configs = [{"modelName": model, **config}]
    return configs[: max(1, portfolio_size(max_trials, len(configs)))]


def automode_search_space(
    task: Task,
    best: Mapping[str, Any],
    *,
    fixed: Mapping[str, Any] | None = None,
) -> dict[str, Distribution]:
    """The neighbourhood of the best config that TPE explores once the portfolio is used up.

    The model stays the best one (changing it would change every default); the learning rate
    ranges over a third to three times the best's (log scale, capped at 1) and the epochs from
    two thirds to twice the best's. Keys of `fixed` are not swept. Batch sizes, accumulation and
    extras are not swept either: the caller keeps them from `best`.
    """
    task = Task(task)
    fixed = fixed or {}
    model = str(best.get("modelName") or fixed.get("modelName") or DEFAULT_MODEL[task])
    if model not in MODELS_BY_TASK[task]:
        model = DEFAULT_MODEL[task]
    defaults = default_hyperparameters(task, model)
    space: dict[str, Distribution] = {}
    if "modelName" not in fixed:
        space["modelName"] = Choice(type="choice", values=[model])
    if "learningRate" not in fixed:
        lr = float(best.get("learningRate") or defaults["learningRate"])
        space["learningRate"] = LogUniform(
            type="loguniform", min_value=math.log(lr / 3), max_value=math.log(min(1.0, lr * 3))
        )
    if "numberOfEpochs" not in fixed:
        epochs = int(best.get("numberOfEpochs") or defaults["numberOfEpochs"])
        low, high = max(1, round(epochs * 2 / 3)), max(2, epochs * 2)
        space["numberOfEpochs"] = QUniform(type="quniform", min_value=low, max_value=high, q=1)
    return space
