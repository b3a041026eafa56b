"""AutoMLImageJob: valid jobs for every task and mode, defaults, and the single-model rules."""

from __future__ import annotations

from typing import Any

import pytest

from kubevision.api.models import AutoMLImageJob
from kubevision.api.tasks import DEFAULT_MODEL, MODELS_BY_TASK, PRIMARY_METRIC, Task

ALL_TASKS = [t.value for t in Task]


@pytest.mark.parametrize("task", ALL_TASKS)
def test_minimal_job_of_every_task_parses_with_defaults(job, parse_job, task):
    parsed = parse_job(job(task))
    spec = parsed.spec
    assert spec.task == Task(task)
    assert spec.mode == "single"
    assert spec.effective_primary_metric == PRIMARY_METRIC[Task(task)]
    assert spec.validation_data_size == 0.2
    assert spec.target_column_name == "label"
    assert (spec.limits.max_trials, spec.limits.max_concurrent_trials, spec.limits.timeout_minutes) == (
        1,
        1,
        10080,
    )
    assert (spec.resources.node_count_per_trial, spec.resources.gpus_per_node) == (1, 1)
    assert spec.training_parameters.model_name is None
    assert spec.effective_sweep is None
    assert parsed.status is None


@pytest.mark.parametrize("task", ALL_TASKS)
@pytest.mark.parametrize("algorithm", ["random", "grid", "bayesian"])
def test_manual_sweep_of_every_task_and_algorithm_parses(job, parse_job, task, algorithm):
    models = list(MODELS_BY_TASK[Task(task)][:2])
    parsed = parse_job(
        job(
            task,
            limits={"maxTrials": 4, "maxConcurrentTrials": 2},
            sweep={"samplingAlgorithm": algorithm},
            searchSpace=[
                {
                    "modelName": {"type": "choice", "values": models},
                    "learningRate": {"type": "choice", "values": [0.001, 0.01]},
                    "optimizer": {"type": "choice", "values": ["sgd", "adam"]},
                }
            ],
        )
    )
    assert parsed.spec.mode == "sweep"
    assert parsed.spec.effective_sweep is not None
    assert parsed.spec.effective_sweep.sampling_algorithm == algorithm


@pytest.mark.parametrize("task", ALL_TASKS)
def test_automode_of_every_task(job, parse_job, task):
    parsed = parse_job(job(task, limits={"maxTrials": 10}))
    assert parsed.spec.is_automode
    assert parsed.spec.mode == "automode"


def test_more_trials_with_a_search_space_is_not_automode(job, parse_job):
    parsed = parse_job(
        job(
            limits={"maxTrials": 10},
            searchSpace=[{"learningRate": {"type": "uniform", "minValue": 0.001, "maxValue": 0.01}}],
        )
    )
    assert not parsed.spec.is_automode
    assert parsed.spec.mode == "sweep"


def test_search_space_without_sweep_samples_at_random(job, parse_job):
    parsed = parse_job(
        job(limits={"maxTrials": 3}, searchSpace=[{"numberOfEpochs": {"type": "choice", "values": [10, 20]}}])
    )
    assert parsed.spec.sweep is None
    assert parsed.spec.effective_sweep is not None
    assert parsed.spec.effective_sweep.sampling_algorithm == "random"
    assert parsed.spec.effective_sweep.early_termination is None


@pytest.mark.parametrize("written", ["Random", "GRID", "Bayesian"])
def test_sampling_algorithm_is_case_insensitive_and_stored_lowercase(job, parse_job, written):
    parsed = parse_job(
        job(
            limits={"maxTrials": 3},
            sweep={"samplingAlgorithm": written},
            searchSpace=[{"numberOfEpochs": {"type": "choice", "values": [10, 20]}}],
        )
    )
    assert parsed.spec.sweep is not None
    assert parsed.spec.sweep.sampling_algorithm == written.lower()


def test_unknown_sampling_algorithm_lists_the_allowed_ones(job, problems):
    found = problems(
        job(
            limits={"maxTrials": 3},
            sweep={"samplingAlgorithm": "sobol"},
            searchSpace=[{"numberOfEpochs": {"type": "choice", "values": [10, 20]}}],
        )
    )
    assert found == {"spec.sweep.samplingAlgorithm": "got 'sobol'; expected one of random, grid, bayesian"}


def test_primary_metric_matching_the_task_is_accepted(job, parse_job):
    assert parse_job(job("image_classification_multilabel", primaryMetric="iou")).spec.primary_metric == "iou"


