"""The job's timeout, Ctrl-C, a sweep where every trial fails, and AutoMode's first picks, through `kubevision run`.

The timeout is given as `--timeout-minutes 0.05` (3 s, less than a trial needs to start): the
running trial must be stopped and recorded as timed out, nothing else launched, and the run must
end at once with exit 1 (no model). The all-failing sweep is an AutoMode job on 8 training images
with a batch of 16: both trials fail in the trial program, the run fails with the first one's
error, and the trial configs show the AutoMode portfolio's first two entries in order.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from runner_support import ENV, KUBEVISION, kubevision_run, leaderboard, read_json, write_job

from kubevision.api.loading import load_job
from kubevision.api.tasks import Task
from kubevision.sweep.automode import portfolio
from kubevision.sweep.study import Sweep


def test_timeouts_stop_trials_keep_their_records_and_end_the_run(digits: Path, tmp_path: Path) -> None:
    """trialTimeoutMinutes 0.05 (3 s) stops trial 0; the job's timeoutMinutes 0.12 (7.2 s) ends the run."""
    job = write_job(tmp_path / "job.yaml", digits, name="short", params={"numberOfEpochs": 5},
                    limits={"maxTrials": 4, "maxConcurrentTrials": 1})
    out = tmp_path / "out"
    started = time.monotonic()
    result = kubevision_run(job, out, "--trial-timeout-minutes", "0.05", "--timeout-minutes", "0.12")
    assert time.monotonic() - started < 60
    assert result.returncode == 1, result.stdout + result.stderr
    assert "trial 0: trialTimeoutMinutes (0.05) reached" in result.stdout
    assert "timeoutMinutes (0.12) reached: no new trials" in result.stdout
    assert "no trial produced a model before the timeout" in result.stderr and "Traceback" not in result.stderr
    rows = leaderboard(out)
    assert 2 <= len(rows) < 4 and {r["status"] for r in rows} == {"timed_out"}
    reasons = [read_json(out / "trials" / r["trial"] / "outcome.json")["stop_reason"] for r in rows]
    assert reasons[0] == "trialTimeoutMinutes (0.05) was reached"
    assert all(r in ("trialTimeoutMinutes (0.05) was reached", "the job's timeoutMinutes (0.12) was reached")
               for r in reasons)
    assert not (out / "trials" / "3").exists()
    assert read_json(out / "run.json")["phase"] == "failed"


def test_automode_tries_the_portfolio_in_order_and_a_run_of_failures_fails(digits: Path, tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.yaml", digits, name="auto", train="train8",
                    limits={"maxTrials": 2, "maxConcurrentTrials": 2})
    out = tmp_path / "out"
    result = kubevision_run(job, out)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: all 2 trial(s) failed; the first, trial 0, with:" in result.stderr
    assert "trainingBatchSize 16 is larger than the 8 training images" in result.stderr
    assert "Traceback" not in result.stderr
    spec = load_job(job).spec
    fixed = spec.training_parameters.model_dump(by_alias=True, exclude_none=True, mode="json")
    expected = portfolio(Task.IMAGE_CLASSIFICATION, 2, device_memory_bytes=None, fixed=fixed)
    for number in (0, 1):
        assert read_json(out / "trials" / str(number) / "trial.json")["sampled"] == expected[number]
        assert read_json(out / "trials" / str(number) / "outcome.json")["source"] == "portfolio"
    assert [r["status"] for r in leaderboard(out)] == ["failed", "failed"]
    assert (out / "report.html").is_file() and not (out / "best").exists()


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(digits: Path, tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.yaml", digits, name="stopped", params={"numberOfEpochs": 5},
                    limits={"maxTrials": 2, "maxConcurrentTrials": 1})
    out = tmp_path / "out"
    runner = subprocess.Popen([*KUBEVISION, "run", str(job), "--output", str(out)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 60
    while not (out / "trials" / "0" / "trial.json").exists():
        assert runner.poll() is None and time.monotonic() < deadline, runner.communicate()
        time.sleep(0.1)
    time.sleep(0.5)
    runner.send_signal(signal.SIGINT)
    stdout, stderr = runner.communicate(timeout=120)
    assert runner.returncode == 130, stdout + stderr
    assert "Ctrl-C: stopping: no new trials" in stdout
    assert f"kubevision run {job} --output {out} --resume" in stderr and "Traceback" not in stderr
    assert read_json(out / "trials" / "0" / "outcome.json")["state"] == "interrupted"
    assert not (out / "trials" / "1").exists()
    assert read_json(out / "run.json")["phase"] == "interrupted"
    with Sweep.open(load_job(job), out / "sweep.db") as sweep:  # left pending: --resume runs it again
        assert [s.number for s in sweep.pending()] == [0]
