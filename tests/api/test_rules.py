"""Each cross-field rule of an AutoMLImageJob: one passing and one failing case (at least)."""

from __future__ import annotations

from typing import Any

import pytest

from kubevision.api.models import AutoMLImageJob

SWEEP = {"limits": {"maxTrials": 4}}


def choice(*values: Any) -> dict[str, Any]:
    return {"type": "choice", "values": list(values)}


def uniform(low: float, high: float) -> dict[str, Any]:
    return {"type": "uniform", "minValue": low, "maxValue": high}


# ---- primary metric -----------------------------------------------------------------------------


def test_primary_metric_of_another_task_is_an_error(job, problems):
    assert problems(job("image_classification", primaryMetric="iou")) == {
        "spec.primaryMetric": "got 'iou'; image_classification supports only 'accuracy'"
    }


@pytest.mark.parametrize(
    ("task", "metric"),
    [("image_classification", "accuracy"), ("image_object_detection", "mean_average_precision")],
)
def test_primary_metric_of_the_task_is_accepted(job, parse_job, task, metric):
    assert parse_job(job(task, primaryMetric=metric)).spec.effective_primary_metric == metric


# ---- model valid for the task -------------------------------------------------------------------


def test_fixed_model_of_another_task_is_an_error(job, problems):
    found = problems(job("image_classification", trainingParameters={"modelName": "fasterrcnn_resnet50_fpn"}))
    assert found == {
        "spec.trainingParameters.modelName": (
            "'fasterrcnn_resnet50_fpn' is not a model for image_classification (it is a model for "
            "image_object_detection); expected one of mobilenetv2, resnet18, resnet34, resnet50, resnet101, "
            "resnet152, resnest50, resnest101, seresnext, vits16r224, vitb16r224, vitl16r224"
        )
    }


def test_misspelt_model_gets_a_suggestion(job, problems):
    found = problems(job("image_object_detection", trainingParameters={"modelName": "yolov4"}))
    assert found["spec.trainingParameters.modelName"].endswith("did you mean 'yolov5'?")


def test_fixed_model_of_the_task_is_accepted(job, parse_job):
    parsed = parse_job(
        job("image_instance_segmentation", trainingParameters={"modelName": "maskrcnn_resnet18_fpn"})
    )
    assert parsed.spec.training_parameters.model_name == "maskrcnn_resnet18_fpn"


def test_search_space_model_of_another_task_is_an_error(job, problems):
    found = problems(
        job(
            "image_classification",
            **SWEEP,
            searchSpace=[{"modelName": choice("resnet50", "maskrcnn_resnet50_fpn")}],
        )
    )
    assert list(found) == ["spec.searchSpace[0].modelName.values[1]"]
    assert found["spec.searchSpace[0].modelName.values[1]"].startswith(
        "'maskrcnn_resnet50_fpn' is not a model for image_classification"
    )


def test_model_name_can_only_be_swept_with_choice(job, problems):
    found = problems(job(**SWEEP, searchSpace=[{"modelName": {"type": "randint", "upper": 3}}]))
    assert found == {
        "spec.searchSpace[0].modelName.type": "got 'randint'; modelName can only be swept with choice"
    }


# ---- hyperparameter valid for the task ----------------------------------------------------------


def test_detection_parameter_in_a_classification_job_names_its_tasks(job, problems):
    found = problems(job("image_classification", trainingParameters={"minSize": 600}))
    assert found == {
        "spec.trainingParameters.minSize": (
            "minSize does not apply to image_classification; it applies to image_object_detection, "
            "image_instance_segmentation"
        )
    }


def test_classification_parameter_in_a_detection_job(job, problems):
    found = problems(job("image_object_detection", **SWEEP, searchSpace=[{"weightedLoss": choice(0, 1)}]))
    assert found == {
        "spec.searchSpace[0].weightedLoss": (
            "weightedLoss does not apply to image_object_detection; it applies to image_classification, "
            "image_classification_multilabel"
        )
    }


def test_parameters_of_the_task_are_accepted(job, parse_job):
    parse_job(
        job("image_instance_segmentation", trainingParameters={"minSize": 800, "boxScoreThreshold": 0.4})
    )
    parse_job(job("image_classification_multilabel", trainingParameters={"weightedLoss": 2}))


# ---- YOLOv5-only and not-YOLOv5 parameters ------------------------------------------------------


