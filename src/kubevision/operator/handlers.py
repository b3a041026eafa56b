"""The kopf handlers of AutoMLImageJob: thin glue between kopf, the planners, the status mapper and the gateway.

Why handlers are registered by `build_registry(runtime)` instead of module-level decorators: the
timer interval and retry delays come from the runtime (seconds in tests, tens of seconds in a
cluster), tests start several operators in one process, and kopf refuses admission handlers without
a webhook server, so the webhook is registered only when one is configured.

What runs where:
- `on.create` / `on.resume` (`start`): validate the spec (invalid: InvalidSpec, phase Failed, no
  children, no retry), check that Katib (and the PyTorchJob CRD) is installed (absent: Pending with
  KatibNotInstalled, retried every `katib_retry_s`), resolve checkpoint.fromJob (not ready:
  CheckpointNotReady, retried), then create-or-adopt the token Secret, the ConfigMap and the
  Experiments (deterministic names: a restart mid-job adopts, never duplicates), host the job's
  decision service and set phase Running. A job already Running only gets its Secret and decision
  service back (a missing Experiment is then a deletion by hand, see below).
- `on.update` of spec: a job that never started (invalid or pending) starts with the new spec; a
  running job gets the three fields Katib lets change (maxTrialCount, parallelTrialCount,
  maxFailedTrialCount) patched into its Experiments, and a warning Event for anything else (Katib
  Experiments are immutable; delete and re-apply the job to change its search).
- `timer` (`reconcile`, every `resync_s`): the level-based loop. Reads the Experiment and Trial indexes
  (kopf indexes: nothing is written on Katib's objects), enforces timeoutMinutes (best so far kept,
  Experiments deleted, TimeoutReached), detects an Experiment deleted by hand, and writes the status
  the pure mapper computes.
- `index` of Experiments and Trials labelled `kubevision.io/job`, and an `on.event` on Trials that
  marks finished trials in the decision service at once.
- `on.delete` (optional: children go by owner references): forget the job's service and metrics.

Decision on an Experiment deleted by hand: the job fails (reason ExperimentDeleted) and its other
Experiments are deleted too. Recreating it would silently rerun (and pay for) that part of the search
and fight a user who deleted it to stop spending GPUs; the best trial so far is kept in the status,
and re-applying the job starts a fresh search.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from kubevision.api.errors import KubevisionError
from kubevision.api.loading import parse_manifest
from kubevision.api.models import AutoMLImageJob, Limits
from kubevision.api.tasks import PRIMARY_METRIC, Task
from kubevision.operator.gateway import CONFIGMAPS, EXPERIMENTS, JOBS, ApiError, Connection, Gateway
from kubevision.operator.metrics import OperatorMetrics
from kubevision.operator.reconcile import JobPlan, plan_job
from kubevision.operator.reconcile import status as st
from kubevision.operator.reconcile.names import (
    JOB_LABEL,
    experiment_name,
    refinement_experiment_name,
    token_secret_name,
)
from kubevision.operator.reconcile.plan import plan_automode_refinement
from kubevision.operator.settings import OperatorSettings
from kubevision.operator.termination_service import Registration, TerminationService
from kubevision.sweep.termination import policy_from_job

__all__ = [
    "GROUP",
    "PLURAL",
    "TERMINATION_STATE_KEY",
    "VERSION",
    "Runtime",
    "Timing",
    "build_registry",
    "termination_config_map_name",
]

_logger = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "kubevision.io", "v1alpha1", "automlimagejobs"
KATIB = ("kubeflow.org", "v1beta1")
TERMINATION_STATE_KEY = "state.json"
DEFAULT_TIMEOUT_MINUTES: int = Limits.model_fields["timeout_minutes"].default
REQUIRED_CRDS = (
    ("experiments.kubeflow.org", "KatibNotInstalled", "Katib"),
    ("trials.kubeflow.org", "KatibNotInstalled", "Katib"),
    ("pytorchjobs.kubeflow.org", "TrainingOperatorNotInstalled", "the Kubeflow training operator"),
)

Key = tuple[str, str]


def termination_config_map_name(job_name: str) -> str:
    """The ConfigMap (owned by the job) holding the decision service's saved histories."""
    return f"{job_name}-termination"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Timing:
    """How often the operator looks again (short in tests, longer in a cluster)."""

    resync_s: float = 10.0
    """Interval of the status/timeout timer of each job."""
    katib_retry_s: float = 60.0
    """Retry delay while Katib or the training operator is not installed."""
    checkpoint_retry_s: float = 30.0
    """Retry delay while checkpoint.fromJob's job has no best model yet."""
    api_retry_s: float = 10.0
    """Retry delay after an API error that the gateway's own retries did not overcome."""


