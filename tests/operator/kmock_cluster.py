"""Helpers of the operator's runtime tests: the real kopf operator against kmock's Kubernetes emulator.

The seam, declared (as kopf's own test suites do):
- real: kopf (`kopf.operator` via `kubevision.operator.main.operate`, cluster-wide, standalone), our
  handlers, planners and status mapper, our gateway speaking HTTP, the decision service and the
  metrics endpoint on loopback ports;
- emulated: the Kubernetes API (kmock's `KubernetesEmulator`: stores objects, streams watch events,
  no schemas, no garbage collection, no controllers), and Katib: the tests play its controller by
  patching Experiment and Trial status the way Katib writes them (reference kubeflow-kserve 1.7).
Nothing of ours is mocked. Tests talk to the emulator with kmock's own HTTP client, like kubectl.

Two fidelity fixes (`VersionedEmulator`), both things kopf relies on and kmock 0.8 lacks:
- a real API server gives every write a new `metadata.resourceVersion` and answers a JSON patch whose
  `test` of it fails with 422 (kopf's optimistic concurrency for finalizers); kmock keeps what the
  client sent and answers 500. The subclass stamps increasing versions and checks the tests;
- a real watch continues exactly where its list ended (`?resourceVersion=` of the list); kmock
  answers lists with a dummy version, replays every object as ADDED when a watch starts (stale if it
  changed since the list: kopf then patches with an old version and waits forever) and subscribes to
  its event bus only after that, losing writes in between. The subclass answers lists with the
  current version, subscribes first, and sends only what is newer than the list (or the snapshot).
For the benchmark, `history_limit` keeps only the latest requests (plus those still being served):
kmock matches each request against its reactions by scanning the whole request history, which is
quadratic over the tens of thousands of requests of 1,000 jobs; single-object reads and writes look
the object up by key instead of scanning every stored object.

Timing: the operator runs with a 0.2 s resync timer and sub-second retry delays, so each test takes
about a second; `wait_for` polls the emulator instead of sleeping fixed times.
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import kmock

from kubevision.operator.gateway import Connection
from kubevision.operator.handlers import Runtime, Timing
from kubevision.operator.main import RuntimeConfig, operate
from kubevision.operator.metrics import OperatorMetrics
from kubevision.operator.settings import OperatorSettings

NS = "team-a"
JOBS = "kubevision.io/v1alpha1/automlimagejobs"
ENDPOINTS = "kubevision.io/v1alpha1/inferenceendpoints"
EXPERIMENTS = "kubeflow.org/v1beta1/experiments"
TRIALS = "kubeflow.org/v1beta1/trials"
PYTORCHJOBS = "kubeflow.org/v1/pytorchjobs"
CONFIGMAPS = "v1/configmaps"
SECRETS = "v1/secrets"
CRDS = "apiextensions.k8s.io/v1/customresourcedefinitions"
ALL_VERBS = {"list", "watch", "get", "patch", "create", "delete", "update"}
FAST = Timing(resync_s=0.2, katib_retry_s=0.5, checkpoint_retry_s=0.5, api_retry_s=0.3)
SETTINGS = OperatorSettings(
    trainer_image="registry.example/kubevision-trainer:test",
    termination_url="http://kubevision-operator.kubevision-system.svc:8082",
    output_pvc="kubevision-outputs",
)


class VersionedEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus what the API server sets on writes: resourceVersion (and uid on create)."""

    _version = 100
    history_limit: int | None = None
    """Keep at most about this many past requests (None: all, for assertions on `list(emulator)`)."""

    async def _handle(self, request: Any) -> Any:
        limit = self.history_limit
        if limit is None:
            return await self._versioned(request)
        inflight: list[Any] = self.__dict__.setdefault("_inflight", [])
        inflight.append(request)
        try:
            return await self._versioned(request)
        finally:
            inflight[:] = [r for r in inflight if r is not request]
            recent = self._requests[-limit:] if limit else []
            self._requests[:] = recent + [r for r in inflight if all(r is not k for k in recent)]

    async def _versioned(self, request: Any) -> Any:
        if request.resource is not None and request.action in (kmock.action.CREATE, kmock.action.UPDATE):
            VersionedEmulator._version += 1
            version = str(VersionedEmulator._version)
            data = request.data
            if isinstance(data, dict):
                meta = data.setdefault("metadata", {})
                meta["resourceVersion"] = version
                if request.action == kmock.action.CREATE:
                    meta.setdefault("uid", str(uuid.uuid4()))
                    meta.setdefault("generation", 1)
            elif isinstance(data, list):  # a JSON patch: its `test` of the version must hold (else 422)
                self._check_version(request, data)
                data.append({"op": "add", "path": "/metadata/resourceVersion", "value": version})
        return await super()._handle(request)

    def _one(self, request: Any, namespace: str | None, name: str | None) -> Any:
        try:
            obj = self.objects[request.resource, namespace, name]  # type: ignore[index]
        except KeyError:
            raise kmock.KubernetesObjectNotFoundError() from None
        return obj

    async def _serve_fetch(self, request: Any) -> Any:
        obj = self._one(request, request.namespace, request.name)
        if obj.deleted:
            raise kmock.KubernetesObjectNotFoundError()
        return obj.raw

    async def _serve_create(self, request: Any) -> Any:
        meta = request.data.get("metadata", {}) if isinstance(request.data, dict) else {}
        return self._one(request, request.namespace or meta.get("namespace"), request.name or meta.get("name")).last.raw

    async def _serve_update(self, request: Any) -> Any:
        return self._one(request, request.namespace, request.name).last.raw

    async def _serve_delete(self, request: Any) -> Any:
        return self._one(request, request.namespace, request.name).last.raw

    async def _serve_list(self, request: Any) -> Any:
        payload: dict[str, Any] = await super()._serve_list(request)  # type: ignore[assignment]
        payload["metadata"]["resourceVersion"] = str(VersionedEmulator._version)
        return payload

    async def _serve_watch(self, request: Any) -> Any:
        yield b""
        bus = self._buses[request.resource]
        marker = await bus.mark()
        since = str(request.params.get("resourceVersion", ""))
        listed = int(since) if since.isdigit() else -1
        try:
            async with self._lock:
                objs = [o for o in self._KubernetesEmulator__get_objs(request, strict=False)  # type: ignore[attr-defined]
                        if not o.deleted]
                snapshot = [o.raw for o in objs if _version(o.raw) > listed]
            seen = {_key(raw): _version(raw) for raw in snapshot}
            for raw in snapshot:
                yield {"type": "ADDED" if listed < 0 else "MODIFIED", "object": raw}
            async for event in bus.stream(since=marker):
                raw = event.get("object", {})
                meta = raw.get("metadata", {})
                if not self._KubernetesEmulator__check(  # type: ignore[attr-defined]
                        request, request.resource, meta.get("namespace"), meta.get("name"), strict=False):
                    continue
                if event.get("type") != "DELETED" and _version(raw) <= max(seen.get(_key(raw), -1), listed):
                    continue  # already in the snapshot: a real watch would not send it
                yield event
        finally:
            await bus.unmark(marker)

    def _check_version(self, request: Any, ops: list[Any]) -> None:
        try:
            current = self.objects[request.resource, request.namespace, request.name]
        except KeyError:
            return
        stored_version = None if current.deleted else (current.get("metadata") or {}).get("resourceVersion")
        for op in ops:
            if op.get("op") == "test" and op.get("path") == "/metadata/resourceVersion" \
                    and op.get("value") != stored_version:
                raise kmock.KubernetesError(status=422, reason="Invalid",
                                            message=f"the resourceVersion test failed: {op.get('value')} != "
                                                    f"{stored_version}")