def test_unknown_task_lists_the_tasks_and_suggests_one(job, problems):
    found = problems(job("image_segmentation"))
    assert found["spec.task"].startswith("got 'image_segmentation'; expected one of image_classification,")
    assert found["spec.task"].endswith("did you mean 'image_instance_segmentation'?")


@pytest.mark.parametrize("missing", ["task", "trainingData"])
def test_required_spec_fields(job, problems, missing):
    obj = job()
    del obj["spec"][missing]
    found = problems(obj)
    assert list(found) == [f"spec.{missing}"]
    assert found[f"spec.{missing}"].startswith(f"required field '{missing}' is missing")


# ---- limits -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("trials", "concurrent", "effective"), [(2, 4, 2), (10, 3, 3), (1, 100, 1)])
def test_max_concurrent_trials_is_capped_at_max_trials(job, parse_job, trials, concurrent, effective):
    limits = parse_job(job(limits={"maxTrials": trials, "maxConcurrentTrials": concurrent})).spec.limits
    assert limits.max_concurrent_trials == concurrent  # what the user wrote is kept
    assert limits.effective_max_concurrent_trials == effective


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("maxTrials", 0, "got 0; expected an integer from 1 to 1000"),
        ("maxTrials", 1001, "got 1001; expected an integer from 1 to 1000"),
        ("maxConcurrentTrials", 101, "got 101; expected an integer from 1 to 100"),
        ("timeoutMinutes", 86401, "got 86401; expected an integer from 1 to 86400"),
        ("trialTimeoutMinutes", 0, "got 0; expected an integer from 1 to 86400"),
        ("maxTrials", "ten", "got 'ten'; expected an integer from 1 to 1000"),
    ],
)
def test_limit_ranges(job, problems, key, value, message):
    assert problems(job(limits={key: value})) == {f"spec.limits.{key}": message}


# ---- data ---------------------------------------------------------------------------------------


def test_data_input_takes_a_path_or_a_uri(job, parse_job):
    parsed = parse_job(
        job(
            trainingData={"path": None, "uri": "s3://bucket/train.jsonl"},
            validationData={"path": "val"},
            validationDataSize=0.5,
        )
    )
    assert parsed.spec.training_data.uri == "s3://bucket/train.jsonl"
    assert parsed.spec.training_data.location == "s3://bucket/train.jsonl"
    assert parsed.spec.validation_data is not None and parsed.spec.validation_data.location == "val"


def test_data_input_with_both_path_and_uri_is_an_error(job, problems):
    found = problems(job(trainingData={"path": "a.jsonl", "uri": "s3://b/a.jsonl"}))
    assert found == {"spec.trainingData.uri": "needs exactly one of path or uri; got both"}


def test_data_input_with_neither_is_an_error(job, problems):
    assert problems(job(trainingData={"path": None})) == {
        "spec.trainingData": "needs exactly one of path or uri; got neither"
    }


@pytest.mark.parametrize("location", ["azureml://datastores/blob/paths/train", "azureml:fridge-train:1"])
def test_azureml_locations_explain_how_to_download(job, problems, location):
    found = problems(job(trainingData={"path": location}))
    message = found["spec.trainingData.path"]
    assert "az ml data download" in message
    assert "set `path` to the local JSONL file or MLTable folder" in message


def test_a_uri_in_path_and_a_path_in_uri_are_errors(job, problems):
    found = problems(job(trainingData={"path": "s3://b/train.jsonl"}, validationData={"uri": "val.jsonl"}))
    assert "use `uri` instead of `path`" in found["spec.trainingData.path"]
    assert "expected a URI" in found["spec.validationData.uri"]


@pytest.mark.parametrize("size", [0, 1, 1.5, -0.1])
def test_validation_data_size_is_in_the_open_unit_interval(job, problems, size):
    found = problems(job(validationDataSize=size))
    assert found == {"spec.validationDataSize": f"got {size!r}; expected a number > 0 and < 1"}


# ---- training parameters ------------------------------------------------------------------------


@pytest.mark.parametrize("written", [True, "y", "yes", "t", "true", "on", "1", 1, "TRUE", "Yes", "ON"])
def test_booleans_accept_the_runtime_true_spellings(job, parse_job, written):
    parsed = parse_job(job(trainingParameters={"earlyStopping": written}))
    assert parsed.spec.training_parameters.early_stopping is True


