"""The four tasks, their primary metrics and the model names each accepts.

Why a table and not scattered string checks: the trainer, the sweep code, the operator and the data
layer all ask "which models does this task take" and "which metric does it optimise"; one table keeps
them from drifting apart. Names follow Azure ML AutoML for images (reference sections 1.1 and 3.1).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CLASSIFICATION_MODELS",
    "DEFAULT_MODEL",
    "DETECTION_MODELS",
    "MODELS_BY_TASK",
    "PRIMARY_METRIC",
    "SEGMENTATION_MODELS",
    "Task",
    "is_classification",
    "is_detection_like",
]


class Task(StrEnum):
    """`spec.task`: one of four. A StrEnum, so it compares equal to its plain string."""

    IMAGE_CLASSIFICATION = "image_classification"
    IMAGE_CLASSIFICATION_MULTILABEL = "image_classification_multilabel"
    IMAGE_OBJECT_DETECTION = "image_object_detection"
    IMAGE_INSTANCE_SEGMENTATION = "image_instance_segmentation"


PRIMARY_METRIC: dict[Task, str] = {
    Task.IMAGE_CLASSIFICATION: "accuracy",
    Task.IMAGE_CLASSIFICATION_MULTILABEL: "iou",
    Task.IMAGE_OBJECT_DETECTION: "mean_average_precision",
    Task.IMAGE_INSTANCE_SEGMENTATION: "mean_average_precision",
}

CLASSIFICATION_MODELS: tuple[str, ...] = (
    "mobilenetv2",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnest50",
    "resnest101",
    "seresnext",
    "vits16r224",
    "vitb16r224",
    "vitl16r224",
)

DETECTION_MODELS: tuple[str, ...] = (
    "fasterrcnn_resnet18_fpn",
    "fasterrcnn_resnet34_fpn",
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet101_fpn",
    "fasterrcnn_resnet152_fpn",
    "retinanet_resnet50_fpn",
    "yolov5",
)

SEGMENTATION_MODELS: tuple[str, ...] = (
    "maskrcnn_resnet18_fpn",
    "maskrcnn_resnet34_fpn",
    "maskrcnn_resnet50_fpn",
    "maskrcnn_resnet101_fpn",
    "maskrcnn_resnet152_fpn",
)

MODELS_BY_TASK: dict[Task, tuple[str, ...]] = {
    Task.IMAGE_CLASSIFICATION: CLASSIFICATION_MODELS,
    Task.IMAGE_CLASSIFICATION_MULTILABEL: CLASSIFICATION_MODELS,
    Task.IMAGE_OBJECT_DETECTION: DETECTION_MODELS,
    Task.IMAGE_INSTANCE_SEGMENTATION: SEGMENTATION_MODELS,
}

# Reference 12.1 lists two candidates per task. Classification follows the how-to page (vitb16r224).
# Detection takes fasterrcnn_resnet50_fpn (the hyperparameter page) rather than yolov5, because the
# YOLOv5 backend is an optional, later part of kubevision (DESIGN.md) and a default must always run.
DEFAULT_MODEL: dict[Task, str] = {
    Task.IMAGE_CLASSIFICATION: "vitb16r224",
    Task.IMAGE_CLASSIFICATION_MULTILABEL: "vitb16r224",
    Task.IMAGE_OBJECT_DETECTION: "fasterrcnn_resnet50_fpn",
    Task.IMAGE_INSTANCE_SEGMENTATION: "maskrcnn_resnet50_fpn",
}


def is_classification(task: Task | str) -> bool:
    """Multi-class or multi-label classification."""
    return Task(task) in (Task.IMAGE_CLASSIFICATION, Task.IMAGE_CLASSIFICATION_MULTILABEL)


def is_detection_like(task: Task | str) -> bool:
    """Object detection or instance segmentation (boxes are involved)."""
    return not is_classification(task)
