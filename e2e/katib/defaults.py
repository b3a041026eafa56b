"""What Katib's mutating webhook fills into an Experiment (`experiment_defaults.go`, `constants.go`).

Why: the Experiment the operator writes is what a user would `kubectl get` before admission; Katib's
controllers act on the defaulted one. The player applies the same defaults in memory (it does not
write them back), so a field the operator leaves out behaves as in a cluster: parallelTrialCount 3,
metricStrategies by objective type (an additional metric gets the objective's strategy, not
"latest" as the Go comment claims), the Kubeflow-job success/failure conditions and primary pod
labels, and the StdOut collector.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_PARALLEL_TRIAL_COUNT",
    "KUBEFLOW_FAILURE_CONDITION",
    "KUBEFLOW_JOB_KINDS",
    "KUBEFLOW_PRIMARY_POD_LABELS",
    "KUBEFLOW_SUCCESS_CONDITION",
    "with_defaults",
]

DEFAULT_PARALLEL_TRIAL_COUNT = 3
KUBEFLOW_JOB_KINDS = frozenset({"TFJob", "PyTorchJob", "XGBoostJob", "MPIJob", "TrainJob"})
KUBEFLOW_SUCCESS_CONDITION = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
KUBEFLOW_FAILURE_CONDITION = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
KUBEFLOW_PRIMARY_POD_LABELS = {"training.kubeflow.org/job-role": "master"}
_JOB_SUCCESS_CONDITION = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
_JOB_FAILURE_CONDITION = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
_BY_TYPE = {"minimize": "min", "maximize": "max"}


def _objective(objective: dict[str, Any]) -> None:
    strategies = list(objective.get("metricStrategies") or [])
    named = {s.get("name") for s in strategies}
    kind = _BY_TYPE.get(str(objective.get("type")), "latest")
    if objective.get("objectiveMetricName") not in named:
        strategies.append({"name": objective.get("objectiveMetricName"), "value": kind})
    for metric in objective.get("additionalMetricNames") or []:
        if metric not in named:
            strategies.append({"name": metric, "value": kind})
    objective["metricStrategies"] = strategies


def _trial_template(template: dict[str, Any]) -> None:
    kind = (template.get("trialSpec") or {}).get("kind")
    if kind == "Job":
        template.setdefault("successCondition", _JOB_SUCCESS_CONDITION)
        template.setdefault("failureCondition", _JOB_FAILURE_CONDITION)
    elif kind in KUBEFLOW_JOB_KINDS:
        template["successCondition"] = template.get("successCondition") or KUBEFLOW_SUCCESS_CONDITION
        template["failureCondition"] = template.get("failureCondition") or KUBEFLOW_FAILURE_CONDITION
        if not template.get("primaryPodLabels"):
            template["primaryPodLabels"] = dict(KUBEFLOW_PRIMARY_POD_LABELS)


def with_defaults(experiment: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the Experiment as Katib's webhook would have stored it."""
    out = copy.deepcopy(dict(experiment))
    spec = out.setdefault("spec", {})
    spec.setdefault("parallelTrialCount", DEFAULT_PARALLEL_TRIAL_COUNT)
    spec["resumePolicy"] = spec.get("resumePolicy") or "Never"
    if spec.get("objective") is not None:
        _objective(spec["objective"])
    if spec.get("trialTemplate") is not None:
        _trial_template(spec["trialTemplate"])
    collector = spec.setdefault("metricsCollectorSpec", {})
    collector.setdefault("collector", {"kind": "StdOut"})
    return out
