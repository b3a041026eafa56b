"""`plan_job`: an AutoMLImageJob in, the ConfigMap and Katib Experiments the operator creates out.

Why one Experiment per sub-space: Katib's parameters are a flat list (no conditional spaces,
katib#1864), so each sub-space of `searchSpace` becomes its own Experiment and the operator takes the
job's best trial across them. The three job modes map to:
- manual sweep: one Experiment per sub-space (one for the whole job when there is a single sub-space),
  algorithm random -> random, grid -> grid, bayesian -> tpe; maxTrials and maxConcurrentTrials split
  over the Experiments (`budget`);
- AutoMode: the same two phases as the local runner (kubevision.sweep.automode). Phase 1 is one
  Experiment whose only parameter is the categorical `config`, an index into the portfolio, sampled
  by grid so each entry runs once; the portfolio is in the ConfigMap as automode.json. Katib cannot
  chain two searches in one Experiment, so phase 2 (TPE around the best portfolio config, for the
  remaining `JobPlan.refinement_trials`) is a second Experiment that the operator creates once phase 1
  has finished: `plan_automode_refinement(job, best=portfolio[i], ...)`;
- single trial: one Experiment with one grid point (`modelName` = the fixed or default model), so a
  single trial gets the same status, outputs and timeout handling as a sweep.

Everything lossy is reported in `JobPlan.warnings` (and documented in docs/operator-mapping.md).
Pure: no I/O, no clock, no randomness; the same inputs give byte-identical manifests.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.models import AutoMLImageJob, Resources
from kubevision.api.tasks import DEFAULT_MODEL
from kubevision.operator.reconcile.budget import max_failed_trials, split_budget
from kubevision.operator.reconcile.experiment import KATIB_ALGORITHM, experiment_manifest
from kubevision.operator.reconcile.job_config import config_map_manifest, trial_job_document
from kubevision.operator.reconcile.names import (
    SUB_SPACE_LABEL,
    child_labels,
    child_metadata,
    config_map_name,
    experiment_name,
    refinement_experiment_name,
    token_secret_name,
)
from kubevision.operator.reconcile.parameters import SHELL_WORD, as_word, grid_size, katib_parameters
from kubevision.operator.reconcile.storage import SHARED_MOUNT, Storage, plan_storage
from kubevision.operator.reconcile.trial_template import (
    AUTOMODE_PARAMETER,
    TrialTemplateInput,
    trial_template,
)
from kubevision.operator.settings import OperatorSettings

__all__ = [
    "DEFAULT_GPU_MEMORY_BYTES",
    "JobPlan",
    "automode_portfolio",
    "gpu_memory_bytes",
    "plan_automode_refinement",
    "plan_job",
    "termination_path",
]

DEFAULT_GPU_MEMORY_BYTES = 16 * 2**30
"""GPU memory assumed when the job's nodeSelector does not tell (Azure's recommended 16 GiB V100)."""

_GIB_IN_NAME = re.compile(r"(\d+)\s*G(?:i?B)?\b", re.IGNORECASE)


@dataclass(frozen=True)
class JobPlan:
    """What the operator creates for one job (the runtime also creates the token Secret when asked)."""

    config_map: dict[str, Any]
    """ConfigMap mounted at /etc/kubevision: job.yaml (+ automode.json in AutoMode)."""
    experiments: list[dict[str, Any]]
    """Katib Experiment manifests, one per entry of `sub_spaces`."""
    sub_spaces: list[int | None]
    """The searchSpace index each Experiment samples; None when it covers the whole job."""
    warnings: list[str]
    """Lossy mappings and storage problems, one sentence each (shown by `kubevision plan`)."""
    token_secret_name: str
    """Secret (key "token") with the job's early-termination token; create it when `early_termination`."""
    early_termination: bool = False
    """True when trials call the operator's decision service (the job has a policy and a URL is set)."""
    output_root: str = ""
    """Base of the trial output folders as trial pods see it (path or object-store URI)."""
    model_uri_base: str | None = None
    """The same base as others reach it (pvc://claim/path or the object-store URI); None for an emptyDir."""
    portfolio: list[dict[str, Any]] | None = None
    """AutoMode: the portfolio; a trial with parameter `config` = "i" ran portfolio[i]."""
    refinement_trials: int = 0
    """AutoMode: trials left for phase 2 (`plan_automode_refinement`) once the portfolio Experiment ends."""

    def model_uri(self, trial_name: str) -> str | None:
        """Where trial `trial_name` writes its MLflow model (None when outputs are not shared)."""
        if self.model_uri_base is None:
            return None
        return f"{self.model_uri_base}/trials/{trial_name}/mlflow-model"


