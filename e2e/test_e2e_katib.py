"""The operator against Katib played for real: does bestTrial point at the model that really is best?

Scenario (e2e.scenario): a 3-trial grid over learningRate (1e-7, 0.05, 0.1) on 240 real digits,
with bandit early termination; beside it a job whose training data does not exist. The real kopf
operator plans the Experiments; the Katib player reads them from the API server, runs the PyTorchJob
command of each trial (the real `kubevision train`, on the "PVC" folder), and writes Katib's status.
Then the operator's status is checked against the trials' own outputs on disk, and the model it
points at is loaded and asked to predict.

The same scenario runs on a real cluster (Katib + the training operator + the operator's Helm chart)
with KUBEVISION_E2E_CLUSTER=1 and KUBECONFIG set; see README.md.

Budget: about 20 s of CPU per trial (ONNX export skipped: `--no-onnx` is appended to the trial
command, the one deviation from the pod's command line), ~10 s for the failing trial (the trainer's
imports come before its data check), ~15 s in the test process (operator, predict's torch import):
about 135 s of CPU measured in all, so about 70 s of wall time on two idle cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import kmock
import pytest

from e2e.harness import kmock_cluster, plan_helpers
from e2e.katib.pod import LocalCluster
from e2e.katib.rest import KubeApi
from e2e.katib_player import EXPERIMENTS, PYTORCHJOBS, TRIALS, KatibPlayer
from e2e.scenario import BAD_LEARNING_RATE, DATA_DIR, LEARNING_RATES, job_manifest, read_trial, write_tiny_digits
from e2e.shapes import katib_errors
from kubevision.operator.settings import OperatorSettings

NS = kmock_cluster.NS
JOBS = kmock_cluster.JOBS
CLAIM = "kubevision-outputs"
SERVICE = "http://kubevision-operator.kubevision-system.svc:8082"
SETTINGS = OperatorSettings(
    trainer_image="registry.example/kubevision-trainer:e2e",
    termination_url=SERVICE,
    output_pvc=CLAIM,
    backoff_limit=0,  # a trial with bad data fails at once instead of restarting 3 times
)
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def finished(cluster: kmock.KubernetesEmulator, *jobs: str) -> dict[str, dict[str, Any]] | None:
    statuses = {job: kmock_cluster.job_status(cluster, job) for job in jobs}
    return statuses if all(s.get("phase") in ("Succeeded", "Failed") for s in statuses.values()) else None


@pytest.mark.timeout(600)  # ~70 s alone on 2 cores; headroom for a CI machine shared with other jobs
async def test_the_operator_points_at_the_model_that_really_is_best(
    cluster: kmock.KubernetesEmulator, tmp_path: Path
) -> None:
    volume = tmp_path / "pvc"
    data = write_tiny_digits(volume)
    operator = kmock_cluster.OperatorHandle(cluster)
    await operator.start(settings=SETTINGS)
    api = KubeApi(str(cluster.url))
    local = LocalCluster(claims={CLAIM: volume}, services={SERVICE: operator.termination_url},
                         env=THREADS, extra_args=("--no-onnx",))
    player = KatibPlayer(api, local, tmp_path / "pods", seed=11)
    stop = asyncio.Event()
    watcher = asyncio.create_task(player.watch(NS, stop))
    started = time.monotonic()
    try:
        await kmock_cluster.create(cluster, JOBS, job_manifest("digits", NS))
        nodata = job_manifest("nodata", NS, train=f"{DATA_DIR}/missing.jsonl",
                              limits={"maxTrials": 1, "timeoutMinutes": 60})
        del nodata["spec"]["sweep"], nodata["spec"]["searchSpace"]  # a single trial
        await kmock_cluster.create(cluster, JOBS, nodata)
        statuses = await kmock_cluster.wait_for(lambda: finished(cluster, "digits", "nodata"), timeout=480,
                                                what="both jobs to finish")
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        await watcher
        await api.close()
        await operator.stop()
    print(f"\ne2e: both jobs finished {elapsed:.1f} s after they were applied")
    for name in ("digits", "nodata"):
        assert player.runs[name].error is None, player.runs[name].error

    # ---- the good job: Katib's objects as Katib writes them ----
    status = statuses["digits"]
    experiment = kmock_cluster.stored(cluster, EXPERIMENTS, "digits")
    assert experiment is not None and katib_errors(experiment) == []
    assert [c["reason"] for c in experiment["status"]["conditions"] if c["type"] == "Succeeded"] == [
        "ExperimentMaxTrialsReached"]
    trials = [t for t in (kmock_cluster.stored(cluster, TRIALS, n) for n in kmock_cluster.names(cluster, TRIALS))
              if t and t["metadata"]["labels"]["katib.kubeflow.org/experiment"] == "digits"]
    assert len(trials) == len(LEARNING_RATES) == experiment["status"]["trials"]
    assert sorted(float(t["spec"]["parameterAssignments"][0]["value"]) for t in trials) == sorted(LEARNING_RATES)
    for trial in trials:
        assert katib_errors(trial) == []
        assert plan_helpers.pytorchjob_schema_errors(trial["spec"]["runSpec"]) == []
    assert [n for n in kmock_cluster.names(cluster, PYTORCHJOBS)] == []  # retain: false

    # ---- the ground truth: what each trial wrote on the shared volume ----
    outcomes = {t["metadata"]["name"]: read_trial(t["metadata"]["name"], volume / NS / "digits" / "trials" /
                                                  t["metadata"]["name"]) for t in trials}
    for name, outcome in outcomes.items():
        observed = player.runs["digits"].trials[name].observation or {}
        accuracy = next(m for m in observed["metrics"] if m["name"] == "accuracy")
        assert float(accuracy["max"]) == pytest.approx(outcome.best_accuracy)  # Katib read what the trial printed
        assert outcome.summary["best_score"] == pytest.approx(outcome.best_accuracy)
    top = max(o.best_accuracy for o in outcomes.values())
    best = min(name for name, o in outcomes.items() if o.best_accuracy == top)  # ties: the smaller name
    bad = next(o for o in outcomes.values() if o.learning_rate == BAD_LEARNING_RATE)
    assert outcomes[best].learning_rate != BAD_LEARNING_RATE and bad.best_accuracy < top
    print("e2e trials: " + ", ".join(f"lr={o.learning_rate:g} acc={o.best_accuracy:.3f} {o.status}"
                                     for o in sorted(outcomes.values(), key=lambda o: o.learning_rate)))

    # ---- the operator's status agrees ----
    assert status["phase"] == "Succeeded"
    assert kmock_cluster.condition(status, "Succeeded")["reason"] == "MaxTrialsReached"
    best_trial = status["bestTrial"]
    assert best_trial["name"] == best
    assert best_trial["metric"] == pytest.approx(top)
    assert best_trial["parameters"] == {"learningRate": pytest.approx(outcomes[best].learning_rate)}
    assert best_trial["modelUri"] == f"pvc://{CLAIM}/{NS}/digits/trials/{best}/mlflow-model"
    early = {name for name, o in outcomes.items() if o.status == "early_terminated"}  # told to stop by the operator
    assert status["trials"] == {"total": 3, "running": 0, "succeeded": 3 - len(early), "failed": 0,
                                "earlyTerminated": len(early)}

    # ---- the model it points at is there and predicts ----
    from kubevision.trainer.predict import run_predict  # imports torch: only now, after the trials

    model_dir = volume / best_trial["modelUri"].removeprefix(f"pvc://{CLAIM}/")
    assert (model_dir / "MLmodel").is_file()
    image = data / json.loads((data / "val60.jsonl").read_text().splitlines()[0])["image_url"]
    predictions = tmp_path / "predictions.jsonl"
    assert run_predict(model_dir, [image], out_file=predictions, batch_size=1) == 1
    (record,) = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert record["labels"] == [str(i) for i in range(10)] and sum(record["probs"]) == pytest.approx(1, abs=1e-4)

    # ---- the job whose data is missing: one failed trial, a clear log, a failed job ----
    failed = statuses["nodata"]
    assert failed["phase"] == "Failed" and "bestTrial" not in failed
    assert kmock_cluster.condition(failed, "Succeeded")["reason"] == "ExperimentFailed"
    assert failed["trials"]["failed"] == 1 and failed["trials"]["total"] == 1
    (trial_run,) = player.runs["nodata"].trials.values()
    assert trial_run.exit_code != 0 and trial_run.attempts == 1
    assert "missing.jsonl" in trial_run.log and "does not exist" in trial_run.log
    assert "Traceback" not in trial_run.log  # a user error, not a crash


def _cluster_reason() -> str | None:
    if os.environ.get("KUBEVISION_E2E_CLUSTER") != "1":
        return "real-cluster mode is opt-in: set KUBEVISION_E2E_CLUSTER=1 and KUBECONFIG (see e2e/README.md)"
    if not os.environ.get("KUBECONFIG"):
        return "KUBEVISION_E2E_CLUSTER=1 needs KUBECONFIG pointing at a cluster with Katib and the training operator"
    return None


@pytest.mark.skipif(_cluster_reason() is not None, reason=_cluster_reason() or "")
def test_the_same_scenario_on_a_real_cluster(tmp_path: Path) -> None:
    from e2e.cluster_mode import run_on_cluster

    run_on_cluster(tmp_path)
