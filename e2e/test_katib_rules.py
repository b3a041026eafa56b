"""Katib's rules as the player applies them, each checked against what Katib's source does.

These are the foundation of the e2e scenario: if the player read a trial's output differently from
Katib, or filed trials differently, the scenario would prove the operator right about a Katib that
does not exist. Inputs are hand-written log lines and Katib objects, and the operator's own planner
output (plan_job) for the trial template; outputs are checked against Katib's OpenAPI definitions.
"""

from __future__ import annotations

import base64
import random
from pathlib import Path
from typing import Any

import pytest

from e2e.harness import plan_helpers
from e2e.katib import experiment_status as es
from e2e.katib import trials as tr
from e2e.katib.collector import (
    UNAVAILABLE,
    ZERO_TIME,
    MetricLog,
    go_float,
    observation,
    parse_rfc3339_nanos,
    parse_text_log,
)
from e2e.katib.conditions import mark_finished, set_condition
from e2e.katib.defaults import with_defaults
from e2e.katib.pod import LocalCluster, PathMap, plan_pod
from e2e.katib.suggestions import GridSuggester, RandomSuggester, make_suggester, trial_suffix
from e2e.katib.training_operator import job_condition, job_outcome, job_status
from e2e.shapes import katib_errors
from kubevision.api.loading import parse_manifest
from kubevision.operator.reconcile import plan_job
from kubevision.operator.settings import OperatorSettings

T1, T2, T3 = "2026-11-29T10:00:01.5Z", "2026-11-29T10:00:02Z", "2026-11-29T10:00:03.000000001Z"
METRICS = ["accuracy", "log_loss"]
STRATEGIES = [{"name": "accuracy", "value": "max"}, {"name": "log_loss", "value": "min"}]
NOW = "2026-11-29T10:00:00Z"
SERVICE = "http://kubevision-operator.kubevision-system.svc:8082"


# ---- the StdOut collector -----------------------------------------------------------------------


def test_the_collector_reads_name_value_pairs_with_the_leading_timestamp() -> None:
    lines = [
        f"{T1} epoch=1 accuracy=0.5 accuracy_top5=0.9 log_loss=1.2e-1 learning_rate=0.01",
        "INFO loading 240 images",  # no metric name: skipped
        "epoch=2 accuracy=.75 log_loss=+0.1",  # no timestamp: the zero time
        f"{T2}   accuracy = 0.7",  # spaces around '=' are allowed by the default filter
    ]
    assert parse_text_log(lines, METRICS) == [
        MetricLog(T1, "accuracy", "0.5"), MetricLog(T1, "log_loss", "1.2e-1"),
        MetricLog(ZERO_TIME, "accuracy", ".75"), MetricLog(ZERO_TIME, "log_loss", "+0.1"),
        MetricLog(T2, "accuracy", "0.7"),
    ]


def test_without_the_objective_metric_the_collector_reports_it_unavailable() -> None:
    assert parse_text_log([f"{T1} log_loss=0.3", "Traceback: accuracy lost"], METRICS) == [
        MetricLog(ZERO_TIME, "accuracy", UNAVAILABLE)]


def test_a_custom_filter_replaces_the_default_one() -> None:
    logs = parse_text_log([f"{T1} accuracy: 0.81 (log_loss=0.2)"], METRICS, [r"(\w+):\s*([\d.]+)"])
    assert logs == [MetricLog(T1, "accuracy", "0.81")]


def test_observation_keeps_the_printed_strings_min_max_and_the_newest_latest() -> None:
    logs = [MetricLog(T2, "accuracy", "0.5"), MetricLog(T1, "accuracy", "0.9"), MetricLog(T3, "accuracy", "0.70"),
            MetricLog(T3, "accuracy", "0.6")]  # same time: the later line wins
    assert observation(logs, STRATEGIES) == {"metrics": [
        {"name": "accuracy", "min": "0.5", "max": "0.9", "latest": "0.6"},
        {"name": "log_loss", "min": UNAVAILABLE, "max": UNAVAILABLE, "latest": UNAVAILABLE},
    ]}


def test_a_value_go_cannot_parse_moves_latest_but_not_min_or_max() -> None:
    logs = parse_text_log([f"{T1} accuracy=0.4", f"{T2} accuracy=n/a"], METRICS)
    assert logs[-1] == MetricLog(T2, "accuracy", "")
    assert observation(logs, STRATEGIES)["metrics"][0] == {"name": "accuracy", "min": "0.4", "max": "0.4",
                                                           "latest": ""}


