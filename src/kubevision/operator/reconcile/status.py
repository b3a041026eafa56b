"""Katib Experiments and Trials in, the AutoMLImageJob's status out (pure: no clock, no I/O, no kopf).

Why a pure mapper: the status is what people (`kubectl get`), GitOps tools (ArgoCD reads the
`Ready`/`Succeeded` conditions) and the e2e scenario trust, and Katib's objects have many states and
half-filled shapes (no status yet, counters without lists, "unavailable" metric values). Every rule
below is a plain function of the observed objects, so it is tested with hand-written Katib objects,
and the kopf timer only gathers inputs and writes the result.

Rules (documented here because they are decisions, not facts of Katib):

- One job may own several Experiments (one per conditional sub-space). The job is Running until all
  of them are completed (Katib condition Succeeded or Failed True). It then Succeeded when a best
  trial exists (the best across all sub-spaces), else Failed. A failed sub-space Experiment does not
  fail a job that found a model elsewhere; its failure is named in the message.
- Trial counts are summed over the Experiments' own counters (Katib is authoritative):
  running = trialsRunning + trialsPending (created, not finished), failed = trialsFailed +
  trialMetricsUnavailable + trialsKilled, earlyTerminated = trialsEarlyStopped + the succeeded
  trials our decision service told to stop (they exit cleanly, so Katib calls them Succeeded; the
  operator knows better), succeeded = the rest of trialsSucceeded.
- The best trial is taken only among trials that finished well (Succeeded or EarlyStopped): a
  running trial may have the best metric so far but has no exported model yet, and bestTrial.modelUri
  must point at a model that exists. Its metric is the objective's `max` (maximize; `min` when
  minimizing) over the trial's reports: the trial program exports the best epoch's weights. Ties go
  to the smaller name (deterministic). A recorded bestTrial is never replaced by a worse one (the
  Experiments may be deleted on timeout; the best so far stays).
- Conditions follow metav1.Condition: `lastTransitionTime` changes only when `status` changes;
  `observedGeneration` is the job generation the operator acted on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

__all__ = [
    "Cond",
    "ExperimentState",
    "Phase",
    "StatusUpdate",
    "TrialState",
    "apply_update",
    "best_trial",
    "experiment_state",
    "failed_status",
    "finished_status",
    "invalid_spec_status",
    "merge_conditions",
    "parse_time",
    "pending_status",
    "progress_status",
    "rfc3339",
    "started_status",
    "status_patch",
    "summarize_experiment",
    "summarize_trial",
    "timeout_deadline",
    "trial_counts",
    "trial_state",
]

Phase = Literal["Pending", "Running", "Succeeded", "Failed"]
ExperimentState = Literal["created", "running", "succeeded", "failed"]
TrialState = Literal["pending", "running", "succeeded", "failed", "killed", "early_stopped", "metrics_unavailable"]

READY = "Ready"
SUCCEEDED = "Succeeded"

_KATIB_SUCCESS_REASONS = {
    "ExperimentGoalReached": "GoalReached",
    "ExperimentMaxTrialsReached": "MaxTrialsReached",
    "ExperimentSuggestionEndReached": "SearchSpaceExhausted",
}
_TERMINAL_TRIAL_CONDITIONS: dict[str, TrialState] = {
    "Succeeded": "succeeded",
    "Failed": "failed",
    "Killed": "killed",
    "EarlyStopped": "early_stopped",
    "MetricsUnavailable": "metrics_unavailable",
}
_COUNTERS = ("trials", "trialsSucceeded", "trialsFailed", "trialsKilled", "trialsPending", "trialsRunning",
             "trialsEarlyStopped", "trialMetricsUnavailable")


@dataclass(frozen=True)
class Cond:
    """The wanted state of one condition (type is the dict key it is stored under)."""

    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""


@dataclass(frozen=True)
class StatusUpdate:
    """What one reconcile decided; `apply_update` turns it into the full status dict.

    None means "keep what the status has" for trials, bestTrial, experimentRef and startTime.
    """

    phase: Phase
    ready: Cond
    succeeded: Cond
    message: str = ""
    trials: Mapping[str, int] | None = None
    best_trial: Mapping[str, Any] | None = None
    experiment_ref: Sequence[Mapping[str, Any]] | None = None
    start_time: datetime | None = None
    finished: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


# ---- time ------------------------------------------------------------------------------------


def rfc3339(moment: datetime) -> str:
    """UTC, second precision, `Z` suffix: the format of metav1.Time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    """A metav1.Time string (or None/garbage -> None)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def timeout_deadline(status: Mapping[str, Any] | None, timeout_minutes: int) -> datetime | None:
    """When the job times out: its startTime (children created) plus timeoutMinutes; None before start."""
    start = parse_time((status or {}).get("startTime"))
    return None if start is None else start + timedelta(minutes=timeout_minutes)


# ---- Katib objects ---------------------------------------------------------------------------


def _true_conditions(conditions: Any) -> list[Mapping[str, Any]]:
    if not isinstance(conditions, list):
        return []
    return [c for c in conditions if isinstance(c, Mapping) and c.get("status") == "True"]


def summarize_experiment(body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an Experiment the status needs (what the operator keeps in its index)."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    keep = {k: status[k] for k in (*_COUNTERS, "conditions", "currentOptimalTrial", "succeededTrialList",
                                    "earlyStoppedTrialList", "startTime", "completionTime") if k in status}
    return {"name": meta.get("name"), "namespace": meta.get("namespace"), "status": _plain(keep)}


def summarize_trial(body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a Trial the status needs: name, Experiment, state, parameters, observed metrics."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    return {
        "name": meta.get("name"),
        "experiment": labels.get("katib.kubeflow.org/experiment"),
        "state": trial_state(body),
        "parameterAssignments": _plain(spec.get("parameterAssignments") or []),
        "metrics": _plain((status.get("observation") or {}).get("metrics") or []),
    }


def _plain(value: Any) -> Any:
    """Deep copy into plain dicts/lists (kopf bodies are live views)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def experiment_state(experiment: Mapping[str, Any]) -> tuple[ExperimentState, str, str]:
    """(state, Katib reason, Katib message) from an Experiment or its summary."""
    true = {c.get("type"): c for c in _true_conditions((experiment.get("status") or {}).get("conditions"))}
    for kind, state in (("Succeeded", "succeeded"), ("Failed", "failed"), ("Running", "running"),
                        ("Restarting", "running")):
        if kind in true:
            cond = true[kind]
            return state, str(cond.get("reason") or ""), str(cond.get("message") or "")  # type: ignore[return-value]
    return "created", "", ""


