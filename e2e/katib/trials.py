"""Trials as Katib's experiment and trial controllers make and update them.

Why each rule matters to the operator under test:
- names `<experiment>-<8 chars>` and the labels (the Experiment's own labels plus
  `katib.kubeflow.org/experiment`) are how the operator indexes a job's trials (`kubevision.io/job`
  comes from the Experiment's labels, copied by `util.TrialLabels`);
- the Experiment is the controlling owner; spec carries the objective, the assignments, the runSpec,
  the collector and the primary pod/container and success/failure conditions (`getTrialInstance`);
- the runSpec is the trialSpec's JSON text with every `${trialParameters.<name>}` replaced by its
  assignment or meta value (`${trialSpec.Name|Namespace|Kind|APIVersion|Labels[k]|Annotations[k]}`),
  then named after the trial in its namespace (manifest/generator.go); a value with a quote in it
  breaks the JSON, as in Katib;
- status: Created with startTime when first seen; Running when the job runs; at the end Succeeded
  only when the objective was observed (else MetricsUnavailable), Failed when the job failed, the
  job's reason and message appended (`TrialSucceeded. Job reason: PyTorchJobSucceeded`), and an
  EarlyStopped trial is never turned Succeeded (trial_controller_util.go).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from e2e.katib.collector import observation_available
from e2e.katib.conditions import has_condition, mark_finished, set_condition

__all__ = [
    "EXPERIMENT_LABEL",
    "JobOutcome",
    "TrialPhase",
    "completed_status",
    "created_status",
    "early_stopped_status",
    "run_spec",
    "running_status",
    "trial_labels",
    "trial_manifest",
    "trial_phase",
]

EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
TrialPhase = Literal["killed", "failed", "succeeded", "early_stopped", "running", "metrics_unavailable", "pending"]
_META_REFERENCE = re.compile(r"\{trialSpec\.(.+)\}")
_META_INDEX = re.compile(r"(.+)\[(.+)]")


@dataclass(frozen=True)
class JobOutcome:
    """What Katib reads from the trial's job through its success/failure conditions."""

    condition: Literal["Running", "Succeeded", "Failed"]
    reason: str = ""
    message: str = ""


def trial_labels(experiment: Mapping[str, Any]) -> dict[str, str]:
    """The Experiment's labels plus its name under `katib.kubeflow.org/experiment` (`util.TrialLabels`)."""
    meta = experiment.get("metadata") or {}
    return {**dict(meta.get("labels") or {}), EXPERIMENT_LABEL: str(meta["name"])}


def _meta_value(reference_key: str, trial_spec: Mapping[str, Any], trial_name: str, namespace: str) -> str:
    key, index = reference_key, ""
    indexed = _META_INDEX.match(reference_key)
    if indexed:
        key, index = indexed.group(1), indexed.group(2)
    meta = trial_spec.get("metadata") or {}
    if key == "Name":
        return trial_name
    if key == "Namespace":
        return namespace
    if key == "Kind":
        return str(trial_spec.get("kind", ""))
    if key == "APIVersion":
        return str(trial_spec.get("apiVersion", ""))
    if key in ("Labels", "Annotations"):
        values = meta.get(key.lower()) or {}
        if index not in values:
            raise ValueError(f"illegal reference of trial metadata: failed to fetch {key[:-1]}: {index}")
        return str(values[index])
    raise ValueError(f"illegal reference of trial metadata: {reference_key}")