def _key(raw: Mapping[str, Any]) -> tuple[Any, Any]:
    meta = raw.get("metadata", {})
    return meta.get("namespace"), meta.get("name")


def _version(raw: Mapping[str, Any]) -> int:
    value = str(raw.get("metadata", {}).get("resourceVersion", ""))
    return int(value) if value.isdigit() else -1


def path(resource: str, namespace: str | None = None, name: str | None = None) -> str:
    """REST path of a resource given as group/version/plural (v1/plural for the core group)."""
    parts = resource.split("/")
    base = f"/api/{parts[0]}" if len(parts) == 2 else f"/apis/{parts[0]}/{parts[1]}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{parts[-1]}"
    return f"{base}/{name}" if name else base


def declare_cluster(emulator: kmock.KubernetesEmulator, *, katib: bool = True) -> None:
    """Discovery of every resource the operator touches (kopf hangs without the two backbone ones)."""
    info = kmock.ResourceInfo
    emulator.resources[CRDS] = info(kind="CustomResourceDefinition", namespaced=False, verbs=ALL_VERBS)
    emulator.resources["v1/namespaces"] = info(kind="Namespace", namespaced=False, verbs=ALL_VERBS)
    emulator.resources["v1/events"] = info(kind="Event", namespaced=True, verbs=ALL_VERBS)
    emulator.resources[CONFIGMAPS] = info(kind="ConfigMap", namespaced=True, verbs=ALL_VERBS)
    emulator.resources[SECRETS] = info(kind="Secret", namespaced=True, verbs=ALL_VERBS)
    emulator.resources[JOBS] = info(kind="AutoMLImageJob", singular="automlimagejob", namespaced=True,
                                    verbs=ALL_VERBS, subresources={"status"})
    emulator.resources[ENDPOINTS] = info(kind="InferenceEndpoint", singular="inferenceendpoint", namespaced=True,
                                         verbs=ALL_VERBS, subresources={"status"})
    if katib:
        emulator.resources[EXPERIMENTS] = info(kind="Experiment", singular="experiment", namespaced=True,
                                               verbs=ALL_VERBS, subresources={"status"})
        emulator.resources[TRIALS] = info(kind="Trial", singular="trial", namespaced=True, verbs=ALL_VERBS,
                                          subresources={"status"})
        emulator.resources[PYTORCHJOBS] = info(kind="PyTorchJob", singular="pytorchjob", namespaced=True,
                                               verbs=ALL_VERBS, subresources={"status"})
        for plural, kind, version in (("experiments", "Experiment", "v1beta1"), ("trials", "Trial", "v1beta1"),
                                      ("pytorchjobs", "PyTorchJob", "v1")):
            emulator.objects[CRDS, None, f"{plural}.kubeflow.org"] = crd_object(plural, kind, version)


