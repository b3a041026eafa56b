"""The Optuna-backed sweep against real SQLite files: sampling per algorithm, resume, AutoMode, bad input."""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

from kubevision.api.errors import KubevisionError
from kubevision.api.models import AutoMLImageJob
from kubevision.sweep.automode import portfolio
from kubevision.sweep.study import STUDY_NAME, Suggestion, Sweep

JobMaker = Callable[..., AutoMLImageJob]
JobEditor = Callable[..., AutoMLImageJob]

LR = {"type": "uniform", "minValue": 0.001, "maxValue": 0.01}
TWO_SUB_SPACES = [
    {
        "modelName": {"type": "choice", "values": ["resnet18", "resnet50"]},
        "learningRate": LR,
        "momentum": {"type": "normal", "mu": 0.9, "sigma": 0.05},
    },
    {
        "modelName": {"type": "choice", "values": ["vitb16r224"]},
        "numberOfEpochs": {"type": "quniform", "minValue": 5, "maxValue": 20, "q": 5},
        "weightDecay": {"type": "loguniform", "minValue": -11.5, "maxValue": -6.9},
    },
]


def asks(sweep: Sweep, n: int) -> list[Suggestion]:
    out = []
    for _ in range(n):
        suggestion = sweep.ask()
        assert suggestion is not None
        out.append(suggestion)
    return out


# ---- random ---------------------------------------------------------------------------------------


def test_random_is_reproducible_with_a_seed_and_covers_both_sub_spaces(job: JobMaker, tmp_path: Path) -> None:
    spec = job(limits={"maxTrials": 30}, searchSpace=TWO_SUB_SPACES)
    with Sweep.open(spec, tmp_path / "a.db", seed=11) as a, Sweep.open(spec, tmp_path / "b.db", seed=11) as b:
        first, second = asks(a, 30), asks(b, 30)
        assert a.ask() is None  # maxTrials reached
    assert [s.params for s in first] == [s.params for s in second]
    assert [s.number for s in first] == list(range(30))
    assert {s.source for s in first} == {"random"}
    by_space: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
    for s in first:
        assert s.sub_space is not None
        by_space[s.sub_space].append(s.params)
    assert 8 <= len(by_space[0]) <= 22, "sub-spaces are picked uniformly"
    for params in by_space[0]:
        assert set(params) == {"modelName", "learningRate", "momentum"}
        assert params["modelName"] in ("resnet18", "resnet50")
        assert 0.001 <= params["learningRate"] <= 0.01
        assert 0 <= params["momentum"] <= 1
    for params in by_space[1]:
        assert set(params) == {"modelName", "numberOfEpochs", "weightDecay"}
        assert params["numberOfEpochs"] in (5, 10, 15, 20)
        assert math.exp(-11.5) <= params["weightDecay"] <= math.exp(-6.9)
    with Sweep.open(spec, tmp_path / "c.db", seed=12) as c:
        assert [s.params for s in asks(c, 5)] != [s.params for s in first[:5]]


# ---- grid -------------------------------------------------------------------------------------------


def test_grid_is_the_concatenation_of_each_sub_spaces_grid_and_never_repeats(job: JobMaker, tmp_path: Path) -> None:
    space = [
        {
            "modelName": {"type": "choice", "values": ["resnet18", "resnet50"]},
            "optimizer": {"type": "choice", "values": ["sgd", "adam", "adamw"]},
        },
        {
            "modelName": {"type": "choice", "values": ["vitb16r224"]},
            "numberOfEpochs": {"type": "choice", "values": [10, 20]},
        },
    ]
    spec = job(limits={"maxTrials": 50}, searchSpace=space, sweep={"samplingAlgorithm": "grid"})
    with Sweep.open(spec, tmp_path / "grid.db") as sweep:
        seen = []
        while (suggestion := sweep.ask()) is not None:
            seen.append(suggestion)
        assert sweep.ask() is None
    assert [(s.sub_space, s.params) for s in seen] == [
        (0, {"modelName": "resnet18", "optimizer": "sgd"}),
        (0, {"modelName": "resnet18", "optimizer": "adam"}),
        (0, {"modelName": "resnet18", "optimizer": "adamw"}),
        (0, {"modelName": "resnet50", "optimizer": "sgd"}),
        (0, {"modelName": "resnet50", "optimizer": "adam"}),
        (0, {"modelName": "resnet50", "optimizer": "adamw"}),
        (1, {"modelName": "vitb16r224", "numberOfEpochs": 10}),
        (1, {"modelName": "vitb16r224", "numberOfEpochs": 20}),
    ]
    assert {s.source for s in seen} == {"grid"}
    short = job(limits={"maxTrials": 3}, searchSpace=space, sweep={"samplingAlgorithm": "grid"})
    with Sweep.open(short, tmp_path / "short.db") as sweep:
        assert len(asks(sweep, 3)) == 3
        assert sweep.ask() is None


# ---- bayesian ---------------------------------------------------------------------------------------