def termination_path(namespace: str, job_name: str) -> str:
    """Path of a job's early-termination decisions on the operator's service."""
    return f"/v1/namespaces/{namespace}/jobs/{job_name}/termination"


def gpu_memory_bytes(resources: Resources) -> int | None:
    """Memory of one trial GPU for AutoMode's batch sizes: None on CPU.

    Read from the nodeSelector when it pins the GPU: GPU feature discovery's `nvidia.com/gpu.memory`
    (MiB) or a product label naming the size (`NVIDIA-A100-SXM4-80GB`); else 16 GiB.
    """
    if resources.gpus_per_node == 0:
        return None
    selector = resources.node_selector or {}
    memory = selector.get("nvidia.com/gpu.memory", "")
    if memory.isdigit():
        return int(memory) * 2**20
    for key in sorted(selector):
        if "gpu.product" in key:
            match = _GIB_IN_NAME.search(selector[key])
            if match:
                return int(match.group(1)) * 2**30
    return DEFAULT_GPU_MEMORY_BYTES


def _fixed_parameters(job: AutoMLImageJob) -> dict[str, Any]:
    return job.spec.training_parameters.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True)


def automode_portfolio(job: AutoMLImageJob) -> list[dict[str, Any]]:
    """Phase 1 of AutoMode: the portfolio configs (camelCase values) for this job's task, budget and GPUs."""
    from kubevision.sweep.automode import portfolio

    spec = job.spec
    configs = portfolio(
        spec.task,
        spec.limits.max_trials,
        device_memory_bytes=gpu_memory_bytes(spec.resources),
        fixed=_fixed_parameters(job),
    )
    if not configs:
        raise KubevisionError(f"AutoMode has no configuration to try for {spec.task}")
    return [dict(c) for c in configs]


@dataclass(frozen=True)
class _Group:
    """One future Experiment: which sub-space, what it samples, how, and its share of the budget."""

    sub_space: int | None
    parameters: list[dict[str, Any]]
    algorithm: str
    weight: float
    cap: int | None


