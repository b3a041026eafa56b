"""Every training hyperparameter as data: names, type, range, where it applies, and its default.

Why a table and not code scattered over the trainer: the API validates fixed values and search
spaces against it, the trainer reads its defaults, `kubevision import-azure` maps Azure's names
through it, and the CRD descriptions come from it. One table keeps those four from drifting.

Names: our camelCase name is the Azure SDK name in camelCase (`learning_rate` -> `learningRate`);
`sdk_name` is Azure's `training_parameters` key; `rt_name` is the training runtime's name (Azure's
`settings.json` and built-in components, reference 4.6), which the trainer writes to settings.json.

Values come from reference sections 4.1-4.4 (azure-automl-images.md). Where the reference flags a
conflict (⚠) the choice is documented next to the entry.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from kubevision.api.errors import KubevisionError
from kubevision.api.tasks import DEFAULT_MODEL, MODELS_BY_TASK, Task
from kubevision.api.values import describe_range, parse_bool, parse_tile_grid_size, show

if TYPE_CHECKING:
    from kubevision.api.training_parameters import TrainingParameters

__all__ = [
    "ADVANCED_SETTINGS_DEFAULTS",
    "HYPERPARAMETERS",
    "RT_NAME",
    "RT_TO_CAMEL",
    "SDK_TO_CAMEL",
    "VIT_MODELS",
    "YOLO_MODELS",
    "DefaultRule",
    "Hyperparameter",
    "Kind",
    "default_hyperparameters",
    "normalise_choice",
    "resolve_training_parameters",
]

Kind = Literal["int", "float", "bool", "enum", "str", "model", "tile_grid", "settings"]

ALL_TASKS = frozenset(Task)
CLASSIFICATION = frozenset({Task.IMAGE_CLASSIFICATION, Task.IMAGE_CLASSIFICATION_MULTILABEL})
DETECTION_LIKE = frozenset({Task.IMAGE_OBJECT_DETECTION, Task.IMAGE_INSTANCE_SEGMENTATION})
DETECTION = frozenset({Task.IMAGE_OBJECT_DETECTION})
MULTICLASS = frozenset({Task.IMAGE_CLASSIFICATION})
MULTILABEL = frozenset({Task.IMAGE_CLASSIFICATION_MULTILABEL})

YOLO_MODELS = frozenset({"yolov5"})
VIT_MODELS = frozenset({"vits16r224", "vitb16r224", "vitl16r224"})
_VITS_VITB = frozenset({"vits16r224", "vitb16r224"})
_VITL = frozenset({"vitl16r224"})

# Spellings Azure uses besides the canonical choice (reference 4.4, 12.7; 4.3 log_* values).
_CHOICE_ALIASES: dict[str, dict[str, str]] = {
    "modelSize": {"xlarge": "extra_large"},
    "logTrainingMetrics": {"enable": "Enable", "disable": "Disable"},
    "logValidationLoss": {"enable": "Enable", "disable": "Disable"},
}

# `advancedSettings` keys (reference 4.6) and their defaults, camelCase like everything else.
ADVANCED_SETTINGS_DEFAULTS: dict[str, bool] = {
    "applyAutomlTrainAugmentations": True,
    "applyMosaicForYolo": True,
    "streamImageFiles": False,
}


@dataclass(frozen=True)
class DefaultRule:
    """A default that holds for some tasks and/or models (None = any). The first matching rule wins."""

    value: Any
    tasks: frozenset[Task] | None = None
    models: frozenset[str] | None = None

    def matches(self, task: Task, model: str) -> bool:
        return (self.tasks is None or task in self.tasks) and (self.models is None or model in self.models)


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter: what it is called, what it takes, where it applies, what it defaults to."""

    name: str
    """camelCase name used in `trainingParameters` and `searchSpace`."""
    sdk_name: str | None
    """Azure SDK / CLI v2 name; None for kubevision extensions."""
    kind: Kind
    description: str
    rt_name: str = ""
    """Azure training-runtime name (settings.json, built-in components); the SDK name if not given."""
    tasks: frozenset[Task] = ALL_TASKS
    models: frozenset[str] | None = None
    """Only these models take it (None: every model of `tasks`)."""
    excluded_models: frozenset[str] = frozenset()
    """These models do not take it."""
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str | int, ...] = ()
    defaults: tuple[DefaultRule, ...] = ()
    """Empty, or a last rule without conditions: the default is `None` (feature off / model's own)."""
    sweepable: bool = True
    task_note: str = ""
    """Why it is restricted to `tasks`, appended to "does not apply" messages."""
    model_note: str = ""
    """Why it is restricted to some models, appended to "applies only to" messages."""

    def __post_init__(self) -> None:
        if not self.rt_name:
            object.__setattr__(self, "rt_name", self.sdk_name or self.name)

    def applies_to_task(self, task: Task) -> bool:
        return task in self.tasks

    def applies_to_model(self, model: str) -> bool:
        return (self.models is None or model in self.models) and model not in self.excluded_models

    def default(self, task: Task, model: str) -> Any:
        """The effective default for a task and model (None when the feature is off by default)."""
        for rule in self.defaults:
            if rule.matches(task, model):
                return rule.value
        return None

    def expected(self) -> str:
        """What values it takes, as a phrase: "an integer >= 1", "one of sgd, adam, adamw"."""
        if self.kind in ("int", "float"):
            noun = "an integer" if self.kind == "int" else "a number"
            return noun + describe_range(self.ge, self.gt, self.le, self.lt)
        if self.kind == "bool":
            return "true or false"
        if self.kind == "enum":
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.kind == "tile_grid":
            return "a tile grid such as '3x2' (columns x rows, not 1x1)"
        if self.kind == "model":
            return "a model name"
        if self.kind == "settings":
            return "a mapping of advanced settings"
        return "a non-empty string"

    def in_range(self, number: float) -> bool:
        """Whether a number lies inside this hyperparameter's bounds."""
        return not (
            (self.ge is not None and number < self.ge)
            or (self.gt is not None and number <= self.gt)
            or (self.le is not None and number > self.le)
            or (self.lt is not None and number >= self.lt)
        )

    def check(self, value: Any) -> str | None:
        """None if `value` is a valid value, else a message "got X; expected Y" (no task checks here)."""
        bad = f"got {show(value)}; expected {self.expected()}"
        if self.kind == "int":
            is_int = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
            if isinstance(value, bool) or not is_int or not self.in_range(value):
                return bad
        elif self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, int | float) or not self.in_range(value):
                return bad
        elif self.kind == "bool":
            if parse_bool(value) is None:
                return bad
        elif self.kind == "enum":
            if normalise_choice(self.name, value) not in self.choices:
                return bad
        elif self.kind == "tile_grid":
            try:
                parse_tile_grid_size(value)
            except ValueError as err:
                return str(err)
        elif self.kind in ("str", "model"):
            if not isinstance(value, str) or not value:
                return bad
        else:
            return bad
        return None


