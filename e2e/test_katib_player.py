"""The player's own loop against the emulated API server, with a stand-in trial program.

Why a stand-in here: these tests are about Katib's side (how many trials, in parallel, restarted,
killed, filed, and how the Experiment ends), which a 50 ms Python script exercises as well as a 20 s
training run; the real trial program runs in test_e2e_katib.py. The stand-in is a real process that
the player starts from a PyTorchJob manifest shaped like the operator's (ConfigMap volume, shared
PVC, Secret-borne env, in-cluster URL), and it records what it saw, so the tests check the plumbing
from inside the "pod".
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import kmock
import pytest

from e2e.harness import kmock_cluster
from e2e.katib.pod import LocalCluster
from e2e.katib.rest import KubeApi
from e2e.katib_player import CONFIGMAPS, EXPERIMENTS, PYTORCHJOBS, SECRETS, TRIALS, KatibPlayer
from e2e.shapes import katib_errors

NS = "team-a"
SERVICE = "http://decisions.kubevision-system.svc:8082"
STAND_IN = '''
import datetime, json, os, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:])
out = args["--out"]
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "attempts"), "a") as f:
    f.write("x")
seen = {"token": os.environ.get("KUBEVISION_TERMINATION_TOKEN"), "trial": os.environ.get("KATIB_TRIAL_NAME"),
        "job": open(args["--job"]).read(), "url": args["--url"], "threads": os.environ.get("OMP_NUM_THREADS"),
        "start": time.time()}
mode, lr = args["--mode"], float(args["--lr"])
if mode == "fail":
    sys.exit("error: the data is missing")
if mode == "sleep":
    time.sleep(60)
for epoch in (1, 2):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if mode != "silent":
        print(f"{stamp} epoch={epoch} accuracy={round(lr * epoch, 4)} log_loss={round(1 - lr * epoch, 4)}", flush=True)
    time.sleep(0.3)
seen["end"] = time.time()
json.dump(seen, open(os.path.join(out, "seen.json"), "w"))
'''


def experiment(name: str, *, values: list[str], mode: str = "ok", max_trials: int = 3, parallel: int = 2,
               max_failed: int = 3, backoff: int = 0, deadline: int | None = None) -> dict[str, Any]:
    """An Experiment shaped like the operator's, whose trials run the stand-in program."""
    command = ["python3", "/mnt/kubevision/stand_in.py", "--lr=${trialParameters.lr}",
               "--out=/mnt/kubevision/out/${trialParameters.trialName}", f"--mode={mode}",
               "--job=/etc/kubevision/job.yaml", f"--url={SERVICE}/v1/namespaces/{NS}/jobs/{name}/termination"]
    container = {"name": "pytorch", "image": "trainer:test", "command": command,
                 "env": [{"name": "KUBEVISION_TERMINATION_TOKEN",
                          "valueFrom": {"secretKeyRef": {"name": "token", "key": "token"}}}],
                 "volumeMounts": [{"name": "config", "mountPath": "/etc/kubevision", "readOnly": True},
                                  {"name": "shared", "mountPath": "/mnt/kubevision"},
                                  {"name": "dshm", "mountPath": "/dev/shm"}]}
    run_policy: dict[str, Any] = {"cleanPodPolicy": "Running", "backoffLimit": backoff}
    if deadline is not None:
        run_policy["activeDeadlineSeconds"] = deadline
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "metadata": {"name": name, "namespace": NS, "labels": {"kubevision.io/job": name}},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy", "additionalMetricNames": ["log_loss"],
                          "metricStrategies": [{"name": "accuracy", "value": "max"},
                                               {"name": "log_loss", "value": "min"}]},
            "algorithm": {"algorithmName": "grid"},
            "parallelTrialCount": parallel, "maxTrialCount": max_trials, "maxFailedTrialCount": max_failed,
            "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
            "parameters": [{"name": "lr", "parameterType": "discrete", "feasibleSpace": {"list": values}}],
            "trialTemplate": {
                "primaryContainerName": "pytorch", "retain": False,
                "trialParameters": [{"name": "lr", "reference": "lr"},
                                    {"name": "trialName", "reference": "${trialSpec.Name}"}],
                "trialSpec": {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {
                    "runPolicy": run_policy,
                    "pytorchReplicaSpecs": {"Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": {
                        "spec": {"containers": [container], "volumes": [
                            {"name": "config", "configMap": {"name": "config"}},
                            {"name": "shared", "persistentVolumeClaim": {"claimName": "outputs"}},
                            {"name": "dshm", "emptyDir": {"medium": "Memory"}}]}}}}}},
            },
        },
    }


