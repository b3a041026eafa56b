"""Resume after the runner is killed with -9, and bandit early termination judged across the restart.

The scenario (resume_scenario.py): a random sweep over learningRate in {0.01, 1e-9}, seeded so that
the good trial runs first, one trial at a time, bandit early termination. Run 1 is SIGKILLed as soon
as the second trial is launched. Run 2 (`--resume`) must not run the finished trial again, must run
the killed one again, and bandit must stop it before its last epoch, which needs the first trial's
history: so it also shows that the early-termination state survives the kill.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from resume_scenario import BAD, FirstRun
from runner_support import kubevision_run, leaderboard, read_json


@pytest.fixture(scope="module")
def resumed(resume_first_run: FirstRun) -> SimpleNamespace:
    first = resume_first_run
    output = first.finish()
    trial0 = first.out / "trials" / "0"
    before = {"metrics": (trial0 / "metrics.jsonl").read_bytes(), "outcome": read_json(trial0 / "outcome.json")}
    second = kubevision_run(first.job, first.out, "--resume")
    return SimpleNamespace(out=first.out, first=output, second=second, before=before, seed=first.seed)


def test_resume_after_kill_runs_only_the_unfinished_trial(resumed: SimpleNamespace) -> None:
    second = resumed.second
    assert second.returncode == 0, second.stdout + second.stderr
    assert "trial 0 started" in resumed.first and "trial 0 succeeded" in resumed.first
    assert "trial 0 started" not in second.stdout
    assert "trial 1 started" in second.stdout and "attempt 2" in second.stdout
    trial0 = resumed.out / "trials" / "0"
    assert (trial0 / "metrics.jsonl").read_bytes() == resumed.before["metrics"]
    assert read_json(trial0 / "outcome.json") == resumed.before["outcome"]
    assert (trial0 / "trial.log").read_text().count("==== ") == 2  # one launch: header + command line
    assert (resumed.out / "trials" / "1" / "trial.log").read_text().count("attempt") == 2
    assert sorted(r["trial"] for r in leaderboard(resumed.out)) == ["0", "1"]
    assert read_json(resumed.out / "run.json")["seed"] == resumed.seed


def test_bandit_stops_the_bad_trial_before_its_last_epoch(resumed: SimpleNamespace) -> None:
    good = read_json(resumed.out / "trials" / "0" / "summary.json")
    bad = read_json(resumed.out / "trials" / "1" / "summary.json")
    assert good["status"] == "completed" and good["epochs_run"] == 3 and good["best_score"] > 0.8
    assert bad["hyperparameters"]["learningRate"] == BAD
    assert bad["status"] == "early_terminated" and bad["epochs_run"] < bad["epochs_planned"] == 3
    outcome = read_json(resumed.out / "trials" / "1" / "outcome.json")
    assert outcome["state"] == "early_terminated" and "bandit" in (outcome["stop_reason"] or "")
    assert outcome["model_dir"]  # a stopped trial keeps its best model
    rows = leaderboard(resumed.out)
    assert (rows[0]["trial"], rows[0]["status"]) == ("0", "succeeded")
    assert (rows[1]["trial"], rows[1]["status"]) == ("1", "early_terminated")
    state = read_json(resumed.out / "early-termination.json")
    assert "bandit-1" in state["stopped"] and len(state["reports"]["bandit-0"]) == 3