def test_yolo_parameter_with_a_fixed_faster_rcnn_is_an_error(job, problems):
    found = problems(
        job(
            "image_object_detection",
            trainingParameters={"modelName": "fasterrcnn_resnet50_fpn", "imageSize": 640},
        )
    )
    assert found == {
        "spec.trainingParameters.imageSize": (
            "imageSize applies only to yolov5 (it configures the YOLOv5 backend), but this job's trials use "
            "fasterrcnn_resnet50_fpn"
        )
    }


def test_yolo_parameter_with_the_default_model_is_an_error(job, problems):
    found = problems(job("image_object_detection", trainingParameters={"modelSize": "small"}))
    assert (
        "this job's trials (no modelName: the task's default) use fasterrcnn_resnet50_fpn"
        in found["spec.trainingParameters.modelSize"]
    )


def test_yolo_parameter_with_yolov5_is_accepted(job, parse_job):
    parse_job(
        job(
            "image_object_detection",
            trainingParameters={"modelName": "yolov5", "imageSize": 512, "multiScale": True},
        )
    )


def test_yolo_parameter_is_not_a_segmentation_parameter(job, problems):
    found = problems(job("image_instance_segmentation", trainingParameters={"imageSize": 640}))
    assert found["spec.trainingParameters.imageSize"] == (
        "imageSize does not apply to image_instance_segmentation; "
        "it applies to image_object_detection with yolov5"
    )


def test_non_yolo_parameter_with_yolov5_is_an_error(job, problems):
    found = problems(
        job("image_object_detection", trainingParameters={"modelName": "yolov5", "minSize": 600})
    )
    assert found == {
        "spec.trainingParameters.minSize": (
            "minSize applies to every model but yolov5 (YOLOv5 resizes with imageSize instead), "
            "but this job's trials use yolov5"
        )
    }


def test_yolo_parameter_in_a_sub_space_of_other_models_is_an_error(job, problems):
    found = problems(
        job(
            "image_object_detection",
            **SWEEP,
            searchSpace=[
                {"modelName": choice("yolov5"), "modelSize": choice("small", "large")},
                {
                    "modelName": choice("fasterrcnn_resnet50_fpn", "retinanet_resnet50_fpn"),
                    "imageSize": choice(640),
                },
            ],
        )
    )
    assert list(found) == ["spec.searchSpace[1].imageSize"]
    assert found["spec.searchSpace[1].imageSize"].endswith(
        "but the trials of this sub-space use fasterrcnn_resnet50_fpn, retinanet_resnet50_fpn"
    )


def test_fixed_yolo_parameter_is_accepted_when_some_sub_space_uses_yolov5(job, parse_job):
    parse_job(
        job(
            "image_object_detection",
            **SWEEP,
            trainingParameters={"imageSize": 640},
            searchSpace=[
                {"modelName": choice("yolov5")},
                {"modelName": choice("fasterrcnn_resnet50_fpn")},
            ],
        )
    )


def test_fixed_yolo_parameter_is_an_error_when_no_sub_space_uses_yolov5(job, problems):
    found = problems(
        job(
            "image_object_detection",
            **SWEEP,
            trainingParameters={"imageSize": 640},
            searchSpace=[{"modelName": choice("fasterrcnn_resnet50_fpn", "retinanet_resnet50_fpn")}],
        )
    )
    assert list(found) == ["spec.trainingParameters.imageSize"]


def test_automode_does_not_judge_model_specific_parameters(job, parse_job):
    # AutoMode picks the models, so a YOLOv5 parameter may well be used.
    parse_job(job("image_object_detection", limits={"maxTrials": 10}, trainingParameters={"imageSize": 640}))


# ---- tiling -------------------------------------------------------------------------------------


def test_tiling_in_object_detection_is_accepted(job, parse_job):
    parse_job(
        job("image_object_detection", trainingParameters={"tileGridSize": "3x2", "tileOverlapRatio": 0.3})
    )


@pytest.mark.parametrize("task", ["image_instance_segmentation", "image_classification"])
def test_tiling_outside_object_detection_is_an_error(job, problems, task):
    found = problems(job(task, trainingParameters={"tileGridSize": "3x2"}))
    assert found["spec.trainingParameters.tileGridSize"].startswith(
        f"tileGridSize does not apply to {task}; it applies to image_object_detection"
    )


def test_swept_tile_grid_values_are_checked(job, problems):
    found = problems(
        job("image_object_detection", **SWEEP, searchSpace=[{"tileGridSize": choice("2x1", "3X2", "1x1")}])
    )
    assert list(found) == ["spec.searchSpace[0].tileGridSize.values[2]"]


