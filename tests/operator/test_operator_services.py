"""The operator's side servers end to end: decision service with persistence, metrics, admission webhook."""

from __future__ import annotations

import base64
import datetime
import json
import socket
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import kmock
from kmock_cluster import (
    CONFIGMAPS,
    EXPERIMENTS,
    FAST,
    JOBS,
    NS,
    SECRETS,
    OperatorHandle,
    create,
    job_manifest,
    job_status,
    katib_trial,
    stored,
    wait_for,
)

from kubevision.operator.main import RuntimeConfig
from kubevision.operator.webhook import problems_of


async def report(handle: OperatorHandle, job: str, trial: str, epoch: int, metric: float | None,
                 token: str) -> tuple[int, dict[str, Any]]:
    url = f"{handle.termination_url}/v1/namespaces/{NS}/jobs/{job}/termination"
    async with aiohttp.ClientSession() as session, session.post(
        url, json={"trial": trial, "epoch": epoch, "metric": metric},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        return response.status, await response.json()


def saved_state(cluster: kmock.KubernetesEmulator, job: str) -> dict[str, Any]:
    config_map = stored(cluster, CONFIGMAPS, f"{job}-termination") or {}
    state: dict[str, Any] = json.loads((config_map.get("data") or {}).get("state.json", "{}"))
    return state


async def test_the_operator_decides_persists_and_remembers_across_a_restart(cluster: kmock.KubernetesEmulator) -> None:
    handle = OperatorHandle(cluster)
    await handle.start()
    try:
        await create(cluster, JOBS, job_manifest("fridge"))
        await wait_for(lambda: job_status(cluster, "fridge").get("phase") == "Running", what="Running")
        secret = stored(cluster, SECRETS, "fridge-termination-token")
        token = base64.b64decode(secret["data"]["token"]).decode()  # type: ignore[index]
        assert (await report(handle, "fridge", "fridge-aaaa1111", 1, 0.9, token))[1]["stop"] is False
        status, answer = await report(handle, "fridge", "fridge-bbbb2222", 1, 0.3, token)
        assert status == 200 and answer["stop"] is True and "bandit" in answer["reason"]
        assert (await report(handle, "fridge", "fridge-bbbb2222", 1, 0.3, "wrong"))[0] == 401
        state = saved_state(cluster, "fridge")
        assert state["reports"] == {"fridge-aaaa1111": [[1, 0.9]], "fridge-bbbb2222": [[1, 0.3]]}
        owner = stored(cluster, CONFIGMAPS, "fridge-termination")["metadata"]["ownerReferences"]  # type: ignore[index]
        assert [ref["uid"] for ref in owner] == ["uid-fridge"]

        # Katib reports the good trial finished (Succeeded): the service learns it at once.
        experiment = stored(cluster, EXPERIMENTS, "fridge")
        await katib_trial(cluster, experiment, "fridge-aaaa1111", state="succeeded", values=[0.9],  # type: ignore[arg-type]
                          parameters={"modelName": "resnet18", "learningRate": 0.005})
        service = handle.runtime.termination.service(NS, "fridge")  # type: ignore[union-attr]
        await wait_for(lambda: "fridge-aaaa1111" in json.loads(service.to_json())["finished"],  # type: ignore[union-attr]
                       what="the trial marked finished")
    finally:
        await handle.stop()

    restarted = OperatorHandle(cluster)
    await restarted.start()
    try:
        # Right after the restart: a new trial is judged against the saved histories.
        status, answer = await report(restarted, "fridge", "fridge-cccc3333", 1, 0.5, token)
        assert (status, answer["stop"]) == (200, True)
        assert (await report(restarted, "fridge", "fridge-bbbb2222", 2, 0.99, token))[1]["stop"] is True
        assert set(saved_state(cluster, "fridge")["reports"]) == {
            "fridge-aaaa1111", "fridge-bbbb2222", "fridge-cccc3333"}
        await wait_for(lambda: "fridge-aaaa1111" in saved_state(cluster, "fridge")["finished"],
                       what="the finished trial saved")
        # The stopped trials count as early-terminated once Katib says they ended.
        await patch_experiment_done(cluster, "fridge", ["fridge-aaaa1111", "fridge-bbbb2222"])
        final = await wait_for(lambda: (s := job_status(cluster, "fridge")).get("phase") == "Succeeded" and s,
                               what="Succeeded")
        assert final["trials"]["earlyTerminated"] == 1 and final["trials"]["succeeded"] == 1
    finally:
        await restarted.stop()


async def patch_experiment_done(cluster: kmock.KubernetesEmulator, name: str, succeeded: list[str]) -> None:
    from kmock_cluster import katib_condition, patch

    await patch(cluster, EXPERIMENTS, name, {"status": {
        "conditions": [katib_condition("Succeeded", "ExperimentMaxTrialsReached")],
        "trials": len(succeeded), "trialsSucceeded": len(succeeded), "succeededTrialList": succeeded,
        "currentOptimalTrial": {"bestTrialName": succeeded[0], "parameterAssignments": [],
                                "observation": {"metrics": [{"name": "accuracy", "max": "0.9", "min": "0.9",
                                                             "latest": "0.9"}]}}}})


async def test_the_metrics_endpoint_serves_jobs_trials_reconcile_time_and_api_errors(
    cluster: kmock.KubernetesEmulator,
) -> None:
    # The first Experiment create is answered 503 (after the emulator stored it): retried, then adopted.
    cluster[f"post /apis/kubeflow.org/v1beta1/namespaces/{NS}/experiments"][:1] << 503
    handle = OperatorHandle(cluster)
    await handle.start(metrics_port=0)
    try:
        await create(cluster, JOBS, job_manifest("fridge"))
        await wait_for(lambda: job_status(cluster, "fridge").get("trials"), what="a reconciled job")
        assert handle.metrics is not None and handle.metrics.port
        async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{handle.metrics.port}/metrics"
        ) as response:
            assert response.status == 200
            text = await response.text()
    finally:
        await handle.stop()
    assert 'kubevision_jobs{phase="Running"} 1.0' in text
    assert 'kubevision_jobs{phase="Failed"} 0.0' in text
    assert 'kubevision_trials{state="running"} 0.0' in text
    assert 'kubevision_reconcile_duration_seconds_count{handler="start"} 1.0' in text
    assert 'kubevision_api_errors_total{code="503",verb="POST"} 1.0' in text
    assert stored(cluster, EXPERIMENTS, "fridge") is not None


