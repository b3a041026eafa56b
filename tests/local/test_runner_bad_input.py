"""Bad input through `kubevision run`: exit 1, a message that says what and where, no traceback, no trial.

Each case is a job or an invocation a user could plausibly write. "No trial started" is checked on
disk: the output folder has no trials/ (and for refused folders, nothing of ours at all).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from runner_support import write_job

from kubevision.cli import cli

LR = {"type": "uniform", "minValue": 0.001, "maxValue": 0.01}
MODELS = {"type": "choice", "values": ["resnet18"]}

CASES: dict[str, tuple[dict[str, Any], str]] = {
    "unknown hyperparameter in the search space": (
        {"search_space": [{"modelName": MODELS, "learningrate": LR}], "limits": {"maxTrials": 2}},
        "learningrate",
    ),
    "unknown distribution": (
        {"search_space": [{"modelName": MODELS, "learningRate": {"type": "gaussian", "mu": 0.01}}],
         "limits": {"maxTrials": 2}},
        "gaussian",
    ),
    "grid with a continuous distribution": (
        {"search_space": [{"modelName": MODELS, "learningRate": LR}], "sweep": {"samplingAlgorithm": "grid"},
         "limits": {"maxTrials": 2}},
        "grid",
    ),
    "bayesian with two sub-spaces": (
        {"search_space": [{"modelName": MODELS, "learningRate": LR},
                          {"modelName": {"type": "choice", "values": ["mobilenetv2"]}, "learningRate": LR}],
         "sweep": {"samplingAlgorithm": "bayesian"}, "limits": {"maxTrials": 4}},
        "bayesian",
    ),
    "a task the trial program does not train yet": (
        {"task": "image_object_detection", "base": {"modelName": "fasterrcnn_resnet50_fpn"}},
        "image_object_detection cannot run locally yet",
    ),
    "training data that is not there": ({"train": "missing"}, "does not exist"),
}


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, ["run", *args], catch_exceptions=False)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_jobs_fail_before_any_trial(case: str, digits: Path, tmp_path: Path) -> None:
    changes, expected = CASES[case]
    changes = dict(changes)
    job = write_job(tmp_path / "job.yaml", digits, **changes)
    out = tmp_path / "out"
    result = _invoke(str(job), "--output", str(out))
    assert result.exit_code == 1, result.output
    assert "error:" in result.output and expected in result.output, result.output
    assert "Traceback" not in result.output
    assert not (out / "trials").exists()


def test_a_folder_that_is_not_a_run_is_never_written(digits: Path, tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.yaml", digits)
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    for extra in ([], ["--resume"]):
        result = _invoke(str(job), "--output", str(out), *extra)
        assert result.exit_code == 1 and "holds no kubevision run (found thesis.tex)" in result.output
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


def test_an_unwritable_output_folder_is_reported_before_any_trial(digits: Path, tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.yaml", digits)
    (tmp_path / "file").write_text("x")
    result = _invoke(str(job), "--output", str(tmp_path / "file" / "run"))
    assert result.exit_code == 1 and "cannot write to the output folder" in result.output
    assert "no trial was started" in result.output and "Traceback" not in result.output


def test_timeouts_must_be_positive(digits: Path, tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.yaml", digits)
    result = _invoke(str(job), "--output", str(tmp_path / "out"), "--timeout-minutes", "0")
    assert result.exit_code == 1 and "--timeout-minutes must be a positive number" in result.output
    assert not (tmp_path / "out").exists()
