"""Search-space distributions: parameter rules, checks against the hyperparameter table, raw data."""

from __future__ import annotations

import math
from typing import Any

import pytest

from kubevision.api.search_space import DISTRIBUTION_TYPES, Choice, LogUniform, QNormal


def sweep_job(job: Any, task: str = "image_classification", **sub_space: Any) -> dict[str, Any]:
    return job(task, limits={"maxTrials": 4}, searchSpace=[sub_space])


@pytest.mark.parametrize(
    "dist",
    [
        {"type": "choice", "values": [0.01, 0.02]},
        {"type": "randint", "upper": 1},
        {"type": "uniform", "minValue": 0.001, "maxValue": 0.1},
        {"type": "loguniform", "minValue": -9.2, "maxValue": -2.3},
        {"type": "quniform", "minValue": 0.001, "maxValue": 0.1, "q": 0.001},
        {"type": "qloguniform", "minValue": -9.2, "maxValue": -2.3, "q": 0.0001},
        {"type": "normal", "mu": 0.01, "sigma": 0.001},
        {"type": "lognormal", "mu": -4.6, "sigma": 0.5},
        {"type": "qnormal", "mu": 0.01, "sigma": 0.001, "q": 0.001},
        {"type": "qlognormal", "mu": -4.6, "sigma": 0.5, "q": 0.001},
    ],
)
def test_every_distribution_type_parses(job, parse_job, dist):
    key = "layersToFreeze" if dist["type"] == "randint" else "learningRate"
    parsed = parse_job(sweep_job(job, **{key: dist}))
    assert parsed.spec.search_space is not None
    assert parsed.spec.search_space[0][key].type == dist["type"]


def test_all_ten_distribution_types_are_listed():
    assert len(DISTRIBUTION_TYPES) == 10


@pytest.mark.parametrize(
    ("dist", "field", "message"),
    [
        (
            {"type": "uniform", "minValue": 0.1, "maxValue": 0.01},
            "maxValue",
            "got 0.01; expected a number greater than minValue 0.1",
        ),
        (
            {"type": "quniform", "minValue": 0.1, "maxValue": 0.1, "q": 0.01},
            "maxValue",
            "got 0.1; expected a number greater than minValue 0.1",
        ),
        ({"type": "normal", "mu": 0.1, "sigma": 0}, "sigma", "got 0; expected a number > 0"),
        ({"type": "lognormal", "mu": 0.1, "sigma": -1}, "sigma", "got -1; expected a number > 0"),
        ({"type": "qnormal", "mu": 0.1, "sigma": 1, "q": 0}, "q", "got 0; expected a number > 0"),
        ({"type": "randint", "upper": 0}, "upper", "got 0; expected an integer >= 1"),
        ({"type": "choice", "values": []}, "values", "got an empty list; expected at least 1 item"),
        (
            {"type": "choice", "values": [0.01, 0.02, 0.01]},
            "values[2]",
            "0.01 is listed twice; values must be unique",
        ),
        ({"type": "uniform", "minValue": 0.1}, "maxValue", "required field 'maxValue' is missing"),
        (
            {"type": "uniform", "minValue": 0.1, "max": 0.2},
            "max",
            "unknown field 'max'; did you mean 'maxValue'?",
        ),
    ],
)
def test_distribution_parameter_rules(job, problems, dist, field, message):
    found = problems(sweep_job(job, learningRate=dist))
    assert found[f"spec.searchSpace[0].learningRate.{field}"] == message


def test_unknown_distribution_type_lists_the_types(job, problems):
    found = problems(sweep_job(job, learningRate={"type": "gaussian", "mu": 0, "sigma": 1}))
    assert found == {
        "spec.searchSpace[0].learningRate": (
            "unknown distribution type 'gaussian'; expected one of choice, randint, uniform, loguniform, "
            "quniform, qloguniform, normal, lognormal, qnormal, qlognormal"
        )
    }


def test_distribution_without_type(job, problems):
    found = problems(sweep_job(job, learningRate={"values": [0.1]}))
    assert found["spec.searchSpace[0].learningRate"].startswith(
        "missing 'type'; expected one of choice, randint"
    )


def test_empty_sub_space_and_empty_search_space(job, problems):
    assert problems(job(limits={"maxTrials": 4}, searchSpace=[{}])) == {
        "spec.searchSpace[0]": "got an empty mapping; expected at least 1 item"
    }
    assert problems(job(limits={"maxTrials": 4}, searchSpace=[])) == {
        "spec.searchSpace": "got an empty list; expected at least 1 item"
    }


def test_true_and_one_are_different_choice_values():
    assert Choice.model_validate({"type": "choice", "values": [1, True]}).values == [1, True]


# ---- against the hyperparameter table -----------------------------------------------------------


def test_unknown_hyperparameter_gets_a_suggestion(job, problems):
    found = problems(
        sweep_job(
            job,
            learning_rate={"type": "choice", "values": [0.1]},
            img_size={"type": "choice", "values": [640]},
            foo={"type": "choice", "values": [1]},
        )
    )
    assert (
        found["spec.searchSpace[0].learning_rate"] == "unknown hyperparameter 'learning_rate'; did you mean "
        "'learningRate'?"
    )
    assert found["spec.searchSpace[0].foo"] == "unknown hyperparameter 'foo'"