@pytest.fixture()
async def api(cluster: kmock.KubernetesEmulator) -> Any:
    client = KubeApi(str(cluster.url))
    await client.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config",
                                     "namespace": NS}, "data": {"job.yaml": "trainingData: {path: /mnt/kubevision/d}"}})
    await client.create(SECRETS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": NS},
                                  "data": {"token": base64.b64encode(b"t0ken").decode()}})
    yield client
    await client.close()


@pytest.fixture()
def player(api: KubeApi, tmp_path: Path) -> KatibPlayer:
    volume = tmp_path / "pvc"
    volume.mkdir()
    (volume / "stand_in.py").write_text(STAND_IN)
    local = LocalCluster(claims={"outputs": volume}, services={SERVICE: "http://127.0.0.1:9"},
                         env={"OMP_NUM_THREADS": "1"})
    return KatibPlayer(api, local, tmp_path / "pods", seed=5)


def seen(player: KatibPlayer, trial: str) -> dict[str, Any]:
    return dict(json.loads((player.local.claims["outputs"] / "out" / trial / "seen.json").read_text()))


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


async def test_a_grid_runs_each_value_once_in_parallel_and_ends_at_max_trials(
    api: KubeApi, player: KatibPlayer, cluster: kmock.KubernetesEmulator
) -> None:
    await api.create(EXPERIMENTS, experiment("sweep", values=["0.1", "0.3", "0.2"]))
    run = await player.play(NS, "sweep")

    stored = await api.get(EXPERIMENTS, NS, "sweep")
    assert stored is not None and katib_errors(stored) == []
    status = stored["status"]
    assert (condition(stored, "Succeeded")["reason"], condition(stored, "Running")["status"]) == (
        "ExperimentMaxTrialsReached", "False")
    assert (status["trials"], status["trialsSucceeded"]) == (3, 3) and "trialsRunning" not in status
    trials = [t for t in await api.list(TRIALS, NS)]
    assert sorted(t["metadata"]["name"] for t in trials) == sorted(run.trials) == status["succeededTrialList"]
    by_lr = {t["spec"]["parameterAssignments"][0]["value"]: t for t in trials}
    assert sorted(by_lr) == ["0.1", "0.2", "0.3"]
    best = by_lr["0.3"]
    assert status["currentOptimalTrial"]["bestTrialName"] == best["metadata"]["name"]
    assert best["status"]["observation"]["metrics"] == [
        {"name": "accuracy", "min": "0.3", "max": "0.6", "latest": "0.6"},
        {"name": "log_loss", "min": "0.4", "max": "0.7", "latest": "0.4"}]
    for trial in trials:
        assert katib_errors(trial) == []
        assert trial["metadata"]["labels"] == {"kubevision.io/job": "sweep", "katib.kubeflow.org/experiment": "sweep"}
        assert condition(trial, "Succeeded")["reason"] == "TrialSucceeded. Job reason: PyTorchJobSucceeded"
    assert kmock_cluster.names(cluster, PYTORCHJOBS) == []  # retain: false, Katib deletes the jobs

    inside = [seen(player, name) for name in run.trials]
    assert {s["token"] for s in inside} == {"t0ken"} and {s["threads"] for s in inside} == {"1"}
    assert {s["trial"] for s in inside} == set(run.trials)
    assert all(s["url"].startswith("http://127.0.0.1:9/v1/") for s in inside)
    assert all(f"{player.local.claims['outputs']}/d" in s["job"] for s in inside)  # ConfigMap paths mounted
    spans = sorted((s["start"], s["end"]) for s in inside)
    overlapping = max(sum(1 for a, b in spans if a <= start < b) for start, _ in spans)
    assert overlapping <= 2  # parallelTrialCount


