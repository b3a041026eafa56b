"""Azure's distributions sampled with fixed seeds, grids, and the sweep checks with their exact field paths."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import TypeAdapter

from kubevision.api.errors import KubevisionError
from kubevision.api.hyperparameters import resolve_training_parameters
from kubevision.api.models import AutoMLImageJob
from kubevision.api.models import Sweep as SweepSettings
from kubevision.api.search_space import Distribution
from kubevision.sweep.space import (
    check_sweep,
    grid_point_at,
    grid_points,
    grid_size,
    individual_params,
    quantize,
    sample_sub_space,
    sample_value,
    sweep_warnings,
)

JobMaker = Callable[..., AutoMLImageJob]
JobEditor = Callable[..., AutoMLImageJob]

DIST: TypeAdapter[Distribution] = TypeAdapter(Distribution)
SPACE: TypeAdapter[dict[str, Distribution]] = TypeAdapter(dict[str, Distribution])
N = 4000


def dist(**raw: Any) -> Distribution:
    return DIST.validate_python(raw)


def draws(d: Distribution, seed: int = 7, n: int = N) -> list[Any]:
    rng = random.Random(seed)
    return [sample_value(d, rng) for _ in range(n)]


# ---- sampling -----------------------------------------------------------------------------------


def test_choice_draws_every_value_about_equally() -> None:
    values = draws(dist(type="choice", values=["sgd", "adam", "adamw", 3, True]))
    counts = {v: values.count(v) for v in ("sgd", "adam", "adamw", 3, True)}
    assert sum(counts.values()) == N
    assert all(abs(c - N / 5) < N / 5 * 0.15 for c in counts.values()), counts


def test_randint_draws_zero_to_upper_minus_one_and_never_upper() -> None:
    values = draws(dist(type="randint", upper=3))
    assert set(values) == {0, 1, 2}
    assert all(isinstance(v, int) for v in values)
    assert set(draws(dist(type="randint", upper=1), n=50)) == {0}


def test_uniform_stays_in_bounds_with_the_middle_as_mean() -> None:
    values = draws(dist(type="uniform", minValue=0.2, maxValue=0.6))
    assert all(0.2 <= v <= 0.6 for v in values)
    assert statistics.fmean(values) == pytest.approx(0.4, abs=0.01)


def test_loguniform_bounds_are_natural_logs() -> None:
    low, high = math.log(1e-4), math.log(1e-2)
    values = draws(dist(type="loguniform", minValue=low, maxValue=high))
    assert all(1e-4 <= v <= 1e-2 for v in values)
    assert statistics.median(values) == pytest.approx(math.exp((low + high) / 2), rel=0.1)  # 1e-3
    # log-uniform: as many draws in [1e-4, 1e-3] as in [1e-3, 1e-2]
    assert abs(sum(v < 1e-3 for v in values) - N / 2) < N * 0.05


def test_normal_and_lognormal_have_their_moments() -> None:
    values = draws(dist(type="normal", mu=0.5, sigma=0.1))
    assert statistics.fmean(values) == pytest.approx(0.5, abs=0.01)
    assert statistics.stdev(values) == pytest.approx(0.1, rel=0.1)
    logs = draws(dist(type="lognormal", mu=-2.0, sigma=0.5))
    assert all(v > 0 for v in logs)
    assert statistics.median(logs) == pytest.approx(math.exp(-2.0), rel=0.1)


@pytest.mark.parametrize(
    ("raw", "low", "high"),
    [
        ({"type": "quniform", "minValue": 0.0, "maxValue": 1.0, "q": 0.05}, 0.0, 1.0),
        ({"type": "qloguniform", "minValue": math.log(1), "maxValue": math.log(100), "q": 5}, 0, 100),
        ({"type": "qnormal", "mu": 10.0, "sigma": 3.0, "q": 0.5}, -math.inf, math.inf),
        ({"type": "qlognormal", "mu": 2.0, "sigma": 0.5, "q": 2}, 0, math.inf),
        ({"type": "quniform", "minValue": 1e-4, "maxValue": 1e-3, "q": 1e-5}, 1e-4, 1e-3),
    ],
)
def test_q_variants_are_multiples_of_q(raw: dict[str, Any], low: float, high: float) -> None:
    q = raw["q"]
    values = draws(dist(**raw))
    for v in values:
        assert low <= v <= high
        assert abs(v / q - round(v / q)) < 1e-9, v
    if float(q).is_integer():
        assert all(isinstance(v, int) for v in values)
    else:
        assert all(isinstance(v, float) for v in values)
        assert all(len(repr(v)) <= 8 for v in values), "values are tidied to q's decimals"
    assert len(set(values)) > 3


def test_quantize_rounds_half_to_even_like_hyperopt() -> None:
    assert quantize(2.5, 1) == 2
    assert quantize(3.5, 1) == 4
    assert quantize(0.3000001, 0.1) == 0.3
    assert quantize(7.4, 5.0) == 5
    assert isinstance(quantize(7.4, 5.0), int)


def test_same_seed_same_values_other_seed_other_values() -> None:
    d = dist(type="uniform", minValue=0, maxValue=1)
    assert draws(d, seed=1, n=20) == draws(d, seed=1, n=20)
    assert draws(d, seed=1, n=20) != draws(d, seed=2, n=20)


def test_sample_sub_space_rounds_integers_and_redraws_out_of_range_values() -> None:
    space = SPACE.validate_python(
        {
            "numberOfEpochs": {"type": "uniform", "minValue": 10, "maxValue": 20},
            "momentum": {"type": "normal", "mu": 0.95, "sigma": 0.1},  # about 31% of draws exceed 1
            "optimizer": {"type": "choice", "values": ["sgd", "adamw"]},
        }
    )
    rng = random.Random(3)
    samples = [sample_sub_space(space, rng) for _ in range(500)]
    assert all(list(s) == ["numberOfEpochs", "momentum", "optimizer"] for s in samples)
    assert all(isinstance(s["numberOfEpochs"], int) and 10 <= s["numberOfEpochs"] <= 20 for s in samples)
    assert all(0 <= s["momentum"] <= 1 for s in samples)
    assert max(s["momentum"] for s in samples) > 0.99
    # every sample is a valid trial
    resolved = resolve_training_parameters("image_classification", None, samples[0])
    assert resolved["numberOfEpochs"] == samples[0]["numberOfEpochs"]


# ---- grids --------------------------------------------------------------------------------------

GRID = {
    "modelName": {"type": "choice", "values": ["resnet18", "resnet50"]},
    "optimizer": {"type": "choice", "values": ["sgd", "adam", "adamw"]},
    "numberOfEpochs": {"type": "choice", "values": [10, 20]},
}


def test_grid_points_are_the_product_of_the_choices_last_key_fastest() -> None:
    space = SPACE.validate_python(GRID)
    points = grid_points(space)
    assert len(points) == grid_size(space) == 12
    assert points[0] == {"modelName": "resnet18", "optimizer": "sgd", "numberOfEpochs": 10}
    assert points[1] == {"modelName": "resnet18", "optimizer": "sgd", "numberOfEpochs": 20}
    assert points[2] == {"modelName": "resnet18", "optimizer": "adam", "numberOfEpochs": 10}
    assert points[-1] == {"modelName": "resnet50", "optimizer": "adamw", "numberOfEpochs": 20}
    assert len({tuple(p.items()) for p in points}) == 12
    assert [grid_point_at(space, i) for i in range(12)] == points
    with pytest.raises(IndexError):
        grid_point_at(space, 12)


def test_grid_points_refuse_a_continuous_distribution() -> None:
    space = SPACE.validate_python({"learningRate": {"type": "uniform", "minValue": 0.001, "maxValue": 0.01}})
    with pytest.raises(KubevisionError, match="learningRate is uniform"):
        grid_points(space)


# ---- check_sweep: the exact field of each problem ------------------------------------------------

LR_UNIFORM = {"type": "uniform", "minValue": 0.001, "maxValue": 0.01}


def problems(job: Any) -> dict[str, str]:
    with pytest.raises(KubevisionError) as info:
        check_sweep(job)
    return {p.field or "": p.message for p in info.value.problems}


def test_a_valid_sweep_passes(job: JobMaker) -> None:
    check_sweep(job(limits={"maxTrials": 4}, searchSpace=[{"learningRate": LR_UNIFORM}]))
    check_sweep(job(limits={"maxTrials": 4}))  # AutoMode: nothing to check
    check_sweep(job())  # single trial


def test_grid_with_a_non_choice_distribution(job: JobMaker, bypass: JobEditor) -> None:
    base = job(
        limits={"maxTrials": 4},
        searchSpace=[
            {"modelName": {"type": "choice", "values": ["resnet18"]}},
            {"modelName": {"type": "choice", "values": ["resnet50"]}, "learningRate": LR_UNIFORM},
        ],
    )
    found = problems(bypass(base, sweep=SweepSettings(sampling_algorithm="grid")))
    assert list(found) == ["spec.searchSpace[1].learningRate"]
    assert "grid sampling takes only choice" in found["spec.searchSpace[1].learningRate"]


def test_bayesian_with_several_sub_spaces_and_early_termination(job: JobMaker, bypass: JobEditor) -> None:
    base = job(
        limits={"maxTrials": 4},
        searchSpace=[{"learningRate": LR_UNIFORM}, {"learningRate": LR_UNIFORM}],
        sweep={"earlyTermination": {"type": "bandit", "slackFactor": 0.1}},
    )
    assert base.spec.sweep is not None
    settings = SweepSettings(sampling_algorithm="bayesian", early_termination=base.spec.sweep.early_termination)
    found = problems(bypass(base, sweep=settings))
    assert set(found) == {"spec.searchSpace[1]", "spec.sweep.earlyTermination"}
    assert "one sub-space, got 2" in found["spec.searchSpace[1]"]
    assert "does not support early termination" in found["spec.sweep.earlyTermination"]


def test_bayesian_refuses_the_normal_family_and_accepts_log_and_int_ranges(job: JobMaker, bypass: JobEditor) -> None:
    space = SPACE.validate_python(
        {
            "learningRate": {"type": "loguniform", "minValue": -9.2, "maxValue": -4.6},
            "numberOfEpochs": {"type": "qloguniform", "minValue": 2.0, "maxValue": 3.0, "q": 1},
            "layersToFreeze": {"type": "randint", "upper": 3},
            "momentum": {"type": "normal", "mu": 0.9, "sigma": 0.02},
        }
    )
    base = job(limits={"maxTrials": 4}, searchSpace=[{"learningRate": LR_UNIFORM}])
    odd = bypass(base, sweep=SweepSettings(sampling_algorithm="bayesian"), search_space=[space])
    found = problems(odd)
    assert list(found) == ["spec.searchSpace[0].momentum"]
    assert "bayesian sampling takes" in found["spec.searchSpace[0].momentum"]
    del space["momentum"]
    accepted = bypass(base, sweep=SweepSettings(sampling_algorithm="bayesian"), search_space=[space])
    check_sweep(accepted)
    warned = {p.field for p in sweep_warnings(accepted)}
    assert {"spec.searchSpace[0].learningRate", "spec.searchSpace[0].numberOfEpochs"} <= warned
    assert "spec.searchSpace[0].layersToFreeze" in warned


def test_quantised_bounds_outside_the_range(job: JobMaker) -> None:
    """quniform(0.0001, 0.001, q=0.01) rounds every draw to 0, which no learning rate may be."""
    bad = job(
        limits={"maxTrials": 4},
        searchSpace=[{"learningRate": {"type": "quniform", "minValue": 0.0001, "maxValue": 0.001, "q": 0.01}}],
    )
    found = problems(bad)
    assert list(found) == ["spec.searchSpace[0].learningRate.q"]
    assert "rounds 0.0001 to 0" in found["spec.searchSpace[0].learningRate.q"]
    fine = job(
        limits={"maxTrials": 4},
        searchSpace=[{"learningRate": {"type": "quniform", "minValue": 0.001, "maxValue": 0.01, "q": 0.001}}],
    )
    check_sweep(fine)


def test_normal_family_centred_outside_the_range(job: JobMaker) -> None:
    bad = job(
        limits={"maxTrials": 4},
        searchSpace=[
            {
                "momentum": {"type": "normal", "mu": 1.5, "sigma": 0.1},
                "learningRate": {"type": "lognormal", "mu": 1.0, "sigma": 0.5},
            }
        ],
    )
    found = problems(bad)
    assert set(found) == {"spec.searchSpace[0].momentum.mu", "spec.searchSpace[0].learningRate.mu"}
    assert "lognormal's mu is the log of the median" in found["spec.searchSpace[0].learningRate.mu"]
    ok = job(limits={"maxTrials": 4}, searchSpace=[{"momentum": {"type": "normal", "mu": 0.9, "sigma": 0.1}}])
    check_sweep(ok)
    assert [p.field for p in sweep_warnings(ok)] == ["spec.searchSpace[0].momentum"]


def test_every_problem_is_reported_at_once(job: JobMaker, bypass: JobEditor) -> None:
    base = job(
        limits={"maxTrials": 4},
        searchSpace=[
            {
                "learningRate": {"type": "quniform", "minValue": 0.0001, "maxValue": 0.001, "q": 0.01},
                "momentum": {"type": "uniform", "minValue": 0.8, "maxValue": 0.9},
            }
        ],
    )
    with pytest.raises(KubevisionError) as info:
        check_sweep(bypass(base, sweep=SweepSettings(sampling_algorithm="grid")))
    assert "sweep-test" in info.value.headline
    assert [p.field for p in info.value.problems] == [
        "spec.searchSpace[0].learningRate",
        "spec.searchSpace[0].learningRate.q",
        "spec.searchSpace[0].momentum",
    ]


def test_grid_size_warnings(job: JobMaker) -> None:
    grid = {"samplingAlgorithm": "grid"}
    space = [{"optimizer": {"type": "choice", "values": ["sgd", "adam", "adamw"]}}]
    small = sweep_warnings(job(limits={"maxTrials": 5}, searchSpace=space, sweep=grid))
    assert [p.message for p in small] == [
        "the grid has 3 points: the sweep ends after 3 trials, below limits.maxTrials 5"
    ]
    large = sweep_warnings(job(limits={"maxTrials": 2}, searchSpace=space, sweep=grid))
    assert "only the first 2 points run" in large[0].message
    assert sweep_warnings(job(limits={"maxTrials": 3}, searchSpace=space, sweep=grid)) == []


def test_individual_params_are_the_fixed_training_parameters(job: JobMaker) -> None:
    single = job(trainingParameters={"modelName": "resnet18", "learningRate": 0.02, "advancedSettings": "{}"})
    assert individual_params(single) == {"modelName": "resnet18", "learningRate": 0.02, "advancedSettings": {}}
    assert individual_params(job()) == {}