def normalise_choice(name: str, value: Any) -> Any:
    """Canonical spelling of an enum value: lowercase (Azure enums are case-insensitive) plus aliases."""
    if not isinstance(value, str):
        return value
    aliases = _CHOICE_ALIASES.get(name)
    if aliases is not None:
        return aliases.get(value.lower(), value)
    return value.lower()


def _d(value: Any, tasks: Iterable[Task] | None = None, models: Iterable[str] | None = None) -> DefaultRule:
    return DefaultRule(
        value,
        frozenset(tasks) if tasks is not None else None,
        frozenset(models) if models is not None else None,
    )


_NOT_YOLO = "YOLOv5 resizes with imageSize instead"
_YOLO_ONLY = "it configures the YOLOv5 backend"
_OD_ONLY = "tiling is supported for object detection only, not for instance segmentation"

_TABLE: tuple[Hyperparameter, ...] = (
    # ---- 4.1 model-agnostic -------------------------------------------------------------------
    Hyperparameter(
        name="modelName",
        sdk_name="model_name",
        kind="model",
        description="Model architecture; must be a model of the job's task.",
        defaults=tuple(_d(model, tasks=[task]) for task, model in DEFAULT_MODEL.items()),
    ),
    Hyperparameter(
        name="numberOfEpochs",
        sdk_name="number_of_epochs",
        kind="int",
        description="Training epochs.",
        ge=1,
        defaults=(_d(30, models=YOLO_MODELS), _d(15)),
    ),
    # ⚠ yolov5: docs say batch 16 / lr 0.01, the runtime uses 12 / 0.0075. We follow the docs (what
    # users read and what Azure's job pages show); 16 fits the GPUs Azure recommends (NCsv3, 16 GB).
    Hyperparameter(
        name="trainingBatchSize",
        sdk_name="training_batch_size",
        kind="int",
        description="Training mini-batch size per GPU.",
        ge=1,
        defaults=(
            _d(128, models=["vits16r224"]),
            _d(48, models=["vitb16r224"]),
            _d(10, models=_VITL),
            _d(16, models=YOLO_MODELS),
            _d(78, tasks=CLASSIFICATION),
            _d(2, tasks=DETECTION_LIKE),
        ),
    ),
    Hyperparameter(
        name="validationBatchSize",
        sdk_name="validation_batch_size",
        kind="int",
        description="Validation mini-batch size per GPU.",
        ge=1,
        defaults=(
            _d(128, models=["vits16r224"]),
            _d(48, models=["vitb16r224"]),
            _d(10, models=_VITL),
            _d(16, models=YOLO_MODELS),
            _d(78, tasks=CLASSIFICATION),
            _d(1, tasks=DETECTION_LIKE),
        ),
    ),
    Hyperparameter(
        name="gradientAccumulationStep",
        sdk_name="gradient_accumulation_step",
        rt_name="grad_accumulation_step",
        kind="int",
        description="Mini-batches whose gradients are accumulated before each optimizer step.",
        ge=1,
        defaults=(_d(1),),
    ),
    Hyperparameter(
        name="earlyStopping",
        sdk_name="early_stopping",
        kind="bool",
        description="Stop a trial when the primary metric stops improving.",
        defaults=(_d(True),),
    ),
    Hyperparameter(
        name="earlyStoppingPatience",
        sdk_name="early_stopping_patience",
        kind="int",
        description="Validations without improvement before early stopping.",
        ge=1,
        defaults=(_d(5),),
    ),
    Hyperparameter(
        name="earlyStoppingDelay",
        sdk_name="early_stopping_delay",
        kind="int",
        description="Epochs to wait before counting validations without improvement.",
        ge=1,
        defaults=(_d(5),),
    ),
    # The reference range is [0, 1]; we exclude 0, which would train nothing. yolov5: see trainingBatchSize.
    Hyperparameter(
        name="learningRate",
        sdk_name="learning_rate",
        kind="float",
        description="Initial learning rate.",
        gt=0,
        le=1,
        defaults=(
            _d(0.0125, tasks=MULTICLASS, models=_VITS_VITB),
            _d(0.001, tasks=MULTICLASS, models=_VITL),
            _d(0.025, tasks=MULTILABEL, models=_VITS_VITB),
            _d(0.002, tasks=MULTILABEL, models=_VITL),
            _d(0.01, models=YOLO_MODELS),
            _d(0.01, tasks=MULTICLASS),
            _d(0.035, tasks=MULTILABEL),
            _d(0.005, tasks=DETECTION_LIKE),
        ),
    ),
    Hyperparameter(
        name="learningRateScheduler",
        sdk_name="learning_rate_scheduler",
        rt_name="lr_scheduler",
        kind="enum",
        description="Learning-rate schedule.",
        choices=("warmup_cosine", "step"),
        defaults=(_d("warmup_cosine"),),
    ),
    Hyperparameter(
        name="stepLrGamma",
        sdk_name="step_lr_gamma",
        kind="float",
        description="Step schedule: factor applied to the learning rate every stepLrStepSize epochs.",
        ge=0,
        le=1,
        defaults=(_d(0.5),),
    ),
    Hyperparameter(
        name="stepLrStepSize",
        sdk_name="step_lr_step_size",
        kind="int",
        description="Step schedule: epochs between learning-rate decays.",
        ge=1,
        defaults=(_d(5),),
    ),
    Hyperparameter(
        name="warmupCosineLrCycles",
        sdk_name="warmup_cosine_lr_cycles",
        kind="float",
        description="Warmup-cosine schedule: cosine cycles.",
        ge=0,
        le=1,
        defaults=(_d(0.45),),
    ),
    # The reference says int > 0 but Azure's components accept 0 (no warmup); so do we.
    Hyperparameter(
        name="warmupCosineLrWarmupEpochs",
        sdk_name="warmup_cosine_lr_warmup_epochs",
        kind="int",
        description="Warmup-cosine schedule: warmup epochs.",
        ge=0,
        defaults=(_d(2),),
    ),
    Hyperparameter(
        name="optimizer",
        sdk_name="optimizer",
        kind="enum",
        description="Optimizer.",
        choices=("sgd", "adam", "adamw"),
        defaults=(_d("sgd"),),
    ),
    Hyperparameter(
        name="momentum",
        sdk_name="momentum",
        kind="float",
        description="SGD momentum.",
        ge=0,
        le=1,
        defaults=(_d(0.9),),
    ),
    Hyperparameter(
        name="weightDecay",
        sdk_name="weight_decay",
        kind="float",
        description="Weight decay (L2 penalty).",
        ge=0,
        le=1,
        defaults=(_d(0.0001),),
    ),
    Hyperparameter(
        name="nesterov",
        sdk_name="nesterov",
        kind="bool",
        description="SGD with Nesterov momentum.",
        defaults=(_d(True),),
    ),
    Hyperparameter(
        name="beta1",
        sdk_name="beta1",
        kind="float",
        description="Adam/AdamW first-moment decay.",
        ge=0,
        le=1,
        defaults=(_d(0.9),),
    ),
    Hyperparameter(
        name="beta2",
        sdk_name="beta2",
        kind="float",
        description="Adam/AdamW second-moment decay.",
        ge=0,
        le=1,
        defaults=(_d(0.999),),
    ),
    Hyperparameter(
        name="amsGradient",
        sdk_name="ams_gradient",
        rt_name="amsgrad",
        kind="bool",
        description="Adam/AdamW with the AMSGrad variant.",
        defaults=(_d(False),),
    ),
    Hyperparameter(
        name="evaluationFrequency",
        sdk_name="evaluation_frequency",
        kind="int",
        description="Epochs between validations (each validation reports the primary metric).",
        ge=1,
        defaults=(_d(1),),
    ),
    # ⚠ runtime yolo default 1; we keep "unset" (only the best epoch is kept) for every model.
    Hyperparameter(
        name="checkpointFrequency",
        sdk_name="checkpoint_frequency",
        kind="int",
        description="Also save a checkpoint every N epochs (unset: only the best epoch).",
        ge=1,
    ),
    Hyperparameter(
        name="checkpointRunId",
        sdk_name="checkpoint_run_id",
        kind="str",
        description=(
            "Azure-style incremental training: a previous trial whose model.pt to start from (prefer "
            "spec.checkpoint)."
        ),
        sweepable=False,
    ),
    # Unset means the model's own default: nothing frozen for classifiers, conv1+layer1 of the
    # ResNet backbone for R-CNN/RetinaNet (reference 3.1).
    Hyperparameter(
        name="layersToFreeze",
        sdk_name="layers_to_freeze",
        kind="int",
        description="Freeze the first N backbone layers (reference 3.2 lists them per model).",
        ge=0,
    ),
    Hyperparameter(
        name="numberOfWorkers",
        sdk_name="number_of_workers",
        kind="int",
        description="Data-loader worker processes.",
        ge=0,
        defaults=(_d(8, models=YOLO_MODELS), _d(8, tasks=CLASSIFICATION), _d(4, tasks=DETECTION_LIKE)),
    ),
    # ⚠ runtime: 47 when distributed and unset, yolo 1. We keep unset (nondeterministic) everywhere;
    # a user who wants reproducibility sets it.
    Hyperparameter(
        name="randomSeed",
        sdk_name="random_seed",
        rt_name="seed",
        kind="int",
        description="Seed for deterministic training (unset: nondeterministic).",
        ge=0,
    ),
    Hyperparameter(
        name="distributed",
        sdk_name="distributed",
        kind="bool",
        description="Data-parallel training over all GPUs of the trial (DDP).",
        defaults=(_d(True),),
    ),
    Hyperparameter(
        name="enableOnnxNormalization",
        sdk_name="enable_onnx_normalization",
        kind="bool",
        description="Bake ImageNet normalisation into the exported ONNX model.",
        defaults=(_d(False),),
    ),
    Hyperparameter(
        name="advancedSettings",
        sdk_name="advanced_settings",
        kind="settings",
        description="Advanced settings (reference 4.6): an object or Azure's JSON string.",
        defaults=(_d(ADVANCED_SETTINGS_DEFAULTS),),
        sweepable=False,
    ),
    Hyperparameter(
        name="pretrainedWeights",
        sdk_name=None,
        rt_name="pretrained_weights",
        kind="str",
        description=(
            "kubevision: local path or URI of pretrained weights (unset or unreachable: random init)."
        ),
        sweepable=False,
    ),
    # ---- 4.2 classification -------------------------------------------------------------------
    Hyperparameter(
        name="weightedLoss",
        sdk_name="weighted_loss",
        kind="int",
        description="0 plain loss, 1 sqrt(class weights), 2 class weights (applied when imbalance > 2).",
        tasks=CLASSIFICATION,
        ge=0,
        le=2,
        defaults=(_d(0),),
    ),
    Hyperparameter(
        name="validationResizeSize",
        sdk_name="validation_resize_size",
        rt_name="valid_resize_size",
        kind="int",
        description="Validation: resize to this size before the center crop.",
        tasks=CLASSIFICATION,
        ge=1,
        defaults=(_d(256),),
    ),
    Hyperparameter(
        name="validationCropSize",
        sdk_name="validation_crop_size",
        rt_name="valid_crop_size",
        kind="int",
        description="Validation: center-crop size fed to the model (ViT: must equal trainingCropSize).",
        tasks=CLASSIFICATION,
        ge=1,
        defaults=(_d(224),),
    ),
    Hyperparameter(
        name="trainingCropSize",
        sdk_name="training_crop_size",
        rt_name="train_crop_size",
        kind="int",
        description="Training: random-crop size fed to the model (ViT: must equal validationCropSize).",
        tasks=CLASSIFICATION,
        ge=1,
        defaults=(_d(224),),
    ),
    # ---- 4.3 object detection / instance segmentation -----------------------------------------
    Hyperparameter(
        name="validationMetricType",
        sdk_name="validation_metric_type",
        kind="enum",
        description="How mAP is computed: voc, coco, coco_voc or none.",
        tasks=DETECTION_LIKE,
        choices=("none", "coco", "voc", "coco_voc"),
        defaults=(_d("voc"),),
    ),
    Hyperparameter(
        name="validationIouThreshold",
        sdk_name="validation_iou_threshold",
        kind="float",
        description="IoU for a prediction to match a ground-truth box in validation metrics.",
        tasks=DETECTION_LIKE,
        ge=0.1,
        le=1,
        defaults=(_d(0.5),),
    ),
    Hyperparameter(
        name="minSize",
        sdk_name="min_size",
        kind="int",
        description="Resize so the shorter side is this long.",
        tasks=DETECTION_LIKE,
        excluded_models=YOLO_MODELS,
        ge=1,
        defaults=(_d(600),),
        model_note=_NOT_YOLO,
    ),
    Hyperparameter(
        name="maxSize",
        sdk_name="max_size",
        kind="int",
        description="Cap on the longer side after resizing.",
        tasks=DETECTION_LIKE,
        excluded_models=YOLO_MODELS,
        ge=1,
        defaults=(_d(1333),),
        model_note=_NOT_YOLO,
    ),
    Hyperparameter(
        name="boxScoreThreshold",
        sdk_name="box_score_threshold",
        rt_name="box_score_thresh",
        kind="float",
        description="Keep predictions scoring above this (inference and metrics).",
        tasks=DETECTION_LIKE,
        ge=0,
        le=1,
        defaults=(_d(0.1, models=YOLO_MODELS), _d(0.3)),
    ),
    Hyperparameter(
        name="nmsIouThreshold",
        sdk_name="nms_iou_threshold",
        rt_name="nms_iou_thresh",
        kind="float",
        description="IoU threshold of non-maximum suppression.",
        tasks=DETECTION_LIKE,
        ge=0,
        le=1,
        defaults=(_d(0.5),),
    ),
    Hyperparameter(
        name="boxDetectionsPerImage",
        sdk_name="box_detections_per_image",
        rt_name="box_detections_per_img",
        kind="int",
        description="Maximum detections per image, all classes.",
        tasks=DETECTION_LIKE,
        excluded_models=YOLO_MODELS,
        ge=1,
        defaults=(_d(100),),
        model_note="YOLOv5 does not cap detections per image",
    ),
    # ⚠ tiling and yolov5: SDK docstrings say no, the small-object doc says every OD model. We allow
    # it (the doc is the user-facing contract and the runtime's yolo defaults include tiling keys).
    Hyperparameter(
        name="tileGridSize",
        sdk_name="tile_grid_size",
        kind="tile_grid",
        description="Small-object tiling grid 'COLSxROWS', e.g. '3x2' (unset: no tiling).",
        tasks=DETECTION,
        task_note=_OD_ONLY,
    ),
    Hyperparameter(
        name="tileOverlapRatio",
        sdk_name="tile_overlap_ratio",
        kind="float",
        description="Overlap between neighbouring tiles.",
        tasks=DETECTION,
        ge=0,
        lt=1,
        defaults=(_d(0.25),),
        task_note=_OD_ONLY,
    ),
    Hyperparameter(
        name="tilePredictionsNmsThreshold",
        sdk_name="tile_predictions_nms_threshold",
        rt_name="tile_predictions_nms_thresh",
        kind="float",
        description="IoU threshold merging predictions of different tiles.",
        tasks=DETECTION,
        ge=0,
        le=1,
        defaults=(_d(0.25),),
        task_note=_OD_ONLY,
    ),
    Hyperparameter(
        name="logTrainingMetrics",
        sdk_name="log_training_metrics",
        kind="enum",
        description="Enable: also compute metrics on the training set.",
        tasks=DETECTION_LIKE,
        choices=("Enable", "Disable"),
        defaults=(_d("Disable"),),
    ),
    Hyperparameter(
        name="logValidationLoss",
        sdk_name="log_validation_loss",
        kind="enum",
        description="Enable: log the validation loss.",
        tasks=DETECTION_LIKE,
        choices=("Enable", "Disable"),
        defaults=(_d("Enable"),),
    ),
    # ---- 4.4 YOLOv5 ---------------------------------------------------------------------------
    Hyperparameter(
        name="imageSize",
        sdk_name="image_size",
        rt_name="img_size",
        kind="int",
        description="YOLOv5: square training/validation image size.",
        tasks=DETECTION,
        models=YOLO_MODELS,
        ge=1,
        defaults=(_d(640),),
        model_note=_YOLO_ONLY,
    ),
    Hyperparameter(
        name="modelSize",
        sdk_name="model_size",
        kind="enum",
        description="YOLOv5: model size (xlarge is accepted for extra_large).",
        tasks=DETECTION,
        models=YOLO_MODELS,
        choices=("small", "medium", "large", "extra_large"),
        defaults=(_d("medium"),),
        model_note=_YOLO_ONLY,
    ),
    Hyperparameter(
        name="multiScale",
        sdk_name="multi_scale",
        kind="bool",
        description="YOLOv5: vary the image size by +-50% during training.",
        tasks=DETECTION,
        models=YOLO_MODELS,
        defaults=(_d(False),),
        model_note=_YOLO_ONLY,
    ),
)