@pytest.mark.parametrize("written", [False, "n", "no", "f", "false", "off", "0", 0, "False", "OFF"])
def test_booleans_accept_the_runtime_false_spellings(job, parse_job, written):
    parsed = parse_job(job(trainingParameters={"nesterov": written}))
    assert parsed.spec.training_parameters.nesterov is False


def test_a_boolean_that_is_not_one_is_an_error(job, problems):
    found = problems(job(trainingParameters={"earlyStopping": "maybe"}))
    assert found == {"spec.trainingParameters.earlyStopping": "got 'maybe'; expected true or false"}


@pytest.mark.parametrize(
    ("written", "stored"),
    [("3x2", "3x2"), ("3X2", "3x2"), ("(3, 2)", "3x2"), ("2x1", "2x1"), ([5, 3], "5x3"), (" 4 x 4 ", "4x4")],
)
def test_tile_grid_size_spellings_are_normalised(job, parse_job, written, stored):
    parsed = parse_job(job("image_object_detection", trainingParameters={"tileGridSize": written}))
    assert parsed.spec.training_parameters.tile_grid_size == stored


@pytest.mark.parametrize(
    ("written", "fragment"),
    [
        ("1x1", "a 1x1 grid is the whole image"),
        ("0x2", "both tile counts must be positive"),
        ("3", "expected a tile grid such as '3x2'"),
        ("3x2x1", "expected a tile grid such as '3x2'"),
        ("axb", "expected a tile grid such as '3x2'"),
    ],
)
def test_bad_tile_grid_sizes(job, problems, written, fragment):
    found = problems(job("image_object_detection", trainingParameters={"tileGridSize": written}))
    assert fragment in found["spec.trainingParameters.tileGridSize"]


def test_advanced_settings_accept_azures_json_string(job, parse_job):
    params = parse_job(
        job(
            trainingParameters={
                "advancedSettings": '{"apply_mosaic_for_yolo": false, "stream_image_files": true}'
            }
        )
    ).spec.training_parameters
    assert params.advanced_settings is not None
    assert params.advanced_settings.apply_mosaic_for_yolo is False
    assert params.advanced_settings.stream_image_files is True
    assert params.advanced_settings.apply_automl_train_augmentations is None


def test_advanced_settings_accept_a_mapping(job, parse_job):
    params = parse_job(job(trainingParameters={"advancedSettings": {"streamImageFiles": "yes"}})).spec
    assert params.training_parameters.advanced_settings is not None
    assert params.training_parameters.advanced_settings.stream_image_files is True


def test_advanced_settings_that_are_not_json_are_an_error(job, problems):
    found = problems(job(trainingParameters={"advancedSettings": "{stream: yes"}))
    assert found["spec.trainingParameters.advancedSettings"].startswith("is not valid JSON")


def test_unknown_advanced_setting_is_named(job, problems):
    found = problems(job(trainingParameters={"advancedSettings": {"streamImages": True}}))
    assert found == {
        "spec.trainingParameters.advancedSettings.streamImages": (
            "unknown field 'streamImages'; did you mean 'streamImageFiles'?"
        )
    }


@pytest.mark.parametrize(("written", "stored"), [("SGD", "sgd"), ("AdamW", "adamw")])
def test_enum_parameters_are_case_insensitive(job, parse_job, written, stored):
    assert (
        parse_job(job(trainingParameters={"optimizer": written})).spec.training_parameters.optimizer == stored
    )


def test_model_size_xlarge_is_extra_large(job, parse_job):
    params = parse_job(
        job("image_object_detection", trainingParameters={"modelName": "yolov5", "modelSize": "xlarge"})
    ).spec
    assert params.training_parameters.model_size == "extra_large"


def test_log_metric_switches_are_normalised(job, parse_job):
    params = parse_job(
        job(
            "image_object_detection",
            trainingParameters={"logTrainingMetrics": "enable", "logValidationLoss": "DISABLE"},
        )
    ).spec.training_parameters
    assert (params.log_training_metrics, params.log_validation_loss) == ("Enable", "Disable")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("learningRate", 0, "got 0; expected a number > 0 and <= 1"),
        ("learningRate", 1.5, "got 1.5; expected a number > 0 and <= 1"),
        ("numberOfEpochs", 0, "got 0; expected an integer >= 1"),
        ("numberOfEpochs", 2.5, "got 2.5; expected an integer >= 1"),
        ("momentum", -0.1, "got -0.1; expected a number from 0 to 1"),
        ("weightedLoss", 3, "got 3; expected an integer from 0 to 2"),
        ("optimizer", "rmsprop", "got 'rmsprop'; expected one of sgd, adam, adamw"),
        ("modelName", "", "got an empty string; remove the key to use the default"),
    ],
)
def test_training_parameter_ranges(job, problems, key, value, message):
    assert problems(job(trainingParameters={key: value})) == {f"spec.trainingParameters.{key}": message}