def crd_object(plural: str, kind: str, version: str, group: str = "kubeflow.org") -> dict[str, Any]:
    """A CustomResourceDefinition as the API server returns it (kopf reads group, names and versions)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}", "resourceVersion": "1"},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
            "versions": [{"name": version, "served": True, "storage": True,
                          "subresources": {"status": {}}}],
        },
    }


def job_manifest(name: str = "fridge", *, uid: str | None = None, **spec: Any) -> dict[str, Any]:
    """A valid AutoMLImageJob as the API server stores it (uid and generation set: kmock sets neither)."""
    body: dict[str, Any] = {
        "task": "image_classification",
        "trainingData": {"path": "data/train.jsonl"},
        "limits": {"maxTrials": 4, "maxConcurrentTrials": 2, "timeoutMinutes": 60},
        "searchSpace": [{"modelName": {"type": "choice", "values": ["resnet18", "mobilenetv2"]},
                         "learningRate": {"type": "uniform", "minValue": 0.001, "maxValue": 0.01}}],
        "sweep": {"samplingAlgorithm": "random",
                  "earlyTermination": {"type": "bandit", "evaluationInterval": 1, "slackFactor": 0.1}},
        "resources": {"gpusPerNode": 1},
    }
    body.update(spec)
    return {
        "apiVersion": "kubevision.io/v1alpha1",
        "kind": "AutoMLImageJob",
        "metadata": {"name": name, "namespace": NS, "uid": uid or f"uid-{name}", "generation": 1,
                     "resourceVersion": "1"},
        "spec": body,
    }


async def create(emulator: kmock.KubernetesEmulator, resource: str, body: Mapping[str, Any]) -> None:
    namespace = body["metadata"].get("namespace")
    async with emulator.post(path(resource, namespace), json=dict(body)) as response:
        assert response.status < 300, await response.text()


async def patch(emulator: kmock.KubernetesEmulator, resource: str, name: str, body: Mapping[str, Any],
                namespace: str = NS) -> None:
    headers = {"Content-Type": "application/merge-patch+json"}
    async with emulator.patch(path(resource, namespace, name), json=dict(body), headers=headers) as response:
        assert response.status < 300, await response.text()


async def delete(emulator: kmock.KubernetesEmulator, resource: str, name: str, namespace: str = NS) -> None:
    async with emulator.delete(path(resource, namespace, name)) as response:
        assert response.status < 300, await response.text()


def stored(emulator: kmock.KubernetesEmulator, resource: str, name: str, namespace: str | None = NS
           ) -> dict[str, Any] | None:
    """The object as the emulator stores it now (a plain copy), or None when absent/deleted."""
    try:
        obj = emulator.objects[resource, namespace, name]
    except KeyError:
        return None
    return None if obj.deleted else copy.deepcopy(obj.raw)


def names(emulator: kmock.KubernetesEmulator, resource: str) -> list[str]:
    """Names of the live objects of a resource."""
    wanted = kmock.resource(resource)
    return sorted(name for (res, _, name), obj in emulator.objects.items() if res == wanted and not obj.deleted)


def job_status(emulator: kmock.KubernetesEmulator, name: str) -> dict[str, Any]:
    return dict((stored(emulator, JOBS, name) or {}).get("status") or {})


def condition(status: Mapping[str, Any], kind: str) -> dict[str, Any]:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


async def wait_for(check: Callable[[], Any], timeout: float = 8.0, what: str = "the condition") -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


# ---- playing Katib ----------------------------------------------------------------------------


def katib_condition(kind: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": reason, "message": message,
            "lastUpdateTime": "2026-11-29T10:00:00Z", "lastTransitionTime": "2026-11-29T10:00:00Z"}


def metrics_of(metric: str, values: list[float]) -> list[dict[str, str]]:
    """A Trial's observation metrics as Katib writes them (strings)."""
    return [{"name": metric, "min": str(min(values)), "max": str(max(values)), "latest": str(values[-1])}]


