"""`kubevision import-azure`: Azure ML CLI v2 AutoML image jobs become valid AutoMLImageJobs.

The fixtures in tests/fixtures/azure/ follow the shapes of the jobs Azure ships
(Azure/azureml-examples, cli-automl-image-*-task-fridge-items.yml): function-call strings and dict
distributions, limits at the top or nested under sweep, the multi-node property, advanced_settings as
a JSON string. Every successful import is checked by reloading the printed YAML with
`load_manifest`, the loader `kubevision validate` uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from kubevision.api import KubevisionError, load_manifest
from kubevision.api.azure_import import convert_azure_job, import_azure_job, to_yaml
from kubevision.api.models import AutoMLImageJob
from kubevision.cli import cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "azure"
GOOD = ["multiclass-fridge", "multilabel-fridge", "object-detection-fridge", "instance-segmentation-fridge"]


def _import(name: str) -> tuple[dict[str, Any], list[str]]:
    return import_azure_job(FIXTURES / f"{name}.yml")


def _reload(manifest: dict[str, Any], tmp_path: Path) -> AutoMLImageJob:
    """Print the manifest as `import-azure` does and load it back as `kubevision validate` does."""
    out = tmp_path / "job.yaml"
    out.write_text(to_yaml(manifest))
    job = load_manifest(out)
    assert isinstance(job, AutoMLImageJob)
    return job


def _minimal(**extra: Any) -> dict[str, Any]:
    """The smallest Azure image job Azure itself accepts, plus `extra` keys."""
    doc: dict[str, Any] = {
        "type": "automl",
        "task": "image_object_detection",
        "target_column_name": "label",
        "training_data": {"path": "data/training-mltable-folder", "type": "mltable"},
    }
    doc.update(extra)
    return doc


def _error(doc: Any, **kwargs: Any) -> KubevisionError:
    with pytest.raises(KubevisionError) as info:
        convert_azure_job(doc, source="azure-job.yml", **kwargs)
    return info.value


# ---- the four Azure sample jobs ----------------------------------------------------------------


@pytest.mark.parametrize("name", GOOD)
def test_sample_jobs_import_into_jobs_that_validate(name: str, tmp_path: Path) -> None:
    manifest, notes = _import(name)
    assert manifest["apiVersion"] == "kubevision.io/v1alpha1"
    assert manifest["kind"] == "AutoMLImageJob"
    job = _reload(manifest, tmp_path)
    assert job.spec.limits.max_trials == 10
    assert job.spec.limits.max_concurrent_trials == 2
    assert job.spec.limits.timeout_minutes == 60
    policy = job.spec.sweep.early_termination if job.spec.sweep else None
    assert policy is not None
    assert (policy.type, policy.evaluation_interval, policy.slack_factor, policy.delay_evaluation) == (
        "bandit", 2, 0.2, 6
    )
    assert job.spec.training_parameters.early_stopping is True
    # Azure-only settings are dropped with a reason, never silently.
    assert any(n.startswith("compute: 'azureml:gpu-cluster' dropped") for n in notes)
    assert any(n.startswith("log_verbosity:") for n in notes)


def test_multiclass_function_call_strings_and_nested_limits(tmp_path: Path) -> None:
    manifest, _ = _import("multiclass-fridge")
    spec = manifest["spec"]
    assert spec["task"] == "image_classification"
    assert spec["primaryMetric"] == "accuracy"
    assert spec["trainingData"] == {"path": "data/training-mltable-folder"}
    assert spec["validationData"] == {"path": "data/validation-mltable-folder"}
    # sweep.limits (older Azure layout) lands in spec.limits next to the top-level timeout
    assert spec["limits"] == {"timeoutMinutes": 60, "maxTrials": 10, "maxConcurrentTrials": 2}
    assert "limits" not in spec["sweep"]
    assert spec["searchSpace"] == [
        {
            "modelName": {"type": "choice", "values": ["vitb16r224", "vits16r224"]},
            "learningRate": {"type": "uniform", "minValue": 0.001, "maxValue": 0.01},
            "numberOfEpochs": {"type": "choice", "values": [15, 30]},
        },
        {
            "modelName": {"type": "choice", "values": ["seresnext", "resnet50"]},
            "learningRate": {"type": "uniform", "minValue": 0.001, "maxValue": 0.01},
            "layersToFreeze": {"type": "choice", "values": [0, 2]},
        },
    ]
    job = _reload(manifest, tmp_path)
    assert job.spec.mode == "sweep"


def test_metadata_from_name_experiment_description_and_tags() -> None:
    manifest, notes = _import("multiclass-fridge")
    metadata = manifest["metadata"]
    assert metadata["name"] == "fridge-items-multiclass-2024"
    assert any("'Fridge_Items_Multiclass_2024' became metadata.name" in n for n in notes)
    assert metadata["labels"] == {
        "kubevision.io/experiment": "dpv2-cli-automl-image-classification-experiment",
        "team": "vision",
    }
    # "baseline run" has a space: not a label value, so it becomes an annotation
    assert metadata["annotations"]["stage"] == "baseline run"
    assert metadata["annotations"]["kubevision.io/description"].startswith("A multi-class Image")


def test_multilabel_dict_distributions_and_advanced_settings_string(tmp_path: Path) -> None:
    manifest, _ = _import("multilabel-fridge")
    spec = manifest["spec"]
    assert spec["trainingParameters"]["advancedSettings"] == {
        "streamImageFiles": True,
        "applyAutomlTrainAugmentations": False,
    }
    first, second = spec["searchSpace"]
    assert first["gradientAccumulationStep"] == {"type": "choice", "values": [1, 2]}
    assert first["learningRate"] == {"type": "uniform", "minValue": 0.005, "maxValue": 0.05}
    assert second["validationResizeSize"] == {"type": "choice", "values": [288, 320, 352]}
    assert second["validationCropSize"] == {"type": "choice", "values": [224, 256]}
    assert second["trainingCropSize"] == {"type": "choice", "values": [224, 256]}
    job = _reload(manifest, tmp_path)
    settings = job.spec.training_parameters.advanced_settings
    assert settings is not None and settings.stream_image_files is True
    assert settings.apply_automl_train_augmentations is False


def test_azureml_asset_becomes_a_local_download_path_with_instructions() -> None:
    manifest, notes = _import("multilabel-fridge")
    # kubevision cannot resolve Azure assets (validate rejects azureml:), so the job points where
    # the download command in the note puts the data.
    assert manifest["spec"]["trainingData"] == {"path": "data/fridge-items-multilabel-train"}
    note = next(n for n in notes if n.startswith("training_data.path:"))
    assert "azureml:fridge-items-multilabel-train:1" in note
    assert "az ml data download --name fridge-items-multilabel-train --version 1" in note
    # an https URL stays a URI
    assert manifest["spec"]["validationData"] == {
        "uri": "https://example.blob.core.windows.net/data/validation-mltable-folder"
    }


@pytest.mark.parametrize(
    ("written", "expected", "noted"),
    [
        ("./data/training-mltable-folder", {"path": "./data/training-mltable-folder"}, False),
        ("file:///mnt/data/train.jsonl", {"path": "/mnt/data/train.jsonl"}, False),
        ("s3://bucket/train.jsonl", {"uri": "s3://bucket/train.jsonl"}, False),
        ("wasbs://data@acct.blob.core.windows.net/train",
         {"uri": "wasbs://data@acct.blob.core.windows.net/train"}, True),
        ("azureml://datastores/workspaceblobstore/paths/fridge/train-mltable/",
         {"path": "data/train-mltable"}, True),
        ("azureml:fridge@latest", {"path": "data/fridge"}, True),
    ],
    ids=["relative", "file-url", "s3", "wasbs", "azureml-datastore", "azureml-label"],
)
def test_data_locations(written: str, expected: dict[str, str], noted: bool) -> None:
    manifest, notes = convert_azure_job(_minimal(training_data={"path": written, "type": "mltable"}))
    assert manifest["spec"]["trainingData"] == expected
    assert any(n.startswith("training_data.path:") for n in notes) == noted


def test_tags_that_are_not_kubernetes_keys_are_kept_in_one_annotation() -> None:
    manifest, notes = convert_azure_job(_minimal(tags={"cost center": 42, "owner": "ml-team"}))
    metadata = manifest["metadata"]
    assert metadata["labels"] == {"owner": "ml-team"}
    assert metadata["annotations"] == {"kubevision.io/azure-tags": '{"cost center": "42"}'}
    assert any(n.startswith("tags: cost center:") for n in notes)


def test_object_detection_multinode_tiling_and_runtime_names(tmp_path: Path) -> None:
    manifest, notes = _import("object-detection-fridge")
    spec = manifest["spec"]
    assert spec["resources"] == {"nodeCountPerTrial": 2}
    assert isinstance(spec["resources"]["nodeCountPerTrial"], int)  # Azure writes the string "2"
    assert spec["trainingParameters"]["tileGridSize"] == "3x2"
    assert spec["trainingParameters"]["tileOverlapRatio"] == 0.25
    # box_score_thresh is the runtime spelling of box_score_threshold
    assert spec["trainingParameters"]["boxScoreThreshold"] == 0.3
    assert any(n.startswith("training_parameters.box_score_thresh:") for n in notes)
    # a bare value in a sub-space is a fixed choice
    yolo, rcnn = spec["searchSpace"]
    assert yolo["modelName"] == {"type": "choice", "values": ["yolov5"]}
    assert yolo["modelSize"] == {"type": "choice", "values": ["small", "medium"]}
    assert rcnn["optimizer"] == {"type": "choice", "values": ["sgd", "adam", "adamw"]}
    assert rcnn["minSize"] == {"type": "choice", "values": [600, 800]}
    assert spec["output"] == {"uri": "s3://models/fridge-od/best"}
    job = _reload(manifest, tmp_path)
    assert job.spec.resources.node_count_per_trial == 2
    assert job.spec.training_parameters.tile_grid_size == "3x2"


def test_instance_segmentation_search_space(tmp_path: Path) -> None:
    manifest, _ = _import("instance-segmentation-fridge")
    assert manifest["spec"]["task"] == "image_instance_segmentation"
    assert manifest["spec"]["searchSpace"] == [
        {
            "modelName": {"type": "choice", "values": ["maskrcnn_resnet50_fpn"]},
            "learningRate": {"type": "uniform", "minValue": 0.0001, "maxValue": 0.001},
            "optimizer": {"type": "choice", "values": ["sgd", "adam", "adamw"]},
            "minSize": {"type": "choice", "values": [600, 800]},
        }
    ]
    job = _reload(manifest, tmp_path)
    assert job.spec.primary_metric == "mean_average_precision"


# ---- individual conversions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("number_of_epochs", "choice(15, 30)", {"type": "choice", "values": [15, 30]}),
        ("number_of_epochs", "choice([1, 2])", {"type": "choice", "values": [1, 2]}),
        ("optimizer", "choice(values=['sgd', 'adam'])", {"type": "choice", "values": ["sgd", "adam"]}),
        ("optimizer", "choice(sgd, adam)", {"type": "choice", "values": ["sgd", "adam"]}),
        ("number_of_epochs", "choice(range(1, 4))", {"type": "choice", "values": [1, 2, 3]}),
        ("learning_rate", "uniform(0.001,0.01)", {"type": "uniform", "minValue": 0.001, "maxValue": 0.01}),
        ("learning_rate", "Uniform(min_value=0.001, max_value=0.01)",
         {"type": "uniform", "minValue": 0.001, "maxValue": 0.01}),
        ("learning_rate", "loguniform(-9.2, -4.6)",
         {"type": "loguniform", "minValue": -9.2, "maxValue": -4.6}),
        ("number_of_epochs", "quniform(2, 10, 2)",
         {"type": "quniform", "minValue": 2, "maxValue": 10, "q": 2}),
        ("momentum", "normal(0.5, 0.1)", {"type": "normal", "mu": 0.5, "sigma": 0.1}),
        ("number_of_workers", "randint(5)", {"type": "randint", "upper": 5}),
    ],
    ids=lambda v: v if isinstance(v, str) and "(" in v else "",
)
def test_function_call_strings_become_distributions(name: str, text: str, expected: dict[str, Any]) -> None:
    """Strings the Azure SDK writes (and its examples use) are parsed; literals only, never code."""
    doc = _minimal(task="image_classification", limits={"max_trials": 4},
                   search_space=[{"model_name": "resnet50", name: text}])
    manifest, _ = convert_azure_job(doc)
    camel = {"number_of_epochs": "numberOfEpochs", "learning_rate": "learningRate",
             "number_of_workers": "numberOfWorkers"}.get(name, name)
    assert manifest["spec"]["searchSpace"][0][camel] == expected


def test_function_call_string_with_unknown_distribution_is_an_error() -> None:
    doc = _minimal(limits={"max_trials": 4}, search_space=[{"learning_rate": "beta(1, 2)"}])
    err = _error(doc)
    assert err.problems[0].field == "search_space[0].learning_rate"
    assert "unknown distribution 'beta'" in err.problems[0].message


def test_rest_spellings_of_task_metric_and_sweep() -> None:
    """SDK-serialized jobs say ImageObjectDetection, MeanAveragePrecision, Random, BanditPolicy."""
    doc = _minimal(
        task="ImageObjectDetection",
        primary_metric="MeanAveragePrecision",
        limits={"max_trials": 4},
        sweep={"sampling_algorithm": "Random",
               "early_termination": {"type": "BanditPolicy", "slack_amount": 0.05}},
        search_space=[{"model_name": "choice('fasterrcnn_resnet50_fpn')",
                       "learning_rate": "uniform(0.001, 0.01)"}],
    )
    spec = convert_azure_job(doc)[0]["spec"]
    assert spec["task"] == "image_object_detection"
    assert spec["primaryMetric"] == "mean_average_precision"
    assert spec["sweep"] == {"samplingAlgorithm": "random",
                             "earlyTermination": {"type": "bandit", "slackAmount": 0.05}}


def test_truncation_selection_keys_become_camel_case() -> None:
    policy = {"type": "truncation_selection", "evaluation_interval": 1, "delay_evaluation": 5,
              "truncation_percentage": 20, "exclude_finished_jobs": True}
    doc = _minimal(limits={"max_trials": 4},
                   sweep={"sampling_algorithm": "random", "early_termination": policy},
                   search_space=[{"learning_rate": "uniform(0.001, 0.01)"}])
    spec = convert_azure_job(doc)[0]["spec"]
    assert spec["sweep"]["earlyTermination"] == {
        "type": "truncation_selection", "evaluationInterval": 1, "delayEvaluation": 5,
        "truncationPercentage": 20, "excludeFinishedJobs": True,
    }


def test_v1_split_ratio_becomes_validation_data_size() -> None:
    doc = _minimal(training_parameters={"split_ratio": 0.1, "img_size": 640, "model_name": "yolov5"})
    manifest, notes = convert_azure_job(doc)
    assert manifest["spec"]["validationDataSize"] == 0.1
    assert manifest["spec"]["trainingParameters"] == {"imageSize": 640, "modelName": "yolov5"}
    assert any(n.startswith("training_parameters.split_ratio:") for n in notes)
    assert any(n.startswith("training_parameters.img_size:") for n in notes)


def test_advanced_settings_may_already_be_a_mapping() -> None:
    doc = _minimal(training_parameters={"model_name": "yolov5",
                                        "advanced_settings": {"apply_mosaic_for_yolo": False}})
    params = convert_azure_job(doc)[0]["spec"]["trainingParameters"]
    assert params["advancedSettings"] == {"applyMosaicForYolo": False}


def test_unknown_and_azure_only_keys_are_noted_not_silently_dropped() -> None:
    doc = _minimal(
        queue_settings={"job_tier": "spot"},
        properties={"enable_automode": True, "custom_flag": "x"},
        resources={"instance_type": "Standard_NC24s_v3", "instance_count": 4},
        training_parameters={"checkpoint_run_id": "fridge_HD_3"},
    )
    manifest, notes = convert_azure_job(doc)
    for key in ("queue_settings", "properties.enable_automode", "properties.custom_flag",
                "resources.instance_type", "resources.instance_count",
                "training_parameters.checkpoint_run_id"):
        assert any(n.startswith(f"{key}:") for n in notes), key
    assert "resources" not in manifest["spec"]
    assert "trainingParameters" not in manifest["spec"]


def test_name_option_wins_and_file_stem_is_the_fallback(tmp_path: Path) -> None:
    azure = tmp_path / "My Azure Job.yml"
    azure.write_text(yaml.safe_dump(_minimal()))
    assert import_azure_job(azure)[0]["metadata"]["name"] == "my-azure-job"
    assert import_azure_job(azure, name="od-baseline")[0]["metadata"]["name"] == "od-baseline"


def test_to_yaml_orders_keys_for_reading() -> None:
    doc = _minimal(
        properties={"node_count_per_trial": "2"},
        search_space=[{"learning_rate": "uniform(0.001, 0.01)", "model_name": "fasterrcnn_resnet50_fpn"}],
        sweep={"sampling_algorithm": "random"},
        training_parameters={"number_of_epochs": 10},
        limits={"max_trials": 2},
    )
    manifest, _ = convert_azure_job(doc)
    loaded = yaml.safe_load(to_yaml(manifest))
    assert list(loaded) == ["apiVersion", "kind", "metadata", "spec"]
    assert list(loaded["spec"]) == ["task", "targetColumnName", "trainingData", "limits",
                                    "trainingParameters", "sweep", "searchSpace", "resources"]
    # modelName leads each sub-space, whatever order the Azure file used
    assert list(loaded["spec"]["searchSpace"][0]) == ["modelName", "learningRate"]
    assert "{" not in to_yaml(manifest)  # block style: no flow mappings


# ---- errors -------------------------------------------------------------------------------------


def test_malformed_advanced_settings_names_the_field_and_line() -> None:
    with pytest.raises(KubevisionError) as info:
        _import("bad-advanced-settings")
    (problem,) = info.value.problems
    assert problem.field == "training_parameters.advanced_settings"
    assert problem.line == 10
    assert problem.file is not None and problem.file.endswith("bad-advanced-settings.yml")
    assert "not valid JSON" in problem.message


def test_command_job_is_rejected() -> None:
    with pytest.raises(KubevisionError) as info:
        _import("command-job")
    (problem,) = info.value.problems
    assert (problem.field, problem.line) == ("type", 3)
    assert "'command' is not an AutoML job" in problem.message


def test_tabular_task_is_rejected_as_not_an_image_task() -> None:
    with pytest.raises(KubevisionError) as info:
        _import("tabular-task")
    (problem,) = info.value.problems
    assert problem.field == "task"
    assert "tabular" in problem.message and "image_classification" in problem.message


@pytest.mark.parametrize(
    ("doc", "field", "phrase"),
    [
        (_minimal(task=None), "task", "missing"),
        (_minimal(task="image_segmentation"), "task", "not an AutoML image task"),
        ({"task": "image_classification"}, "type", "missing"),
        ([1, 2], None, "expected a mapping"),
        (_minimal(search_space=[{"learning_rate": "uniform(0.1)"}]),
         "search_space[0].learning_rate", "needs max_value"),
        (_minimal(properties={"node_count_per_trial": "two"}),
         "properties.node_count_per_trial", "whole number"),
        (_minimal(training_parameters={"advanced_settings": "[1, 2]"}),
         "training_parameters.advanced_settings", "JSON object"),
    ],
    ids=["no-task", "unknown-task", "no-type", "not-a-mapping", "short-uniform", "node-count",
         "settings-list"],
)
def test_bad_documents_name_the_azure_field(doc: Any, field: str | None, phrase: str) -> None:
    err = _error(doc)
    assert any(p.field == field and phrase in p.message for p in err.problems), err


def test_result_kubevision_rejects_is_reported_against_the_azure_keys_and_lines(tmp_path: Path) -> None:
    azure = tmp_path / "azure-job.yml"
    azure.write_text(
        "type: automl\n"
        "task: image_object_detection\n"
        "target_column_name: label\n"
        "training_data: {path: data/train, type: mltable}\n"
        "limits:\n"
        "  max_trials: 5000\n"
        "training_parameters:\n"
        "  learning_rat: 0.1\n"
    )
    with pytest.raises(KubevisionError) as info:
        import_azure_job(azure)
    by_field = {p.field: p for p in info.value.problems}
    trials = by_field["limits.max_trials (kubevision spec.limits.maxTrials)"]
    assert trials.line == 6 and "1000" in trials.message
    typo = by_field["training_parameters.learning_rat (kubevision spec.trainingParameters.learningRat)"]
    assert typo.line == 8 and "learningRate" in typo.message


def test_unreadable_and_invalid_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(KubevisionError, match=r"cannot read .*missing\.yml"):
        import_azure_job(tmp_path / "missing.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text("type: automl\ntask: [image_classification\n")
    with pytest.raises(KubevisionError, match="not valid YAML") as info:
        import_azure_job(broken)
    assert info.value.problems[0].line == 3


# ---- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", GOOD)
def test_cli_prints_yaml_that_load_manifest_accepts(name: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["import-azure", str(FIXTURES / f"{name}.yml")])
    assert result.exit_code == 0, result.output
    assert "note: compute:" in result.stderr
    assert "note:" not in result.stdout
    out = tmp_path / "job.yaml"
    out.write_text(result.stdout)
    job = load_manifest(out)
    assert isinstance(job, AutoMLImageJob)
    assert job.metadata.name


def test_cli_reports_a_bad_file_without_a_traceback() -> None:
    result = CliRunner().invoke(cli, ["import-azure", str(FIXTURES / "bad-advanced-settings.yml")])
    assert result.exit_code == 1
    assert "training_parameters.advanced_settings" in result.stderr
    assert "Traceback" not in result.output