@dataclass
class Runtime:
    """Everything the handlers share: settings, the API gateway, the decision service, metrics."""

    settings: OperatorSettings
    gateway: Gateway
    termination: TerminationService
    metrics: OperatorMetrics
    connection: Connection
    timing: Timing = field(default_factory=Timing)
    clock: Callable[[], datetime] = _utcnow
    stopping: bool = False
    """Set when the operator is asked to stop: handlers still invoked then do nothing."""
    plans: dict[Key, tuple[Any, AutoMLImageJob, dict[str | None, JobPlan]]] = field(default_factory=dict)
    """Each job's parsed spec and plans (by checkpoint URI), kept until its spec or uid changes: the
    timer needs them every tick and validating + planning is the costly part of a tick."""

    def _entry(self, body: Mapping[str, Any]) -> tuple[Any, AutoMLImageJob, dict[str | None, JobPlan]]:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        stamp = (meta.get("uid"), json.dumps(body.get("spec"), sort_keys=True, default=str))
        cached = self.plans.get(key)
        if cached is None or cached[0] != stamp:
            cached = (stamp, _parse(body), {})
            self.plans[key] = cached
        return cached

    def job(self, body: Mapping[str, Any]) -> AutoMLImageJob:
        """The job's spec validated (KubevisionError when invalid), cached per spec."""
        return self._entry(body)[1]

    def plan(self, body: Mapping[str, Any], checkpoint_uri: str | None = None) -> JobPlan:
        """plan_job for this job, cached until its spec (or uid) changes."""
        return self._plan_of(self._entry(body), body, checkpoint_uri)

    def job_and_plan(self, body: Mapping[str, Any]) -> tuple[AutoMLImageJob, JobPlan]:
        """Both with one cache lookup: what the timer needs every tick."""
        entry = self._entry(body)
        return entry[1], self._plan_of(entry, body, None)

    def _plan_of(self, entry: tuple[Any, AutoMLImageJob, dict[str | None, JobPlan]], body: Mapping[str, Any],
                 checkpoint_uri: str | None) -> JobPlan:
        _, job, plans = entry
        if checkpoint_uri not in plans:
            meta = body.get("metadata") or {}
            plans[checkpoint_uri] = plan_job(job, namespace=str(meta.get("namespace")), settings=self.settings,
                                             owner=_owner(body), checkpoint_uri=checkpoint_uri)
        return plans[checkpoint_uri]

    @contextmanager
    def timed(self, handler: str) -> Any:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.metrics.reconcile_seconds.labels(handler=handler).observe(time.perf_counter() - started)

    # ---- loading a job for the decision service (also after a restart) -------------------------

    async def load_registration(self, namespace: str, name: str) -> Registration | None:
        body = await self.gateway.get(JOBS, namespace, name)
        if body is None:
            return None
        try:
            job = _parse(body)
        except KubevisionError:
            return None
        policy = policy_from_job(job)
        if policy is None:
            return None
        secret = await self.gateway.get_token(namespace, token_secret_name(name))
        if secret is None:
            return None
        saved = await self.gateway.read_config_text(namespace, termination_config_map_name(name),
                                                    TERMINATION_STATE_KEY)
        return Registration(policy=policy, token=secret, saved_state=saved)

    async def save_termination_state(self, namespace: str, name: str, text: str) -> None:
        """Write the decision service's state into `<job>-termination` (owned by the job, so it goes with it)."""
        cached = self.plans.get((namespace, name))
        uid = cached[0][0] if cached is not None else None
        if uid:
            body: Mapping[str, Any] | None = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AutoMLImageJob",
                                              "metadata": {"name": name, "uid": uid}}
        else:
            body = await self.gateway.get(JOBS, namespace, name)
        if body is None:
            return
        meta = {"labels": {JOB_LABEL: name}, "ownerReferences": _owner_refs(body)}
        await self.gateway.write_config_text(namespace, termination_config_map_name(name),
                                             TERMINATION_STATE_KEY, text, meta)