@pytest.mark.parametrize(("text", "value"), [("1e-3", 1e-3), (".5", 0.5), ("+2.", 2.0), ("-0.25", -0.25),
                                             ("", None), ("1_0", None), ("0x1p-2", None), ("abc", None)])
def test_go_float_accepts_what_strconv_parsefloat_accepts(text: str, value: float | None) -> None:
    assert go_float(text) == value


def test_rfc3339_parsing_handles_nanoseconds_offsets_and_nonsense() -> None:
    assert parse_rfc3339_nanos(T3) == parse_rfc3339_nanos("2026-11-29T11:00:03.000000001+01:00")
    assert parse_rfc3339_nanos(T3) - parse_rfc3339_nanos(T2) == 1_000_000_001  # type: ignore[operator]
    assert parse_rfc3339_nanos(ZERO_TIME) is not None
    for bad in ("2026-13-01T00:00:00Z", "2026-11-29 10:00:00Z", "epoch=1", "2026-11-29T10:00:00"):
        assert parse_rfc3339_nanos(bad) is None


# ---- suggestions ----------------------------------------------------------------------------------


def test_grid_tries_every_combination_once_then_is_exhausted() -> None:
    params = [{"name": "lr", "parameterType": "discrete", "feasibleSpace": {"list": ["1.0e-07", "0.1"]}},
              {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "5", "step": "2"}},
              {"name": "m", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "0.3", "step": "0.1"}}]
    grid = GridSuggester(params, random.Random(1))
    points = grid.suggest(4) + grid.suggest(100)
    combos = {tuple(a["value"] for a in point) for point in points}
    assert len(points) == len(combos) == 2 * 3 * 3 and grid.suggest(1) == []
    assert {c[1] for c in combos} == {"1", "3", "5"}
    assert {c[2] for c in combos} == {"0.1", "0.2", "0.30000000000000004"}  # numpy.arange's points, str()'d
    with pytest.raises(ValueError, match="needs a step"):
        GridSuggester([{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
                      random.Random(0))


def test_random_draws_stay_in_the_space_and_print_like_python() -> None:
    params = [{"name": "lr", "parameterType": "double",
               "feasibleSpace": {"min": "0.0001", "max": "0.1", "distribution": "logUniform"}},
              {"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}},
              {"name": "q", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1", "step": "0.25"}},
              {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}}]
    draws = RandomSuggester(params, random.Random(3)).suggest(300)
    values = {name: [dict((a["name"], a["value"]) for a in d)[name] for d in draws] for name in ("lr", "n", "q", "opt")}
    assert all(1e-4 <= float(v) <= 0.1 for v in values["lr"]) and all(v == str(float(v)) for v in values["lr"])
    assert set(values["n"]) == {"1", "2", "3"}  # uniformint: both ends
    assert set(values["q"]) <= {"0.0", "0.25", "0.5", "0.75", "1.0"}
    assert set(values["opt"]) == {"sgd", "adam"}
    logs = sorted(float(v) for v in values["lr"])
    assert logs[len(logs) // 2] < 0.01  # log-uniform: the median sits near the geometric middle (0.003)


def test_random_state_seeds_the_suggestions_and_unknown_algorithms_are_refused() -> None:
    spec = {"algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "7"}]},
            "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}]}
    assert make_suggester(spec, 1).suggest(3) == make_suggester(spec, 2).suggest(3)
    with pytest.raises(ValueError, match="random and grid only"):
        make_suggester({**spec, "algorithm": {"algorithmName": "tpe"}}, 0)
    suffix = trial_suffix(random.Random(0))
    assert len(suffix) == 8 and set(suffix) <= set("bcdfghjklmnpqrstvwxz2456789")


# ---- Trials from the operator's own Experiment ----------------------------------------------------


def planned(**spec: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Experiment as stored, ConfigMap) of a small job planned by the operator's planner."""
    manifest = plan_helpers.job_manifest("digits", {
        "task": "image_classification", "trainingData": {"path": "data/digits/train.jsonl"},
        "limits": {"maxTrials": 2}, "sweep": {"samplingAlgorithm": "grid", "earlyTermination": {"type": "bandit",
                                                                                                "slackFactor": 0.1}},
        "searchSpace": [{"learningRate": {"type": "choice", "values": [1.0e-7, 0.1]}}],
        "resources": {"gpusPerNode": 0}, **spec}, namespace="team-a")
    job = parse_manifest(manifest)
    owner = {"apiVersion": "kubevision.io/v1alpha1", "kind": "AutoMLImageJob", "name": "digits", "uid": "u-1"}
    plan = plan_job(job, namespace="team-a", owner=owner,  # type: ignore[arg-type]
                    settings=OperatorSettings(termination_url=SERVICE, output_pvc="outputs"))
    experiment = plan.experiments[0]
    experiment["metadata"]["uid"] = "exp-uid"
    return with_defaults(experiment), plan.config_map


def test_a_trial_is_named_labelled_owned_and_its_job_substituted_like_katib_does() -> None:
    experiment, _ = planned()
    trial = tr.trial_manifest(experiment, "digits-b2c4d6f8", [{"name": "learningRate", "value": "1.0e-07"}])
    assert trial["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "kubevision", "kubevision.io/job": "digits",
                                           "katib.kubeflow.org/experiment": "digits"}
    assert trial["metadata"]["ownerReferences"] == [{"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
                                                     "name": "digits", "uid": "exp-uid", "controller": True,
                                                     "blockOwnerDeletion": True}]
    job = trial["spec"]["runSpec"]
    assert (job["metadata"]["name"], job["metadata"]["namespace"]) == ("digits-b2c4d6f8", "team-a")
    command = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["command"]
    assert "learningRate=1.0e-07" in command and "/mnt/kubevision/team-a/digits/trials/digits-b2c4d6f8" in command
    assert not any("${" in word for word in command)
    assert plan_helpers.pytorchjob_schema_errors(job) == []
    status = tr.completed_status(tr.created_status(NOW), tr.JobOutcome("Running"), None, "accuracy", NOW)
    assert katib_errors({**trial, "status": status}) == []
    wrong = {**trial, "status": {**status, "observation": {"metrics": [{"name": "accuracy", "latest": 0.5}]},
                                 "trialsRunning": 1}}
    assert len(katib_errors(wrong)) >= 2  # a number where Katib writes a string; a key Katib's type lacks


def test_run_spec_substitutes_meta_references_and_refuses_what_katib_refuses() -> None:
    experiment = {"metadata": {"name": "e", "namespace": "ns"}, "spec": {"trialTemplate": {
        "trialParameters": [{"name": "lr", "reference": "lr"}, {"name": "who", "reference": "${trialSpec.Name}"},
                            {"name": "team", "reference": "${trialSpec.Labels[team]}"},
                            {"name": "where", "reference": "${trialSpec.Namespace}"}],
        "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"labels": {"team": "vision"}},
                      "spec": {"args": ["${trialParameters.lr}", "${trialParameters.who}",
                                        "${trialParameters.team}", "${trialParameters.where}"]}}}}}
    job = tr.run_spec(experiment, "e-1", "ns", [{"name": "lr", "value": "0.1"}])
    assert job["spec"]["args"] == ["0.1", "e-1", "vision", "ns"]
    with pytest.raises(ValueError, match="Unable to find parameter: lr"):
        tr.run_spec(experiment, "e-1", "ns", [])
    with pytest.raises(ValueError, match="Number of TrialAssignment"):
        tr.run_spec(experiment, "e-1", "ns", [{"name": "lr", "value": "1"}, {"name": "x", "value": "2"}])
    with pytest.raises(ValueError):  # a quote breaks the JSON text Katib substitutes into
        tr.run_spec(experiment, "e-1", "ns", [{"name": "lr", "value": 'a"b'}])


def test_trial_status_follows_the_trial_controller() -> None:
    created = tr.created_status(NOW)
    running = tr.completed_status(created, tr.JobOutcome("Running"), None, "accuracy", NOW)
    seen = {"metrics": [{"name": "accuracy", "min": "0.1", "max": "0.3", "latest": "0.3"}]}
    done = tr.completed_status(running, tr.JobOutcome("Succeeded", "PyTorchJobSucceeded", "done."), seen, "accuracy",
                               "2026-11-29T10:05:00Z")
    by_type = {c["type"]: c for c in done["conditions"]}
    assert [c["type"] for c in done["conditions"]] == ["Created", "Running", "Succeeded"]
    assert (by_type["Running"]["status"], by_type["Running"]["reason"]) == ("False", "TrialRunning")
    assert by_type["Succeeded"]["reason"] == "TrialSucceeded. Job reason: PyTorchJobSucceeded"
    assert by_type["Succeeded"]["message"] == "Trial has succeeded. Job message: done."
    assert done["completionTime"] == "2026-11-29T10:05:00Z" and tr.trial_phase({"status": done}) == "succeeded"

    silent = {"metrics": [{"name": "accuracy", "min": UNAVAILABLE, "max": UNAVAILABLE, "latest": UNAVAILABLE}]}
    unavailable = tr.completed_status(running, tr.JobOutcome("Succeeded"), silent, "accuracy", NOW)
    assert tr.trial_phase({"status": unavailable}) == "metrics_unavailable"
    failed = tr.completed_status(running, tr.JobOutcome("Failed", "PyTorchJobFailed"), None, "accuracy", NOW)
    assert tr.trial_phase({"status": failed}) == "failed"
    stopped = tr.early_stopped_status(running, NOW)
    after = tr.completed_status(stopped, tr.JobOutcome("Succeeded"), seen, "accuracy", NOW)
    assert after["conditions"] == stopped["conditions"]  # an early-stopped trial is never turned Succeeded
    assert tr.trial_phase({"status": stopped}) == "early_stopped"


def test_conditions_keep_transition_times_and_move_to_the_end() -> None:
    first = set_condition([], "Running", "True", "A", "a", "t1")
    assert set_condition(first, "Running", "True", "A", "changed", "t2") == first  # same status and reason
    moved = set_condition([*first, {"type": "Created", "status": "True"}], "Running", "True", "B", "b", "t2")
    assert [c["type"] for c in moved] == ["Created", "Running"]
    assert (moved[-1]["lastTransitionTime"], moved[-1]["lastUpdateTime"]) == ("t1", "t2")
    finished = mark_finished(moved, "Failed", "True", "R", "m", "t3")
    assert [(c["type"], c["status"], c.get("reason")) for c in finished] == [
        ("Created", "True", None), ("Running", "False", "B"), ("Failed", "True", "R")]


# ---- the Experiment's status ------------------------------------------------------------------------


def trial(name: str, phase: str, *, acc: str | None = None, strategy: str = "max") -> dict[str, Any]:
    conditions = [{"type": "Created", "status": "True"}]
    if phase != "pending":
        conditions.append({"type": "Running", "status": "True" if phase == "running" else "False"})
    kinds = {"succeeded": "Succeeded", "failed": "Failed", "killed": "Killed", "early_stopped": "EarlyStopped",
             "metrics_unavailable": "MetricsUnavailable"}
    if phase in kinds:
        conditions.append({"type": kinds[phase], "status": "True"})
    status: dict[str, Any] = {"conditions": conditions}
    if acc is not None:
        status["observation"] = {"metrics": [{"name": "accuracy", "min": "0", "max": acc, "latest": acc}]}
    return {"metadata": {"name": name}, "status": status,
            "spec": {"objective": {"objectiveMetricName": "accuracy",
                                   "metricStrategies": [{"name": "accuracy", "value": strategy}]},
                     "parameterAssignments": [{"name": "lr", "value": name}]}}


def experiment_of(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "e", "namespace": "n"},
            "spec": {"objective": {"type": "maximize", "objectiveMetricName": "accuracy"}, **spec},
            "status": es.created_status(NOW)}


def test_the_summary_files_every_trial_and_picks_the_optimal_one_among_all() -> None:
    trials = [trial("t5", "pending"), trial("t4", "running", acc="0.95"), trial("t3", "succeeded", acc="0.8"),
              trial("t2", "failed"), trial("t1", "metrics_unavailable"), trial("t0", "early_stopped", acc="0.95")]
    status, goal = es.trials_summary(experiment_of(maxTrialCount=6), trials)
    assert not goal
    assert (status["trials"], status["trialsPending"], status["trialsRunning"], status["trialsSucceeded"],
            status["trialsFailed"], status["trialMetricsUnavailable"], status["trialsEarlyStopped"]) == (6, 1, 1, 1, 1,
                                                                                                         1, 1)
    assert "trialsKilled" not in status and "killedTrialList" not in status  # Go's omitempty
    optimal = status["currentOptimalTrial"]
    assert optimal["bestTrialName"] == "t0"  # 0.95 twice: the first by name keeps it, a running trial competes
    assert optimal["parameterAssignments"] == [{"name": "lr", "value": "t0"}]
    status, goal = es.trials_summary(experiment_of(objective={"type": "maximize", "objectiveMetricName": "accuracy",
                                                              "goal": 0.9}), trials)
    assert goal


def test_minimize_takes_the_smallest_objective_value() -> None:
    spec = {"objective": {"type": "minimize", "objectiveMetricName": "accuracy"}}
    status, _ = es.trials_summary(experiment_of(**spec), [trial("a", "succeeded", acc="0.3", strategy="latest"),
                                                           trial("b", "succeeded", acc="0.2", strategy="latest")])
    assert status["currentOptimalTrial"]["bestTrialName"] == "b"


@pytest.mark.parametrize(("phases", "spec", "done", "expected"), [
    (["succeeded", "succeeded", "running"], {"maxTrialCount": 3, "maxFailedTrialCount": 2}, False,
     ("Running", "ExperimentRunning")),
    (["succeeded", "failed", "succeeded"], {"maxTrialCount": 3, "maxFailedTrialCount": 2}, False,
     ("Succeeded", "ExperimentMaxTrialsReached")),
    (["failed", "metrics_unavailable", "running"], {"maxTrialCount": 5, "maxFailedTrialCount": 2}, False,
     ("Failed", "ExperimentFailed")),
    (["succeeded"], {"maxTrialCount": 5, "maxFailedTrialCount": 0}, True, ("Succeeded",
                                                                           "ExperimentSuggestionEndReached")),
])
def test_completion_rules(phases: list[str], spec: dict[str, Any], done: bool, expected: tuple[str, str]) -> None:
    experiment = experiment_of(**spec)
    trials = [trial(f"t{i}", phase, acc="0.5" if phase == "succeeded" else None) for i, phase in enumerate(phases)]
    summary, goal = es.trials_summary(experiment, trials)
    status = es.condition_status(experiment, summary, goal_reached=goal, suggestion_done=done, now=NOW)
    last = status["conditions"][-1]
    assert (last["type"], last["reason"]) == expected
    assert es.is_completed(status) == (expected[0] != "Running")
    if es.is_completed(status):
        assert status["completionTime"] == NOW
    assert katib_errors({**experiment, "status": status}) == []


def test_the_webhook_defaults_fill_what_the_operator_leaves_out() -> None:
    experiment, _ = planned()
    bare = {"metadata": experiment["metadata"], "spec": {
        "objective": {"type": "maximize", "objectiveMetricName": "accuracy", "additionalMetricNames": ["log_loss"]},
        "trialTemplate": {"trialSpec": {"kind": "PyTorchJob"}}}}
    spec = with_defaults(bare)["spec"]
    assert spec["parallelTrialCount"] == 3 and spec["resumePolicy"] == "Never"
    assert spec["objective"]["metricStrategies"] == [{"name": "accuracy", "value": "max"},
                                                     {"name": "log_loss", "value": "max"}]
    assert spec["trialTemplate"]["primaryPodLabels"] == {"training.kubeflow.org/job-role": "master"}
    assert spec["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}
    assert with_defaults(experiment) == experiment  # the operator's Experiment already says everything


# ---- the training operator ---------------------------------------------------------------------------


def test_job_conditions_and_what_katib_reads_from_them() -> None:
    success = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
    failure = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
    created = job_status(None, "Created", namespace="n", name="j", now=NOW)
    assert job_outcome({"status": created}, success, failure).condition == "Running"
    restarting = job_status(job_status(created, "Running", namespace="n", name="j", now=NOW), "Restarting",
                            namespace="n", name="j", now=NOW)
    assert [c["type"] for c in restarting["conditions"]] == ["Created", "Restarting"]  # Running dropped
    done = job_status(job_status(restarting, "Running", namespace="n", name="j", now=NOW), "Succeeded",
                      namespace="n", name="j", now=NOW)
    assert [(c["type"], c["status"]) for c in done["conditions"]] == [("Created", "True"), ("Running", "False"),
                                                                      ("Succeeded", "True")]
    outcome = job_outcome({"status": done}, success, failure)
    assert (outcome.condition, outcome.reason, outcome.message) == ("Succeeded", "PyTorchJobSucceeded",
                                                                     "PyTorchJob n/j successfully completed.")
    both = {"status": {"conditions": [*done["conditions"], *job_condition([], "Failed", "X", "m", NOW)]}}
    assert job_outcome(both, success, failure).condition == "Failed"  # failure is tested first
    with pytest.raises(ValueError, match="evaluates only"):
        job_outcome(both, success, "status.failed")


# ---- the pod ----------------------------------------------------------------------------------------------


def test_the_planned_trial_pod_maps_volumes_secrets_and_services_to_this_machine(tmp_path: Path) -> None:
    experiment, config_map = planned()
    trial_ = tr.trial_manifest(experiment, "digits-b2c4d6f8", [{"name": "learningRate", "value": "0.1"}])
    secret = {"data": {"token": base64.b64encode(b"s3cret").decode()}}
    local = LocalCluster(claims={"outputs": tmp_path / "pvc"}, services={SERVICE: "http://127.0.0.1:9"},
                         env={"OMP_NUM_THREADS": "1"}, extra_args=("--no-onnx",))
    plan = plan_pod(trial_["spec"]["runSpec"], "digits-b2c4d6f8", local=local, scratch=tmp_path / "pod",
                    master_port=12345, config_maps={"digits-trial-config": config_map},
                    secrets={"digits-termination-token": secret}, primary_container="pytorch")
    config = tmp_path / "pod" / "volumes" / "kubevision-config"
    assert plan.argv == [
        "kubevision", "train", "--job", f"{config}/job.yaml", "--set", "learningRate=0.1",
        "--output", f"{tmp_path}/pvc/team-a/digits/trials/digits-b2c4d6f8", "--trial-name", "digits-b2c4d6f8",
        "--termination-url", "http://127.0.0.1:9/v1/namespaces/team-a/jobs/digits/termination", "--no-onnx"]
    assert plan.script.endswith(f" 1>{plan.metrics_file} 2>&1 && echo completed > {plan.metrics_file.parent}/$$.pid")
    assert plan.env["KUBEVISION_TERMINATION_TOKEN"] == "s3cret" and plan.env["KATIB_TRIAL_NAME"] == "digits-b2c4d6f8"
    assert plan.env["OMP_NUM_THREADS"] == "1" and plan.env["PET_NPROC_PER_NODE"] == "1"
    assert plan.env["PATH"].startswith(str(local.bin_dir))
    job_yaml = plan.files[config / "job.yaml"]
    assert f"path: {tmp_path}/pvc/data/digits/train.jsonl" in job_yaml and "/mnt/kubevision" not in job_yaml
    assert plan.path_map.host("/mnt/kubevision/team-a/x") == tmp_path / "pvc" / "team-a" / "x"
    assert plan.path_map.host("/dev/shm/x") is None  # the host's own /dev/shm

    with pytest.raises(ValueError, match="'outputs' is not given to the player"):
        plan_pod(trial_["spec"]["runSpec"], "t", local=LocalCluster(claims={}), scratch=tmp_path, master_port=1,
                 config_maps={"digits-trial-config": config_map}, secrets={"digits-termination-token": secret},
                 primary_container="pytorch")
    with pytest.raises(ValueError, match="Secret 'digits-termination-token' does not exist"):
        plan_pod(trial_["spec"]["runSpec"], "t", local=local, scratch=tmp_path, master_port=1,
                 config_maps={"digits-trial-config": config_map}, secrets={}, primary_container="pytorch")


def test_multi_node_trials_are_left_to_a_real_cluster(tmp_path: Path) -> None:
    experiment, _config_map = planned(resources={"gpusPerNode": 0, "nodeCountPerTrial": 2})
    trial_ = tr.trial_manifest(experiment, "t", [{"name": "learningRate", "value": "0.1"}])
    with pytest.raises(ValueError, match="single-node trials"):
        plan_pod(trial_["spec"]["runSpec"], "t", local=LocalCluster(claims={"outputs": tmp_path}), scratch=tmp_path,
                 master_port=1, config_maps={}, secrets={}, primary_container="pytorch")


def test_path_rewriting_respects_path_boundaries(tmp_path: Path) -> None:
    paths = PathMap({"/mnt/kubevision": tmp_path / "a", "/mnt/kubevision-claims/c": tmp_path / "c"})
    text = "/mnt/kubevision/x /mnt/kubevision-claims/c/y /opt/mnt/kubevision/z x=/mnt/kubevision /mnt/kubevision2"
    assert paths.rewrite(text) == (f"{tmp_path}/a/x {tmp_path}/c/y /opt/mnt/kubevision/z x={tmp_path}/a "
                                   "/mnt/kubevision2")
