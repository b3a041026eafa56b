"""The pure status mapper against hand-written Katib objects (shapes from Katib v0.19's status types)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubevision.operator.reconcile import status as st

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def cond(kind: str, reason: str = "", message: str = "", status: str = "True") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-11-29T09:00:00Z"}


def experiment(name: str, state: str = "running", *, optimal: dict[str, Any] | None = None,
               succeeded: list[str] | None = None, reason: str = "ExperimentMaxTrialsReached",
               **counters: int) -> dict[str, Any]:
    """An Experiment (full object) as Katib writes its status."""
    conditions = [cond("Created", "ExperimentCreated")]
    if state == "running":
        conditions.append(cond("Running", "ExperimentRunning"))
    elif state == "succeeded":
        conditions += [cond("Running", "ExperimentRunning", status="False"),
                       cond("Succeeded", reason)]
    elif state == "failed":
        conditions.append(cond("Failed", "ExperimentFailed", "Experiment has failed because max failed count has "
                                                             "reached"))
    status: dict[str, Any] = {"conditions": conditions, **counters}
    if optimal is not None:
        status["currentOptimalTrial"] = optimal
    if succeeded is not None:
        status["succeededTrialList"] = succeeded
    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
            "metadata": {"name": name, "namespace": "team-a"}, "status": status}


def trial(name: str, state: str, values: list[float] | None = None, *, experiment_name: str = "job",
          metric: str = "accuracy", **params: Any) -> dict[str, Any]:
    """A Trial (full object) as Katib writes it: string metrics, string parameter values."""
    kinds = {"running": ["Created", "Running"], "succeeded": ["Created", "Succeeded"],
             "failed": ["Created", "Failed"], "pending": ["Created"], "early_stopped": ["Created", "EarlyStopped"],
             "metrics_unavailable": ["Created", "MetricsUnavailable"], "killed": ["Created", "Killed"]}[state]
    status: dict[str, Any] = {"conditions": [cond(k) for k in kinds]}
    if state == "succeeded":  # Katib keeps Running, flipped to False, next to Succeeded
        status["conditions"].insert(1, cond("Running", status="False"))
    if values:
        status["observation"] = {"metrics": [{"name": metric, "min": str(min(values)), "max": str(max(values)),
                                              "latest": str(values[-1])}]}
    return {
        "metadata": {"name": name, "labels": {"katib.kubeflow.org/experiment": experiment_name}},
        "spec": {"parameterAssignments": [{"name": k, "value": str(v)} for k, v in params.items()]},
        "status": status,
    }


def summaries(*trials: dict[str, Any]) -> list[dict[str, Any]]:
    return [st.summarize_trial(t) for t in trials]


def optimal(name: str, value: float, **params: Any) -> dict[str, Any]:
    return {"bestTrialName": name,
            "parameterAssignments": [{"name": k, "value": str(v)} for k, v in params.items()],
            "observation": {"metrics": [{"name": "accuracy", "min": "0.1", "max": str(value), "latest": str(value)}]}}


# ---- states ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "expected"), [("running", "running"), ("succeeded", "succeeded"),
                                                 ("failed", "failed"), ("created", "created")])
def test_experiment_state_reads_the_true_condition(state: str, expected: str) -> None:
    assert st.experiment_state(experiment("e", state))[0] == expected


def test_experiment_state_carries_katib_reason_and_message() -> None:
    state, reason, message = st.experiment_state(experiment("e", "failed"))
    assert (state, reason) == ("failed", "ExperimentFailed")
    assert "max failed count" in message


@pytest.mark.parametrize("state", ["pending", "running", "succeeded", "failed", "killed", "early_stopped",
                                   "metrics_unavailable"])
def test_trial_state_from_conditions_and_from_summary(state: str) -> None:
    body = trial("t", state)
    assert st.trial_state(body) == state
    assert st.trial_state(st.summarize_trial(body)) == state


def test_summary_keeps_experiment_parameters_and_metrics_only() -> None:
    summary = st.summarize_trial(trial("t1", "succeeded", [0.5, 0.8], learningRate=0.01))
    assert summary == {
        "name": "t1", "experiment": "job", "state": "succeeded",
        "parameterAssignments": [{"name": "learningRate", "value": "0.01"}],
        "metrics": [{"name": "accuracy", "min": "0.5", "max": "0.8", "latest": "0.8"}],
    }


# ---- counts ---------------------------------------------------------------------------------------


def test_counts_sum_experiments_and_move_stopped_trials_to_early_terminated() -> None:
    a = experiment("a", trials=5, trialsRunning=1, trialsPending=1, trialsSucceeded=2, trialsFailed=1,
                   succeeded=["a-1", "a-2"])
    b = experiment("b", trials=4, trialsSucceeded=1, trialMetricsUnavailable=1, trialsKilled=1, trialsEarlyStopped=1,
                   succeeded=["b-1"])
    counts = st.trial_counts([a, b], stopped={"a-2", "x-9"})
    assert counts == {"total": 9, "running": 2, "succeeded": 2, "failed": 3, "earlyTerminated": 2}


def test_counts_of_an_experiment_without_status_are_zero() -> None:
    bare = {"metadata": {"name": "a"}}
    assert st.trial_counts([bare]) == {"total": 0, "running": 0, "succeeded": 0, "failed": 0, "earlyTerminated": 0}


# ---- best trial -----------------------------------------------------------------------------------


def uri(trial_name: str) -> str:
    return f"pvc://outputs/team-a/job/trials/{trial_name}/mlflow-model"


def test_best_is_the_highest_max_among_finished_trials_across_experiments() -> None:
    trials = summaries(
        trial("a-1", "succeeded", [0.6, 0.7], experiment_name="a", modelName="resnet18", learningRate="0.01"),
        trial("b-1", "succeeded", [0.9, 0.8], experiment_name="b", modelName="vitb16r224", learningRate="0.001"),
        trial("b-2", "running", [0.99], experiment_name="b"),  # best metric, but no model yet
        trial("a-2", "failed", [0.95], experiment_name="a"),
    )
    best = st.best_trial([experiment("a"), experiment("b")], trials, metric="accuracy", model_uri=uri)
    assert best == {"name": "b-1", "metric": 0.9, "modelUri": uri("b-1"),
                    "parameters": {"modelName": "vitb16r224", "learningRate": 0.001}}


def test_best_counts_early_stopped_trials_and_skips_unavailable_metrics() -> None:
    unavailable = trial("t-1", "succeeded", [0.1])
    unavailable["status"]["observation"]["metrics"][0].update(max="unavailable", latest="unavailable")
    trials = summaries(unavailable, trial("t-2", "early_stopped", [0.4]))
    assert st.best_trial([], trials, metric="accuracy")["name"] == "t-2"  # type: ignore[index]


def test_best_breaks_ties_by_name_and_honours_minimize() -> None:
    trials = summaries(trial("t-b", "succeeded", [0.5]), trial("t-a", "succeeded", [0.5]),
                       trial("t-c", "succeeded", [0.2, 0.9]))
    assert st.best_trial([], trials, metric="accuracy")["name"] == "t-c"  # type: ignore[index]
    tie = summaries(trial("t-b", "succeeded", [0.5]), trial("t-a", "succeeded", [0.5]))
    assert st.best_trial([], tie, metric="accuracy")["name"] == "t-a"  # type: ignore[index]
    assert st.best_trial([], trials, metric="accuracy", maximize=False)["metric"] == 0.2  # type: ignore[index]


def test_current_optimal_trial_counts_only_when_katib_lists_it_as_succeeded() -> None:
    running_best = experiment("a", optimal=optimal("a-3", 0.97), succeeded=["a-1"])
    assert st.best_trial([running_best], [], metric="accuracy") is None
    finished_best = experiment("a", optimal=optimal("a-1", 0.93, modelName="resnet50"), succeeded=["a-1"])
    assert st.best_trial([finished_best], [], metric="accuracy", model_uri=uri) == {
        "name": "a-1", "metric": 0.93, "parameters": {"modelName": "resnet50"}, "modelUri": uri("a-1")}


def test_automode_config_index_expands_to_the_portfolio_entry() -> None:
    portfolio = [{"modelName": "vitb16r224", "learningRate": 0.01}, {"modelName": "resnet50", "learningRate": 0.1}]
    trials = summaries(trial("t-1", "succeeded", [0.8], config="1"))
    best = st.best_trial([], trials, metric="accuracy", automode_configs=portfolio)
    assert best["parameters"] == {"modelName": "resnet50", "learningRate": 0.1}  # type: ignore[index]


def test_refinement_trials_show_their_base_config_under_the_sampled_values() -> None:
    trials = summaries(trial("r-1", "succeeded", [0.8], experiment_name="job-refine", learningRate="0.02"))
    best = st.best_trial([], trials, metric="accuracy",
                         bases={"job-refine": {"modelName": "resnet50", "learningRate": 0.1, "numberOfEpochs": 15}})
    assert best["parameters"] == {"modelName": "resnet50", "learningRate": 0.02,  # type: ignore[index]
                                  "numberOfEpochs": 15}


# ---- progress -------------------------------------------------------------------------------------


def progress(experiments: list[dict[str, Any]], trials: list[dict[str, Any]], expected: list[str] | None = None,
             **kwargs: Any) -> st.StatusUpdate:
    return st.progress_status(expected=expected or [e["metadata"]["name"] for e in experiments],
                              experiments={e["metadata"]["name"]: st.summarize_experiment(e) for e in experiments},
                              trials=summaries(*trials), metric="accuracy", **kwargs)


def test_running_while_any_experiment_runs_or_is_not_seen_yet() -> None:
    done = experiment("a", "succeeded", trials=2, trialsSucceeded=2, succeeded=["a-1", "a-2"])
    update = progress([done, experiment("b", trials=1, trialsRunning=1)], [trial("a-1", "succeeded", [0.5])])
    assert (update.phase, update.ready.status, update.succeeded.status) == ("Running", "True", "Unknown")
    assert update.best_trial is not None and not update.finished
    assert update.message == "2 of 3 trials finished"
    unseen = progress([done], [], expected=["a", "b"])
    assert unseen.phase == "Running"


def test_all_succeeded_maps_katib_reason() -> None:
    exp = experiment("a", "succeeded", reason="ExperimentGoalReached", trials=1, trialsSucceeded=1,
                     succeeded=["a-1"])
    update = progress([exp], [trial("a-1", "succeeded", [0.97])])
    assert (update.phase, update.succeeded.status, update.succeeded.reason) == ("Succeeded", "True", "GoalReached")
    assert update.finished and "best trial a-1 accuracy=0.97" in update.message


def test_a_failed_sub_space_does_not_fail_a_job_with_a_best_trial() -> None:
    ok = experiment("a", "succeeded", trials=1, trialsSucceeded=1, succeeded=["a-1"])
    bad = experiment("b", "failed", trials=3, trialsFailed=3)
    update = progress([ok, bad], [trial("a-1", "succeeded", [0.7])])
    assert (update.phase, update.succeeded.reason) == ("Succeeded", "ExperimentsFinished")
    assert "Experiment b failed (ExperimentFailed" in update.message


def test_no_best_trial_fails_with_katib_message_or_no_trial_succeeded() -> None:
    update = progress([experiment("a", "failed", trials=3, trialsFailed=3)], [])
    assert (update.phase, update.ready.reason, update.succeeded.reason) == ("Failed", "ExperimentFailed",
                                                                          "ExperimentFailed")
    assert "max failed count" in update.message
    silent = progress([experiment("a", "succeeded", trials=1, trialsSucceeded=1, succeeded=["a-1"])],
                      [trial("a-1", "succeeded")])
    assert (silent.phase, silent.succeeded.reason) == ("Failed", "NoTrialSucceeded")


def test_finished_by_timeout_keeps_best_and_counts_killed_running_trials_as_failed() -> None:
    counts = {"total": 4, "running": 2, "succeeded": 1, "failed": 1, "earlyTerminated": 0}
    best = {"name": "t-1", "metric": 0.8, "parameters": {}}
    update = st.finished_status("TimeoutReached", "timeout", counts=counts, best=best, previous_best=None,
                                metric="accuracy")
    assert (update.phase, update.succeeded.reason, update.ready.status) == ("Succeeded", "TimeoutReached", "True")
    assert update.trials == {"total": 4, "running": 0, "succeeded": 1, "failed": 3, "earlyTerminated": 0}
    empty = st.finished_status("TimeoutReached", "timeout", counts=counts, best=None, previous_best=None,
                               metric="accuracy")
    assert (empty.phase, empty.succeeded.status, empty.ready.reason) == ("Failed", "False", "TimeoutReached")
    assert "no trial had finished" in empty.message
    deleted = st.finished_status("ExperimentDeleted", "gone", counts=None, best=None, previous_best=best,
                                 metric="accuracy")
    assert (deleted.phase, deleted.best_trial) == ("Failed", best)


# ---- applying ---------------------------------------------------------------------------------------


def test_last_transition_time_moves_only_when_status_changes() -> None:
    first = st.apply_update(None, st.started_status([{"name": "a"}], T0), now=T0, generation=1)
    later = T0 + timedelta(minutes=5)
    running = progress([experiment("a", trials=1, trialsRunning=1)], [])
    second = st.apply_update(first, running, now=later, generation=2)
    ready = {c["type"]: c for c in second["conditions"]}
    assert ready["Ready"]["lastTransitionTime"] == "2026-11-29T10:00:00Z"  # True -> True
    assert ready["Ready"]["reason"] == "Running" and ready["Ready"]["observedGeneration"] == 2
    done = progress([experiment("a", "succeeded", trials=1, trialsSucceeded=1, succeeded=["a-1"])],
                    [trial("a-1", "succeeded", [0.5])])
    third = st.apply_update(second, done, now=later + timedelta(minutes=1), generation=2)
    by_type = {c["type"]: c for c in third["conditions"]}
    assert by_type["Succeeded"]["lastTransitionTime"] == "2026-11-29T10:06:00Z"  # Unknown -> True
    assert by_type["Ready"]["lastTransitionTime"] == "2026-11-29T10:00:00Z"
    assert third["completionTime"] == "2026-11-29T10:06:00Z" and third["startTime"] == "2026-11-29T10:00:00Z"


def test_best_trial_never_worsens_and_other_conditions_are_kept() -> None:
    old = {"bestTrial": {"name": "t-1", "metric": 0.9, "parameters": {}},
           "conditions": [{"type": "Custom", "status": "True", "reason": "X"}]}
    worse = st.StatusUpdate(phase="Running", ready=st.Cond("True", "Running"), succeeded=st.Cond("Unknown", "Running"),
                            best_trial={"name": "t-2", "metric": 0.5, "parameters": {}})
    new = st.apply_update(old, worse, now=T0, generation=None)
    assert new["bestTrial"]["name"] == "t-1"
    assert [c["type"] for c in new["conditions"]] == ["Ready", "Succeeded", "Custom"]
    assert "observedGeneration" not in new["conditions"][0]


def test_status_patch_has_only_changed_keys() -> None:
    old = {"phase": "Running", "message": "a", "kopf": {"x": 1}, "gone": 1}
    assert st.status_patch(old, {"phase": "Running", "message": "b"}) == {"message": "b", "gone": None}
    assert st.status_patch({"phase": "Running"}, {"phase": "Running"}) == {}


def test_timeout_deadline_from_start_time() -> None:
    assert st.timeout_deadline({"startTime": "2026-11-29T10:00:00Z"}, 90) == T0 + timedelta(minutes=90)
    assert st.timeout_deadline({}, 90) is None
    assert st.timeout_deadline({"startTime": "yesterday"}, 90) is None


def test_pending_and_invalid_spec_states() -> None:
    pending = st.apply_update(None, st.pending_status("KatibNotInstalled", "install Katib"), now=T0, generation=3)
    assert pending["phase"] == "Pending"
    assert [(c["type"], c["status"], c["reason"]) for c in pending["conditions"]] == [
        ("Ready", "False", "KatibNotInstalled"), ("Succeeded", "Unknown", "KatibNotInstalled")]
    invalid = st.apply_update(pending, st.invalid_spec_status("spec.limits.maxTrials: too small"), now=T0,
                              generation=4)
    assert invalid["phase"] == "Failed" and invalid["observedGeneration"] == 4
    assert {c["reason"] for c in invalid["conditions"]} == {"InvalidSpec"}
    assert "completionTime" not in invalid  # an invalid spec may still be fixed