# ---- helpers -------------------------------------------------------------------------------------


def _parse(body: Mapping[str, Any]) -> AutoMLImageJob:
    """The job as our API model (status left out: the operator writes it, users do not)."""
    manifest = {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in body}
    meta = dict(manifest.get("metadata") or {})
    manifest["metadata"] = meta
    source = f"AutoMLImageJob {meta.get('namespace')}/{meta.get('name')}"
    resource = parse_manifest(manifest, source=source)
    if not isinstance(resource, AutoMLImageJob):
        raise KubevisionError(f"{source} holds a {resource.kind}, not an AutoMLImageJob")
    return resource


def _owner(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {"apiVersion": body.get("apiVersion", f"{GROUP}/{VERSION}"), "kind": body.get("kind", "AutoMLImageJob"),
            "name": meta.get("name"), "uid": meta.get("uid")}


def _owner_refs(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    owner = _owner(body)
    return [{**owner, "controller": True, "blockOwnerDeletion": True}] if owner.get("uid") else []


def _generation(body: Mapping[str, Any]) -> int | None:
    value = (body.get("metadata") or {}).get("generation")
    return int(value) if isinstance(value, int) else None


def _body(body: Mapping[str, Any]) -> kopf.Body:
    """kopf's Body view for event posting (handlers pass kopf's own body through as a Mapping)."""
    return body if isinstance(body, kopf.Body) else kopf.Body(cast(kopf.RawBody, dict(body)))


def _metric(spec: Mapping[str, Any]) -> str:
    try:
        return PRIMARY_METRIC[Task(str(spec.get("task")))]
    except ValueError:
        return "accuracy"


def _timeout_minutes(spec: Mapping[str, Any]) -> int:
    value = (spec.get("limits") or {}).get("timeoutMinutes")
    return int(value) if isinstance(value, int) else DEFAULT_TIMEOUT_MINUTES


def _write(runtime: Runtime, body: Mapping[str, Any], patch: kopf.Patch, update: st.StatusUpdate) -> dict[str, Any]:
    """Apply a StatusUpdate onto the job's status through kopf's patch; returns the new status."""
    meta = body.get("metadata") or {}
    old = dict(body.get("status") or {})
    new = st.apply_update(old, update, now=runtime.clock(), generation=_generation(body))
    changes = st.status_patch(old, new)
    if changes:
        patch.status.update(changes)
    runtime.metrics.observe_job(str(meta.get("namespace")), str(meta.get("name")), new.get("phase"),
                                new.get("trials"))
    return new


# ---- start (create / resume) -----------------------------------------------------------------------


async def start(runtime: Runtime, body: Mapping[str, Any], patch: kopf.Patch) -> None:
    """Bring a job to Running: validate, check prerequisites, create-or-adopt children, host its service."""
    meta = body.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    status = body.get("status") or {}
    phase = status.get("phase")
    if phase == "Succeeded" or (phase == "Failed" and _reason(status, st.READY) != "InvalidSpec"):
        runtime.metrics.observe_job(namespace, name, phase, status.get("trials"))
        return  # finished: never recreate what a timeout or a deletion ended
    try:
        job = runtime.job(body)
    except KubevisionError as err:
        _logger.warning("job %s/%s has an invalid spec: %s", namespace, name, err)
        _write(runtime, body, patch, st.invalid_spec_status(str(err)))
        return
    for crd, reason, what in REQUIRED_CRDS:
        if not await _present(runtime, crd):
            message = (f"{what} is not installed: CustomResourceDefinition {crd} not found; the job starts "
                       f"once it is (checked every {runtime.timing.katib_retry_s:g} s)")
            _write(runtime, body, patch, st.pending_status(reason, message))
            raise kopf.TemporaryError(message, delay=runtime.timing.katib_retry_s)
    checkpoint_uri = await _resolve_checkpoint(runtime, body, patch, job, namespace)
    try:
        plan = runtime.plan(body, checkpoint_uri)
    except KubevisionError as err:
        _write(runtime, body, patch, st.invalid_spec_status(str(err)))
        return
    child_meta = plan.config_map.get("metadata") or {}
    try:
        token = await runtime.gateway.ensure_token(namespace, plan.token_secret_name, child_meta)
        if phase != "Running":  # Running: every Experiment was created before; a missing one was deleted
            await runtime.gateway.create_or_adopt(CONFIGMAPS, plan.config_map)
            for experiment in plan.experiments:
                await runtime.gateway.create_or_adopt(EXPERIMENTS, experiment)
        policy = policy_from_job(job)
        if policy is not None and plan.early_termination:
            saved = await runtime.gateway.read_config_text(namespace, termination_config_map_name(name),
                                                           TERMINATION_STATE_KEY)
            runtime.termination.register(namespace, name, Registration(policy, token, saved))
    except ApiError as err:
        if err.status in (400, 403, 422):  # refused, not transient: Katib's webhook, RBAC, quota
            _write(runtime, body, patch, st.failed_status(
                "ChildRejected", f"the API refused a child of this job: {err.message} ({err.verb} {err.path})"))
            return
        raise kopf.TemporaryError(f"Kubernetes API error: {err}", delay=runtime.timing.api_retry_s) from err
    refs = [{"name": exp["metadata"]["name"], "namespace": namespace,
             **({"subSpace": sub} if sub is not None else {})}
            for exp, sub in zip(plan.experiments, plan.sub_spaces, strict=True)]
    if phase == "Running":
        if status.get("experimentRef") != refs:
            patch.status["experimentRef"] = refs
        return
    for warning in plan.warnings:
        _logger.info("job %s/%s: %s", namespace, name, warning)
    _write(runtime, body, patch, st.started_status(refs, runtime.clock(), plan.warnings))
    _logger.info("job %s/%s started: Experiments %s", namespace, name, ", ".join(r["name"] for r in refs))


def _reason(status: Mapping[str, Any], kind: str) -> str | None:
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return str(cond.get("reason"))
    return None


async def _present(runtime: Runtime, crd: str) -> bool:
    try:
        return await runtime.gateway.crd_present(crd)
    except ApiError as err:
        raise kopf.TemporaryError(f"cannot check for {crd}: {err}", delay=runtime.timing.api_retry_s) from err


async def _resolve_checkpoint(runtime: Runtime, body: Mapping[str, Any], patch: kopf.Patch, job: AutoMLImageJob,
                              namespace: str) -> str | None:
    """checkpoint.fromJob -> that job's best model URI; Pending with CheckpointNotReady until it has one."""
    source = job.spec.checkpoint.from_job if job.spec.checkpoint is not None else None
    if source is None:
        return None
    try:
        other = await runtime.gateway.get(JOBS, namespace, source)
    except ApiError as err:
        raise kopf.TemporaryError(f"cannot read job {source}: {err}", delay=runtime.timing.api_retry_s) from err
    other_status = (other or {}).get("status") or {}
    uri = (other_status.get("bestTrial") or {}).get("modelUri")
    if other is None:
        why = f"checkpoint.fromJob: AutoMLImageJob {namespace}/{source} does not exist"
    elif other_status.get("phase") != "Succeeded":
        why = (f"checkpoint.fromJob: AutoMLImageJob {namespace}/{source} has not succeeded yet "
               f"(phase {other_status.get('phase') or 'unknown'})")
    elif not uri:
        why = f"checkpoint.fromJob: AutoMLImageJob {namespace}/{source} succeeded but has no bestTrial.modelUri"
    else:
        return str(uri)
    message = f"{why}; retrying every {runtime.timing.checkpoint_retry_s:g} s"
    _write(runtime, body, patch, st.pending_status("CheckpointNotReady", message))
    raise kopf.TemporaryError(message, delay=runtime.timing.checkpoint_retry_s)


# ---- update -------------------------------------------------------------------------------------------


async def update(runtime: Runtime, body: Mapping[str, Any], old: Any, new: Any, patch: kopf.Patch) -> None:
    """A spec change: start a job that never started, else patch Katib's mutable counts and warn about the rest."""
    status = body.get("status") or {}
    if status.get("phase") in (None, "Pending") or _reason(status, st.READY) == "InvalidSpec":
        await start(runtime, body, patch)
        return
    if status.get("phase") != "Running":
        return
    namespace = str((body.get("metadata") or {}).get("namespace"))
    try:
        job = _parse(body)
    except KubevisionError as err:
        kopf.warn(_body(body), reason="InvalidSpec", message=f"the update is invalid and was not applied: {err}")
        return
    old_spec, new_spec = dict(old or {}), dict(new or {})
    old_limits, new_limits = old_spec.pop("limits", None), new_spec.pop("limits", None)
    if old_spec != new_spec:
        kopf.warn(_body(body), reason="SpecChangeIgnored",
                  message="Katib Experiments are immutable: only spec.limits changes apply to a running job; "
                          "delete and re-apply the job to change anything else")
    if old_limits == new_limits:
        return
    plan = plan_job(job, namespace=namespace, settings=runtime.settings, owner=_owner(body))
    try:
        for experiment in plan.experiments:
            counts = {k: experiment["spec"][k] for k in ("maxTrialCount", "parallelTrialCount", "maxFailedTrialCount")
                      if k in experiment["spec"]}
            await runtime.gateway.patch(EXPERIMENTS, namespace, experiment["metadata"]["name"], {"spec": counts})
    except ApiError as err:
        if err.status in (400, 422):
            kopf.warn(_body(body), reason="LimitsChangeRejected",
                      message=f"Katib refused the new limits: {err.message}")
            return
        raise kopf.TemporaryError(f"Kubernetes API error: {err}", delay=runtime.timing.api_retry_s) from err


# ---- the timer: status, timeout, deleted Experiments ------------------------------------------------------


async def reconcile(runtime: Runtime, body: Mapping[str, Any], patch: kopf.Patch,
                    experiments_index: Any, trials_index: Any) -> None:
    """One level-based look at a running job (see the module docstring)."""
    meta = body.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    status = body.get("status") or {}
    phase = status.get("phase")
    if phase != "Running":
        if phase in ("Succeeded", "Failed"):
            runtime.termination.unregister(namespace, name)
        runtime.metrics.observe_job(namespace, name, phase, status.get("trials"))
        return
    spec = body.get("spec") or {}
    key = (namespace, name)
    experiments = {str(e["name"]): e for e in (experiments_index.get(key) or [])}
    trials = list(trials_index.get(key) or [])
    for trial in trials:
        if trial.get("state") not in ("pending", "running"):
            runtime.termination.mark_finished(namespace, name, str(trial.get("name")))
    await runtime.termination.flush(namespace, name)
    expected = [str(ref.get("name")) for ref in status.get("experimentRef") or [] if ref.get("name")]
    if not expected:  # Running without Experiments recorded: nothing to judge (resume records them)
        return
    metric = _metric(spec)
    job: AutoMLImageJob | None
    plan: JobPlan | None
    try:
        job, plan = runtime.job_and_plan(body)
    except KubevisionError:  # edited into an invalid spec while running: keep reporting what runs
        job, plan = None, None
    model_uri = plan.model_uri if plan is not None else (lambda _trial: None)
    portfolio = plan.portfolio if plan is not None else None
    observed = [experiments[n] for n in expected if n in experiments]
    now = runtime.clock()
    deadline = st.timeout_deadline(status, _timeout_minutes(spec))
    if deadline is not None and now >= deadline:
        why = f"timeoutMinutes ({_timeout_minutes(spec)}) reached at {st.rfc3339(deadline)}; Experiments deleted"
        await _finish(runtime, body, patch, expected, "TimeoutReached", why, observed, trials, metric, model_uri,
                      portfolio)
        return
    missing = [n for n in expected if n not in experiments]
    if missing:
        gone = [n for n in missing if await _gone(runtime, namespace, n)]
        if gone:
            why = (f"Experiment {', '.join(gone)} was deleted outside the operator; the job cannot finish its "
                   "search (re-apply the job to start a new one); its other Experiments were deleted")
            await _finish(runtime, body, patch, expected, "ExperimentDeleted", why, observed, trials, metric,
                          model_uri, portfolio)
            return
    bases: dict[str, dict[str, Any]] = {}
    if job is not None and plan is not None and plan.portfolio and plan.refinement_trials > 0:
        base = _portfolio_best(plan, name, experiments, trials, metric)
        if base is not None:
            bases[refinement_experiment_name(name)] = base
            if refinement_experiment_name(name) not in expected:
                ref = await _start_refinement(runtime, body, job, base)
                if ref is None:
                    return  # the API failed: the next tick tries again, nothing is final yet
                expected.append(ref["name"])
                patch.status["experimentRef"] = [*(status.get("experimentRef") or []), ref]
    update_ = st.progress_status(
        expected=expected, experiments=experiments, trials=trials, metric=metric,
        stopped=runtime.termination.stopped(namespace, name), model_uri=model_uri,
        automode_configs=portfolio, bases=bases,
    )
    _write(runtime, body, patch, update_)
    if update_.finished:
        runtime.termination.unregister(namespace, name)
        _logger.info("job %s/%s %s: %s", namespace, name, update_.phase.lower(), update_.message)


async def _gone(runtime: Runtime, namespace: str, experiment: str) -> bool:
    """Not in the index: confirm with the API (the index lags a fresh creation by a watch event)."""
    try:
        return await runtime.gateway.get(EXPERIMENTS, namespace, experiment) is None
    except ApiError:
        return False


async def _finish(runtime: Runtime, body: Mapping[str, Any], patch: kopf.Patch, expected: list[str], reason: str,
                  why: str, observed: list[Mapping[str, Any]], trials: list[Mapping[str, Any]], metric: str,
                  model_uri: Callable[[str], str | None], portfolio: list[dict[str, Any]] | None) -> None:
    """End the job ourselves: record the best so far, delete the Experiments, write the final status."""
    meta = body.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    stopped = runtime.termination.stopped(namespace, name)
    counts = st.trial_counts(observed, stopped) if observed else (body.get("status") or {}).get("trials")
    best = st.best_trial(observed, trials, metric=metric, model_uri=model_uri, automode_configs=portfolio)
    try:
        for experiment in expected:
            await runtime.gateway.delete(EXPERIMENTS, namespace, experiment)
    except ApiError as err:
        raise kopf.TemporaryError(f"cannot delete the Experiments: {err}", delay=runtime.timing.api_retry_s) from err
    previous = (body.get("status") or {}).get("bestTrial")
    _write(runtime, body, patch, st.finished_status(reason, why, counts=counts, best=best, previous_best=previous,
                                                    metric=metric))
    runtime.termination.unregister(namespace, name)
    _logger.info("job %s/%s finished: %s", namespace, name, why)


def _portfolio_best(plan: JobPlan, name: str, experiments: Mapping[str, Mapping[str, Any]],
                    trials: list[Mapping[str, Any]], metric: str) -> dict[str, Any] | None:
    """AutoMode: the portfolio config of phase 1's best trial, once the portfolio Experiment succeeded."""
    phase1 = experiment_name(name, None)
    experiment = experiments.get(phase1)
    if experiment is None or st.experiment_state(experiment)[0] != "succeeded" or not plan.portfolio:
        return None
    best = st.best_trial([experiment], [t for t in trials if t.get("experiment") == phase1], metric=metric)
    index = (best or {}).get("parameters", {}).get("config")
    if not isinstance(index, int) or not 0 <= index < len(plan.portfolio):
        return None
    return dict(plan.portfolio[index])


async def _start_refinement(runtime: Runtime, body: Mapping[str, Any], job: AutoMLImageJob,
                            base: Mapping[str, Any]) -> dict[str, Any] | None:
    """AutoMode phase 2: create the TPE Experiment around the best portfolio config; its experimentRef."""
    meta = body.get("metadata") or {}
    namespace = str(meta.get("namespace"))
    checkpoint = None
    source = job.spec.checkpoint.from_job if job.spec.checkpoint is not None else None
    if source is not None:
        other = await runtime.gateway.get(JOBS, namespace, source)
        checkpoint = (((other or {}).get("status") or {}).get("bestTrial") or {}).get("modelUri")
    manifest = plan_automode_refinement(job, namespace=namespace, settings=runtime.settings, best=base,
                                        owner=_owner(body), checkpoint_uri=checkpoint)
    if manifest is None:
        return None
    try:
        await runtime.gateway.create_or_adopt(EXPERIMENTS, manifest)
    except ApiError as err:
        _logger.warning("job %s/%s: cannot create the AutoMode refinement Experiment: %s", namespace,
                        meta.get("name"), err)
        return None
    return {"name": manifest["metadata"]["name"], "namespace": namespace}


# ---- registration -------------------------------------------------------------------------------------------


def build_registry(runtime: Runtime, *, webhook: bool = False) -> kopf.OperatorRegistry:
    """All handlers of the operator on a fresh registry (login included: the runtime's connection)."""
    registry = kopf.OperatorRegistry()
    job_resource = (GROUP, VERSION, PLURAL)
    has_job_label = {JOB_LABEL: kopf.PRESENT}

    @kopf.on.login(id="login", registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        connection = runtime.connection
        token = connection.bearer()
        return kopf.ConnectionInfo(
            server=connection.server, ca_path=connection.ca_file, insecure=connection.insecure or None,
            scheme="Bearer" if token else None, token=token,
            certificate_path=connection.cert_file, private_key_path=connection.key_file,
        )

    @kopf.index(*KATIB, "experiments", id="experiments_by_job", labels=has_job_label, registry=registry)
    def experiments_by_job(**kwargs: Any) -> dict[Key, Any]:
        return {(str(kwargs["namespace"]), kwargs["labels"][JOB_LABEL]): st.summarize_experiment(kwargs["body"])}

    @kopf.index(*KATIB, "trials", id="trials_by_job", labels=has_job_label, registry=registry)
    def trials_by_job(**kwargs: Any) -> dict[Key, Any]:
        return {(str(kwargs["namespace"]), kwargs["labels"][JOB_LABEL]): st.summarize_trial(kwargs["body"])}

    @kopf.on.event(*KATIB, "trials", id="trial_finished", labels=has_job_label, registry=registry)
    def trial_finished(**kwargs: Any) -> None:
        if kwargs.get("type") != "DELETED" and st.trial_state(kwargs["body"]) not in ("pending", "running"):
            runtime.termination.mark_finished(str(kwargs["namespace"]), kwargs["labels"][JOB_LABEL], kwargs["name"])

    @kopf.on.create(*job_resource, id="start", registry=registry)
    async def on_create(**kwargs: Any) -> None:
        with runtime.timed("start"):
            await start(runtime, kwargs["body"], kwargs["patch"])

    @kopf.on.resume(*job_resource, id="resume", registry=registry)
    async def on_resume(**kwargs: Any) -> None:
        with runtime.timed("resume"):
            await start(runtime, kwargs["body"], kwargs["patch"])

    @kopf.on.update(*job_resource, id="update", field="spec", registry=registry)
    async def on_update(**kwargs: Any) -> None:
        with runtime.timed("update"):
            await update(runtime, kwargs["body"], kwargs["old"], kwargs["new"], kwargs["patch"])

    @kopf.timer(*job_resource, id="reconcile", interval=runtime.timing.resync_s, registry=registry)
    async def on_timer(**kwargs: Any) -> None:
        if runtime.stopping:
            return
        with runtime.timed("reconcile"):
            await reconcile(runtime, kwargs["body"], kwargs["patch"], kwargs["experiments_by_job"],
                            kwargs["trials_by_job"])

    @kopf.on.delete(*job_resource, id="forget", optional=True, registry=registry)
    def on_delete(**kwargs: Any) -> None:
        namespace, name = str(kwargs["namespace"]), str(kwargs["name"])
        runtime.termination.unregister(namespace, name)
        runtime.metrics.forget(namespace, name)
        runtime.plans.pop((namespace, name), None)

    if webhook:
        from kubevision.operator.webhook import register_webhooks

        register_webhooks(registry)
    return registry
