"""The hyperparameter table: reference defaults, name mappings, and agreement with the model."""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

import annotated_types
import pytest
from pydantic.alias_generators import to_camel

from kubevision.api import KubevisionError
from kubevision.api.hyperparameters import (
    HYPERPARAMETERS,
    RT_NAME,
    RT_TO_CAMEL,
    SDK_TO_CAMEL,
    default_hyperparameters,
    resolve_training_parameters,
)
from kubevision.api.tasks import DEFAULT_MODEL, MODELS_BY_TASK, Task
from kubevision.api.training_parameters import TrainingParameters

MC = Task.IMAGE_CLASSIFICATION
ML = Task.IMAGE_CLASSIFICATION_MULTILABEL
OD = Task.IMAGE_OBJECT_DETECTION
IS = Task.IMAGE_INSTANCE_SEGMENTATION


# ---- reference 4.1-4.4 spot checks --------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "model", "key", "value"),
    [
        (MC, "resnet50", "trainingBatchSize", 78),
        (MC, "vits16r224", "trainingBatchSize", 128),
        (MC, "vitb16r224", "trainingBatchSize", 48),
        (MC, "vitl16r224", "trainingBatchSize", 10),
        (ML, "vitl16r224", "validationBatchSize", 10),
        (MC, "seresnext", "validationBatchSize", 78),
        (OD, "fasterrcnn_resnet50_fpn", "trainingBatchSize", 2),
        (OD, "fasterrcnn_resnet50_fpn", "validationBatchSize", 1),
        (IS, "maskrcnn_resnet50_fpn", "trainingBatchSize", 2),
        (OD, "yolov5", "trainingBatchSize", 16),
        (OD, "yolov5", "validationBatchSize", 16),
        (MC, "resnet18", "learningRate", 0.01),
        (MC, "vits16r224", "learningRate", 0.0125),
        (MC, "vitb16r224", "learningRate", 0.0125),
        (MC, "vitl16r224", "learningRate", 0.001),
        (ML, "mobilenetv2", "learningRate", 0.035),
        (ML, "vits16r224", "learningRate", 0.025),
        (ML, "vitb16r224", "learningRate", 0.025),
        (ML, "vitl16r224", "learningRate", 0.002),
        (OD, "retinanet_resnet50_fpn", "learningRate", 0.005),
        (IS, "maskrcnn_resnet101_fpn", "learningRate", 0.005),
        (OD, "yolov5", "learningRate", 0.01),
        (MC, "resnet50", "numberOfEpochs", 15),
        (OD, "yolov5", "numberOfEpochs", 30),
        (MC, "resnet50", "numberOfWorkers", 8),
        (OD, "fasterrcnn_resnet50_fpn", "numberOfWorkers", 4),
        (IS, "maskrcnn_resnet50_fpn", "numberOfWorkers", 4),
        (OD, "yolov5", "numberOfWorkers", 8),
        (OD, "fasterrcnn_resnet50_fpn", "boxScoreThreshold", 0.3),
        (OD, "yolov5", "boxScoreThreshold", 0.1),
        (OD, "yolov5", "imageSize", 640),
        (OD, "yolov5", "modelSize", "medium"),
        (OD, "fasterrcnn_resnet50_fpn", "minSize", 600),
        (OD, "fasterrcnn_resnet50_fpn", "maxSize", 1333),
        (IS, "maskrcnn_resnet50_fpn", "boxDetectionsPerImage", 100),
        (OD, "fasterrcnn_resnet50_fpn", "validationMetricType", "voc"),
        (OD, "fasterrcnn_resnet50_fpn", "tileOverlapRatio", 0.25),
        (OD, "fasterrcnn_resnet50_fpn", "tilePredictionsNmsThreshold", 0.25),
        (OD, "fasterrcnn_resnet50_fpn", "tileGridSize", None),
        (OD, "fasterrcnn_resnet50_fpn", "logTrainingMetrics", "Disable"),
        (OD, "fasterrcnn_resnet50_fpn", "logValidationLoss", "Enable"),
        (MC, "resnet50", "validationResizeSize", 256),
        (MC, "resnet50", "validationCropSize", 224),
        (MC, "resnet50", "trainingCropSize", 224),
        (MC, "resnet50", "weightedLoss", 0),
        (MC, "resnet50", "learningRateScheduler", "warmup_cosine"),
        (MC, "resnet50", "stepLrGamma", 0.5),
        (MC, "resnet50", "stepLrStepSize", 5),
        (MC, "resnet50", "warmupCosineLrCycles", 0.45),
        (MC, "resnet50", "warmupCosineLrWarmupEpochs", 2),
        (MC, "resnet50", "optimizer", "sgd"),
        (MC, "resnet50", "momentum", 0.9),
        (MC, "resnet50", "weightDecay", 1e-4),
        (MC, "resnet50", "nesterov", True),
        (MC, "resnet50", "beta1", 0.9),
        (MC, "resnet50", "beta2", 0.999),
        (MC, "resnet50", "amsGradient", False),
        (MC, "resnet50", "earlyStopping", True),
        (MC, "resnet50", "earlyStoppingPatience", 5),
        (MC, "resnet50", "earlyStoppingDelay", 5),
        (MC, "resnet50", "evaluationFrequency", 1),
        (MC, "resnet50", "gradientAccumulationStep", 1),
        (MC, "resnet50", "distributed", True),
        (MC, "resnet50", "enableOnnxNormalization", False),
        (MC, "resnet50", "checkpointFrequency", None),
        (MC, "resnet50", "randomSeed", None),
        (MC, "resnet50", "layersToFreeze", None),
    ],
)
def test_reference_defaults(task, model, key, value):
    assert default_hyperparameters(task, model)[key] == value


