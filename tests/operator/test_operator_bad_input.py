"""Bad input in the cluster: invalid specs, Katib or the training operator missing, a checkpoint job not ready."""

from __future__ import annotations

import kmock
from kmock_cluster import (
    CONFIGMAPS,
    CRDS,
    EXPERIMENTS,
    JOBS,
    NS,
    SECRETS,
    OperatorHandle,
    condition,
    create,
    declare_cluster,
    job_manifest,
    job_status,
    names,
    patch,
    stored,
    wait_for,
)


def start_count(handle: OperatorHandle, handler: str = "start") -> float:
    """How many times a handler ran (the reconcile-duration histogram counts every run)."""
    assert handle.metrics is not None
    for metric in handle.metrics.reconcile_seconds.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.labels.get("handler") == handler:
                return sample.value
    return 0.0


async def test_an_invalid_spec_fails_once_with_the_message_and_no_children(
    operator: OperatorHandle, cluster: kmock.KubernetesEmulator
) -> None:
    bad = job_manifest("broken", limits={"maxTrials": 0},
                       searchSpace=[{"learningRate": {"type": "uniformm", "minValue": 0.1, "maxValue": 0.2}}])
    await create(cluster, JOBS, bad)
    status = await wait_for(lambda: (s := job_status(cluster, "broken")).get("phase") == "Failed" and s,
                            what="InvalidSpec")
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.limits.maxTrials" in ready["message"] and "spec.searchSpace[0].learningRate" in ready["message"]
    assert condition(status, "Succeeded")["reason"] == "InvalidSpec"
    assert names(cluster, EXPERIMENTS) == [] and names(cluster, CONFIGMAPS) == [] and names(cluster, SECRETS) == []

    await wait_for(lambda: start_count(operator, "reconcile") >= 4, what="a few timer ticks")
    assert start_count(operator) == 1  # no crash loop: the handler is not retried

    # Fixing the spec starts the job.
    await patch(cluster, JOBS, "broken", {"metadata": {"generation": 2}, "spec": {
        "limits": {"maxTrials": 2},
        "searchSpace": [{"learningRate": {"type": "uniform", "minValue": 0.1, "maxValue": 0.2}}]}})
    fixed = await wait_for(lambda: (s := job_status(cluster, "broken")).get("phase") == "Running" and s,
                           what="Running after the fix")
    assert condition(fixed, "Ready")["status"] == "True" and fixed["observedGeneration"] == 2
    assert names(cluster, EXPERIMENTS) == ["broken"]


async def test_without_katib_the_job_waits_with_a_clear_condition_and_starts_once_installed(
    kmock: kmock.KubernetesEmulator,
) -> None:
    declare_cluster(kmock, katib=False)
    handle = OperatorHandle(kmock)
    await handle.start()
    try:
        await create(kmock, JOBS, job_manifest("fridge"))
        status = await wait_for(lambda: (s := job_status(kmock, "fridge")).get("phase") == "Pending" and s,
                                what="KatibNotInstalled")
        ready = condition(status, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "KatibNotInstalled")
        assert "experiments.kubeflow.org not found" in ready["message"]
        assert condition(status, "Succeeded")["status"] == "Unknown"
        await wait_for(lambda: start_count(handle) >= 3, what="slow retries")
        assert names(kmock, EXPERIMENTS) == [] and names(kmock, SECRETS) == []

        # Katib (and the training operator) get installed: the job starts by itself.
        declare_cluster(kmock, katib=True)
        for plural in ("experiments", "trials", "pytorchjobs"):
            crd = stored(kmock, CRDS, f"{plural}.kubeflow.org", namespace=None)
            assert crd is not None
        status = await wait_for(lambda: (s := job_status(kmock, "fridge")).get("phase") == "Running" and s,
                                what="Running once Katib is there")
        assert condition(status, "Ready")["reason"] == "ExperimentsCreated"
        assert names(kmock, EXPERIMENTS) == ["fridge"]
    finally:
        await handle.stop()


async def test_without_the_training_operator_the_job_names_it(kmock: kmock.KubernetesEmulator) -> None:
    declare_cluster(kmock, katib=True)
    del kmock.objects[CRDS, None, "pytorchjobs.kubeflow.org"]
    handle = OperatorHandle(kmock)
    await handle.start()
    try:
        await create(kmock, JOBS, job_manifest("fridge"))
        status = await wait_for(lambda: (s := job_status(kmock, "fridge")).get("phase") == "Pending" and s,
                                what="TrainingOperatorNotInstalled")
    finally:
        await handle.stop()
    assert condition(status, "Ready")["reason"] == "TrainingOperatorNotInstalled"
    assert "pytorchjobs.kubeflow.org" in condition(status, "Ready")["message"]


async def test_checkpoint_from_job_waits_for_that_jobs_best_model(operator: OperatorHandle,
                                                                  cluster: kmock.KubernetesEmulator) -> None:
    await create(cluster, JOBS, job_manifest("second", checkpoint={"fromJob": "first"}))
    pending = await wait_for(lambda: (s := job_status(cluster, "second")).get("phase") == "Pending" and s,
                             what="CheckpointNotReady")
    assert condition(pending, "Ready")["reason"] == "CheckpointNotReady"
    assert "AutoMLImageJob team-a/first does not exist" in condition(pending, "Ready")["message"]

    first = job_manifest("first")
    first["status"] = {"phase": "Running"}
    await create(cluster, JOBS, first)
    await wait_for(lambda: "has not succeeded yet" in condition(job_status(cluster, "second"), "Ready")["message"],
                   what="not succeeded yet")
    model = "pvc://kubevision-outputs/team-a/first/trials/first-abcd1234/mlflow-model"
    await patch(cluster, JOBS, "first", {"status": {"phase": "Succeeded", "bestTrial": {
        "name": "first-abcd1234", "metric": 0.9, "parameters": {}, "modelUri": model}}})
    await wait_for(lambda: job_status(cluster, "second").get("phase") == "Running", what="Running")
    experiment = stored(cluster, EXPERIMENTS, "second")
    assert experiment is not None
    command = experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["pytorchReplicaSpecs"]["Master"][
        "template"]["spec"]["containers"][0]["command"]
    checkpoint = command[command.index("--checkpoint") + 1]
    assert checkpoint == "/mnt/kubevision/team-a/first/trials/first-abcd1234/mlflow-model"


async def test_an_experiment_the_api_refuses_fails_the_job_with_the_api_message(
    operator: OperatorHandle, cluster: kmock.KubernetesEmulator
) -> None:
    # Katib's validating webhook refusing the Experiment (e.g. an algorithm missing from katib-config).
    message = 'admission webhook "validator.experiment.katib.kubeflow.org" denied the request: unknown algorithm tpe'
    cluster[f"post /apis/kubeflow.org/v1beta1/namespaces/{NS}/experiments"] << 422 << {
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422, "message": message}
    await create(cluster, JOBS, job_manifest("fridge"))
    status = await wait_for(lambda: (s := job_status(cluster, "fridge")).get("phase") == "Failed" and s,
                            what="ChildRejected")
    assert (condition(status, "Ready")["reason"], condition(status, "Succeeded")["reason"]) == (
        "ChildRejected", "ChildRejected")
    assert "unknown algorithm tpe" in condition(status, "Ready")["message"]