def test_tile_overlap_ratio_excludes_one(job, problems):
    assert problems(job("image_object_detection", trainingParameters={"tileOverlapRatio": 1})) == {
        "spec.trainingParameters.tileOverlapRatio": "got 1; expected a number >= 0 and < 1"
    }


# ---- ViT crop sizes -----------------------------------------------------------------------------


def test_vit_with_different_fixed_crop_sizes_is_an_error(job, problems):
    found = problems(job(trainingParameters={"modelName": "vits16r224", "trainingCropSize": 256}))
    assert found == {
        "spec.trainingParameters.trainingCropSize": (
            "vits16r224 needs validationCropSize == trainingCropSize, but validationCropSize can be 224 and "
            "trainingCropSize 256"
        )
    }


def test_the_default_classification_model_is_a_vit(job, problems):
    found = problems(job(trainingParameters={"validationCropSize": 288}))
    assert (
        "vitb16r224 needs validationCropSize == trainingCropSize"
        in found["spec.trainingParameters.validationCropSize"]
    )


def test_vit_with_equal_crop_sizes_is_accepted(job, parse_job):
    parse_job(
        job(
            trainingParameters={"modelName": "vitl16r224", "trainingCropSize": 288, "validationCropSize": 288}
        )
    )


def test_other_models_may_have_different_crop_sizes(job, parse_job):
    parse_job(job(trainingParameters={"modelName": "seresnext", "trainingCropSize": 256}))


def test_vit_sub_space_choosing_crop_sizes_independently_is_an_error(job, problems):
    found = problems(
        job(
            "image_classification_multilabel",
            **SWEEP,
            searchSpace=[
                {
                    "modelName": choice("seresnext"),
                    "trainingCropSize": choice(224, 256),
                    "validationCropSize": choice(224, 256),
                },
                {
                    "modelName": choice("vitb16r224"),
                    "trainingCropSize": choice(224, 256),
                    "validationCropSize": choice(224, 256),
                },
            ],
        )
    )
    assert list(found) == ["spec.searchSpace[1].validationCropSize"]


def test_vit_sub_space_with_one_equal_choice_is_accepted(job, parse_job):
    parse_job(
        job(
            **SWEEP,
            searchSpace=[
                {
                    "modelName": choice("vitb16r224"),
                    "trainingCropSize": choice(256),
                    "validationCropSize": choice(256),
                },
            ],
        )
    )


def test_vit_sub_space_with_a_continuous_crop_size_is_an_error(job, problems):
    found = problems(
        job(
            **SWEEP,
            searchSpace=[
                {
                    "modelName": choice("vits16r224"),
                    "trainingCropSize": {"type": "quniform", "minValue": 224, "maxValue": 320, "q": 32},
                },
            ],
        )
    )
    assert "which a continuous distribution cannot guarantee" in found["spec.searchSpace[0].trainingCropSize"]


# ---- modes: sweep needs a search space, a search space needs trials -----------------------------


def test_sweep_without_search_space_is_an_error(job, problems):
    found = problems(job(limits={"maxTrials": 5}, sweep={"samplingAlgorithm": "random"}))
    assert found == {
        "spec.sweep": (
            "a sweep needs a searchSpace; remove sweep to run AutoMode (limits.maxTrials > 1) "
            "or a single trial"
        )
    }


def test_search_space_with_one_trial_points_at_max_trials(job, problems):
    found = problems(job(limits={"maxTrials": 1}, searchSpace=[{"learningRate": uniform(0.001, 0.01)}]))
    assert found == {
        "spec.limits.maxTrials": "a searchSpace is swept over several trials; set limits.maxTrials "
        "above 1 (got 1)"
    }


def test_search_space_with_default_trials_points_at_the_search_space(job, problems):
    found = problems(job(searchSpace=[{"learningRate": uniform(0.001, 0.01)}]))
    assert list(found) == ["spec.searchSpace"]


def test_search_space_with_several_trials_is_accepted(job, parse_job):
    assert parse_job(job(**SWEEP, searchSpace=[{"learningRate": uniform(0.001, 0.01)}])).spec.mode == "sweep"


# ---- sampling algorithms ------------------------------------------------------------------------