def test_advanced_settings_defaults():
    assert default_hyperparameters(OD, "yolov5")["advancedSettings"] == {
        "applyAutomlTrainAugmentations": True,
        "applyMosaicForYolo": True,
        "streamImageFiles": False,
    }


@pytest.mark.parametrize("task", list(Task))
def test_no_model_means_the_task_default(task):
    assert default_hyperparameters(task)["modelName"] == DEFAULT_MODEL[task]


def test_defaults_hold_only_what_applies():
    cls = default_hyperparameters(MC, "resnet50")
    assert "minSize" not in cls and "tileGridSize" not in cls and "trainingCropSize" in cls
    yolo = default_hyperparameters(OD, "yolov5")
    assert "minSize" not in yolo and "boxDetectionsPerImage" not in yolo and "imageSize" in yolo
    rcnn = default_hyperparameters(OD, "fasterrcnn_resnet50_fpn")
    assert "imageSize" not in rcnn and "minSize" in rcnn and "tileGridSize" in rcnn
    seg = default_hyperparameters(IS, "maskrcnn_resnet50_fpn")
    assert "tileGridSize" not in seg and "minSize" in seg


def test_every_model_of_every_task_has_a_complete_default_set():
    for task, models in MODELS_BY_TASK.items():
        for model in models:
            defaults = default_hyperparameters(task, model)
            for required in ("numberOfEpochs", "trainingBatchSize", "validationBatchSize", "learningRate"):
                assert isinstance(defaults[required], int | float), (task, model, required)


def test_a_model_of_another_task_has_no_defaults():
    with pytest.raises(KubevisionError, match="'yolov5' is not a model for image_classification"):
        default_hyperparameters(MC, "yolov5")


def test_defaults_are_copies_not_the_table():
    default_hyperparameters(OD)["advancedSettings"]["streamImageFiles"] = True
    assert default_hyperparameters(OD)["advancedSettings"]["streamImageFiles"] is False


# ---- name mappings ------------------------------------------------------------------------------


def test_camel_case_names_are_the_sdk_names_camel_cased():
    for name, hp in HYPERPARAMETERS.items():
        if hp.sdk_name is not None:
            assert to_camel(hp.sdk_name) == name


@pytest.mark.parametrize(
    ("sdk", "camel"),
    [
        ("learning_rate", "learningRate"),
        ("ams_gradient", "amsGradient"),
        ("step_lr_gamma", "stepLrGamma"),
        ("tile_grid_size", "tileGridSize"),
        ("advanced_settings", "advancedSettings"),
    ],
)
def test_sdk_to_camel(sdk, camel):
    assert SDK_TO_CAMEL[sdk] == camel


@pytest.mark.parametrize(
    ("name", "rt"),
    [
        ("amsGradient", "amsgrad"),
        ("ams_gradient", "amsgrad"),
        ("gradientAccumulationStep", "grad_accumulation_step"),
        ("learningRateScheduler", "lr_scheduler"),
        ("boxDetectionsPerImage", "box_detections_per_img"),
        ("boxScoreThreshold", "box_score_thresh"),
        ("nmsIouThreshold", "nms_iou_thresh"),
        ("tilePredictionsNmsThreshold", "tile_predictions_nms_thresh"),
        ("trainingCropSize", "train_crop_size"),
        ("validationCropSize", "valid_crop_size"),
        ("validationResizeSize", "valid_resize_size"),
        ("imageSize", "img_size"),
        ("random_seed", "seed"),
        ("learningRate", "learning_rate"),
    ],
)
def test_runtime_names(name, rt):
    assert RT_NAME[name] == rt