HYPERPARAMETERS: Mapping[str, Hyperparameter] = {hp.name: hp for hp in _TABLE}
"""camelCase name -> its specification, in reference order."""

SDK_TO_CAMEL: dict[str, str] = {hp.sdk_name: hp.name for hp in _TABLE if hp.sdk_name}
"""Azure SDK / CLI v2 `training_parameters` name -> our camelCase name."""

RT_NAME: dict[str, str] = {
    **{hp.sdk_name: hp.rt_name for hp in _TABLE if hp.sdk_name},
    **{hp.name: hp.rt_name for hp in _TABLE},
}
"""Runtime (settings.json) name, keyed by BOTH our camelCase name and the Azure SDK snake name."""

RT_TO_CAMEL: dict[str, str] = {hp.rt_name: hp.name for hp in _TABLE}
"""Runtime name -> our camelCase name (for reading Azure settings.json / component arguments)."""


def _check_model(task: Task, model_name: str) -> None:
    if model_name not in MODELS_BY_TASK[task]:
        raise KubevisionError(
            f"'{model_name}' is not a model for {task}; expected one of {', '.join(MODELS_BY_TASK[task])}"
        )


def default_hyperparameters(task: Task | str, model_name: str | None = None) -> dict[str, Any]:
    """Effective defaults for every hyperparameter that applies to `task` and `model_name`.

    Keys are camelCase; a value of None means "off / the model's own default" (tiling, extra
    checkpoints, seed, layer freezing, pretrained weights). `model_name` None means the task's
    default model.
    """
    task = Task(task)
    model = model_name or DEFAULT_MODEL[task]
    _check_model(task, model)
    out: dict[str, Any] = {}
    for hp in _TABLE:
        if hp.applies_to_task(task) and hp.applies_to_model(model):
            value = hp.default(task, model)
            out[hp.name] = dict(value) if isinstance(value, dict) else value
    out["modelName"] = model
    return out


