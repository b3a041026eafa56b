"""AutoMode's portfolio: order, scaling to maxTrials, fixed parameters, batch sizes fitted to memory; and its docs."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from kubevision.api.hyperparameters import default_hyperparameters, resolve_training_parameters
from kubevision.api.search_space import Choice, LogUniform, QUniform
from kubevision.api.tasks import DEFAULT_MODEL, MODELS_BY_TASK, Task
from kubevision.api.training_parameters import TrainingParameters
from kubevision.sweep.automode import (
    MODEL_COST,
    PORTFOLIOS,
    automode_search_space,
    fit_batch,
    portfolio,
    portfolio_size,
)
from kubevision.sweep.space import sample_sub_space

GiB = 2**30
DOCS = Path(__file__).resolve().parents[2] / "docs" / "automode.md"


@pytest.mark.parametrize("task", list(Task))
def test_first_config_is_the_task_default_model_with_its_defaults(task: Task) -> None:
    first = portfolio(task, 10, device_memory_bytes=16 * GiB)[0]
    defaults = default_hyperparameters(task, DEFAULT_MODEL[task])
    assert first["modelName"] == DEFAULT_MODEL[task]
    for key in ("learningRate", "numberOfEpochs", "trainingBatchSize", "validationBatchSize"):
        assert first[key] == defaults[key], key
    assert "gradientAccumulationStep" not in first


@pytest.mark.parametrize("task", list(Task))
@pytest.mark.parametrize("memory", [None, 8 * GiB, 16 * GiB, 80 * GiB])
def test_every_config_is_a_valid_distinct_trial_of_the_task(task: Task, memory: int | None) -> None:
    configs = portfolio(task, 1000, device_memory_bytes=memory)
    assert len(configs) == len({tuple(sorted(c.items())) for c in configs}), "no duplicates"
    for config in configs:
        assert config["modelName"] in MODELS_BY_TASK[task]
        TrainingParameters.model_validate(config)
        resolved = resolve_training_parameters(task, None, config)
        assert resolved["modelName"] == config["modelName"]


@pytest.mark.parametrize("task", list(Task))
def test_portfolio_diversifies_architectures_early(task: Task) -> None:
    models = [c["modelName"] for c in portfolio(task, 4, device_memory_bytes=16 * GiB)]
    assert len(set(models[:3])) >= 2


@pytest.mark.parametrize(
    ("max_trials", "expected"),
    [(1, 1), (2, 2), (4, 4), (5, 4), (8, 6), (10, 8), (20, 12), (1000, 12)],
)
def test_portfolio_is_scaled_to_max_trials(max_trials: int, expected: int) -> None:
    configs = portfolio(Task.IMAGE_CLASSIFICATION, max_trials, device_memory_bytes=16 * GiB)
    assert len(configs) == expected
    assert portfolio_size(max_trials, 12) == expected
    # a longer portfolio starts with the shorter one
    assert configs == portfolio(Task.IMAGE_CLASSIFICATION, 1000, device_memory_bytes=16 * GiB)[:expected]


def test_longer_schedules_and_learning_rate_variants_come_with_bigger_budgets() -> None:
    small = portfolio(Task.IMAGE_OBJECT_DETECTION, 4, device_memory_bytes=16 * GiB)
    large = portfolio(Task.IMAGE_OBJECT_DETECTION, 20, device_memory_bytes=16 * GiB)
    assert {c["numberOfEpochs"] for c in small} == {15}
    assert {c["numberOfEpochs"] for c in large} == {15, 30}
    assert {c["learningRate"] for c in large} == {0.0025, 0.005, 0.01}
    assert any(c.get("minSize") == 800 for c in large)


def test_fixed_parameters_are_never_overridden() -> None:
    fixed = {"modelName": "resnet50", "numberOfEpochs": 5, "trainingBatchSize": 7}
    configs = portfolio(Task.IMAGE_CLASSIFICATION, 20, device_memory_bytes=16 * GiB, fixed=fixed)
    assert configs, "a fixed model still gets learning-rate variants"
    for config in configs:
        assert not set(config) & set(fixed)
    # architecture entries collapse into the learning-rate variants of the fixed model: 0.01, /3, x3
    assert sorted(c["learningRate"] for c in configs) == [0.00333, 0.01, 0.03]
    assert configs[0]["learningRate"] == 0.01


def test_fixed_crop_sizes_that_differ_leave_vits_out() -> None:
    configs = portfolio(Task.IMAGE_CLASSIFICATION, 1000, device_memory_bytes=16 * GiB, fixed={"trainingCropSize": 256})
    assert configs
    assert not any(c["modelName"].startswith("vit") for c in configs)
    same = portfolio(
        Task.IMAGE_CLASSIFICATION,
        1000,
        device_memory_bytes=16 * GiB,
        fixed={"trainingCropSize": 256, "validationCropSize": 256},
    )
    assert same[0]["modelName"] == "vitb16r224"


# ---- batch sizes ---------------------------------------------------------------------------------


def test_batch_sizes_shrink_with_memory_and_keep_the_effective_batch() -> None:
    for memory in (6 * GiB, 8 * GiB, 12 * GiB):
        for config in portfolio(Task.IMAGE_CLASSIFICATION, 1000, device_memory_bytes=memory):
            default = default_hyperparameters(Task.IMAGE_CLASSIFICATION, config["modelName"])["trainingBatchSize"]
            steps = config.get("gradientAccumulationStep", 1)
            assert config["trainingBatchSize"] <= default
            effective = config["trainingBatchSize"] * steps
            assert default <= effective < default + steps, config
    small = {c["modelName"]: c for c in portfolio(Task.IMAGE_CLASSIFICATION, 1000, device_memory_bytes=8 * GiB)}
    assert small["vitb16r224"]["trainingBatchSize"] < 48
    assert small["resnet50"]["trainingBatchSize"] == 78  # fits as it is


def test_bigger_images_get_smaller_batches() -> None:
    task = Task.IMAGE_CLASSIFICATION
    at_224 = fit_batch(task, "resnet50", 10_000, device_memory_bytes=16 * GiB)
    at_448 = fit_batch(task, "resnet50", 10_000, device_memory_bytes=16 * GiB, params={"trainingCropSize": 448})
    assert at_448 == pytest.approx(at_224 / 4, rel=0.05)
    od = Task.IMAGE_OBJECT_DETECTION
    at_600 = fit_batch(od, "fasterrcnn_resnet50_fpn", 100, device_memory_bytes=16 * GiB)
    at_1200 = fit_batch(od, "fasterrcnn_resnet50_fpn", 100, device_memory_bytes=16 * GiB, params={"minSize": 1200})
    assert at_1200 < at_600 / 3


def test_azure_default_batches_fit_a_16_gib_gpu() -> None:
    """The calibration of MODEL_COST: Azure's defaults were chosen for 16 GiB V100s."""
    for task in Task:
        for model in MODELS_BY_TASK[task]:
            default = default_hyperparameters(task, model)["trainingBatchSize"]
            assert fit_batch(task, model, default, device_memory_bytes=16 * GiB) == default, model
    assert set(MODEL_COST) == {m for models in MODELS_BY_TASK.values() for m in models}