def trial_state(trial: Mapping[str, Any]) -> TrialState:
    """A Trial's (or summary's) state from its conditions: the terminal one wins, else Running, else pending."""
    if "state" in trial and "status" not in trial:
        return trial["state"]  # type: ignore[no-any-return]
    true = [c.get("type") for c in _true_conditions((trial.get("status") or {}).get("conditions"))]
    for kind, state in _TERMINAL_TRIAL_CONDITIONS.items():
        if kind in true:
            return state
    return "running" if "Running" in true else "pending"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _metric_value(metrics: Any, name: str, maximize: bool) -> float | None:
    """The objective's value of one trial: max (maximize) or min over its reports, else latest."""
    if not isinstance(metrics, list):
        return None
    for entry in metrics:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            preferred = _number(entry.get("max" if maximize else "min"))
            return preferred if preferred is not None else _number(entry.get("latest"))
    return None


def _coerce(value: Any) -> Any:
    """Katib passes every parameter value as a string; show numbers as numbers."""
    if not isinstance(value, str):
        return value
    try:
        return int(value)
    except ValueError:
        pass
    number = _number(value)
    return number if number is not None else value


def _parameters(
    assignments: Any, automode_configs: Sequence[Mapping[str, Any]] | None, base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """camelCase hyperparameters of a trial: its assignments over `base` (AutoMode refinement: the
    portfolio config it refines), or the portfolio entry its `config` assignment names (AutoMode phase 1)."""
    out: dict[str, Any] = dict(base or {})
    for entry in assignments if isinstance(assignments, list) else []:
        if isinstance(entry, Mapping) and "name" in entry:
            out[str(entry["name"])] = _coerce(entry.get("value"))
    index = out.get("config")
    if automode_configs is not None and isinstance(index, int) and 0 <= index < len(automode_configs):
        expanded = dict(automode_configs[index])
        expanded.update({k: v for k, v in out.items() if k != "config"})
        return expanded
    return out


# ---- counts and best ---------------------------------------------------------------------------


def trial_counts(experiments: Iterable[Mapping[str, Any]], stopped: Set[str] = frozenset()) -> dict[str, int]:
    """Our five counters summed over the Experiments' counters (see the module docstring)."""
    total = running = succeeded = failed = early = 0
    for experiment in experiments:
        status = experiment.get("status") or {}

        def n(key: str, status: Mapping[str, Any] = status) -> int:
            value = status.get(key)
            return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0

        succeeded_names = status.get("succeededTrialList") or []
        told_to_stop = len(stopped & set(succeeded_names)) if isinstance(succeeded_names, list) else 0
        total += n("trials")
        running += n("trialsRunning") + n("trialsPending")
        failed += n("trialsFailed") + n("trialMetricsUnavailable") + n("trialsKilled")
        early += n("trialsEarlyStopped") + told_to_stop
        succeeded += max(0, n("trialsSucceeded") - told_to_stop)
    return {"total": total, "running": running, "succeeded": succeeded, "failed": failed, "earlyTerminated": early}


def best_trial(
    experiments: Iterable[Mapping[str, Any]],
    trials: Iterable[Mapping[str, Any]],
    *,
    metric: str,
    maximize: bool = True,
    model_uri: Callable[[str], str | None] = lambda _trial: None,
    automode_configs: Sequence[Mapping[str, Any]] | None = None,
    bases: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """The best finished trial across all Experiments, as status.bestTrial (None when none finished well).

    `bases`: Experiment name -> hyperparameters its trials start from (values not sampled by Katib).
    """
    candidates: dict[str, tuple[float, Any, str | None]] = {}
    for trial in trials:
        name = trial.get("name")
        if not name or trial_state(trial) not in ("succeeded", "early_stopped"):
            continue
        metrics = trial.get("metrics") if "metrics" in trial else ((trial.get("status") or {}).get("observation")
                                                                     or {}).get("metrics")
        value = _metric_value(metrics, metric, maximize)
        assignments = trial.get("parameterAssignments", (trial.get("spec") or {}).get("parameterAssignments"))
        if value is not None:
            candidates[str(name)] = (value, assignments, trial.get("experiment"))
    for experiment in experiments:
        status = experiment.get("status") or {}
        optimal = status.get("currentOptimalTrial") or {}
        name = optimal.get("bestTrialName")
        if not name or name in candidates:
            continue
        finished_well = [*(status.get("succeededTrialList") or []), *(status.get("earlyStoppedTrialList") or [])]
        has_lists = "succeededTrialList" in status or "earlyStoppedTrialList" in status
        if name not in finished_well and (has_lists or experiment_state(experiment)[0] != "succeeded"):
            continue
        value = _metric_value((optimal.get("observation") or {}).get("metrics"), metric, maximize)
        if value is not None:
            candidates[str(name)] = (value, optimal.get("parameterAssignments"), experiment.get("name"))
    if not candidates:
        return None
    sign = 1.0 if maximize else -1.0
    name = min(candidates, key=lambda n: (-sign * candidates[n][0], n))
    value, assignments, experiment_name = candidates[name]
    base = (bases or {}).get(experiment_name or "")
    best: dict[str, Any] = {
        "name": name, "metric": value, "parameters": _parameters(assignments, automode_configs, base),
    }
    uri = model_uri(name)
    if uri:
        best["modelUri"] = uri
    return best


def _better(new: Mapping[str, Any] | None, old: Mapping[str, Any] | None, maximize: bool) -> Mapping[str, Any] | None:
    """The better of two bestTrial dicts (the recorded one wins ties and missing metrics)."""
    if new is None:
        return old
    if old is None or not isinstance(old.get("metric"), int | float):
        return new
    if not isinstance(new.get("metric"), int | float):
        return old
    if new.get("name") == old.get("name"):
        return new
    gain = new["metric"] - old["metric"]
    return new if (gain > 0 if maximize else gain < 0) else old


# ---- status builders -------------------------------------------------------------------------


def pending_status(reason: str, message: str) -> StatusUpdate:
    """Waiting on something outside the job (Katib missing, checkpoint job not finished): not a failure."""
    return StatusUpdate(
        phase="Pending",
        ready=Cond("False", reason, message),
        succeeded=Cond("Unknown", reason, message),
        message=message,
    )


def invalid_spec_status(message: str) -> StatusUpdate:
    """The spec does not validate: a final state until the spec is fixed (no children, no retries)."""
    return StatusUpdate(
        phase="Failed",
        ready=Cond("False", "InvalidSpec", message),
        succeeded=Cond("False", "InvalidSpec", message),
        message=message,
    )


def failed_status(reason: str, message: str) -> StatusUpdate:
    """The job cannot run at all (e.g. a child the operator needs is refused by the API)."""
    return StatusUpdate(
        phase="Failed", ready=Cond("False", reason, message), succeeded=Cond("False", reason, message),
        message=message, finished=True,
    )


def started_status(
    experiment_ref: Sequence[Mapping[str, Any]], start_time: datetime | None, warnings: Sequence[str] = ()
) -> StatusUpdate:
    """Children created: Running, with the Experiments listed (startTime kept when already set)."""
    count = len(experiment_ref)
    message = f"{count} Katib Experiment{'s' if count != 1 else ''} created"
    if warnings:
        message += "; " + "; ".join(warnings)
    return StatusUpdate(
        phase="Running",
        ready=Cond("True", "ExperimentsCreated", message),
        succeeded=Cond("Unknown", "Running", "trials are running"),
        message=message,
        experiment_ref=experiment_ref,
        start_time=start_time,
    )


def progress_status(
    *,
    expected: Sequence[str],
    experiments: Mapping[str, Mapping[str, Any]],
    trials: Iterable[Mapping[str, Any]],
    metric: str,
    maximize: bool = True,
    stopped: Set[str] = frozenset(),
    model_uri: Callable[[str], str | None] = lambda _trial: None,
    automode_configs: Sequence[Mapping[str, Any]] | None = None,
    bases: Mapping[str, Mapping[str, Any]] | None = None,
) -> StatusUpdate:
    """The job's state from its Experiments (by name) and Trials while it runs or as Katib finishes it."""
    observed = [experiments[name] for name in expected if name in experiments]
    counts = trial_counts(observed, stopped)
    best = best_trial(observed, trials, metric=metric, maximize=maximize, model_uri=model_uri,
                      automode_configs=automode_configs, bases=bases)
    states = {name: experiment_state(experiments[name]) for name in expected if name in experiments}
    done = sum(counts[k] for k in ("succeeded", "failed", "earlyTerminated"))
    progress = f"{done} of {counts['total']} trials finished"
    if len(states) < len(expected) or any(s[0] not in ("succeeded", "failed") for s in states.values()):
        return StatusUpdate(
            phase="Running",
            ready=Cond("True", "Running", progress),
            succeeded=Cond("Unknown", "Running", progress),
            message=progress,
            trials=counts,
            best_trial=best,
        )
    failures = [f"Experiment {name} failed ({reason or 'Failed'}: {message or 'no message'})"
                for name, (state, reason, message) in sorted(states.items()) if state == "failed"]
    if best is None:
        reason = "ExperimentFailed" if failures else "NoTrialSucceeded"
        message = "; ".join(failures) if failures else f"no trial reported {metric}; {progress}"
        return StatusUpdate(
            phase="Failed", ready=Cond("False", reason, message), succeeded=Cond("False", reason, message),
            message=message, trials=counts, finished=True,
        )
    reasons = {_KATIB_SUCCESS_REASONS.get(reason, "ExperimentsFinished")
               for state, reason, _ in states.values() if state == "succeeded"}
    reason = reasons.pop() if len(reasons) == 1 and not failures else "ExperimentsFinished"
    message = f"best trial {best['name']} {metric}={best['metric']:g}; {progress}"
    if failures:
        message += "; " + "; ".join(failures)
    return StatusUpdate(
        phase="Succeeded", ready=Cond("True", "Succeeded", message), succeeded=Cond("True", reason, message),
        message=message, trials=counts, best_trial=best, finished=True,
    )


def finished_status(
    reason: str,
    why: str,
    *,
    counts: Mapping[str, int] | None,
    best: Mapping[str, Any] | None,
    previous_best: Mapping[str, Any] | None,
    metric: str,
    maximize: bool = True,
) -> StatusUpdate:
    """The operator ends the job itself (TimeoutReached, ExperimentDeleted): best so far kept.

    Running trials are killed with their Experiment, so they count as failed (like a trial that hit
    its own activeDeadlineSeconds in Katib). With a best trial a timeout is a success (the budget was
    time, and it was used); without one, or when an Experiment was deleted by hand, the job failed.
    """
    kept = _better(best, previous_best, maximize)
    final = dict(counts or {})
    if final:
        final["failed"] = final.get("failed", 0) + final.get("running", 0)
        final["running"] = 0
    message = why
    if kept is not None:
        message += f"; best trial {kept.get('name')} {metric}={kept.get('metric')}"
    success = kept is not None and reason == "TimeoutReached"
    if not success and kept is None and reason == "TimeoutReached":
        message += "; no trial had finished"
    return StatusUpdate(
        phase="Succeeded" if success else "Failed",
        ready=Cond("True", "Succeeded", message) if success else Cond("False", reason, message),
        succeeded=Cond("True" if success else "False", reason, message),
        message=message,
        trials=final or None,
        best_trial=kept,
        finished=True,
    )


# ---- applying an update ----------------------------------------------------------------------


def merge_conditions(
    old: Any, wanted: Mapping[str, Cond], *, now: datetime, generation: int | None
) -> list[dict[str, Any]]:
    """metav1.Conditions: lastTransitionTime moves only when status changes; other types are kept."""
    previous = {c.get("type"): c for c in old if isinstance(c, Mapping)} if isinstance(old, list) else {}
    out: list[dict[str, Any]] = []
    for kind, cond in wanted.items():
        before = previous.get(kind) or {}
        moved = before.get("status") != cond.status or not before.get("lastTransitionTime")
        entry: dict[str, Any] = {
            "type": kind,
            "status": cond.status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": rfc3339(now) if moved else before["lastTransitionTime"],
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        out.append(entry)
    out.extend(dict(c) for kind, c in previous.items() if kind not in wanted)
    return out


def apply_update(
    old: Mapping[str, Any] | None,
    update: StatusUpdate,
    *,
    now: datetime,
    generation: int | None,
    maximize: bool = True,
) -> dict[str, Any]:
    """The full new status: `old` with the update applied (kept fields stay, bestTrial never worsens)."""
    old = dict(old or {})
    new: dict[str, Any] = {k: v for k, v in old.items() if k != "kopf"}
    new["phase"] = update.phase
    new["conditions"] = merge_conditions(
        old.get("conditions"), {READY: update.ready, SUCCEEDED: update.succeeded}, now=now, generation=generation
    )
    new["message"] = update.message
    if generation is not None:
        new["observedGeneration"] = generation
    if update.trials is not None:
        new["trials"] = dict(update.trials)
    best = _better(update.best_trial, old.get("bestTrial"), maximize)
    if best is not None:
        new["bestTrial"] = dict(best)
    if update.experiment_ref is not None:
        new["experimentRef"] = [dict(ref) for ref in update.experiment_ref]
    if update.start_time is not None and not old.get("startTime"):
        new["startTime"] = rfc3339(update.start_time)
    if update.finished and not old.get("completionTime"):
        new["completionTime"] = rfc3339(now)
    new.update(update.extra)
    return new


def status_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level status keys that changed (a merge patch; removed keys become None); {} when equal."""
    old = old or {}
    patch = {k: v for k, v in new.items() if old.get(k) != v}
    patch.update({k: None for k in old if k not in new and k != "kopf"})
    return patch