def self_signed(folder: Path) -> None:
    """tls.crt / tls.key for 127.0.0.1, as cert-manager would mount them."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubevision-webhook")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address(
                "127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    (folder / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))


def review(obj: dict[str, Any], plural: str = "automlimagejobs", kind: str = "AutoMLImageJob",
           old: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "req-1", "kind": {"group": "kubevision.io", "version": "v1alpha1", "kind": kind},
        "resource": {"group": "kubevision.io", "version": "v1alpha1", "resource": plural},
        "operation": "UPDATE" if old else "CREATE", "namespace": NS, "name": obj["metadata"]["name"],
        "object": obj, "oldObject": old, "userInfo": {"username": "alice"}, "dryRun": False}}


async def test_the_webhook_rejects_a_bad_spec_with_the_pydantic_message(cluster: kmock.KubernetesEmulator,
                                                                       tmp_path: Path) -> None:
    self_signed(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = RuntimeConfig(clusterwide=True, standalone=True, host="127.0.0.1", metrics_port=None, health_port=None,
                           termination_port=None, webhook_port=port, webhook_cert_dir=tmp_path, timing=FAST,
                           shutdown_grace_s=0.2)
    handle = OperatorHandle(cluster)
    await handle.start(webhook=config)
    bad = job_manifest("bad", limits={"maxTrials": 5000})
    good = job_manifest("good")
    endpoint = {"apiVersion": "kubevision.io/v1alpha1", "kind": "InferenceEndpoint",
                "metadata": {"name": "ep", "namespace": NS},
                "spec": {"deployments": [{"name": "a", "model": {"fromJob": "good"}, "trafficPercent": 60}]}}
    context = ssl.create_default_context(cafile=str(tmp_path / "tls.crt"))
    answers = []
    try:
        await wait_for(lambda: _accepts(port), what="the webhook server listening")
        async with aiohttp.ClientSession() as session:
            cases: list[tuple[dict[str, Any], str]] = [
                (bad, "validate-automlimagejob"), (good, "validate-automlimagejob"),
                (endpoint, "validate-inferenceendpoint")]
            for body, path in cases:
                plural = "inferenceendpoints" if body["kind"] == "InferenceEndpoint" else "automlimagejobs"
                async with session.post(f"https://127.0.0.1:{port}/{path}", ssl=context,
                                        json=review(body, plural, body["kind"])) as response:
                    assert response.status == 200
                    answers.append((await response.json())["response"])
    finally:
        await handle.stop()
    rejected, accepted, endpoint_answer = answers
    assert rejected["allowed"] is False and rejected["uid"] == "req-1"
    assert rejected["status"]["code"] == 422
    assert "spec.limits.maxTrials" in rejected["status"]["message"]
    assert "1000" in rejected["status"]["message"]
    assert accepted["allowed"] is True
    assert endpoint_answer["allowed"] is False and "takes all traffic" in endpoint_answer["status"]["message"]


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_an_update_that_keeps_the_spec_is_always_allowed() -> None:
    stale = job_manifest("legacy", limits={"maxTrials": 0})  # stored before the webhook existed
    touched = {**stale, "metadata": {**stale["metadata"], "finalizers": ["kubevision.io/operator"]}}
    assert problems_of(touched, stale) is None
    assert "spec.limits.maxTrials" in (problems_of(touched) or "")
    assert problems_of(job_manifest("fine")) is None


def test_metric_totals_follow_phase_changes_and_deletions() -> None:
    from kubevision.operator.metrics import OperatorMetrics

    metrics = OperatorMetrics()

    def value(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(name, labels) or 0.0

    counts = {"total": 3, "running": 2, "succeeded": 1, "failed": 0, "earlyTerminated": 0}
    metrics.observe_job(NS, "a", "Running", counts)
    metrics.observe_job(NS, "b", "Running", counts)
    metrics.observe_job(NS, "a", "Running", counts)  # the same again: no double counting
    assert value("kubevision_jobs", phase="Running") == 2 and value("kubevision_trials", state="running") == 4
    metrics.observe_job(NS, "a", "Succeeded", {**counts, "running": 0, "succeeded": 3})
    assert value("kubevision_jobs", phase="Running") == 1 and value("kubevision_jobs", phase="Succeeded") == 1
    assert value("kubevision_trials", state="running") == 2 and value("kubevision_trials", state="succeeded") == 4
    metrics.forget(NS, "b")
    metrics.forget(NS, "never-seen")
    assert value("kubevision_jobs", phase="Running") == 0 and value("kubevision_trials", state="running") == 0
    metrics.api_error("GET", 503)
    assert value("kubevision_api_errors_total", verb="GET", code="503") == 1
