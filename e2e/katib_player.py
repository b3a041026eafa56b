"""The Katib player: Katib's controllers, the training operator and the kubelet, played for real.

Why it exists: the operator's own tests patch Katib's status by hand, which only proves the operator
reads what the test wrote. The player closes the loop the way a cluster does. It reads the
Experiment the operator created from the API server, samples assignments (`random` or `grid`,
honouring maxTrialCount and parallelTrialCount), creates each Trial (names, labels, owner, runSpec)
and its PyTorchJob, RUNS the job's Master container as a local process (the real `kubevision train`,
its ConfigMap, its shared volume, its Secret-borne token, the operator's decision service), parses
the output with Katib's StdOut collector rules, and writes Trial, PyTorchJob and Experiment status
as Katib and the training operator would (every rule in `e2e.katib`). What the operator then
reports can be checked against the trials' real outputs on disk.

Use: `KatibPlayer(api, local, work_dir)`; `await player.play(namespace, name)` plays one
Experiment to its end, `await player.watch(namespace, stop)` plays every Experiment that appears
until `stop` is set (as Katib's controller would). `player.runs` holds what happened, live.

Deviations (documented in e2e/README.md): one process per trial (no Worker replicas); Katib's
medianstop early stopping is not played (the operator never asks for it); the webhook's defaults are
applied in memory, not written back; finalizers are not added; a nil backoffLimit means no restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from e2e.katib import experiment_status as es
from e2e.katib import trials as tr
from e2e.katib.collector import collected_metric_names, observation, parse_text_log
from e2e.katib.defaults import with_defaults
from e2e.katib.pod import LocalCluster, PathMap, PodResult, plan_pod, run_pod
from e2e.katib.rest import KubeApi
from e2e.katib.suggestions import make_suggester, trial_suffix
from e2e.katib.training_operator import job_outcome, job_status

__all__ = ["CONFIGMAPS", "EXPERIMENTS", "PYTORCHJOBS", "SECRETS", "TRIALS", "ExperimentRun", "KatibPlayer",
           "TrialRun", "rfc3339_now"]

_logger = logging.getLogger(__name__)

EXPERIMENTS = "kubeflow.org/v1beta1/experiments"
TRIALS = "kubeflow.org/v1beta1/trials"
PYTORCHJOBS = "kubeflow.org/v1/pytorchjobs"
CONFIGMAPS = "v1/configmaps"
SECRETS = "v1/secrets"
_RETRYABLE = {"OnFailure", "Always"}


def rfc3339_now() -> str:
    """metav1.Time as Katib writes it: UTC, seconds, Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merge_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level keys that changed, and None for those that went (JSON merge patch semantics)."""
    old = old or {}
    patch = {k: v for k, v in new.items() if old.get(k) != v}
    patch.update({k: None for k in old if k not in new})
    return patch


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class TrialRun:
    """One trial as the player saw it through (the Trial object itself is on the API server)."""

    name: str
    experiment: str
    assignments: list[dict[str, str]]
    phase: str = "pending"
    attempts: int = 0
    exit_code: int | None = None
    log: str = ""
    """The primary container's stdout and stderr (what Katib's collector read and `kubectl logs` shows)."""
    argv: list[str] = field(default_factory=list)
    observation: dict[str, Any] | None = None
    path_map: PathMap | None = None

    def host_path(self, container_path: str) -> Path | None:
        """Where a path of the trial pod lies on this machine (None outside its volumes)."""
        return self.path_map.host(container_path) if self.path_map is not None else None


@dataclass
class ExperimentRun:
    namespace: str
    name: str
    trials: dict[str, TrialRun] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False
    error: str | None = None
    """Why the player could not play this Experiment (unsupported algorithm, missing PVC, ...)."""

    @property
    def completed(self) -> bool:
        return es.is_completed(self.status)


class KatibPlayer:
    """Plays Katib for the Experiments of an API server (see the module docstring)."""

    def __init__(self, api: KubeApi, local: LocalCluster, work_dir: Path, *, seed: int = 0,
                 clock: Callable[[], str] = rfc3339_now, poll_s: float = 0.2) -> None:
        self.api = api
        self.local = local
        self.work_dir = Path(work_dir)
        self.seed = seed
        self.clock = clock
        self.poll_s = poll_s
        self.runs: dict[str, ExperimentRun] = {}

    # ---- the Experiment controller -----------------------------------------------------------

    async def play(self, namespace: str, name: str) -> ExperimentRun:
        """Play one Experiment until it is completed and no trial runs (or it is deleted)."""
        run = self.runs.setdefault(name, ExperimentRun(namespace, name))
        body = await self.api.get(EXPERIMENTS, namespace, name)
        if body is None:
            run.deleted = True
            return run
        experiment = with_defaults(body)
        spec = experiment["spec"]
        lock = asyncio.Lock()
        active: dict[str, asyncio.Task[TrialRun]] = {}
        try:
            if spec.get("earlyStopping"):
                raise ValueError("Katib's earlyStopping (medianstop) is not played")
            suggester = make_suggester(spec, self.seed ^ zlib.crc32(name.encode()))
            names = random.Random(f"{self.seed}/{namespace}/{name}")
            if not es.is_completed(experiment.get("status")):
                stored = dict(experiment.get("status") or {})
                run.status = stored or es.created_status(self.clock())
                if not await self._write_status(run, experiment, stored):
                    return run
            exhausted = False
            while True:
                if not run.completed:
                    counts = run.status
                    done = sum(int(counts.get(k) or 0) for k in ("trialsSucceeded", "trialsFailed", "trialsKilled",
                                                                 "trialsEarlyStopped", "trialMetricsUnavailable"))
                    parallel = int(spec["parallelTrialCount"])
                    limit = spec.get("maxTrialCount")
                    wanted = parallel if limit is None else min(int(limit) - done, parallel)
                    add = wanted - len(active) if not exhausted else 0
                    if add > 0:
                        suggestions = suggester.suggest(add)
                        exhausted = len(suggestions) < add
                        for assignments in suggestions:
                            trial = self._new_trial_name(name, names, run)
                            run.trials[trial] = TrialRun(trial, name, assignments)
                            active[trial] = asyncio.create_task(self._trial(experiment, run.trials[trial], lock, run))
                async with lock:
                    if not await self._reconcile(run, experiment, suggestion_done=exhausted):
                        return run
                if run.completed and not active:
                    return run
                if active:
                    finished, _ = await asyncio.wait(active.values(), timeout=1.0,
                                                     return_when=asyncio.FIRST_COMPLETED)
                    for task in finished:
                        trial_run = task.result()
                        active.pop(trial_run.name, None)
                else:
                    await asyncio.sleep(self.poll_s)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the player cannot play it: say why, leave the Experiment as it is
            _logger.exception("cannot play Experiment %s/%s", namespace, name)
            run.error = str(err)
            return run
        finally:
            for task in active.values():
                task.cancel()
            for task in active.values():
                with contextlib.suppress(BaseException):
                    await task

    def _new_trial_name(self, experiment: str, rng: random.Random, run: ExperimentRun) -> str:
        while True:
            name = f"{experiment}-{trial_suffix(rng)}"
            if name not in run.trials:
                return name

    async def _trials_of(self, namespace: str, experiment: str) -> list[dict[str, Any]]:
        return [t for t in await self.api.list(TRIALS, namespace)
                if ((t.get("metadata") or {}).get("labels") or {}).get(tr.EXPERIMENT_LABEL) == experiment]

    async def _reconcile(self, run: ExperimentRun, experiment: dict[str, Any], *, suggestion_done: bool) -> bool:
        """Recompute the Experiment's status from its Trials and write it; False once it is deleted."""
        trials = await self._trials_of(run.namespace, run.name)
        old = dict(run.status)
        status, goal = es.trials_summary({**experiment, "status": old}, trials)
        if not es.is_completed(old):
            status = es.condition_status(experiment, status, goal_reached=goal, suggestion_done=suggestion_done,
                                         now=self.clock())
        run.status = status
        return await self._write_status(run, experiment, old)

    async def _write_status(self, run: ExperimentRun, experiment: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
        patch = _merge_patch(old, run.status)
        if not patch:
            return True
        written = await self.api.patch(EXPERIMENTS, run.namespace, run.name, {"status": patch}, subresource="status")
        if written is None:
            run.deleted = True
            return False
        return True

    # ---- the trial controller, the training operator and the kubelet --------------------------

    async def _trial(self, experiment: Mapping[str, Any], trial: TrialRun, lock: asyncio.Lock,
                     run: ExperimentRun) -> TrialRun:
        namespace = run.namespace
        manifest = tr.trial_manifest(experiment, trial.name, trial.assignments)
        created = await self.api.create(TRIALS, manifest)
        trial_status = tr.created_status(self.clock())
        await self._patch_status(TRIALS, namespace, trial.name, {}, trial_status)
        spec = manifest["spec"]
        job = dict(spec["runSpec"])
        job["metadata"] = {**job.get("metadata", {}), "ownerReferences": [{
            "apiVersion": "kubeflow.org/v1beta1", "kind": "Trial", "name": trial.name,
            "uid": (created.get("metadata") or {}).get("uid", ""), "controller": True, "blockOwnerDeletion": True}]}
        await self.api.create(PYTORCHJOBS, job)
        job_state = job_status(None, "Created", namespace=namespace, name=trial.name, now=self.clock())
        await self._patch_status(PYTORCHJOBS, namespace, trial.name, {}, job_state)
        trial.phase = "running"
        try:
            result, job_state, trial_status = await self._run_master(job, trial, job_state, trial_status, spec,
                                                                     namespace)
            trial_status = await self._finish(trial, spec, job, job_state, trial_status, result, namespace)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a pod that cannot start (missing Secret, PVC): the job fails, like a cluster
            _logger.warning("trial %s could not run: %s", trial.name, err)
            trial.log = f"the player could not start the pod: {err}"
            job_state = job_status(job_state, "Failed", namespace=namespace, name=trial.name, now=self.clock(),
                                   why=str(err))
            await self._patch_status(PYTORCHJOBS, namespace, trial.name, {}, job_state)
            outcome = job_outcome({"status": job_state}, spec["successCondition"], spec["failureCondition"])
            final = tr.completed_status(trial_status, outcome, None, spec["objective"]["objectiveMetricName"],
                                        self.clock())
            await self._patch_status(TRIALS, namespace, trial.name, trial_status, final)
            trial.phase = tr.trial_phase({"status": final})
        async with lock:
            await self._reconcile(run, dict(experiment), suggestion_done=False)
        return trial

    async def _run_master(self, job: Mapping[str, Any], trial: TrialRun, job_state: dict[str, Any],
                          trial_status: dict[str, Any], spec: Mapping[str, Any], namespace: str
                          ) -> tuple[PodResult, dict[str, Any], dict[str, Any]]:
        """Run the Master pod, restarting it as restartPolicy and backoffLimit allow; the last run's result."""
        config_maps, secrets = await self._pod_sources(job, namespace)
        plan = plan_pod(job, trial.name, local=self.local, scratch=self.work_dir / namespace / trial.name,
                        master_port=_free_port(), config_maps=config_maps, secrets=secrets,
                        primary_container=str(spec.get("primaryContainerName") or "pytorch"))
        trial.argv, trial.path_map = plan.argv, plan.path_map
        master = (job.get("spec") or {}).get("pytorchReplicaSpecs", {}).get("Master", {})
        run_policy = (job.get("spec") or {}).get("runPolicy") or {}
        restarts_allowed = int(run_policy.get("backoffLimit") or 0)
        policy = str(master.get("restartPolicy") or "OnFailure")
        while True:
            trial.attempts += 1
            job_state = job_status(job_state, "Running", namespace=namespace, name=trial.name, now=self.clock())
            await self._patch_status(PYTORCHJOBS, namespace, trial.name, {}, job_state)
            outcome = job_outcome({"status": job_state}, spec["successCondition"], spec["failureCondition"])
            running = tr.completed_status(trial_status, outcome, None, spec["objective"]["objectiveMetricName"],
                                          self.clock())
            await self._patch_status(TRIALS, namespace, trial.name, trial_status, running)
            trial_status = running
            result = await run_pod(plan)
            trial.exit_code, trial.log = result.exit_code, result.log
            retry = (policy in _RETRYABLE or (policy == "ExitCode" and result.exit_code >= 128))
            if result.exit_code == 0 or result.deadline_exceeded or not retry or trial.attempts > restarts_allowed:
                return result, job_state, trial_status
            job_state = job_status(job_state, "Restarting", namespace=namespace, name=trial.name, now=self.clock())
            await self._patch_status(PYTORCHJOBS, namespace, trial.name, {}, job_state)

    async def _pod_sources(self, job: Mapping[str, Any], namespace: str
                           ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """The ConfigMaps and Secrets the pod's volumes and env name, read from the API (the kubelet's part)."""
        pod = ((job.get("spec") or {}).get("pytorchReplicaSpecs", {}).get("Master", {}).get("template") or {}) \
            .get("spec") or {}
        config_names, secret_names = set(), set()
        for volume in pod.get("volumes") or []:
            if "configMap" in volume:
                config_names.add(str(volume["configMap"]["name"]))
            if "secret" in volume:
                secret_names.add(str(volume["secret"]["secretName"]))
        for container in pod.get("containers") or []:
            for item in container.get("env") or []:
                source = item.get("valueFrom") or {}
                if "secretKeyRef" in source:
                    secret_names.add(str(source["secretKeyRef"]["name"]))
                if "configMapKeyRef" in source:
                    config_names.add(str(source["configMapKeyRef"]["name"]))
        config_maps = {n: b for n in config_names if (b := await self.api.get(CONFIGMAPS, namespace, n)) is not None}
        secrets = {n: b for n in secret_names if (b := await self.api.get(SECRETS, namespace, n)) is not None}
        return config_maps, secrets

    async def _finish(self, trial: TrialRun, spec: Mapping[str, Any], job: Mapping[str, Any],
                      job_state: dict[str, Any], trial_status: dict[str, Any], result: PodResult, namespace: str
                      ) -> dict[str, Any]:
        """The job's end, the collector's report, the trial's final status, the job's clean-up."""
        now = self.clock()
        if result.exit_code == 0 and not result.deadline_exceeded:
            job_state = job_status(job_state, "Succeeded", namespace=namespace, name=trial.name, now=now)
        else:
            why = (f"PyTorchJob {trial.name} has failed because it was active longer than specified deadline"
                   if result.deadline_exceeded else "")
            job_state = job_status(job_state, "Failed", namespace=namespace, name=trial.name, now=now, why=why)
        await self._patch_status(PYTORCHJOBS, namespace, trial.name, {}, job_state)
        outcome = job_outcome({"status": job_state}, spec["successCondition"], spec["failureCondition"])
        objective = spec["objective"]
        observed: dict[str, Any] | None = None
        if outcome.condition == "Succeeded":
            filters = (((spec.get("metricsCollector") or {}).get("source") or {}).get("filter") or {}) \
                .get("metricsFormat") or []
            logs = parse_text_log(result.log.splitlines(), collected_metric_names(objective), filters)
            observed = observation(logs, objective.get("metricStrategies") or [])
        final = tr.completed_status(trial_status, outcome, observed, str(objective["objectiveMetricName"]), now)
        await self._patch_status(TRIALS, namespace, trial.name, trial_status, final)
        trial.observation, trial.phase = observed, tr.trial_phase({"status": final})
        if not spec.get("retainRun"):
            await self.api.delete(PYTORCHJOBS, namespace, trial.name)
        return final

    async def _patch_status(self, resource: str, namespace: str, name: str, old: Mapping[str, Any],
                            new: Mapping[str, Any]) -> None:
        patch = _merge_patch(old, new)
        if patch:
            await self.api.patch(resource, namespace, name, {"status": patch}, subresource="status")

    # ---- the controller's watch ----------------------------------------------------------------

    async def watch(self, namespace: str, stop: asyncio.Event) -> dict[str, ExperimentRun]:
        """Play every Experiment of `namespace` that appears, until `stop` is set; then cancel what runs."""
        plays: dict[str, asyncio.Task[ExperimentRun]] = {}
        try:
            while not stop.is_set():
                for experiment in await self.api.list(EXPERIMENTS, namespace):
                    name = str(experiment["metadata"]["name"])
                    if name not in plays and not es.is_completed(experiment.get("status")):
                        plays[name] = asyncio.create_task(self.play(namespace, name))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_s)
        finally:
            for task in plays.values():
                task.cancel()
            for task in plays.values():
                with contextlib.suppress(BaseException):
                    await task
        return self.runs
