"""A short, plain-language plan of what a manifest will do.

Why: defaults, caps and implied settings (the task's default model, maxConcurrentTrials capped at
maxTrials, random sampling when `sweep` is omitted, 20% of the training data held out) are where
a job surprises its author. `kubevision validate` prints this plan so they are seen before an
hour of GPU time is spent, not after.
"""

from __future__ import annotations

from kubevision.api.models import AutoMLImageJob, EarlyTermination, InferenceEndpoint
from kubevision.api.rules import trial_groups
from kubevision.api.tasks import DEFAULT_MODEL
from kubevision.api.values import show

__all__ = ["describe"]


def describe(resource: AutoMLImageJob | InferenceEndpoint) -> str:
    """The plan as a few aligned `label: text` lines under a title."""
    if isinstance(resource, AutoMLImageJob):
        rows = _job_rows(resource)
    else:
        rows = _endpoint_rows(resource)
    meta = resource.metadata
    title = f"{resource.kind} {meta.name}" + (f" (namespace {meta.namespace})" if meta.namespace else "")
    width = max(len(label) for label, _ in rows) + 1
    return "\n".join([title] + [f"  {label + ':':<{width}} {text}" for label, text in rows])


def _job_rows(job: AutoMLImageJob) -> list[tuple[str, str]]:
    spec = job.spec
    limits = spec.limits
    rows = [("task", f"{spec.task}, ranked by {spec.effective_primary_metric}")]
    sweep = spec.effective_sweep
    if spec.mode == "single":
        rows.append(("mode", "single trial"))
    elif spec.mode == "automode":
        rows.append(
            (
                "mode",
                f"AutoMode: kubevision chooses models and hyperparameters for {limits.max_trials} trials",
            )
        )
    else:
        assert sweep is not None and spec.search_space is not None
        implied = "" if spec.sweep is not None else " (no sweep given: random)"
        count = len(spec.search_space)
        rows.append(
            (
                "mode",
                f"manual sweep, {sweep.sampling_algorithm} sampling{implied} over "
                f"{count} sub-space{'s' if count != 1 else ''}",
            )
        )
    rows.append(("models", _models(job)))
    trials = f"{limits.max_trials}, {limits.effective_max_concurrent_trials} at a time"
    if limits.max_concurrent_trials > limits.max_trials:
        trials += f" (maxConcurrentTrials {limits.max_concurrent_trials} capped at maxTrials)"
    rows.append(("trials", trials))
    if sweep is not None:
        rows.append(("early stop", _early_termination(sweep.early_termination)))
    per_trial = f"; {limits.trial_timeout_minutes} min per trial" if limits.trial_timeout_minutes else ""
    rows.append(("timeout", f"{limits.timeout_minutes} min for the job{per_trial}"))
    res = spec.resources
    gpus = (
        f"{res.gpus_per_node} GPU{'s' if res.gpus_per_node != 1 else ''}" if res.gpus_per_node else "CPU only"
    )
    nodes = f"{res.node_count_per_trial} node{'s' if res.node_count_per_trial != 1 else ''}"
    rows.append(("compute", f"{nodes} x {gpus} per trial"))
    validation = (
        spec.validation_data.location
        if spec.validation_data
        else f"{spec.validation_data_size:.0%} of the training data held out"
    )
    rows.append(("data", f"train {spec.training_data.location}; validation {validation}"))
    fixed = spec.training_parameters.model_dump(by_alias=True, exclude_none=True)
    fixed.pop("modelName", None)
    if fixed:
        rows.append(("fixed", ", ".join(f"{k}={show(v, 40)}" for k, v in fixed.items())))
    if spec.checkpoint is not None:
        start = (
            f"best model of job {spec.checkpoint.from_job}"
            if spec.checkpoint.from_job
            else str(spec.checkpoint.model_uri)
        )
        rows.append(("starts from", start))
    if spec.output is not None:
        rows.append(("output", spec.output.uri))
    return rows


def _models(job: AutoMLImageJob) -> str:
    spec = job.spec
    groups = trial_groups(spec)
    if any(models is None for _, models in groups):
        return "chosen by AutoMode"
    names: list[str] = []
    for _, models in groups:
        names += [m for m in models or [] if m not in names]
    text = ", ".join(names)
    if not spec.search_space and spec.training_parameters.model_name is None:
        text += f" (the default for {spec.task})" if names == [DEFAULT_MODEL[spec.task]] else ""
    return text


def _early_termination(policy: EarlyTermination | None) -> str:
    if policy is None:
        return "none (every trial runs to completion)"
    if policy.type == "bandit":
        slack = (
            f"slack factor {policy.slack_factor}"
            if policy.slack_factor is not None
            else f"slack amount {policy.slack_amount}"
        )
        what = f"bandit, {slack}"
    elif policy.type == "median_stopping":
        what = "median stopping"
    else:
        finished = ", finished trials excluded" if policy.exclude_finished_jobs else ""
        what = f"truncation selection, lowest {policy.truncation_percentage}%{finished}"
    interval = policy.effective_evaluation_interval
    every = "every evaluation" if interval == 1 else f"every {interval} evaluations"
    delay = f", after a delay of {policy.delay_evaluation}" if policy.delay_evaluation else ""
    return f"{what}; {every}{delay}"


def _endpoint_rows(endpoint: InferenceEndpoint) -> list[tuple[str, str]]:
    spec = endpoint.spec
    rows = [("auth", "key (requests need the endpoint key)" if spec.auth_mode == "key" else "none (open)")]
    traffic = spec.traffic
    for dep in spec.deployments:
        model = f"best model of job {dep.model.from_job}" if dep.model.from_job else f"model {dep.model.uri}"
        res = dep.resources
        gpus = f", {res.gpus} GPU{'s' if res.gpus != 1 else ''} each" if res and res.gpus else ""
        replicas = f"{dep.replicas} replica{'s' if dep.replicas != 1 else ''}"
        rows.append((f"deployment {dep.name}", f"{model}, {traffic[dep.name]}% of traffic, {replicas}{gpus}"))
    if len(spec.deployments) == 2:
        rows.append(("rollout", "canary: two model versions share the traffic"))
    return rows
