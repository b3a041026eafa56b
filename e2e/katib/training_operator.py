"""The PyTorchJob status the Kubeflow training operator (v1.9) writes, and how Katib reads it.

Why: Katib decides a trial's fate from its job's conditions through the Experiment's GJSON
success/failure conditions (`trial/util/job_util.go`): the failure condition is tested first, the
first matching condition's reason and message travel into the Trial's condition
(`TrialFailed. Job reason: PyTorchJobFailed`), and a job that exists but matches neither is Running.

The training operator's conditions (kubeflow common `util.UpdateJobConditions`/`filterOutCondition`):
Created, Running, Restarting, Succeeded, Failed with reasons `PyTorchJob<Type>`; setting Running drops
Restarting and vice versa, and setting Succeeded or Failed turns Running False. With a Master replica
the job succeeds when the Master succeeds; a Master that fails more than runPolicy.backoffLimit times
(restartPolicy OnFailure) or outlives activeDeadlineSeconds fails the job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from e2e.katib.trials import JobOutcome

__all__ = ["job_condition", "job_outcome", "job_status"]

_GJSON_CONDITION = re.compile(r'^status\.conditions\.#\(type=="([^"]+)"\)#\|#\(status=="([^"]+)"\)#$')
JobState = Literal["Created", "Running", "Restarting", "Succeeded", "Failed"]


def job_condition(conditions: Sequence[Mapping[str, Any]] | None, kind: JobState, reason: str, message: str,
                  now: str) -> list[dict[str, Any]]:
    """The job's conditions with `kind` set True (the training operator's filterOutCondition rules)."""
    current = [dict(c) for c in conditions or []]
    for condition in current:
        if condition.get("type") == kind and condition.get("status") == "True" and condition.get("reason") == reason:
            return current
    kept: list[dict[str, Any]] = []
    for condition in current:
        other = condition.get("type")
        if other == kind or {kind, other} == {"Running", "Restarting"}:
            continue
        if kind in ("Succeeded", "Failed") and other == "Running":
            condition = {**condition, "status": "False", "lastUpdateTime": now, "lastTransitionTime": now}
        kept.append(condition)
    kept.append({"type": kind, "status": "True", "reason": reason, "message": message,
                 "lastUpdateTime": now, "lastTransitionTime": now})
    return kept


def job_status(previous: Mapping[str, Any] | None, state: JobState, *, namespace: str, name: str, now: str,
               why: str = "") -> dict[str, Any]:
    """A PyTorchJob status in `state` (Master-only jobs: the replica status follows the state)."""
    status = dict(previous or {})
    kind = "PyTorchJob"
    messages = {
        "Created": f"{kind} {name} is created.",
        "Running": f"{kind} {namespace}/{name} is running.",
        "Restarting": f"{kind} {namespace}/{name} is restarting because 1 Master replica(s) failed.",
        "Succeeded": f"{kind} {namespace}/{name} successfully completed.",
        "Failed": why or f"{kind} {namespace}/{name} has failed because 1 Master replica(s) failed.",
    }
    status["conditions"] = job_condition(status.get("conditions"), state, f"{kind}{state}", messages[state], now)
    status.setdefault("startTime", now)
    replicas = {"Created": {}, "Running": {"active": 1}, "Restarting": {"active": 1},
                "Succeeded": {"succeeded": 1}, "Failed": {"failed": 1}}[state]
    status["replicaStatuses"] = {"Master": dict(replicas)}
    if state in ("Succeeded", "Failed"):
        status["completionTime"] = now
    status["lastReconcileTime"] = now
    return status


def _matching(job: Mapping[str, Any], expression: str) -> Mapping[str, Any] | None:
    match = _GJSON_CONDITION.match(expression)
    if match is None:
        raise ValueError(f"the Katib player evaluates only status.conditions.#(type==X)#|#(status==Y)#, not "
                         f"{expression!r}")
    kind, status = match.groups()
    conditions: list[Mapping[str, Any]] = list((job.get("status") or {}).get("conditions") or [])
    return next((c for c in conditions if c.get("type") == kind and c.get("status") == status), None)


def job_outcome(job: Mapping[str, Any], success_condition: str, failure_condition: str) -> JobOutcome:
    """What Katib reads from the job (`GetDeployedJobStatus`): failure first, then success, else Running."""
    failed = _matching(job, failure_condition)
    if failed is not None:
        return JobOutcome("Failed", str(failed.get("reason") or ""), str(failed.get("message") or ""))
    succeeded = _matching(job, success_condition)
    if succeeded is not None:
        return JobOutcome("Succeeded", str(succeeded.get("reason") or ""), str(succeeded.get("message") or ""))
    return JobOutcome("Running")