async def katib_trial(emulator: kmock.KubernetesEmulator, experiment: Mapping[str, Any], trial: str, *,
                      state: str, parameters: Mapping[str, Any], metric: str = "accuracy",
                      values: list[float] | None = None) -> None:
    """Create (or update) a Trial the way Katib does: the Experiment's labels, its parameters, a condition."""
    conditions = [katib_condition("Created", "TrialCreated")]
    if state == "running":
        conditions.append(katib_condition("Running", "TrialRunning"))
    elif state == "succeeded":
        conditions.append(katib_condition("Succeeded", "TrialSucceeded"))
    elif state == "failed":
        conditions.append(katib_condition("Failed", "TrialFailed"))
    labels = {**experiment["metadata"].get("labels", {}), "katib.kubeflow.org/experiment":
              experiment["metadata"]["name"]}
    status: dict[str, Any] = {"conditions": conditions}
    if values:
        status["observation"] = {"metrics": metrics_of(metric, values)}
    body = {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
        "metadata": {"name": trial, "namespace": NS, "labels": labels,
                     "ownerReferences": [{"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
                                          "name": experiment["metadata"]["name"], "uid": "exp-uid",
                                          "controller": True}]},
        "spec": {"parameterAssignments": [{"name": k, "value": str(v)} for k, v in parameters.items()]},
        "status": status,
    }
    if stored(emulator, TRIALS, trial) is None:
        await create(emulator, TRIALS, body)
    else:
        await patch(emulator, TRIALS, trial, {"status": status})


# ---- the operator under test ------------------------------------------------------------------


class OperatorHandle:
    """Starts and stops the real operator (as a task in the test's loop) against the emulator."""

    def __init__(self, emulator: kmock.KubernetesEmulator) -> None:
        self.emulator = emulator
        self.runtime: Runtime | None = None
        self.metrics: OperatorMetrics | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self.starts = 0
        self.clock_offset = timedelta(0)
        """Added to the operator's clock: a test moves time forward (timeouts) without waiting."""

    async def start(self, *, timing: Timing = FAST, webhook: RuntimeConfig | None = None,
                    settings: OperatorSettings = SETTINGS, metrics_port: int | None = None) -> Runtime:
        ready, self._stop = asyncio.Event(), asyncio.Event()
        config = webhook or RuntimeConfig(clusterwide=True, standalone=True, host="127.0.0.1",
                                          metrics_port=metrics_port, health_port=None, termination_port=0,
                                          timing=timing, shutdown_grace_s=0.2)
        connection = Connection(server=str(self.emulator.url).rstrip("/"), token="test-token")
        runtimes: list[Runtime] = []
        self.metrics = OperatorMetrics()
        self._task = asyncio.create_task(operate(config, settings, connection, ready_flag=ready,
                                                 stop_flag=self._stop, metrics=self.metrics,
                                                 runtime_hook=runtimes.append))
        ready_wait = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait({ready_wait, self._task}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            ready_wait.cancel()
            await self._task  # raises what made it stop
        assert ready_wait in done, "the operator did not become ready in 15 s"
        self.runtime = runtimes[0]
        self.runtime.clock = lambda: datetime.now(UTC) + self.clock_offset
        self.starts += 1
        return self.runtime

    @property
    def termination_url(self) -> str:
        assert self.runtime is not None and self.runtime.termination.port is not None
        return f"http://127.0.0.1:{self.runtime.termination.port}"

    async def stop(self) -> None:
        if self._task is None or self._stop is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(self._task, timeout=15)
        finally:
            self._task = None
            self.runtime = None