def test_settings_cannot_be_swept(job, problems):
    found = problems(sweep_job(job, advancedSettings={"type": "choice", "values": ["{}"]}))
    assert found == {
        "spec.searchSpace[0].advancedSettings": "advancedSettings cannot be swept; set it in "
        "trainingParameters"
    }


@pytest.mark.parametrize(
    ("name", "values", "index", "message"),
    [
        ("numberOfEpochs", [10, "abc"], 1, "got 'abc'; expected an integer >= 1"),
        ("numberOfEpochs", [0, 10], 0, "got 0; expected an integer >= 1"),
        ("numberOfEpochs", [10, 12.5], 1, "got 12.5; expected an integer >= 1"),
        ("learningRate", [0.01, 2], 1, "got 2; expected a number > 0 and <= 1"),
        ("optimizer", ["sgd", "lion"], 1, "got 'lion'; expected one of sgd, adam, adamw"),
        ("nesterov", [True, "maybe"], 1, "got 'maybe'; expected true or false"),
        ("earlyStopping", [True, 2], 1, "got 2; expected true or false"),
    ],
)
def test_choice_values_are_checked_against_the_hyperparameter(job, problems, name, values, index, message):
    found = problems(sweep_job(job, **{name: {"type": "choice", "values": values}}))
    assert found == {f"spec.searchSpace[0].{name}.values[{index}]": message}


def test_choice_values_in_other_spellings_are_accepted(job, parse_job):
    parse_job(
        sweep_job(
            job,
            "image_object_detection",
            optimizer={"type": "choice", "values": ["SGD", "adam"]},
            earlyStopping={"type": "choice", "values": ["yes", "no"]},
            numberOfEpochs={"type": "choice", "values": [10.0, 20]},
        )
    )


def test_uniform_bounds_are_checked_against_the_range(job, problems):
    found = problems(
        sweep_job(
            job,
            learningRate={"type": "uniform", "minValue": 0, "maxValue": 0.1},
            momentum={"type": "quniform", "minValue": 0.5, "maxValue": 1.5, "q": 0.1},
        )
    )
    assert found == {
        "spec.searchSpace[0].learningRate.minValue": "got 0; learningRate takes a number > 0 and <= 1",
        "spec.searchSpace[0].momentum.maxValue": "got 1.5; momentum takes a number from 0 to 1",
    }


def test_loguniform_bounds_are_natural_logs(job, problems, parse_job):
    # The classic mistake: writing the learning rates themselves.
    found = problems(
        sweep_job(job, learningRate={"type": "loguniform", "minValue": 0.0001, "maxValue": 0.01})
    )
    message = found["spec.searchSpace[0].learningRate.minValue"]
    assert "samples exp(0.0001) = 1" in message
    assert (
        "loguniform bounds are natural logs: for 0.0001..0.01 write minValue: -9.21, maxValue: -4.605"
        in message
    )
    parse_job(
        sweep_job(
            job, learningRate={"type": "loguniform", "minValue": math.log(1e-4), "maxValue": math.log(1e-2)}
        )
    )


def test_loguniform_docstring_states_the_semantics():
    assert "NATURAL LOGS" in (LogUniform.__doc__ or "")


def test_randint_that_can_draw_an_invalid_value_is_an_error(job, problems):
    found = problems(sweep_job(job, numberOfEpochs={"type": "randint", "upper": 10}))
    assert found == {
        "spec.searchSpace[0].numberOfEpochs.upper": (
            "randint draws integers 0..upper-1 and could draw 0; numberOfEpochs takes an integer >= 1; "
            "use quniform or choice instead"
        )
    }


def test_randint_within_range_is_accepted(job, parse_job):
    parse_job(
        sweep_job(
            job, layersToFreeze={"type": "randint", "upper": 3}, weightedLoss={"type": "randint", "upper": 3}
        )
    )


def test_categorical_hyperparameters_take_only_choice(job, problems):
    found = problems(sweep_job(job, optimizer={"type": "uniform", "minValue": 0, "maxValue": 1}))
    assert found == {
        "spec.searchSpace[0].optimizer.type": (
            "got 'uniform'; optimizer takes one of sgd, adam, adamw, so only choice can sweep it"
        )
    }


def test_normal_distributions_are_not_range_checked(job, parse_job):
    # Unbounded by nature; the trial clips or fails, as in Azure.
    parse_job(sweep_job(job, weightDecay={"type": "normal", "mu": 0.0001, "sigma": 0.01}))


def test_raw_distributions_dump_as_the_user_wrote_them(job, parse_job):
    parsed = parse_job(
        sweep_job(
            job,
            learningRate={"type": "qnormal", "mu": 0.01, "sigma": 0.001, "q": 0.001},
            modelName={"type": "choice", "values": ["resnet50", "vitb16r224"]},
        )
    )
    assert parsed.spec.search_space is not None
    sub = parsed.spec.search_space[0]
    assert isinstance(sub["learningRate"], QNormal)
    dumped = {k: v.model_dump(by_alias=True) for k, v in sub.items()}
    assert dumped == {
        "learningRate": {"type": "qnormal", "mu": 0.01, "sigma": 0.001, "q": 0.001},
        "modelName": {"type": "choice", "values": ["resnet50", "vitb16r224"]},
    }