def test_unknown_training_parameter_suggests_the_camel_case_name(job, problems):
    found = problems(job(trainingParameters={"learningrate": 0.01, "lr_scheduler": "step", "zzz": 1}))
    assert (
        found["spec.trainingParameters.learningrate"]
        == "unknown field 'learningrate'; did you mean 'learningRate'?"
    )
    assert found["spec.trainingParameters.lr_scheduler"] == (
        "unknown field 'lr_scheduler'; did you mean 'learningRateScheduler'?"
    )
    assert found["spec.trainingParameters.zzz"] == "unknown field 'zzz'"


def test_sdk_snake_case_names_are_accepted_in_training_parameters(job, parse_job):
    # populate_by_name: Azure users pasting `learning_rate` get what they meant.
    params = parse_job(job(trainingParameters={"learning_rate": 0.02})).spec.training_parameters
    assert params.learning_rate == 0.02


# ---- early termination --------------------------------------------------------------------------


def _sweep(job: Any, policy: dict[str, Any], algorithm: str = "random") -> dict[str, Any]:
    return job(
        limits={"maxTrials": 4},
        sweep={"samplingAlgorithm": algorithm, "earlyTermination": policy},
        searchSpace=[{"learningRate": {"type": "uniform", "minValue": 0.001, "maxValue": 0.01}}],
    )


@pytest.mark.parametrize(
    "policy",
    [
        {"type": "bandit", "slackFactor": 0.2},
        {"type": "bandit", "slackAmount": 0.05, "evaluationInterval": 2, "delayEvaluation": 6},
        {"type": "median_stopping"},
        {"type": "truncation_selection", "truncationPercentage": 20, "excludeFinishedJobs": True},
        {"type": "Bandit", "slackFactor": 0.1},
    ],
)
def test_valid_early_termination_policies(job, parse_job, policy):
    parsed = parse_job(_sweep(job, policy))
    assert parsed.spec.sweep is not None and parsed.spec.sweep.early_termination is not None
    assert parsed.spec.sweep.early_termination.type == policy["type"].lower()


def test_early_termination_defaults(job, parse_job):
    parsed = parse_job(_sweep(job, {"type": "median_stopping"}))
    assert parsed.spec.sweep is not None and parsed.spec.sweep.early_termination is not None
    policy = parsed.spec.sweep.early_termination
    assert (policy.evaluation_interval, policy.delay_evaluation) == (1, 0)


def test_evaluation_interval_zero_means_one(job, parse_job):
    parsed = parse_job(_sweep(job, {"type": "bandit", "slackFactor": 0.1, "evaluationInterval": 0}))
    assert parsed.spec.sweep is not None and parsed.spec.sweep.early_termination is not None
    assert parsed.spec.sweep.early_termination.effective_evaluation_interval == 1


@pytest.mark.parametrize(
    ("policy", "field", "message"),
    [
        (
            {"type": "bandit"},
            "spec.sweep.earlyTermination",
            "bandit needs slackFactor or slackAmount; got neither",
        ),
        (
            {"type": "bandit", "slackFactor": 0.1, "slackAmount": 0.1},
            "spec.sweep.earlyTermination.slackAmount",
            "bandit takes slackFactor or slackAmount, not both",
        ),
        (
            {"type": "median_stopping", "slackFactor": 0.1},
            "spec.sweep.earlyTermination.slackFactor",
            "applies only to type bandit; this policy is median_stopping",
        ),
        (
            {"type": "truncation_selection"},
            "spec.sweep.earlyTermination",
            "truncation_selection needs truncationPercentage (1 to 99)",
        ),
        (
            {"type": "truncation_selection", "truncationPercentage": 100},
            "spec.sweep.earlyTermination.truncationPercentage",
            "got 100; expected an integer from 1 to 99",
        ),
        (
            {"type": "truncation_selection", "truncationPercentage": 0},
            "spec.sweep.earlyTermination.truncationPercentage",
            "got 0; expected an integer from 1 to 99",
        ),
        (
            {"type": "bandit", "slackFactor": 0.1, "truncationPercentage": 10},
            "spec.sweep.earlyTermination.truncationPercentage",
            "applies only to type truncation_selection; this policy is bandit",
        ),
        (
            {"type": "median_stopping", "excludeFinishedJobs": True},
            "spec.sweep.earlyTermination.excludeFinishedJobs",
            "applies only to type truncation_selection; this policy is median_stopping",
        ),
        (
            {"type": "hyperband"},
            "spec.sweep.earlyTermination.type",
            "got 'hyperband'; expected one of bandit, median_stopping, truncation_selection",
        ),
    ],
)
def test_early_termination_rules(job, problems, policy, field, message):
    assert problems(_sweep(job, policy)) == {field: message}


