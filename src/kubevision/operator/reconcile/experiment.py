"""A Katib Experiment (kubeflow.org/v1beta1) for one group of trials of a job.

Why these settings (reference kubeflow-kserve 1.1-1.6; table in docs/operator-mapping.md):
- objective: maximize the task's primary metric, exactly as the trial program names it on its stdout
  line (`accuracy`, `iou`, `mean_average_precision`); a few other metrics it prints are collected as
  additionalMetricNames. metricStrategies are explicit (the webhook would give a loss "max" too).
- metricsCollectorSpec StdOut: Katib's default filter `([\\w|-]+)\\s*=\\s*(number)` reads our lines
  `<RFC3339> epoch=3 accuracy=0.91 log_loss=0.3`, timestamps first (kubevision.trainer.reporting).
- no Katib earlyStopping: bandit, median and truncation policies are decided by the operator's own
  service (the same code as the local runner); Katib's medianstop is a different rule.
- resumePolicy Never: the job ends when its Experiments do; Experiments are immutable for us.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubevision.api.tasks import PRIMARY_METRIC, Task

__all__ = ["ADDITIONAL_METRICS", "KATIB_ALGORITHM", "experiment_manifest", "objective"]

KATIB_ALGORITHM: dict[str, str] = {"random": "random", "grid": "grid", "bayesian": "tpe"}
"""Azure sampling algorithm -> Katib algorithmName (bayesian: see docs/operator-mapping.md)."""

ADDITIONAL_METRICS: dict[Task, tuple[tuple[str, str], ...]] = {
    Task.IMAGE_CLASSIFICATION: (("log_loss", "min"), ("log_loss_train", "min")),
    Task.IMAGE_CLASSIFICATION_MULTILABEL: (("accuracy", "max"), ("log_loss", "min"), ("log_loss_train", "min")),
    Task.IMAGE_OBJECT_DETECTION: (("log_loss_train", "min"),),
    Task.IMAGE_INSTANCE_SEGMENTATION: (("log_loss_train", "min"),),
}
"""Metrics the trial program prints besides the primary one, with the Katib strategy that reads them."""


def objective(task: Task) -> dict[str, Any]:
    """Katib objective: maximize the primary metric, collect a few others."""
    primary = PRIMARY_METRIC[task]
    extra = [(name, how) for name, how in ADDITIONAL_METRICS[task] if name != primary]
    return {
        "type": "maximize",
        "objectiveMetricName": primary,
        "additionalMetricNames": [name for name, _ in extra],
        "metricStrategies": [{"name": primary, "value": "max"}]
        + [{"name": name, "value": how} for name, how in extra],
    }


def experiment_manifest(
    *,
    metadata: Mapping[str, Any],
    task: Task,
    algorithm: str,
    parameters: list[dict[str, Any]],
    max_trials: int,
    parallel_trials: int,
    max_failed_trials: int,
    trial_template: dict[str, Any],
) -> dict[str, Any]:
    """The Experiment manifest; counts must already satisfy Katib's rules (parallel, failed <= max)."""
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": dict(metadata),
        "spec": {
            "objective": objective(task),
            "algorithm": {"algorithmName": algorithm},
            "parallelTrialCount": parallel_trials,
            "maxTrialCount": max_trials,
            "maxFailedTrialCount": max_failed_trials,
            "resumePolicy": "Never",
            "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
            "parameters": parameters,
            "trialTemplate": trial_template,
        },
    }