async def test_failing_trials_restart_up_to_the_backoff_limit_then_fail_the_experiment(
    api: KubeApi, player: KatibPlayer
) -> None:
    await api.create(EXPERIMENTS, experiment("broken", values=["0.1", "0.2"], mode="fail", max_trials=2,
                                             parallel=1, max_failed=1, backoff=1))
    run = await player.play(NS, "broken")

    stored = await api.get(EXPERIMENTS, NS, "broken")
    assert stored is not None and condition(stored, "Failed")["reason"] == "ExperimentFailed"
    assert stored["status"]["trialsFailed"] == 1 and len(run.trials) == 1  # stopped at maxFailedTrialCount
    (trial_run,) = run.trials.values()
    assert (trial_run.attempts, trial_run.exit_code, trial_run.phase) == (2, 1, "failed")
    assert "error: the data is missing" in trial_run.log  # stderr reaches the collector's file too
    outputs = player.local.claims["outputs"] / "out" / trial_run.name
    assert (outputs / "attempts").read_text() == "xx"
    trial = await api.get(TRIALS, NS, trial_run.name)
    assert trial is not None and condition(trial, "Failed")["reason"] == "TrialFailed. Job reason: PyTorchJobFailed"
    assert "observation" not in trial["status"]


async def test_a_trial_that_prints_no_objective_is_metrics_unavailable(api: KubeApi, player: KatibPlayer) -> None:
    await api.create(EXPERIMENTS, experiment("quiet", values=["0.1"], mode="silent", max_trials=1, max_failed=1))
    run = await player.play(NS, "quiet")
    (trial_run,) = run.trials.values()
    assert (trial_run.exit_code, trial_run.phase) == (0, "metrics_unavailable")
    stored = await api.get(EXPERIMENTS, NS, "quiet")
    assert stored is not None and stored["status"]["trialMetricsUnavailable"] == 1
    assert condition(stored, "Failed")["reason"] == "ExperimentFailed"  # it counts as a failure
    assert stored["status"]["currentOptimalTrial"] == {"observation": {}}


async def test_a_trial_past_its_deadline_is_killed_and_failed(api: KubeApi, player: KatibPlayer) -> None:
    await api.create(EXPERIMENTS, experiment("slow", values=["0.1"], mode="sleep", max_trials=1, max_failed=1,
                                             backoff=3, deadline=1))
    run = await asyncio.wait_for(player.play(NS, "slow"), timeout=30)
    (trial_run,) = run.trials.values()
    assert trial_run.phase == "failed" and trial_run.attempts == 1  # a deadline is not retried
    trial = await api.get(TRIALS, NS, trial_run.name)
    assert trial is not None and "longer than specified deadline" in condition(trial, "Failed")["message"]


async def test_deleting_the_experiment_stops_its_trials(api: KubeApi, player: KatibPlayer) -> None:
    await api.create(EXPERIMENTS, experiment("doomed", values=["0.1", "0.2"], mode="sleep", max_trials=2))
    stop = asyncio.Event()
    watcher = asyncio.create_task(player.watch(NS, stop))
    await kmock_cluster.wait_for(lambda: len(player.runs.get("doomed", None).trials) == 2  # type: ignore[union-attr]
                                 if "doomed" in player.runs else False, timeout=10, what="two trials")
    await api.delete(EXPERIMENTS, NS, "doomed")
    run = await asyncio.wait_for(_finished(player, "doomed"), timeout=15)
    stop.set()
    await watcher
    assert run.deleted
    assert all(t.phase == "running" and t.exit_code is None for t in run.trials.values())  # killed, not finished


async def _finished(player: KatibPlayer, name: str) -> Any:
    while not player.runs[name].deleted:
        await asyncio.sleep(0.1)
    return player.runs[name]


async def test_experiments_the_player_cannot_play_are_reported_not_crashed(api: KubeApi, player: KatibPlayer) -> None:
    body = experiment("tpe", values=["0.1"])
    body["spec"]["algorithm"] = {"algorithmName": "tpe"}
    await api.create(EXPERIMENTS, body)
    run = await player.play(NS, "tpe")
    assert run.error is not None and "random and grid only" in run.error and not run.trials