# ---- resources, checkpoint, metadata ------------------------------------------------------------


@pytest.mark.parametrize("quantity", ["500m", "4", 8, 2.5, "16Gi", "16G", "1e3", "0.5"])
def test_valid_quantities(job, parse_job, quantity):
    res = parse_job(job(resources={"cpu": quantity, "memory": quantity})).spec.resources
    assert res.cpu == str(quantity)


@pytest.mark.parametrize("quantity", ["16GB", "-1", "abc", "1.2.3", "4 Gi", ""])
def test_invalid_quantities(job, problems, quantity):
    found = problems(job(resources={"memory": quantity}))
    assert "expected a Kubernetes quantity such as 500m, 4, 16Gi or 16G" in found["spec.resources.memory"]


def test_tolerations_and_node_selector(job, parse_job):
    res = parse_job(
        job(
            resources={
                "nodeSelector": {"gpu": "a100"},
                "tolerations": [
                    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                    {
                        "key": "spot",
                        "operator": "Equal",
                        "value": "true",
                        "effect": "NoExecute",
                        "tolerationSeconds": 60,
                    },
                    {"operator": "Exists"},
                ],
            }
        )
    ).spec.resources
    assert res.node_selector == {"gpu": "a100"}
    assert res.tolerations is not None and res.tolerations[1].toleration_seconds == 60


@pytest.mark.parametrize(
    ("toleration", "field", "fragment"),
    [
        ({"key": "a", "operator": "Exists", "value": "b"}, "value", "operator Exists takes no value"),
        ({"value": "b"}, "operator", "a toleration without a key must use operator Exists"),
        (
            {"key": "a", "effect": "NoSchedule", "tolerationSeconds": 5},
            "tolerationSeconds",
            "applies only to effect NoExecute",
        ),
        (
            {"key": "a", "effect": "NoRun"},
            "effect",
            "expected one of NoSchedule, PreferNoSchedule, NoExecute",
        ),
        ({"key": "a", "operator": "In"}, "operator", "expected one of Exists, Equal"),
    ],
)
def test_bad_tolerations(job, problems, toleration, field, fragment):
    found = problems(job(resources={"tolerations": [toleration]}))
    assert fragment in found[f"spec.resources.tolerations[0].{field}"]


def test_gpus_zero_means_cpu_and_negative_is_an_error(job, parse_job, problems):
    assert parse_job(job(resources={"gpusPerNode": 0})).spec.resources.gpus_per_node == 0
    assert problems(job(resources={"nodeCountPerTrial": 0})) == {
        "spec.resources.nodeCountPerTrial": "got 0; expected an integer from 1 to 64"
    }


@pytest.mark.parametrize("checkpoint", [{"fromJob": "earlier-job"}, {"modelUri": "s3://models/best"}])
def test_checkpoint_takes_one_source(job, parse_job, checkpoint):
    assert parse_job(job(checkpoint=checkpoint)).spec.checkpoint is not None


@pytest.mark.parametrize(
    ("checkpoint", "got"), [({}, "neither"), ({"fromJob": "a", "modelUri": "s3://b"}, "both")]
)
def test_checkpoint_with_no_or_two_sources_is_an_error(job, problems, checkpoint, got):
    assert problems(job(checkpoint=checkpoint)) == {
        "spec.checkpoint": f"needs exactly one of fromJob or modelUri; got {got}"
    }


