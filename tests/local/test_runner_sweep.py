"""A real 4-trial grid sweep, 2 trials at a time, one of them built to crash, through `kubevision run`.

One run (module fixture) backs several claims: the leaderboard has every trial, the concurrency
limit holds, the trial configs are the grid's points, a crashing trial is recorded with its error
and the sweep goes on, best/ is a loadable model, the report has its plots, and the folder is
protected from an accidental second run while `--resume` on a finished run trains nothing.

The crash is a real user mistake a sweep can make: `layersToFreeze: 40` is valid for the job (the
value is within the hyperparameter's range) but mobilenetv2 has only 19 freezable layers, which the
trial program finds when it builds the model.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from runner_support import kubevision_run, leaderboard, read_json, write_job

from kubevision.cli import cli

GRID = [
    {"modelName": {"type": "choice", "values": ["resnet18"]},
     "learningRate": {"type": "choice", "values": [0.01, 0.05]}},
    {"modelName": {"type": "choice", "values": ["mobilenetv2"]},
     "layersToFreeze": {"type": "choice", "values": [0, 40]}},
]
POINTS = [{"modelName": "resnet18", "learningRate": 0.01}, {"modelName": "resnet18", "learningRate": 0.05},
          {"modelName": "mobilenetv2", "layersToFreeze": 0}, {"modelName": "mobilenetv2", "layersToFreeze": 40}]


@pytest.fixture(scope="module")
def run(digits: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp("sweep")
    job = write_job(tmp / "job.yaml", digits, name="digits-grid", limits={"maxTrials": 4, "maxConcurrentTrials": 2},
                    sweep={"samplingAlgorithm": "grid"}, search_space=GRID)
    out = tmp / "out"
    started = time.monotonic()
    result = kubevision_run(job, out)
    return SimpleNamespace(job=job, out=out, result=result, seconds=time.monotonic() - started)


def test_four_trials_run_two_at_a_time_and_all_reach_the_leaderboard(run: SimpleNamespace) -> None:
    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    rows = leaderboard(run.out)
    assert sorted(int(r["trial"]) for r in rows) == [0, 1, 2, 3]
    assert sorted(r["status"] for r in rows) == ["failed", "succeeded", "succeeded", "succeeded"]
    assert [r["rank"] for r in rows] == ["1", "2", "3", ""]
    running, peak = 0, 0
    for line in run.result.stdout.splitlines():
        if re.search(r"\] trial \d started", line):
            running += 1
        elif re.search(r"\] trial \d (succeeded|failed|early_terminated|timed_out)", line):
            running -= 1
        peak = max(peak, running)
    assert peak == 2 and running == 0
    md = (run.out / "leaderboard.md").read_text()
    assert md.count("\n| ") == 5 and "layersToFreeze is 40" in md


def test_each_trial_got_its_grid_point_on_the_cpu_without_onnx(run: SimpleNamespace) -> None:
    for number, point in enumerate(POINTS):
        config = read_json(run.out / "trials" / str(number) / "trial.json")
        assert config["sampled"] == point
        assert config["trialName"] == f"digits-grid-{number}"
        assert config["runtime"]["device"] == "cpu" and config["runtime"]["exportOnnx"] is False
        assert config["outputDir"] == str(run.out / "trials" / str(number))
        assert "earlyTermination" not in config  # no policy, no endpoint
        assert (run.out / "trials" / str(number) / "trial.log").read_text().startswith("==== ")


def test_the_crashing_trial_is_recorded_with_its_error_and_log_tail(run: SimpleNamespace) -> None:
    outcome = read_json(run.out / "trials" / "3" / "outcome.json")
    assert outcome["state"] == "failed" and outcome["exit_code"] != 0 and outcome["value"] is None
    assert outcome["error"].startswith("error: layersToFreeze is 40, but mobilenetv2 has 19 freezable layers")
    assert 1 <= len(outcome["log_tail"]) <= 20 and "layersToFreeze" in outcome["log_tail"][-1]
    assert "trial 3 failed" in run.result.stdout and "layersToFreeze is 40" in run.result.stdout
    for number in (0, 1, 2):
        summary = read_json(run.out / "trials" / str(number) / "summary.json")
        assert summary["status"] == "completed" and summary["epochs_run"] == 1


def test_best_is_a_copy_of_the_best_trials_model_and_predicts(run: SimpleNamespace, digits: Path,
                                                              tmp_path: Path) -> None:
    rows = leaderboard(run.out)
    best = int(rows[0]["trial"])
    assert (run.out / "best" / "MLmodel").is_file() and not (run.out / "best").is_symlink()
    source = run.out / "trials" / str(best) / "mlflow-model" / "artifacts" / "model.pt"
    assert (run.out / "best" / "artifacts" / "model.pt").read_bytes() == source.read_bytes()
    assert f"best model:  {run.out / 'best'}  (trial {best}, accuracy " in run.result.stdout
    assert f"report:      {run.out / 'report.html'}" in run.result.stdout
    marker = read_json(run.out / "run.json")
    assert marker["phase"] == "succeeded" and marker["best"]["trial"] == best

    from kubevision.trainer.predict import run_predict

    images = [digits / json.loads(line)["image_url"] for line in (digits / "val40.jsonl").read_text().splitlines()[:3]]
    predictions = tmp_path / "predictions.jsonl"
    assert run_predict(run.out / "best", images, out_file=predictions, batch_size=4) == 3
    for line in predictions.read_text().splitlines():
        answer = json.loads(line)
        assert len(answer["probs"]) == 10 and abs(sum(answer["probs"]) - 1) < 1e-4


def test_report_holds_the_plots_inline(run: SimpleNamespace) -> None:
    page = (run.out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 4
    assert "digits-grid" in page and "layersToFreeze is 40" in page and "grid sweep" in page


def test_a_second_run_is_refused_and_resume_trains_nothing_more(run: SimpleNamespace) -> None:
    again = CliRunner().invoke(cli, ["run", str(run.job), "--output", str(run.out)], catch_exceptions=False)
    assert again.exit_code == 1 and "earlier run of 'digits-grid'" in again.output and "--resume" in again.output
    before = {p: p.stat().st_mtime_ns for p in (run.out / "trials").rglob("metrics.jsonl")}
    resumed = CliRunner().invoke(cli, ["run", str(run.job), "--output", str(run.out), "--resume"],
                                 catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    assert "started" not in resumed.output and "best model:" in resumed.output
    assert {p: p.stat().st_mtime_ns for p in (run.out / "trials").rglob("metrics.jsonl")} == before
    assert len(leaderboard(run.out)) == 4


def test_a_result_that_cannot_be_written_is_a_clear_error_and_loses_nothing(run: SimpleNamespace) -> None:
    """The leaderboard's place is taken by a folder (as good as a full disk for the rename): the run says
    which file, that nothing finished is lost and how to continue; after the fix, --resume writes it."""
    blocker = run.out / "leaderboard.md"
    blocker.unlink()
    blocker.mkdir()
    try:
        failed = CliRunner().invoke(cli, ["run", str(run.job), "--output", str(run.out), "--resume"],
                                    catch_exceptions=False)
        assert failed.exit_code == 1 and "Traceback" not in failed.output
        assert "error: cannot write the leaderboard: Is a directory" in failed.output
        assert "nothing finished is lost: 4 finished trial(s)" in failed.output
        assert f"kubevision run {run.job} --output {run.out} --resume" in failed.output
        assert all((run.out / "trials" / str(n) / "outcome.json").is_file() for n in range(4))
    finally:
        blocker.rmdir()
    fixed = CliRunner().invoke(cli, ["run", str(run.job), "--output", str(run.out), "--resume"],
                               catch_exceptions=False)
    assert fixed.exit_code == 0 and blocker.is_file() and "started" not in fixed.output