def resolve_training_parameters(
    task: Task | str,
    params: TrainingParameters | None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The full hyperparameter set of one trial: defaults, then fixed `params`, then `overrides`.

    `overrides` are the values a sampler chose for this trial (camelCase keys); a sampled
    `modelName` changes the per-model defaults, so it is resolved first. Values that do not apply
    to the trial's model are dropped (a fixed `imageSize` in a sweep that also tries Faster R-CNN
    only reaches the YOLOv5 trials); the job validation has already checked that each applies to
    at least one model. Sampled values are normalised like fixed ones (integers rounded, '3X2' ->
    '3x2', 'SGD' -> 'sgd').
    """
    from kubevision.api.training_parameters import TrainingParameters

    task = Task(task)
    fixed = params.model_dump(by_alias=True, exclude_none=True) if params is not None else {}
    sampled: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        hp = HYPERPARAMETERS.get(key)
        if hp is not None and hp.kind == "int" and isinstance(value, float) and math.isfinite(value):
            value = round(value)
        sampled[key] = value
    if sampled:
        sampled = TrainingParameters.model_validate(sampled).model_dump(by_alias=True, exclude_none=True)
    model = sampled.get("modelName") or fixed.get("modelName") or DEFAULT_MODEL[task]
    out = default_hyperparameters(task, model)
    for layer in (fixed, sampled):
        for key, value in layer.items():
            if key not in out:
                continue
            if key == "advancedSettings":
                out[key] = {**out[key], **value}
            else:
                out[key] = value
    return out
