"""`spec.trainingParameters`: fixed hyperparameters applied to every trial.

Why every field is optional: None means "use the default for this task and model", and those
defaults depend on the model a trial ends up with (a ViT trains with batch 48, a ResNet with 78),
so they cannot be filled in here; `hyperparameters.resolve_training_parameters` does it per trial.
Bounds and descriptions come from the hyperparameter table, so the model, the search-space checks
and the CRD schema agree. Whether a parameter suits the job's task and model is a job-level rule
(`kubevision.api.rules`), because the task is not known inside this model.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from kubevision.api.base import KubeModel
from kubevision.api.hyperparameters import HYPERPARAMETERS, normalise_choice
from kubevision.api.values import parse_tile_grid_size

__all__ = ["AdvancedSettings", "TrainingParameters"]


def _hp(name: str) -> Any:
    """A pydantic Field for hyperparameter `name`: default None, bounds and description from the table."""
    hp = HYPERPARAMETERS[name]
    return Field(None, description=hp.description, ge=hp.ge, gt=hp.gt, le=hp.le, lt=hp.lt)


class AdvancedSettings(KubeModel):
    """`trainingParameters.advancedSettings` (reference 4.6); unset keys keep their defaults."""

    apply_automl_train_augmentations: bool | None = Field(
        None,
        description="false: no random crop/expand/flip (R-CNN, RetinaNet) or affine/flip (YOLOv5). "
        "Default true.",
    )
    apply_mosaic_for_yolo: bool | None = Field(None, description="false: no YOLOv5 mosaic. Default true.")
    stream_image_files: bool | None = Field(
        None, description="true: stream images from storage instead of downloading all first. Default false."
    )


class TrainingParameters(KubeModel):
    """Fixed hyperparameters (Azure SDK names in camelCase); unset ones take per-model defaults."""

    model_name: str | None = _hp("modelName")
    number_of_epochs: int | None = _hp("numberOfEpochs")
    training_batch_size: int | None = _hp("trainingBatchSize")
    validation_batch_size: int | None = _hp("validationBatchSize")
    gradient_accumulation_step: int | None = _hp("gradientAccumulationStep")
    early_stopping: bool | None = _hp("earlyStopping")
    early_stopping_patience: int | None = _hp("earlyStoppingPatience")
    early_stopping_delay: int | None = _hp("earlyStoppingDelay")
    learning_rate: float | None = _hp("learningRate")
    learning_rate_scheduler: Literal["warmup_cosine", "step"] | None = _hp("learningRateScheduler")
    step_lr_gamma: float | None = _hp("stepLrGamma")
    step_lr_step_size: int | None = _hp("stepLrStepSize")
    warmup_cosine_lr_cycles: float | None = _hp("warmupCosineLrCycles")
    warmup_cosine_lr_warmup_epochs: int | None = _hp("warmupCosineLrWarmupEpochs")
    optimizer: Literal["sgd", "adam", "adamw"] | None = _hp("optimizer")
    momentum: float | None = _hp("momentum")
    weight_decay: float | None = _hp("weightDecay")
    nesterov: bool | None = _hp("nesterov")
    beta1: float | None = _hp("beta1")
    beta2: float | None = _hp("beta2")
    ams_gradient: bool | None = _hp("amsGradient")
    evaluation_frequency: int | None = _hp("evaluationFrequency")
    checkpoint_frequency: int | None = _hp("checkpointFrequency")
    checkpoint_run_id: str | None = _hp("checkpointRunId")
    layers_to_freeze: int | None = _hp("layersToFreeze")
    number_of_workers: int | None = _hp("numberOfWorkers")
    random_seed: int | None = _hp("randomSeed")
    distributed: bool | None = _hp("distributed")
    enable_onnx_normalization: bool | None = _hp("enableOnnxNormalization")
    advanced_settings: AdvancedSettings | None = _hp("advancedSettings")
    pretrained_weights: str | None = _hp("pretrainedWeights")
    # classification
    weighted_loss: int | None = _hp("weightedLoss")
    validation_resize_size: int | None = _hp("validationResizeSize")
    validation_crop_size: int | None = _hp("validationCropSize")
    training_crop_size: int | None = _hp("trainingCropSize")
    # object detection / instance segmentation
    validation_metric_type: Literal["none", "coco", "voc", "coco_voc"] | None = _hp("validationMetricType")
    validation_iou_threshold: float | None = _hp("validationIouThreshold")
    min_size: int | None = _hp("minSize")
    max_size: int | None = _hp("maxSize")
    box_score_threshold: float | None = _hp("boxScoreThreshold")
    nms_iou_threshold: float | None = _hp("nmsIouThreshold")
    box_detections_per_image: int | None = _hp("boxDetectionsPerImage")
    tile_grid_size: str | None = _hp("tileGridSize")
    tile_overlap_ratio: float | None = _hp("tileOverlapRatio")
    tile_predictions_nms_threshold: float | None = _hp("tilePredictionsNmsThreshold")
    log_training_metrics: Literal["Enable", "Disable"] | None = _hp("logTrainingMetrics")
    log_validation_loss: Literal["Enable", "Disable"] | None = _hp("logValidationLoss")
    # YOLOv5
    image_size: int | None = _hp("imageSize")
    model_size: Literal["small", "medium", "large", "extra_large"] | None = _hp("modelSize")
    multi_scale: bool | None = _hp("multiScale")

    @field_validator(
        "learning_rate_scheduler",
        "optimizer",
        "validation_metric_type",
        "log_training_metrics",
        "log_validation_loss",
        "model_size",
        mode="before",
    )
    @classmethod
    def _canonical_choice(cls, value: Any, info: ValidationInfo) -> Any:
        """Azure's enums are case-insensitive and have aliases (xlarge); store the canonical spelling."""
        name = info.field_name or ""
        return normalise_choice(cls.model_fields[name].alias or name, value)

    @field_validator("tile_grid_size", mode="before")
    @classmethod
    def _tile_grid(cls, value: Any) -> Any:
        return None if value is None else parse_tile_grid_size(value)

    @field_validator("advanced_settings", mode="before")
    @classmethod
    def _advanced_settings_json(cls, value: Any) -> Any:
        """Azure writes advanced_settings as a JSON *string*; accept that as well as a mapping."""
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"is not valid JSON ({err.msg} at column {err.colno}); "
                    "write a mapping or a JSON object string"
                ) from err
        return value

    @field_validator("model_name", "checkpoint_run_id", "pretrained_weights")
    @classmethod
    def _non_empty(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("got an empty string; remove the key to use the default")
        return value
