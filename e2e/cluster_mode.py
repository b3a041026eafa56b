"""The e2e scenario on a real cluster: Katib and the training operator run the trials, not the player.

Why a separate path: on a cluster nothing is played; the test applies the same AutoMLImageJob with
the kubernetes client, waits for the real Katib, and checks the operator's status against what Katib
itself observed (the Trials' observations, read by Katib's own StdOut collector from the real trial
pods). The trials' files live on the cluster's PVC; when that PVC is also mounted on the machine
running the test (KUBEVISION_E2E_VOLUME), the model the operator points at is loaded and asked to
predict, as in the emulated mode.

Settings (environment): KUBECONFIG (required), KUBEVISION_E2E_NAMESPACE (default kubevision-e2e:
labelled for Katib's metrics collector, watched by the operator), KUBEVISION_E2E_CLAIM (the RWX PVC the
operator's `trainer.outputPvc` names, default kubevision-outputs), KUBEVISION_E2E_TRAINER_IMAGE (the
image that writes the digits onto the PVC, default the operator's default trainer image),
KUBEVISION_E2E_TIMEOUT_S (default 3600), KUBEVISION_E2E_VOLUME (optional local mount of the PVC).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, cast

from e2e.scenario import DATA_DIR, LEARNING_RATES, job_manifest

__all__ = ["run_on_cluster"]

GROUP, VERSION, PLURAL = "kubevision.io", "v1alpha1", "automlimagejobs"
DATA_JOB = "kubevision-e2e-digits"


def _wait(check: Any, timeout_s: float, what: str, every_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


def _prepare_data(batch: Any, namespace: str, claim: str, image: str, timeout_s: float) -> None:
    """A Kubernetes Job in the trainer image writes the digits and their subsets onto the PVC."""
    root = f"/mnt/kubevision/{DATA_DIR}"
    script = (f"kubevision datasets digits --out {root} && head -n 240 {root}/train.jsonl > {root}/train240.jsonl "
              f"&& head -n 60 {root}/val.jsonl > {root}/val60.jsonl")
    body = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": DATA_JOB, "namespace": namespace},
        "spec": {"backoffLimit": 0, "ttlSecondsAfterFinished": 600, "template": {"spec": {
            "restartPolicy": "Never", "securityContext": {"fsGroup": 10001},
            "containers": [{"name": "data", "image": image, "command": ["sh", "-c", script],
                            "volumeMounts": [{"name": "shared", "mountPath": "/mnt/kubevision"}]}],
            "volumes": [{"name": "shared", "persistentVolumeClaim": {"claimName": claim}}]}}},
    }
    from kubernetes.client import ApiException

    try:
        batch.delete_namespaced_job(DATA_JOB, namespace, propagation_policy="Foreground")
        _wait(lambda: _absent(batch, namespace), 120, "the previous data Job to go", every_s=2)
    except ApiException as err:
        if err.status != 404:
            raise
    batch.create_namespaced_job(namespace, body)

    def done() -> str | None:
        status = batch.read_namespaced_job_status(DATA_JOB, namespace).status
        if status.failed:
            raise AssertionError(f"the Job {DATA_JOB} that writes the digits onto PVC {claim} failed "
                                 f"(kubectl -n {namespace} logs job/{DATA_JOB})")
        return "done" if status.succeeded else None

    _wait(done, timeout_s, f"Job {DATA_JOB} to write the digits onto PVC {claim}", every_s=5)


def _absent(batch: Any, namespace: str) -> bool:
    from kubernetes.client import ApiException

    try:
        batch.read_namespaced_job(DATA_JOB, namespace)
    except ApiException as err:
        return bool(err.status == 404)
    return False


def _objective(trial: dict[str, Any]) -> float | None:
    """A finished trial's accuracy as Katib observed it (max: the objective's strategy)."""
    conditions = {c["type"]: c["status"] for c in (trial.get("status") or {}).get("conditions") or []}
    if conditions.get("Succeeded") != "True" and conditions.get("EarlyStopped") != "True":
        return None
    for metric in ((trial.get("status") or {}).get("observation") or {}).get("metrics") or []:
        if metric.get("name") == "accuracy":
            try:
                return float(metric["max"])
            except (KeyError, ValueError):
                return None
    return None


def run_on_cluster(tmp_path: Path) -> None:
    """Apply the scenario's job, wait for Katib, check bestTrial and the trial counts (see the module docstring)."""
    from kubernetes import client, config

    from kubevision.operator.settings import DEFAULT_TRAINER_IMAGE

    config.load_kube_config()  # type: ignore[no-untyped-call, unused-ignore]
    namespace = os.environ.get("KUBEVISION_E2E_NAMESPACE", "kubevision-e2e")
    claim = os.environ.get("KUBEVISION_E2E_CLAIM", "kubevision-outputs")
    timeout_s = float(os.environ.get("KUBEVISION_E2E_TIMEOUT_S", "3600"))
    image = os.environ.get("KUBEVISION_E2E_TRAINER_IMAGE", DEFAULT_TRAINER_IMAGE)
    _prepare_data(client.BatchV1Api(), namespace, claim, image, timeout_s)

    api = client.CustomObjectsApi()
    name = f"e2e-digits-{int(time.time()) % 100_000}"
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, job_manifest(name, namespace))
    try:
        def finished() -> dict[str, Any] | None:
            job = cast(dict[str, Any], api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))
            status = job.get("status") or {}
            return status if status.get("phase") in ("Succeeded", "Failed") else None

        status = _wait(finished, timeout_s, f"AutoMLImageJob {namespace}/{name} to finish")
        assert status["phase"] == "Succeeded", json.dumps(status, indent=2)
        listed = cast(dict[str, Any], api.list_namespaced_custom_object(
            "kubeflow.org", "v1beta1", namespace, "trials", label_selector=f"kubevision.io/job={name}"))
        trials: list[dict[str, Any]] = listed["items"]
        assert len(trials) == len(LEARNING_RATES)
        scores = {t["metadata"]["name"]: v for t in trials if (v := _objective(t)) is not None}
        assert scores, "no trial reported accuracy: is the namespace labelled for Katib's metrics collector?"
        top = max(scores.values())
        best = min(n for n, v in scores.items() if v == top)
        best_trial = status["bestTrial"]
        assert (best_trial["name"], best_trial["metric"]) == (best, top)
        assert best_trial["modelUri"].endswith(f"/trials/{best}/mlflow-model")
        counts = status["trials"]
        assert counts["total"] == len(trials) and counts["running"] == 0
        assert counts["succeeded"] + counts["earlyTerminated"] == len(scores)
        mount = os.environ.get("KUBEVISION_E2E_VOLUME")
        if mount and best_trial["modelUri"].startswith(f"pvc://{claim}/"):
            from kubevision.trainer.predict import run_predict

            model_dir = Path(mount) / best_trial["modelUri"].removeprefix(f"pvc://{claim}/")
            data = Path(mount) / DATA_DIR
            image_file = data / json.loads((data / "val60.jsonl").read_text().splitlines()[0])["image_url"]
            assert run_predict(model_dir, [image_file], out_file=tmp_path / "p.jsonl", batch_size=1) == 1
    finally:
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