def run_spec(experiment: Mapping[str, Any], trial_name: str, namespace: str,
             assignments: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """The trial's job: the trialSpec with placeholders substituted, named `trial_name` in `namespace`."""
    template = experiment["spec"]["trialTemplate"]
    trial_spec = template["trialSpec"]
    values = {str(a["name"]): str(a["value"]) for a in assignments}
    replacements: dict[str, str] = {}
    non_meta = 0
    for parameter in template.get("trialParameters") or []:
        reference = str(parameter.get("reference", ""))
        meta = _META_REFERENCE.search(reference)
        if meta is None:
            if reference not in values:
                raise ValueError(f"Unable to find parameter: {reference} in parameter assignment {values}")
            replacements[str(parameter["name"])] = values[reference]
            non_meta += 1
        else:
            replacements[str(parameter["name"])] = _meta_value(meta.group(1), trial_spec, trial_name, namespace)
    if len(values) != non_meta:
        raise ValueError(f"Number of TrialAssignment: {len(values)} != number of nonMetaTrialParameters in "
                         f"TrialSpec: {non_meta}")
    text = json.dumps(trial_spec)
    for name, value in replacements.items():
        text = text.replace("${trialParameters." + name + "}", value)
    job: dict[str, Any] = json.loads(text)
    job.setdefault("metadata", {})
    job["metadata"]["name"] = trial_name
    job["metadata"]["namespace"] = namespace
    return job


def trial_manifest(experiment: Mapping[str, Any], name: str, assignments: Sequence[Mapping[str, str]]
                   ) -> dict[str, Any]:
    """The Trial the experiment controller creates for one suggestion (`getTrialInstance`)."""
    meta = experiment["metadata"]
    spec = experiment["spec"]
    template = spec["trialTemplate"]
    trial_spec: dict[str, Any] = {
        "objective": copy.deepcopy(spec["objective"]),
        "parameterAssignments": [{"name": str(a["name"]), "value": str(a["value"])} for a in assignments],
        "runSpec": run_spec(experiment, name, str(meta["namespace"]), assignments),
        "metricsCollector": copy.deepcopy(spec.get("metricsCollectorSpec") or {}),
    }
    if template.get("retain"):
        trial_spec["retainRun"] = True
    if template.get("primaryPodLabels"):
        trial_spec["primaryPodLabels"] = dict(template["primaryPodLabels"])
    if template.get("primaryContainerName"):
        trial_spec["primaryContainerName"] = template["primaryContainerName"]
    if template.get("successCondition") and template.get("failureCondition"):
        trial_spec["successCondition"] = template["successCondition"]
        trial_spec["failureCondition"] = template["failureCondition"]
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Trial",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": trial_labels(experiment),
            "ownerReferences": [{
                "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "name": meta["name"],
                "uid": meta.get("uid", ""), "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": trial_spec,
    }


def created_status(now: str) -> dict[str, Any]:
    """The first status the trial controller writes."""
    return {"startTime": now, "conditions": set_condition([], "Created", "True", "TrialCreated", "Trial is created",
                                                          now)}


def running_status(status: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The job runs: condition Running (not over an EarlyStopped trial, not twice)."""
    out = dict(status)
    conditions = out.get("conditions") or []
    if not has_condition(conditions, "Running") and not has_condition(conditions, "EarlyStopped"):
        out["conditions"] = set_condition(conditions, "Running", "True", "TrialRunning", "Trial is running", now)
    return out


def _with_job(text: str, kind: str, value: str) -> str:
    return f"{text}. Job {kind}: {value}" if value else text


def completed_status(status: Mapping[str, Any], job: JobOutcome, observation_: Mapping[str, Any] | None,
                     objective_metric: str, now: str) -> dict[str, Any]:
    """The trial controller's `UpdateTrialStatusCondition` once the job has succeeded or failed."""
    out = dict(status)
    if observation_ is not None:
        out["observation"] = copy.deepcopy(dict(observation_))
    conditions = out.get("conditions") or []
    if job.condition == "Succeeded":
        if observation_available(out.get("observation"), objective_metric):
            if has_condition(conditions, "Succeeded") or has_condition(conditions, "EarlyStopped"):
                return out
            out["conditions"] = mark_finished(conditions, "Succeeded", "True",
                                              _with_job("TrialSucceeded", "reason", job.reason),
                                              _with_job("Trial has succeeded", "message", job.message), now)
            out["completionTime"] = now
        elif not has_condition(conditions, "MetricsUnavailable"):
            out["conditions"] = mark_finished(conditions, "MetricsUnavailable", "True",
                                              _with_job("MetricsUnavailable", "reason", job.reason),
                                              _with_job("Metrics are not available", "message", job.message), now)
            out["completionTime"] = now
    elif job.condition == "Failed":
        if not has_condition(conditions, "Failed") and not has_condition(conditions, "EarlyStopped"):
            out["conditions"] = mark_finished(conditions, "Failed", "True",
                                              _with_job("TrialFailed", "reason", job.reason),
                                              _with_job("Trial has failed", "message", job.message), now)
            out["completionTime"] = now
    else:
        out = running_status(out, now)
    return out


def early_stopped_status(status: Mapping[str, Any], now: str) -> dict[str, Any]:
    """What Katib's collector writes when its early-stopping rule stops a trial."""
    out = dict(status)
    out["conditions"] = mark_finished(out.get("conditions") or [], "EarlyStopped", "True", "TrialEarlyStopped",
                                      "Trial is early stopped", now)
    out["completionTime"] = now
    return out


def trial_phase(trial: Mapping[str, Any]) -> TrialPhase:
    """How the experiment controller files a trial (`updateTrialsSummary`'s order of tests)."""
    conditions = (trial.get("status") or {}).get("conditions") or []
    for kind, phase in (("Killed", "killed"), ("Failed", "failed"), ("Succeeded", "succeeded"),
                        ("EarlyStopped", "early_stopped"), ("Running", "running"),
                        ("MetricsUnavailable", "metrics_unavailable")):
        if has_condition(conditions, kind):
            return phase  # type: ignore[return-value]
    return "pending"