def test_models_that_cannot_fit_one_image_are_left_out() -> None:
    configs = portfolio(Task.IMAGE_CLASSIFICATION, 1000, device_memory_bytes=3 * GiB)
    models = {c["modelName"] for c in configs}
    assert "vitl16r224" not in models
    assert "resnet50" in models
    tiny = portfolio(Task.IMAGE_INSTANCE_SEGMENTATION, 10, device_memory_bytes=GiB // 2)
    assert tiny == [
        {
            "modelName": "maskrcnn_resnet50_fpn",
            "learningRate": 0.005,
            "numberOfEpochs": 15,
            "trainingBatchSize": 1,
            "gradientAccumulationStep": 2,
            "validationBatchSize": 1,
        }
    ]


def test_cpu_gets_small_batches_and_no_heavy_models_but_the_default() -> None:
    configs = portfolio(Task.IMAGE_CLASSIFICATION, 1000)
    assert configs[0]["modelName"] == "vitb16r224"
    assert all(c["trainingBatchSize"] <= 16 for c in configs)
    models = {c["modelName"] for c in configs}
    assert not models & {"vitl16r224", "resnet152", "resnest101"}
    detection = portfolio(Task.IMAGE_OBJECT_DETECTION, 1000)
    assert not {c["modelName"] for c in detection} & {"fasterrcnn_resnet101_fpn", "fasterrcnn_resnet152_fpn"}


# ---- local search after the portfolio --------------------------------------------------------------


def test_search_space_is_a_neighbourhood_of_the_best() -> None:
    best = {"modelName": "seresnext", "learningRate": 0.03, "numberOfEpochs": 15, "trainingBatchSize": 78}
    space = automode_search_space(Task.IMAGE_CLASSIFICATION, best)
    assert set(space) == {"modelName", "learningRate", "numberOfEpochs"}
    assert isinstance(space["modelName"], Choice) and space["modelName"].values == ["seresnext"]
    lr = space["learningRate"]
    assert isinstance(lr, LogUniform)
    assert (lr.min_value, lr.max_value) == pytest.approx((-4.605, -2.408), abs=1e-3)  # ln 0.01, ln 0.09
    epochs = space["numberOfEpochs"]
    assert isinstance(epochs, QUniform) and (epochs.min_value, epochs.max_value, epochs.q) == (10, 30, 1)
    rng = random.Random(0)
    for _ in range(50):
        sample = sample_sub_space(space, rng)
        assert 0.01 * (1 - 1e-9) <= sample["learningRate"] <= 0.09 * (1 + 1e-9)
        assert 10 <= sample["numberOfEpochs"] <= 30
        resolve_training_parameters(Task.IMAGE_CLASSIFICATION, None, sample)


def test_search_space_leaves_fixed_keys_alone_and_caps_the_learning_rate() -> None:
    space = automode_search_space(
        Task.IMAGE_OBJECT_DETECTION, {"learningRate": 0.5}, fixed={"numberOfEpochs": 3, "modelName": "x"}
    )
    assert set(space) == {"learningRate"}
    lr = space["learningRate"]
    assert isinstance(lr, LogUniform) and lr.max_value == 0.0  # ln 1: the learning rate's maximum


# ---- the documentation matches the code ------------------------------------------------------------


def test_docs_list_each_portfolio_in_order() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for task, candidates in PORTFOLIOS.items():
        if task == Task.IMAGE_CLASSIFICATION_MULTILABEL:
            continue  # shares the classification table
        section = text.split(f"<!-- portfolio:{task.value} -->")[1].split("<!-- /portfolio -->")[0]
        rows = [line for line in section.splitlines() if re.match(r"\|\s*\d+\s*\|", line)]
        documented = [row.split("|")[2].strip().strip("`") for row in rows]
        assert documented == [c.model for c in candidates], task