def test_bayesian_concentrates_where_told_values_are_good(job: JobMaker, tmp_path: Path) -> None:
    space = [{"momentum": {"type": "uniform", "minValue": 0.0, "maxValue": 1.0}}]
    spec = job(limits={"maxTrials": 30}, searchSpace=space, sweep={"samplingAlgorithm": "bayesian"})
    with Sweep.open(spec, tmp_path / "tpe.db", seed=5) as sweep:
        values = []
        for _ in range(30):
            suggestion = sweep.ask()
            assert suggestion is not None and suggestion.source == "bayesian" and suggestion.sub_space == 0
            momentum = suggestion.params["momentum"]
            values.append(momentum)
            sweep.tell(suggestion.number, -abs(momentum - 0.15), "succeeded")  # best at 0.15
        best = sweep.best()
    startup, later = values[:6], values[-12:]  # 6 random startup trials (maxTrials // 5)
    assert abs(statistics.median(later) - 0.15) < 0.1
    assert statistics.fmean(abs(v - 0.15) for v in later) < 0.5 * statistics.fmean(abs(v - 0.15) for v in startup)
    assert best is not None and abs(best.params["momentum"] - 0.15) < 0.03


def test_bayesian_quantises_and_rounds_like_azure(job: JobMaker, bypass: JobEditor, tmp_path: Path) -> None:
    base = job(
        limits={"maxTrials": 8},
        sweep={"samplingAlgorithm": "bayesian"},
        searchSpace=[
            {
                "numberOfEpochs": {"type": "quniform", "minValue": 5, "maxValue": 30, "q": 5},
                "optimizer": {"type": "choice", "values": ["sgd", "adamw"]},
                "learningRate": {"type": "quniform", "minValue": 0.001, "maxValue": 0.01, "q": 0.001},
            }
        ],
    )
    with Sweep.open(base, tmp_path / "q.db", seed=2) as sweep:
        for suggestion in asks(sweep, 8):
            sweep.tell(suggestion.number, suggestion.params["numberOfEpochs"] / 30, "succeeded")
            assert suggestion.params["numberOfEpochs"] in (5, 10, 15, 20, 25, 30)
            assert isinstance(suggestion.params["numberOfEpochs"], int)
            assert suggestion.params["optimizer"] in ("sgd", "adamw")
            assert round(suggestion.params["learningRate"] * 1000) / 1000 == suggestion.params["learningRate"]


# ---- individual trial -------------------------------------------------------------------------------


def test_a_single_trial_job_asks_exactly_one_individual_trial(job: JobMaker, tmp_path: Path) -> None:
    with Sweep.open(job(trainingParameters={"modelName": "resnet18"}), tmp_path / "one.db", seed=1) as sweep:
        assert sweep.ask() == Suggestion(0, {"modelName": "resnet18"}, None, "individual")
        assert sweep.ask() is None
        sweep.tell(0, 0.75, "succeeded")
        best = sweep.best()
    assert best is not None and (best.number, best.value, best.state) == (0, 0.75, "succeeded")


# ---- AutoMode ---------------------------------------------------------------------------------------


def test_automode_asks_the_portfolio_in_order_then_tpe_around_the_best(job: JobMaker, tmp_path: Path) -> None:
    spec = job(limits={"maxTrials": 8}, trainingParameters={"optimizer": "sgd"})
    memory = 8 * 2**30
    expected = portfolio(spec.spec.task, 8, device_memory_bytes=memory, fixed={"optimizer": "sgd"})
    assert len(expected) == 6
    with Sweep.open(spec, tmp_path / "auto.db", seed=3, device_memory_bytes=memory) as sweep:
        first = asks(sweep, 6)
        assert [s.params for s in first] == expected
        assert {s.source for s in first} == {"portfolio"}
        scores = [0.5, 0.9, 0.6, 0.4, 0.3, 0.2]  # the second config (seresnext) is best
        for suggestion, score in zip(first, scores, strict=True):
            sweep.tell(suggestion.number, score, "succeeded")
        rest = asks(sweep, 2)
        assert sweep.ask() is None
    for suggestion in rest:
        assert suggestion.source == "automode-tpe"
        params = suggestion.params
        assert params["modelName"] == "seresnext"
        assert params["trainingBatchSize"] == expected[1]["trainingBatchSize"]
        assert 0.01 / 3 * 0.999 <= params["learningRate"] <= 0.03 * 1.001
        assert 10 <= params["numberOfEpochs"] <= 30 and isinstance(params["numberOfEpochs"], int)
        assert "optimizer" not in params


# ---- tell, trials, best ----------------------------------------------------------------------------


