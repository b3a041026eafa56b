"""The real operator against the emulated API: children, Katib-driven status, timeout, restarts, deletions."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import kmock
from kmock_cluster import (
    CONFIGMAPS,
    EXPERIMENTS,
    JOBS,
    NS,
    SECRETS,
    OperatorHandle,
    condition,
    create,
    delete,
    job_manifest,
    job_status,
    katib_condition,
    katib_trial,
    names,
    patch,
    stored,
    wait_for,
)
from plan_helpers import katib_schema_errors, katib_webhook_errors, pytorchjob_schema_errors

TWO_SUB_SPACES = [
    {"modelName": {"type": "choice", "values": ["resnet18", "resnet50"]},
     "learningRate": {"type": "uniform", "minValue": 0.001, "maxValue": 0.01}},
    {"modelName": {"type": "choice", "values": ["vitb16r224"]},
     "learningRate": {"type": "uniform", "minValue": 0.0001, "maxValue": 0.001}},
]


def experiment_body(cluster: kmock.KubernetesEmulator, name: str) -> dict[str, Any]:
    body = stored(cluster, EXPERIMENTS, name)
    assert body is not None, f"Experiment {name} is missing"
    return body


async def running(cluster: kmock.KubernetesEmulator, job: str) -> dict[str, Any]:
    status: dict[str, Any] = await wait_for(
        lambda: (s := job_status(cluster, job)).get("phase") == "Running" and s, what=f"job {job} Running")
    return status


async def test_a_job_gets_its_secret_config_map_and_experiments_owned_and_valid(
    operator: OperatorHandle, cluster: kmock.KubernetesEmulator
) -> None:
    await create(cluster, JOBS, job_manifest("fridge", searchSpace=TWO_SUB_SPACES,
                                             limits={"maxTrials": 6, "maxConcurrentTrials": 2}))
    status = await running(cluster, "fridge")

    assert names(cluster, EXPERIMENTS) == ["fridge-s0", "fridge-s1"]
    assert status["experimentRef"] == [{"name": "fridge-s0", "namespace": NS, "subSpace": 0},
                                       {"name": "fridge-s1", "namespace": NS, "subSpace": 1}]
    assert status["startTime"].endswith("Z")
    assert (condition(status, "Ready")["status"], condition(status, "Ready")["reason"]) == ("True",
                                                                                            "ExperimentsCreated")
    assert condition(status, "Succeeded")["status"] == "Unknown"
    owner = {"apiVersion": "kubevision.io/v1alpha1", "kind": "AutoMLImageJob", "name": "fridge",
             "uid": "uid-fridge", "controller": True, "blockOwnerDeletion": True}
    experiments = [experiment_body(cluster, n) for n in ("fridge-s0", "fridge-s1")]
    for exp in experiments:
        assert exp["metadata"]["ownerReferences"] == [owner]
        assert exp["metadata"]["labels"]["kubevision.io/job"] == "fridge"
        assert exp["spec"]["objective"]["objectiveMetricName"] == "accuracy"
        assert katib_schema_errors(exp) == [] and katib_webhook_errors(exp) == []
        assert pytorchjob_schema_errors(exp["spec"]["trialTemplate"]["trialSpec"]) == []
        master = exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["pytorchReplicaSpecs"]["Master"]
        container = master["template"]["spec"]["containers"][0]
        assert container["image"] == "registry.example/kubevision-trainer:test"
        assert any(a.endswith("/v1/namespaces/team-a/jobs/fridge/termination") for a in container["command"])
    assert sum(e["spec"]["maxTrialCount"] for e in experiments) == 6
    assert {p["name"] for p in experiments[1]["spec"]["parameters"]} == {"learningRate", "modelName"}

    secret = stored(cluster, SECRETS, "fridge-termination-token")
    assert secret is not None and secret["metadata"]["ownerReferences"] == [owner]
    assert len(base64.b64decode(secret["data"]["token"])) >= 32
    config_map = stored(cluster, CONFIGMAPS, "fridge-trial-config")
    assert config_map is not None and "job.yaml" in config_map["data"]
    assert config_map["metadata"]["ownerReferences"] == [owner]


async def test_katib_progress_becomes_counts_conditions_and_the_best_trial(
    operator: OperatorHandle, cluster: kmock.KubernetesEmulator
) -> None:
    await create(cluster, JOBS, job_manifest("fridge", searchSpace=TWO_SUB_SPACES,
                                             limits={"maxTrials": 4, "maxConcurrentTrials": 2}))
    first = await running(cluster, "fridge")
    ready_since = condition(first, "Ready")["lastTransitionTime"]
    s0, s1 = experiment_body(cluster, "fridge-s0"), experiment_body(cluster, "fridge-s1")
    running_conditions = [katib_condition("Created", "ExperimentCreated"),
                          katib_condition("Running", "ExperimentRunning")]

    # Katib runs two trials in each sub-space: one finished per sub-space, one still running / failed.
    await katib_trial(cluster, s0, "fridge-s0-aaaa1111", state="succeeded", values=[0.61, 0.74],
                      parameters={"modelName": "resnet18", "learningRate": 0.005})
    await katib_trial(cluster, s1, "fridge-s1-bbbb2222", state="succeeded", values=[0.8, 0.91, 0.9],
                      parameters={"modelName": "vitb16r224", "learningRate": 0.0005})
    await katib_trial(cluster, s0, "fridge-s0-cccc3333", state="running", values=[0.95],
                      parameters={"modelName": "resnet50", "learningRate": 0.002})
    await katib_trial(cluster, s1, "fridge-s1-dddd4444", state="failed", parameters={"modelName": "vitb16r224",
                                                                                      "learningRate": 0.0001})
    await patch(cluster, EXPERIMENTS, "fridge-s0", {"status": {
        "conditions": running_conditions, "trials": 2, "trialsSucceeded": 1, "trialsRunning": 1,
        "succeededTrialList": ["fridge-s0-aaaa1111"]}})
    await patch(cluster, EXPERIMENTS, "fridge-s1", {"status": {
        "conditions": running_conditions, "trials": 2, "trialsSucceeded": 1, "trialsFailed": 1,
        "succeededTrialList": ["fridge-s1-bbbb2222"]}})

    status = await wait_for(lambda: (s := job_status(cluster, "fridge")).get("trials", {}).get("total") == 4 and s,
                            what="trial counts")
    assert status["phase"] == "Running"
    assert status["trials"] == {"total": 4, "running": 1, "succeeded": 2, "failed": 1, "earlyTerminated": 0}
    assert status["bestTrial"] == {
        "name": "fridge-s1-bbbb2222", "metric": 0.91,
        "parameters": {"modelName": "vitb16r224", "learningRate": 0.0005},
        "modelUri": "pvc://kubevision-outputs/team-a/fridge/trials/fridge-s1-bbbb2222/mlflow-model",
    }
    assert (condition(status, "Ready")["status"], condition(status, "Ready")["reason"]) == ("True", "Running")
    assert condition(status, "Ready")["lastTransitionTime"] == ready_since

    # Katib finishes both Experiments; the running trial finished best of all.
    await katib_trial(cluster, s0, "fridge-s0-cccc3333", state="succeeded", values=[0.95, 0.97],
                      parameters={"modelName": "resnet50", "learningRate": 0.002})
    for name, listed in (("fridge-s0", ["fridge-s0-aaaa1111", "fridge-s0-cccc3333"]),
                         ("fridge-s1", ["fridge-s1-bbbb2222"])):
        await patch(cluster, EXPERIMENTS, name, {"status": {
            "conditions": [katib_condition("Created", "ExperimentCreated"),
                           katib_condition("Succeeded", "ExperimentMaxTrialsReached")],
            "trials": 2, "trialsSucceeded": len(listed), "trialsRunning": 0, "trialsFailed": 2 - len(listed),
            "succeededTrialList": listed}})
    done = await wait_for(lambda: (s := job_status(cluster, "fridge")).get("phase") == "Succeeded" and s,
                          what="Succeeded")
    assert done["bestTrial"]["name"] == "fridge-s0-cccc3333" and done["bestTrial"]["metric"] == 0.97
    assert (condition(done, "Succeeded")["status"], condition(done, "Succeeded")["reason"]) == (
        "True", "MaxTrialsReached")
    assert done["trials"] == {"total": 4, "running": 0, "succeeded": 3, "failed": 1, "earlyTerminated": 0}
    assert done["completionTime"].endswith("Z")
    assert condition(done, "Ready")["lastTransitionTime"] == ready_since  # still True

    # Katib's objects were only watched: no kopf annotations, finalizers or status written on them.
    for name in ("fridge-s0", "fridge-s1"):
        meta = experiment_body(cluster, name)["metadata"]
        assert not meta.get("finalizers") and not any("kopf" in k for k in meta.get("annotations") or {})
    assert all(not any("kopf" in k for k in (t.get("metadata", {}).get("annotations") or {}))
               for t in [stored(cluster, "kubeflow.org/v1beta1/trials", "fridge-s0-aaaa1111") or {}])


async def test_timeout_records_the_best_so_far_and_deletes_the_experiments(
    operator: OperatorHandle, cluster: kmock.KubernetesEmulator
) -> None:
    await create(cluster, JOBS, job_manifest("slow", searchSpace=TWO_SUB_SPACES,
                                             limits={"maxTrials": 10, "maxConcurrentTrials": 2, "timeoutMinutes": 30}))
    await running(cluster, "slow")
    s0 = experiment_body(cluster, "slow-s0")
    await katib_trial(cluster, s0, "slow-s0-aaaa1111", state="succeeded", values=[0.7],
                      parameters={"modelName": "resnet18", "learningRate": 0.003})
    await katib_trial(cluster, s0, "slow-s0-bbbb2222", state="running", values=[0.2],
                      parameters={"modelName": "resnet50", "learningRate": 0.004})
    await patch(cluster, EXPERIMENTS, "slow-s0", {"status": {
        "conditions": [katib_condition("Running", "ExperimentRunning")], "trials": 2, "trialsSucceeded": 1,
        "trialsRunning": 1, "succeededTrialList": ["slow-s0-aaaa1111"]}})
    await wait_for(lambda: job_status(cluster, "slow").get("bestTrial"), what="a best trial")
    assert names(cluster, EXPERIMENTS) == ["slow-s0", "slow-s1"]

    operator.clock_offset = timedelta(minutes=31)
    status = await wait_for(lambda: (s := job_status(cluster, "slow")).get("phase") == "Succeeded" and s,
                            what="the timeout")
    assert names(cluster, EXPERIMENTS) == []
    assert (condition(status, "Succeeded")["status"], condition(status, "Succeeded")["reason"]) == (
        "True", "TimeoutReached")
    assert "timeoutMinutes (30) reached" in condition(status, "Succeeded")["message"]
    assert status["bestTrial"]["name"] == "slow-s0-aaaa1111"
    assert status["trials"]["running"] == 0 and status["trials"]["failed"] == 1
    assert status["completionTime"].endswith("Z")


async def test_timeout_without_a_finished_trial_fails(operator: OperatorHandle,
                                                      cluster: kmock.KubernetesEmulator) -> None:
    await create(cluster, JOBS, job_manifest("early", limits={"maxTrials": 2, "timeoutMinutes": 5}))
    await running(cluster, "early")
    operator.clock_offset = timedelta(minutes=6)
    status = await wait_for(lambda: (s := job_status(cluster, "early")).get("phase") == "Failed" and s,
                            what="the timeout")
    assert (condition(status, "Succeeded")["status"], condition(status, "Succeeded")["reason"]) == (
        "False", "TimeoutReached")
    assert "no trial had finished" in status["message"]
    assert names(cluster, EXPERIMENTS) == []


async def test_restart_mid_job_creates_nothing_twice(cluster: kmock.KubernetesEmulator) -> None:
    first = OperatorHandle(cluster)
    await first.start()
    try:
        await create(cluster, JOBS, job_manifest("fridge", searchSpace=TWO_SUB_SPACES))
        before = await running(cluster, "fridge")
        token = stored(cluster, SECRETS, "fridge-termination-token")["data"]["token"]  # type: ignore[index]
    finally:
        await first.stop()
    posts_before = [r for r in list(cluster) if r.method.value == "POST"]

    second = OperatorHandle(cluster)
    await second.start()
    try:
        await wait_for(lambda: second.runtime is not None and second.runtime.termination.service(NS, "fridge"),
                       what="the job resumed")
        await wait_for(lambda: job_status(cluster, "fridge").get("message") == "0 of 0 trials finished",
                       what="a reconcile tick")
        posts_after = [r for r in list(cluster) if r.method.value == "POST"][len(posts_before):]
    finally:
        await second.stop()
    assert names(cluster, EXPERIMENTS) == ["fridge-s0", "fridge-s1"]
    assert not [r for r in posts_after if "experiments" in str(r.url) or "configmaps" in str(r.url)]
    assert stored(cluster, SECRETS, "fridge-termination-token")["data"]["token"] == token  # type: ignore[index]
    after = job_status(cluster, "fridge")
    assert after["startTime"] == before["startTime"] and after["experimentRef"] == before["experimentRef"]


async def test_restart_between_creating_and_recording_adopts_the_children(cluster: kmock.KubernetesEmulator) -> None:
    # A previous operator created the Experiment (without owner references, as an old version would)
    # and died before writing the job's status.
    from kubevision.api.loading import parse_manifest
    from kubevision.operator.reconcile import plan_job
    from kubevision.operator.settings import OperatorSettings

    manifest = job_manifest("fridge")
    job = parse_manifest({k: v for k, v in manifest.items()})
    plan = plan_job(job, namespace=NS, settings=OperatorSettings(), owner=None)  # type: ignore[arg-type]
    orphan = plan.experiments[0]
    await create(cluster, EXPERIMENTS, orphan)
    await create(cluster, JOBS, manifest)
    handle = OperatorHandle(cluster)
    await handle.start()
    try:
        await running(cluster, "fridge")
    finally:
        await handle.stop()
    assert names(cluster, EXPERIMENTS) == ["fridge"]
    adopted = experiment_body(cluster, "fridge")
    assert [ref["uid"] for ref in adopted["metadata"]["ownerReferences"]] == ["uid-fridge"]


async def test_an_experiment_deleted_by_hand_fails_the_job_and_stops_the_rest(
    operator: OperatorHandle, cluster: kmock.KubernetesEmulator
) -> None:
    await create(cluster, JOBS, job_manifest("fridge", searchSpace=TWO_SUB_SPACES))
    await running(cluster, "fridge")
    await wait_for(lambda: job_status(cluster, "fridge").get("trials"), what="a reconcile with the index")
    await delete(cluster, EXPERIMENTS, "fridge-s1")
    status = await wait_for(lambda: (s := job_status(cluster, "fridge")).get("phase") == "Failed" and s,
                            what="Failed")
    assert (condition(status, "Ready")["reason"], condition(status, "Succeeded")["reason"]) == (
        "ExperimentDeleted", "ExperimentDeleted")
    assert "fridge-s1 was deleted outside the operator" in status["message"]
    assert names(cluster, EXPERIMENTS) == []


async def test_a_limits_change_reaches_katib_counts(operator: OperatorHandle,
                                                    cluster: kmock.KubernetesEmulator) -> None:
    await create(cluster, JOBS, job_manifest("fridge", limits={"maxTrials": 4, "maxConcurrentTrials": 2}))
    await running(cluster, "fridge")
    assert experiment_body(cluster, "fridge")["spec"]["maxTrialCount"] == 4
    await patch(cluster, JOBS, "fridge", {"metadata": {"generation": 2},
                                          "spec": {"limits": {"maxTrials": 8, "maxConcurrentTrials": 3}}})
    await wait_for(lambda: experiment_body(cluster, "fridge")["spec"]["maxTrialCount"] == 8, what="maxTrialCount 8")
    assert experiment_body(cluster, "fridge")["spec"]["parallelTrialCount"] == 3


async def test_automode_runs_the_portfolio_then_refines_around_its_best(
    operator: OperatorHandle, cluster: kmock.KubernetesEmulator
) -> None:
    manifest = job_manifest("auto", limits={"maxTrials": 12, "maxConcurrentTrials": 2})
    del manifest["spec"]["searchSpace"], manifest["spec"]["sweep"]
    await create(cluster, JOBS, manifest)
    await running(cluster, "auto")
    assert names(cluster, EXPERIMENTS) == ["auto"]
    portfolio_exp = experiment_body(cluster, "auto")
    assert [p["name"] for p in portfolio_exp["spec"]["parameters"]] == ["config"]

    # Katib runs the portfolio; config 1 wins.
    for index, value in ((0, 0.71), (1, 0.88), (2, 0.65)):
        await katib_trial(cluster, portfolio_exp, f"auto-p{index}", state="succeeded", values=[value],
                          parameters={"config": index})
    await patch(cluster, EXPERIMENTS, "auto", {"status": {
        "conditions": [katib_condition("Succeeded", "ExperimentMaxTrialsReached")], "trials": 3,
        "trialsSucceeded": 3, "succeededTrialList": ["auto-p0", "auto-p1", "auto-p2"]}})
    status = await wait_for(lambda: len((s := job_status(cluster, "auto")).get("experimentRef", [])) == 2 and s,
                            what="the refinement Experiment")
    assert status["phase"] == "Running"  # phase 1 is done, the job is not
    assert names(cluster, EXPERIMENTS) == ["auto", "auto-refine"]
    refine = experiment_body(cluster, "auto-refine")
    assert katib_schema_errors(refine) == [] and katib_webhook_errors(refine) == []
    assert refine["metadata"]["ownerReferences"][0]["uid"] == "uid-auto"
    best_portfolio = status["bestTrial"]
    assert best_portfolio["name"] == "auto-p1" and "config" not in best_portfolio["parameters"]
    assert best_portfolio["parameters"]["modelName"]  # the portfolio entry, not an index

    # A refinement trial beats the portfolio: the job's best shows the base config under its sampled values.
    await katib_trial(cluster, refine, "auto-refine-r1", state="succeeded", values=[0.93],
                      parameters={"learningRate": 0.007})
    await patch(cluster, EXPERIMENTS, "auto-refine", {"status": {
        "conditions": [katib_condition("Succeeded", "ExperimentMaxTrialsReached")], "trials": 1,
        "trialsSucceeded": 1, "succeededTrialList": ["auto-refine-r1"]}})
    done = await wait_for(lambda: (s := job_status(cluster, "auto")).get("phase") == "Succeeded" and s,
                          what="Succeeded")
    assert done["bestTrial"]["name"] == "auto-refine-r1"
    assert done["bestTrial"]["parameters"] == {**best_portfolio["parameters"], "learningRate": 0.007}
    assert done["trials"]["total"] == 4