def test_grid_takes_only_choice(job, problems):
    found = problems(
        job(
            **SWEEP,
            sweep={"samplingAlgorithm": "grid"},
            searchSpace=[{"learningRate": uniform(0.001, 0.01), "optimizer": choice("sgd", "adam")}],
        )
    )
    assert found == {
        "spec.searchSpace[0].learningRate.type": "got 'uniform'; grid sampling takes only choice "
        "distributions"
    }


def test_grid_with_choices_and_several_sub_spaces_is_accepted(job, parse_job):
    parse_job(
        job(
            **SWEEP,
            sweep={"samplingAlgorithm": "grid", "earlyTermination": {"type": "median_stopping"}},
            searchSpace=[{"modelName": choice("resnet50")}, {"modelName": choice("vitb16r224")}],
        )
    )


@pytest.mark.parametrize(
    "dist",
    [
        {"type": "loguniform", "minValue": -9, "maxValue": -4},
        {"type": "normal", "mu": 0.01, "sigma": 0.001},
        {"type": "randint", "upper": 2},
    ],
)
def test_bayesian_rejects_other_distributions(job, problems, dist):
    found = problems(
        job(**SWEEP, sweep={"samplingAlgorithm": "bayesian"}, searchSpace=[{"learningRate": dist}])
    )
    assert found["spec.searchSpace[0].learningRate.type"] == (
        f"got '{dist['type']}'; bayesian sampling takes only choice, uniform and quniform distributions"
    )


def test_bayesian_accepts_choice_uniform_and_quniform(job, parse_job):
    parse_job(
        job(
            **SWEEP,
            sweep={"samplingAlgorithm": "bayesian"},
            searchSpace=[
                {
                    "learningRate": uniform(0.001, 0.01),
                    "numberOfEpochs": {"type": "quniform", "minValue": 10, "maxValue": 30, "q": 5},
                    "optimizer": choice("sgd", "adam"),
                }
            ],
        )
    )


def test_bayesian_rejects_several_sub_spaces(job, problems):
    found = problems(
        job(
            **SWEEP,
            sweep={"samplingAlgorithm": "bayesian"},
            searchSpace=[{"modelName": choice("resnet50")}, {"modelName": choice("vitb16r224")}],
        )
    )
    assert found == {
        "spec.searchSpace[1]": "bayesian sampling takes one sub-space, got 2; conditional search "
        "spaces need random or grid sampling"
    }


def test_bayesian_rejects_early_termination(job, problems):
    found = problems(
        job(
            **SWEEP,
            sweep={
                "samplingAlgorithm": "bayesian",
                "earlyTermination": {"type": "bandit", "slackFactor": 0.1},
            },
            searchSpace=[{"learningRate": uniform(0.001, 0.01)}],
        )
    )
    assert list(found) == ["spec.sweep.earlyTermination"]
    assert found["spec.sweep.earlyTermination"].startswith(
        "bayesian sampling does not support early termination"
    )


# ---- checkpoint sources -------------------------------------------------------------------------


def test_checkpoint_and_checkpoint_run_id_together_are_an_error(job, problems):
    found = problems(job(checkpoint={"fromJob": "earlier"}, trainingParameters={"checkpointRunId": "run-1"}))
    assert found == {
        "spec.trainingParameters.checkpointRunId": "give spec.checkpoint or "
        "trainingParameters.checkpointRunId, not both"
    }


def test_checkpoint_run_id_alone_is_accepted(job, parse_job):
    parse_job(job(trainingParameters={"checkpointRunId": "run-1"}))


# ---- all violations at once, and direct pydantic use --------------------------------------------


def test_every_violation_is_reported_not_only_the_first(job, problems):
    found = problems(
        job(
            "image_classification",
            primaryMetric="iou",
            sweep={"samplingAlgorithm": "grid"},
            trainingParameters={"minSize": 600, "tileGridSize": "3x2"},
        )
    )
    assert set(found) == {
        "spec.primaryMetric",
        "spec.sweep",
        "spec.trainingParameters.minSize",
        "spec.trainingParameters.tileGridSize",
    }


def test_model_validate_raises_a_readable_pydantic_error(job):
    with pytest.raises(ValueError, match=r"trainingParameters\.minSize: minSize does not apply"):
        AutoMLImageJob.model_validate(job(trainingParameters={"minSize": 600}))


def test_an_invalid_fixed_model_is_reported_once(job, problems):
    # No follow-up "imageSize applies only to yolov5" against a model the user never chose.
    found = problems(
        job("image_object_detection", trainingParameters={"modelName": "yolo", "imageSize": 640})
    )
    assert list(found) == ["spec.trainingParameters.modelName"]