def test_tell_records_states_and_best_ranks_succeeded_and_early_terminated(job: JobMaker, tmp_path: Path) -> None:
    spec = job(limits={"maxTrials": 6}, searchSpace=[{"learningRate": LR}])
    with Sweep.open(spec, tmp_path / "tell.db", seed=4) as sweep:
        asks(sweep, 6)
        sweep.tell(0, 0.5, "succeeded")
        sweep.tell(1, 0.7, "early_terminated")
        sweep.tell(2, 0.99, "failed")
        sweep.tell(3, 0.98, "timed_out")
        sweep.tell(4, math.nan, "succeeded")
        best = sweep.best()
        states = [(t.number, t.state, t.value) for t in sweep.trials()]
        with pytest.raises(ValueError, match="already told"):
            sweep.tell(0, 0.6, "succeeded")
        with pytest.raises(ValueError, match="no trial 9"):
            sweep.tell(9, 0.6, "succeeded")
        with pytest.raises(ValueError, match="state must be one of"):
            sweep.tell(5, 0.6, "done")
    assert best is not None and (best.number, best.value, best.state) == (1, 0.7, "early_terminated")
    assert states == [
        (0, "succeeded", 0.5),
        (1, "early_terminated", 0.7),
        (2, "failed", 0.99),
        (3, "timed_out", 0.98),
        (4, "succeeded", None),
        (5, "running", None),
    ]


# ---- resume -----------------------------------------------------------------------------------------


def test_resume_continues_numbering_and_returns_untold_trials(job: JobMaker, tmp_path: Path) -> None:
    spec = job(limits={"maxTrials": 10, "timeoutMinutes": 60}, searchSpace=TWO_SUB_SPACES)
    path = tmp_path / "study.db"
    with Sweep.open(spec, path) as sweep:  # no seed: one is drawn and recorded
        asked = asks(sweep, 4)
        sweep.tell(1, 0.5, "succeeded")
        seed = sweep.seed
    # the runner died; a new one resumes with a longer timeout and more concurrency (allowed)
    resumed_job = job(
        limits={"maxTrials": 10, "timeoutMinutes": 600, "maxConcurrentTrials": 4}, searchSpace=TWO_SUB_SPACES
    )
    with Sweep.open(resumed_job, path) as sweep:
        assert sweep.seed == seed
        assert sweep.pending() == [asked[0], asked[2], asked[3]]
        following = sweep.ask()
        assert [t.state for t in sweep.trials()] == ["running", "succeeded", "running", "running", "running"]
    assert following is not None and following.number == 4
    # the same seed gives the same fifth trial in a fresh study: resuming did not disturb the sequence
    with Sweep.open(spec, tmp_path / "fresh.db", seed=seed) as fresh:
        assert asks(fresh, 5)[4] == following


def test_a_trial_whose_ask_was_interrupted_is_rebuilt(job: JobMaker, tmp_path: Path) -> None:
    """The runner died after Optuna created the trial but before the suggestion was written."""
    spec = job(limits={"maxTrials": 5}, searchSpace=TWO_SUB_SPACES)
    path = tmp_path / "torn.db"
    with Sweep.open(spec, path, seed=21) as sweep:
        asks(sweep, 1)
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    optuna.load_study(study_name=STUDY_NAME, storage=storage).ask()
    storage.engine.dispose()
    with Sweep.open(spec, path) as sweep:
        pending = sweep.pending()
    with Sweep.open(spec, tmp_path / "reference.db", seed=21) as reference:
        expected = asks(reference, 2)
    assert pending == expected


def test_resume_with_an_edited_job_is_refused_naming_the_change(job: JobMaker, tmp_path: Path) -> None:
    spec = job(limits={"maxTrials": 10}, searchSpace=[{"learningRate": LR}])
    path = tmp_path / "edited.db"
    Sweep.open(spec, path, seed=1).close()
    edited = job(limits={"maxTrials": 20}, searchSpace=[{"learningRate": {**LR, "maxValue": 0.02}}])
    with pytest.raises(KubevisionError) as info:
        Sweep.open(edited, path)
    assert "cannot resume: the job changed" in info.value.headline
    assert [str(p) for p in info.value.problems] == [
        "spec.limits.maxTrials: 10 -> 20",
        "spec.searchSpace[0].learningRate.maxValue: 0.01 -> 0.02",
    ]
    with pytest.raises(KubevisionError, match="started with seed 1"):
        Sweep.open(spec, path, seed=2)
    Sweep.open(spec, path, seed=1).close()  # the unchanged job resumes


def test_bad_storage_and_bad_sweeps_are_kubevision_errors(job: JobMaker, bypass: JobEditor, tmp_path: Path) -> None:
    spec = job(limits={"maxTrials": 4}, searchSpace=[{"learningRate": LR}])
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(KubevisionError, match="cannot open the sweep storage"):
        Sweep.open(spec, tmp_path / "dir.db")
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(KubevisionError, match="cannot open the sweep storage"):
        Sweep.open(spec, tmp_path / "junk.db")
    quantised_to_zero = job(
        limits={"maxTrials": 4},
        searchSpace=[{"learningRate": {"type": "quniform", "minValue": 0.0001, "maxValue": 0.001, "q": 0.01}}],
    )
    with pytest.raises(KubevisionError, match="search space cannot be swept"):
        Sweep.open(quantised_to_zero, tmp_path / "never.db")
    assert not (tmp_path / "never.db").exists()


def test_the_package_imports_without_optuna() -> None:
    """The operator imports kubevision.sweep; its image has no optuna."""
    code = (
        "import sys; import kubevision.sweep, kubevision.sweep.protocol, kubevision.sweep.automode; "
        "assert 'optuna' not in sys.modules, 'optuna imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
