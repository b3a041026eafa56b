"""The Experiment status Katib's experiment controller writes (`experiment/util/status_util.go`).

Why these rules, which the operator's status mapper reads:
- counters and lists are recomputed from all trials at every reconcile, each trial filed once in
  the order Killed, Failed, Succeeded, EarlyStopped, Running, MetricsUnavailable, else Pending;
- currentOptimalTrial is the trial with the best objective value over *every* trial with an
  observation (a running one included; the value by the objective's metric strategy, `latest` when
  that is unavailable); ties keep the earlier trial in list order (the API lists by name);
- conditions change only while the Experiment is not completed: goal reached -> Succeeded
  (ExperimentGoalReached); failed + metrics-unavailable trials >= maxFailedTrialCount (and > 0) ->
  Failed (ExperimentFailed); completed trials >= maxTrialCount -> Succeeded
  (ExperimentMaxTrialsReached); the suggestion exhausted with no active trial -> Succeeded
  (ExperimentSuggestionEndReached); else Running. Finishing turns Running False.
- Go's JSON drops zero counters, empty lists and empty strings (`omitempty`); currentOptimalTrial is
  a struct, so it is always there, `{"observation": {}}` before any trial reported.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from e2e.katib.collector import UNAVAILABLE, go_float
from e2e.katib.conditions import has_condition, mark_finished, set_condition
from e2e.katib.trials import trial_phase

__all__ = ["condition_status", "created_status", "is_completed", "trials_summary"]

_LISTS = {
    "killed": ("killedTrialList", "trialsKilled"),
    "failed": ("failedTrialList", "trialsFailed"),
    "succeeded": ("succeededTrialList", "trialsSucceeded"),
    "early_stopped": ("earlyStoppedTrialList", "trialsEarlyStopped"),
    "running": ("runningTrialList", "trialsRunning"),
    "metrics_unavailable": ("metricsUnavailableTrialList", "trialMetricsUnavailable"),
    "pending": ("pendingTrialList", "trialsPending"),
}


def created_status(now: str) -> dict[str, Any]:
    """The first status: startTime and Created (`MarkExperimentStatusCreated`)."""
    return {"startTime": now, "conditions": set_condition([], "Created", "True", "ExperimentCreated",
                                                          "Experiment is created", now),
            "currentOptimalTrial": {"observation": {}}}


def is_completed(status: Mapping[str, Any] | None) -> bool:
    conditions = (status or {}).get("conditions") or []
    return has_condition(conditions, "Succeeded") or has_condition(conditions, "Failed")


def _objective_value(trial: Mapping[str, Any]) -> str:
    """`getObjectiveMetricValue`: the objective's min/max/latest by its strategy, or `unavailable`."""
    observation = (trial.get("status") or {}).get("observation")
    if observation is None:
        return UNAVAILABLE
    objective = (trial.get("spec") or {}).get("objective") or {}
    name = objective.get("objectiveMetricName")
    strategy = next((s.get("value") for s in objective.get("metricStrategies") or [] if s.get("name") == name), None)
    for metric in observation.get("metrics") or []:
        if metric.get("name") != name:
            continue
        if strategy in ("min", "max"):
            value = metric.get(strategy)
            return str(metric.get("latest")) if value == UNAVAILABLE else str(value)
        if strategy == "latest":
            return str(metric.get("latest"))
    return UNAVAILABLE


def trials_summary(experiment: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]
                   ) -> tuple[dict[str, Any], bool]:
    """(status with counters, lists and currentOptimalTrial recomputed, objective goal reached)."""
    spec = experiment.get("spec") or {}
    objective = spec.get("objective") or {}
    goal = objective.get("goal")
    maximize = objective.get("type") == "maximize"
    status = {k: v for k, v in dict(experiment.get("status") or {}).items()
              if k not in {key for pair in _LISTS.values() for key in pair} and k != "trials"}
    lists: dict[str, list[str]] = {phase: [] for phase in _LISTS}
    best_index, best_value, goal_reached = -1, 0.0, False
    ordered = sorted(trials, key=lambda t: str((t.get("metadata") or {}).get("name")))
    for index, trial in enumerate(ordered):
        lists[trial_phase(trial)].append(str(trial["metadata"]["name"]))
        text = _objective_value(trial)
        if text == UNAVAILABLE:
            continue
        value = go_float(text)
        if value is None:  # "For string metrics values best trial is the latest"
            best_index = index
            continue
        if best_index == -1:
            best_index, best_value = index, value
        if (value > best_value) if maximize else (value < best_value):
            best_index, best_value = index, value
        if goal is not None and ((best_value >= float(goal)) if maximize else (best_value <= float(goal))):
            goal_reached = True
    for phase, (list_key, count_key) in _LISTS.items():
        if lists[phase]:
            status[list_key] = lists[phase]
            status[count_key] = len(lists[phase])
    if ordered:
        status["trials"] = len(ordered)
    if best_index != -1:
        best = ordered[best_index]
        status["currentOptimalTrial"] = {
            "bestTrialName": best["metadata"]["name"],
            "parameterAssignments": copy.deepcopy(list((best.get("spec") or {}).get("parameterAssignments") or [])),
            "observation": {"metrics": copy.deepcopy(list(((best.get("status") or {}).get("observation") or {})
                                                          .get("metrics") or []))},
        }
    else:
        status.setdefault("currentOptimalTrial", {"observation": {}})
    return status, goal_reached


def condition_status(experiment: Mapping[str, Any], status: Mapping[str, Any], *, goal_reached: bool,
                     suggestion_done: bool, now: str) -> dict[str, Any]:
    """`UpdateExperimentStatusCondition` (only call it while the Experiment is not completed)."""
    spec = experiment.get("spec") or {}
    out = dict(status)
    conditions = out.get("conditions") or []

    def n(key: str) -> int:
        return int(out.get(key) or 0)

    completed = n("trialsSucceeded") + n("trialsFailed") + n("trialsKilled") + n("trialsEarlyStopped") \
        + n("trialMetricsUnavailable")
    failed = n("trialsFailed") + n("trialMetricsUnavailable")
    active = n("trialsPending") + n("trialsRunning")
    max_failed, max_trials = spec.get("maxFailedTrialCount"), spec.get("maxTrialCount")
    if goal_reached:
        finish = ("Succeeded", "ExperimentGoalReached", "Experiment has succeeded because Objective goal has reached")
    elif max_failed is not None and failed != 0 and failed >= int(max_failed):
        finish = ("Failed", "ExperimentFailed", "Experiment has failed because max failed count has reached")
    elif max_trials is not None and completed >= int(max_trials):
        finish = ("Succeeded", "ExperimentMaxTrialsReached",
                  "Experiment has succeeded because max trial count has reached")
    elif suggestion_done and active == 0:
        finish = ("Succeeded", "ExperimentSuggestionEndReached",
                  "Experiment has succeeded because suggestion service has reached the end")
    else:
        out["conditions"] = set_condition(conditions, "Running", "True", "ExperimentRunning", "Experiment is running",
                                          now)
        return out
    kind, reason, message = finish
    out["conditions"] = mark_finished(conditions, kind, "True", reason, message, now)
    out["completionTime"] = now
    return out