def test_metadata_from_the_api_server_is_tolerated(job, parse_job):
    obj = job()
    obj["metadata"].update(
        {
            "namespace": "ml",
            "uid": "123",
            "resourceVersion": "42",
            "generation": 3,
            "creationTimestamp": "2026-01-31T12:00:00Z",
            "labels": {"team": "cv"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply", "time": "2026-01-31T12:00:00Z"}],
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u", "controller": True}
            ],
            "finalizers": ["kubevision.io/cleanup"],
        }
    )
    meta = parse_job(obj).metadata
    assert meta.generation == 3 and meta.namespace == "ml"
    assert meta.creation_timestamp is not None and meta.creation_timestamp.year == 2026


@pytest.mark.parametrize("name", ["Fridge", "fridge_od", "-fridge", "fridge-", "a" * 64, ""])
def test_metadata_name_must_be_a_dns_label(job, problems, name):
    obj = job()
    obj["metadata"]["name"] = name
    found = problems(obj)
    assert "expected a DNS-1123 name" in found["metadata.name"]


def test_metadata_name_of_63_characters_is_accepted(job, parse_job):
    obj = job()
    obj["metadata"]["name"] = "a" * 63
    assert parse_job(obj).metadata.name == "a" * 63


def test_unknown_metadata_key_is_an_error_with_suggestion(job, problems):
    obj = job()
    obj["metadata"]["lables"] = {"a": "b"}
    assert problems(obj) == {"metadata.lables": "unknown field 'lables'; did you mean 'labels'?"}


def test_python_construction_uses_snake_case(job):
    parsed = AutoMLImageJob.model_validate(job("image_object_detection"))
    assert parsed.spec.training_data.path == "data/train.jsonl"
    assert DEFAULT_MODEL[parsed.spec.task] == "fasterrcnn_resnet50_fpn"


# ---- status -------------------------------------------------------------------------------------


def test_status_written_by_the_operator_parses(job, parse_job):
    obj = job()
    obj["status"] = {
        "phase": "Running",
        "conditions": [
            {
                "type": "Ready",
                "status": True,
                "reason": "TrialsRunning",
                "message": "3 running",
                "lastTransitionTime": "2026-01-31T12:00:00Z",
                "observedGeneration": 2,
            },
            {"type": "Succeeded", "status": "Unknown"},
        ],
        "trials": {"total": 5, "running": 3, "succeeded": 1, "failed": 0, "earlyTerminated": 1},
        "bestTrial": {
            "name": "t-1",
            "metric": 0.91,
            "parameters": {"learningRate": 0.01},
            "modelUri": "s3://out/t-1/mlflow-model",
        },
        "experimentRef": [{"name": "test-job-0", "subSpace": 0}, {"name": "test-job-1", "namespace": "ml"}],
        "startTime": "2026-01-31T12:00:00Z",
        "observedGeneration": 2,
        "message": "running",
    }
    status = parse_job(obj).status
    assert status is not None
    assert status.conditions[0].status == "True"  # unquoted YAML True is the string Kubernetes means
    assert status.trials is not None and status.trials.early_terminated == 1
    assert status.best_trial is not None and status.best_trial.parameters == {"learningRate": 0.01}
    assert [ref.name for ref in status.experiment_ref] == ["test-job-0", "test-job-1"]


def test_unknown_phase_is_an_error(job, problems):
    obj = job()
    obj["status"] = {"phase": "Done"}
    assert problems(obj) == {
        "status.phase": "got 'Done'; expected one of Pending, Running, Succeeded, Failed"
    }


# ---- JSON schema for the CRD --------------------------------------------------------------------


def test_every_schema_property_has_a_description():
    schema = AutoMLImageJob.model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})
    missing = []
    for owner, model in [("AutoMLImageJob", schema), *defs.items()]:
        for name, prop in model.get("properties", {}).items():
            if not prop.get("description"):
                missing.append(f"{owner}.{name}")
    assert missing == []


def test_schema_uses_camel_case_enums_and_ranges():
    schema = AutoMLImageJob.model_json_schema(by_alias=True)
    defs = schema["$defs"]
    limits = defs["Limits"]["properties"]
    assert limits["maxTrials"]["minimum"] == 1 and limits["maxTrials"]["maximum"] == 1000
    assert set(defs["Task"]["enum"]) == {t.value for t in Task}
    assert "learningRate" in defs["TrainingParameters"]["properties"]
    assert defs["TrainingParameters"]["additionalProperties"] is False
    sweep = defs["Sweep"]["properties"]["samplingAlgorithm"]
    assert sweep["enum"] == ["random", "grid", "bayesian"]