@dataclass
class _Context:
    """What every Experiment of a job shares: storage, labels, checkpoint, termination endpoint."""

    job: AutoMLImageJob
    namespace: str
    settings: OperatorSettings
    owner: Mapping[str, Any] | None
    storage: Storage
    labels: dict[str, str]
    checkpoint: str | None
    termination_url: str | None
    warnings: list[str] = field(default_factory=list)

    def experiment(
        self,
        name: str,
        group: _Group,
        *,
        max_trials: int,
        parallel_trials: int,
        automode: bool = False,
        fixed_values: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        spec = self.job.spec
        labels = dict(self.labels)
        if group.sub_space is not None:
            labels[SUB_SPACE_LABEL] = str(group.sub_space)
        template = trial_template(
            TrialTemplateInput(
                parameter_names=[p["name"] for p in group.parameters],
                automode=automode,
                fixed_values=dict(fixed_values or {}),
                resources=spec.resources,
                storage=self.storage,
                config_map=config_map_name(self.job.metadata.name),
                labels=labels,
                image=spec.resources.image or self.settings.trainer_image,
                checkpoint=self.checkpoint,
                termination_url=self.termination_url,
                token_secret=token_secret_name(self.job.metadata.name),
                trial_timeout_minutes=spec.limits.trial_timeout_minutes,
            ),
            self.settings,
        )
        return experiment_manifest(
            metadata=child_metadata(name, self.namespace, labels, self.owner),
            task=spec.task,
            algorithm=group.algorithm,
            parameters=group.parameters,
            max_trials=max_trials,
            parallel_trials=parallel_trials,
            max_failed_trials=max_failed_trials(max_trials),
            trial_template=template,
        )


def _context(
    job: AutoMLImageJob,
    namespace: str,
    settings: OperatorSettings,
    owner: Mapping[str, Any] | None,
    checkpoint_uri: str | None,
) -> _Context:
    spec = job.spec
    name = job.metadata.name
    warnings: list[str] = []
    storage = plan_storage(
        job_name=name,
        namespace=namespace,
        output_uri=spec.output.uri if spec.output else None,
        operator_pvc=settings.output_pvc,
        operator_uri=settings.output_uri,
    )
    checkpoint: str | None = None
    if checkpoint_uri is not None:
        checkpoint = storage.locate(checkpoint_uri, "checkpoint")
    elif spec.checkpoint is not None and spec.checkpoint.model_uri is not None:
        checkpoint = storage.locate(spec.checkpoint.model_uri, "spec.checkpoint.modelUri")
    elif spec.checkpoint is not None and spec.checkpoint.from_job is not None:
        warnings.append(
            f"spec.checkpoint.fromJob {spec.checkpoint.from_job!r} is resolved by the operator from that job's "
            "best model when the job is created; this plan has no model to start from"
        )
    if checkpoint is not None and not SHELL_WORD.match(checkpoint):
        raise KubevisionError(
            "the checkpoint location cannot be passed to a Katib trial",
            [Problem(f"{checkpoint!r} contains spaces, quotes or shell characters", field="spec.checkpoint")],
        )
    policy = spec.effective_sweep.early_termination if spec.effective_sweep is not None else None
    termination_url: str | None = None
    if policy is not None:
        if settings.termination_url:
            termination_url = settings.termination_url.rstrip("/") + termination_path(namespace, name)
        else:
            warnings.append(
                f"spec.sweep.earlyTermination ({policy.type}) needs the operator's decision service URL "
                "(KUBEVISION_TERMINATION_URL / --termination-url); without it every trial runs to the end"
            )
    labels = child_labels(name, settings.extra_labels)
    return _Context(job, namespace, settings, owner, storage, labels, checkpoint, termination_url, warnings)


def _groups(job: AutoMLImageJob, portfolio: list[dict[str, Any]] | None, warnings: list[str]) -> list[_Group]:
    spec = job.spec
    if portfolio is not None:
        values = [str(i) for i in range(len(portfolio))]
        param = {"name": AUTOMODE_PARAMETER, "parameterType": "categorical", "feasibleSpace": {"list": values}}
        return [_Group(None, [param], "grid", 1.0, len(portfolio))]
    sweep = spec.effective_sweep
    if sweep is None or not spec.search_space:
        model = spec.training_parameters.model_name or DEFAULT_MODEL[spec.task]
        param = {"name": "modelName", "parameterType": "categorical", "feasibleSpace": {"list": [str(model)]}}
        return [_Group(None, [param], "grid", 1.0, 1)]
    algorithm = KATIB_ALGORITHM[sweep.sampling_algorithm]
    if sweep.sampling_algorithm == "bayesian":
        warnings.append(
            "bayesian sampling runs as Katib's tpe (hyperopt's Tree-structured Parzen Estimator, the same family "
            "as the local runner's sampler), not as Azure's Gaussian-process Bayesian optimization"
        )
    conditional = len(spec.search_space) > 1
    groups = []
    for i, sub_space in enumerate(spec.search_space):
        plan = katib_parameters(sub_space, where=f"spec.searchSpace[{i}]")
        warnings.extend(plan.warnings)
        index = i if conditional else None
        if algorithm == "grid":
            size = grid_size(plan.parameters) or 1
            groups.append(_Group(index, plan.parameters, algorithm, float(size), size))
        else:
            groups.append(_Group(index, plan.parameters, algorithm, 1.0, None))
    return groups


def _budgets(
    job: AutoMLImageJob, groups: list[_Group], total: int, warnings: list[str]
) -> tuple[list[_Group], list[int], list[int]]:
    """(groups kept, maxTrialCount each, parallelTrialCount each) for a budget of `total` trials."""
    limits = job.spec.limits
    if total < len(groups):
        dropped = [str(g.sub_space) for g in groups[total:]]
        warnings.append(
            f"maxTrials {total} is less than the {len(groups)} sub-spaces and every Experiment needs a trial: "
            f"sub-space{'s' if len(dropped) > 1 else ''} {', '.join(dropped)} "
            f"get{'' if len(dropped) > 1 else 's'} no Experiment"
        )
        groups = groups[:total]
    trials = split_budget(total, [g.weight for g in groups], [g.cap for g in groups])
    if sum(trials) < total and groups[0].algorithm == "grid" and job.spec.search_space:
        warnings.append(
            f"grid sampling: the search space has {sum(trials)} combinations, fewer than maxTrials {total}; "
            f"the job runs {sum(trials)} trials"
        )
    concurrent = min(limits.effective_max_concurrent_trials, sum(trials))
    if concurrent >= len(groups):
        parallel = split_budget(concurrent, [float(t) for t in trials], trials)
    else:
        parallel = [1] * len(groups)
        warnings.append(
            f"maxConcurrentTrials {limits.max_concurrent_trials} is less than the {len(groups)} Experiments (one per "
            f"sub-space), which run side by side with at least one trial each: up to {len(groups)} trials run at once"
        )
    return groups, trials, parallel


def _model_uri_base(storage: Storage) -> str | None:
    root = storage.output_root
    if "://" in root:
        return root
    if storage.shared_claim is not None and (root == SHARED_MOUNT or root.startswith(SHARED_MOUNT + "/")):
        inside = posixpath.relpath(root, SHARED_MOUNT)
        return f"pvc://{storage.shared_claim}" + ("" if inside == "." else f"/{inside}")
    return None


def plan_job(
    job: AutoMLImageJob,
    *,
    namespace: str,
    settings: OperatorSettings,
    owner: Mapping[str, Any] | None = None,
    checkpoint_uri: str | None = None,
) -> JobPlan:
    """The ConfigMap and Experiments of `job` in `namespace` (pure; see the module docstring).

    `owner` is the job's {apiVersion, kind, name, uid}: it becomes the controlling ownerReference of
    every child. `checkpoint_uri` is the model `spec.checkpoint.fromJob` resolved to (the runtime reads
    that job's status); it wins over `spec.checkpoint.modelUri`.
    """
    spec = job.spec
    name = job.metadata.name
    ctx = _context(job, namespace, settings, owner, checkpoint_uri)
    job_document = trial_job_document(job, namespace, ctx.storage)
    portfolio = automode_portfolio(job) if spec.is_automode else None
    budget = len(portfolio) if portfolio is not None else spec.limits.max_trials
    groups, trials, parallel = _budgets(job, _groups(job, portfolio, ctx.warnings), budget, ctx.warnings)
    experiments = [
        ctx.experiment(
            experiment_name(name, group.sub_space),
            group,
            max_trials=max_trials,
            parallel_trials=parallel_trials,
            automode=portfolio is not None,
        )
        for group, max_trials, parallel_trials in zip(groups, trials, parallel, strict=True)
    ]
    config_map = config_map_manifest(
        metadata=child_metadata(config_map_name(name), namespace, ctx.labels, owner),
        job_document=job_document,
        portfolio=portfolio,
    )
    return JobPlan(
        config_map=config_map,
        experiments=experiments,
        sub_spaces=[g.sub_space for g in groups],
        warnings=list(dict.fromkeys(ctx.storage.warnings + ctx.warnings)),
        token_secret_name=token_secret_name(name),
        early_termination=ctx.termination_url is not None,
        output_root=ctx.storage.output_root,
        model_uri_base=_model_uri_base(ctx.storage),
        portfolio=portfolio,
        refinement_trials=spec.limits.max_trials - len(portfolio) if portfolio is not None else 0,
    )


def plan_automode_refinement(
    job: AutoMLImageJob,
    *,
    namespace: str,
    settings: OperatorSettings,
    best: Mapping[str, Any],
    owner: Mapping[str, Any] | None = None,
    checkpoint_uri: str | None = None,
) -> dict[str, Any] | None:
    """AutoMode phase 2: the Experiment that refines around `best` (a portfolio entry), or None if no trials are left.

    The runtime calls it once the portfolio Experiment has finished, with `best` = portfolio[i] of the
    best trial (its `config` parameter). TPE samples kubevision.sweep.automode.automode_search_space
    (learning rate and epochs around the best's, same model); the best's other values (batch size,
    gradient accumulation, ...) are passed as fixed `--set` values. Named `refinement_experiment_name`.
    """
    from kubevision.sweep.automode import automode_search_space

    spec = job.spec
    if not spec.is_automode:
        raise ValueError(f"job {job.metadata.name} is not an AutoMode job")
    remaining = spec.limits.max_trials - len(automode_portfolio(job))
    if remaining <= 0:
        return None
    ctx = _context(job, namespace, settings, owner, checkpoint_uri)
    space = automode_search_space(spec.task, best, fixed=_fixed_parameters(job))
    params = katib_parameters(space, where="automode refinement")
    fixed_values = {key: as_word(value) for key, value in sorted(best.items()) if key not in space}
    bad = [f"{k}={v}" for k, v in fixed_values.items() if not SHELL_WORD.match(v)]
    if bad:
        raise KubevisionError(
            "the best AutoMode config cannot be passed to a Katib trial",
            [Problem(f"{item!r} contains spaces, quotes or shell characters", field="best") for item in bad],
        )
    group = _Group(None, params.parameters, KATIB_ALGORITHM["bayesian"], 1.0, None)
    parallel = min(spec.limits.effective_max_concurrent_trials, remaining)
    return ctx.experiment(
        refinement_experiment_name(job.metadata.name),
        group,
        max_trials=remaining,
        parallel_trials=parallel,
        fixed_values=fixed_values,
    )