def test_runtime_names_map_back():
    assert RT_TO_CAMEL["img_size"] == "imageSize"
    assert all(RT_TO_CAMEL[hp.rt_name] == name for name, hp in HYPERPARAMETERS.items())


# ---- the table and TrainingParameters agree -----------------------------------------------------


def _field(alias: str) -> Any:
    return next(f for n, f in TrainingParameters.model_fields.items() if (f.alias or n) == alias)


def test_training_parameters_has_exactly_the_table():
    aliases = {f.alias or n for n, f in TrainingParameters.model_fields.items()}
    assert aliases == set(HYPERPARAMETERS)


@pytest.mark.parametrize("name", list(HYPERPARAMETERS))
def test_field_bounds_and_choices_match_the_table(name):
    hp = HYPERPARAMETERS[name]
    field = _field(name)
    bounds = {}
    for meta in field.metadata:
        for key in ("ge", "gt", "le", "lt"):
            if isinstance(meta, annotated_types.BaseMetadata) and hasattr(meta, key):
                bounds[key] = getattr(meta, key)
    assert bounds == {
        k: v for k, v in {"ge": hp.ge, "gt": hp.gt, "le": hp.le, "lt": hp.lt}.items() if v is not None
    }
    if hp.kind == "enum":
        literal = next(a for a in get_args(field.annotation) if get_origin(a) is Literal)
        assert set(get_args(literal)) == set(hp.choices)
    assert field.description == hp.description


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("numberOfEpochs", 10, 0),
        ("learningRate", 0.5, 0),
        ("tileOverlapRatio", 0, 1),
        ("modelSize", "xlarge", "xl"),
        ("validationIouThreshold", 0.1, 0.05),
        ("tileGridSize", "(2, 2)", "1x1"),
        ("multiScale", "on", "sometimes"),
    ],
)
def test_table_check_agrees_with_the_model(name, good, bad):
    hp = HYPERPARAMETERS[name]
    assert hp.check(good) is None
    assert hp.check(bad) is not None
    TrainingParameters.model_validate({name: good})
    with pytest.raises(ValueError):
        TrainingParameters.model_validate({name: bad})


# ---- resolving a trial's parameters -------------------------------------------------------------


def test_fixed_values_override_defaults():
    params = TrainingParameters.model_validate({"learningRate": 0.02, "modelName": "resnet50"})
    resolved = resolve_training_parameters(MC, params)
    assert resolved["learningRate"] == 0.02
    assert resolved["trainingBatchSize"] == 78
    assert resolved["modelName"] == "resnet50"


def test_no_params_means_defaults_of_the_default_model():
    assert resolve_training_parameters(ML, None) == default_hyperparameters(ML, "vitb16r224")


def test_a_sampled_model_brings_its_own_defaults():
    params = TrainingParameters.model_validate({"numberOfEpochs": 5})
    resolved = resolve_training_parameters(MC, params, {"modelName": "vitl16r224"})
    assert (resolved["modelName"], resolved["trainingBatchSize"], resolved["learningRate"]) == (
        "vitl16r224",
        10,
        0.001,
    )
    assert resolved["numberOfEpochs"] == 5


def test_sampled_values_override_fixed_ones_and_are_normalised():
    params = TrainingParameters.model_validate({"optimizer": "adam", "minSize": 800})
    resolved = resolve_training_parameters(
        OD,
        params,
        {
            "optimizer": "SGD",
            "numberOfEpochs": 19.6,
            "tileGridSize": "3X2",
            "modelName": "fasterrcnn_resnet50_fpn",
        },
    )
    assert (resolved["optimizer"], resolved["numberOfEpochs"], resolved["tileGridSize"]) == ("sgd", 20, "3x2")
    assert resolved["minSize"] == 800


def test_parameters_of_other_models_are_dropped():
    params = TrainingParameters.model_validate({"imageSize": 512, "minSize": 800})
    rcnn = resolve_training_parameters(OD, params, {"modelName": "fasterrcnn_resnet50_fpn"})
    yolo = resolve_training_parameters(OD, params, {"modelName": "yolov5"})
    assert "imageSize" not in rcnn and rcnn["minSize"] == 800
    assert "minSize" not in yolo and yolo["imageSize"] == 512


def test_advanced_settings_merge_with_defaults():
    params = TrainingParameters.model_validate({"advancedSettings": '{"stream_image_files": true}'})
    assert resolve_training_parameters(OD, params)["advancedSettings"] == {
        "applyAutomlTrainAugmentations": True,
        "applyMosaicForYolo": True,
        "streamImageFiles": True,
    }
