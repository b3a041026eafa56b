"""`plan_job` behaviour: modes, parameter mapping, budget split, names, storage, ownership, determinism.

The upstream-schema checks of the same plans are in test_upstream_schemas.py; here each test pins one
decision of the mapping (docs/operator-mapping.md) so that a change to it is a visible test change.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import pytest
import yaml
from plan_helpers import HAND_JOBS, OWNER, SETTINGS_KW, job_manifest, master_container, parse_job, replicas

from kubevision.api.errors import KubevisionError
from kubevision.api.search_space import Choice
from kubevision.cli_plan import render_documents
from kubevision.operator.reconcile import (
    JobPlan,
    config_map_name,
    experiment_name,
    plan_job,
    token_secret_name,
)
from kubevision.operator.reconcile.budget import max_failed_trials, split_budget
from kubevision.operator.reconcile.names import refinement_experiment_name
from kubevision.operator.reconcile.parameters import katib_number, katib_parameters
from kubevision.operator.reconcile.plan import gpu_memory_bytes
from kubevision.operator.settings import DEFAULT_TRAINER_IMAGE, OperatorSettings

SETTINGS = OperatorSettings(**SETTINGS_KW)


def plan_of(name: str, settings: OperatorSettings = SETTINGS, **kw: Any) -> JobPlan:
    job = parse_job(HAND_JOBS[name])
    return plan_job(job, namespace=job.metadata.namespace or "team-a", settings=settings, **kw)


def params_of(experiment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in experiment["spec"]["parameters"]}


def trial_spec(experiment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = experiment["spec"]["trialTemplate"]["trialSpec"]
    return spec


# ---- modes ---------------------------------------------------------------------------------------------


def test_individual_trial_is_one_grid_point_on_cpu() -> None:
    plan = plan_of("individual")
    (exp,) = plan.experiments
    assert plan.sub_spaces == [None]
    assert exp["metadata"]["name"] == "single-cpu"
    assert exp["spec"]["algorithm"] == {"algorithmName": "grid"}
    assert (exp["spec"]["maxTrialCount"], exp["spec"]["parallelTrialCount"], exp["spec"]["maxFailedTrialCount"]) == (
        1, 1, 1)
    assert exp["spec"]["parameters"] == [
        {"name": "modelName", "parameterType": "categorical", "feasibleSpace": {"list": ["resnet18"]}}
    ]
    job = trial_spec(exp)
    assert job["spec"]["nprocPerNode"] == "1"
    assert set(replicas(job)) == {"Master"}
    container = master_container(job)
    assert container["command"][:2] == ["kubevision", "train"]  # one process: no torchrun
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"}}  # no GPU limit on CPU
    assert job["spec"]["runPolicy"] == {"cleanPodPolicy": "Running", "backoffLimit": 3, "activeDeadlineSeconds": 1800}
    assert container["image"] == DEFAULT_TRAINER_IMAGE


def test_random_sub_spaces_become_experiments_with_the_budget_split() -> None:
    plan = plan_of("random-subspaces")
    assert plan.sub_spaces == [0, 1, 2]
    names = [e["metadata"]["name"] for e in plan.experiments]
    assert names == ["dists-s0", "dists-s1", "dists-s2"]
    assert [e["spec"]["maxTrialCount"] for e in plan.experiments] == [4, 3, 3]  # 10: remainder to the first
    assert [e["spec"]["parallelTrialCount"] for e in plan.experiments] == [2, 1, 1]  # 4 in proportion
    assert {e["spec"]["algorithm"]["algorithmName"] for e in plan.experiments} == {"random"}
    for i, exp in enumerate(plan.experiments):
        assert exp["metadata"]["labels"]["kubevision.io/sub-space"] == str(i)


def test_every_azure_distribution_maps_to_its_katib_parameter() -> None:
    plan = plan_of("random-subspaces")
    s0, s1, s2 = (params_of(e) for e in plan.experiments)
    lr = s0["learningRate"]["feasibleSpace"]
    assert s0["learningRate"]["parameterType"] == "double" and lr["distribution"] == "logUniform"
    assert float(lr["min"]) == pytest.approx(math.exp(-9.2)) and float(lr["max"]) == pytest.approx(math.exp(-4.6))
    assert s0["optimizer"] == {"name": "optimizer", "parameterType": "categorical",
                               "feasibleSpace": {"list": ["sgd", "adamw"]}}  # Azure enums are case-insensitive
    assert s0["nesterov"]["feasibleSpace"]["list"] == ["true", "false"]  # the trial's --set reads YAML booleans
    assert s0["tileGridSize"]["feasibleSpace"]["list"] == ["3x2", "2x2"]  # "(3, 2)" would break `sh -c`
    assert s0["minSize"] == {"name": "minSize", "parameterType": "int",
                             "feasibleSpace": {"min": "480", "max": "800", "step": "32"}}
    assert s0["momentum"]["feasibleSpace"] == {"min": "0.8", "max": "0.99"}
    assert s1["learningRate"]["feasibleSpace"]["step"] == "0.0001"
    assert s1["learningRate"]["feasibleSpace"]["distribution"] == "logUniform"
    assert s1["weightDecay"]["feasibleSpace"] == {"min": "0.0002", "max": "0.0008", "distribution": "normal"}
    assert s1["layersToFreeze"] == {"name": "layersToFreeze", "parameterType": "discrete",
                                    "feasibleSpace": {"list": ["0", "1", "2", "3", "4"]}}
    assert s1["randomSeed"] == {"name": "randomSeed", "parameterType": "int",
                                "feasibleSpace": {"min": "0", "max": "3999"}}
    assert s1["stepLrGamma"]["feasibleSpace"] == {"min": "0.1", "max": "0.5", "step": "0.05"}
    lognormal = s2["learningRate"]["feasibleSpace"]
    assert lognormal["distribution"] == "logNormal"
    # hyperopt recovers mu and sigma as the mean and a sixth of the log range
    log_min, log_max = math.log(float(lognormal["min"])), math.log(float(lognormal["max"]))
    assert (log_min + log_max) / 2 == pytest.approx(-6.9)
    assert (log_max - log_min) / 6 == pytest.approx(0.5)
    assert s2["beta1"]["feasibleSpace"]["distribution"] == "normal" and s2["beta1"]["feasibleSpace"]["step"] == "0.01"
    assert s2["beta2"]["feasibleSpace"]["distribution"] == "logNormal"
    assert any("randomSeed: randint(upper=4000)" in w and "half as often" in w for w in plan.warnings)


def test_grid_is_capped_at_its_points_and_split_in_proportion() -> None:
    plan = plan_of("grid")
    assert [e["spec"]["maxTrialCount"] for e in plan.experiments] == [4, 2]  # 10 wanted, 6 points
    assert sum(e["spec"]["parallelTrialCount"] for e in plan.experiments) == 3
    assert any("6 combinations, fewer than maxTrials 10" in w for w in plan.warnings)
    lr = params_of(plan.experiments[0])["learningRate"]
    assert lr == {"name": "learningRate", "parameterType": "discrete", "feasibleSpace": {"list": ["0.01", "1.0e-05"]}}
    manifest = json.loads(json.dumps(HAND_JOBS["grid"]))
    manifest["spec"]["limits"]["maxTrials"] = 3
    job = parse_job(manifest)
    small = plan_job(job, namespace="ns", settings=SETTINGS)
    assert [e["spec"]["maxTrialCount"] for e in small.experiments] == [2, 1]  # 1 each, then 4:2 -> the first


def test_bayesian_runs_as_tpe_with_a_warning() -> None:
    plan = plan_of("bayesian")
    (exp,) = plan.experiments
    assert exp["spec"]["algorithm"] == {"algorithmName": "tpe"}
    assert exp["spec"]["objective"]["objectiveMetricName"] == "iou"
    assert "accuracy" in exp["spec"]["objective"]["additionalMetricNames"]
    assert params_of(exp)["numberOfEpochs"]["feasibleSpace"] == {"min": "5", "max": "20", "step": "5"}
    assert any("tpe" in w for w in plan.warnings)


def test_automode_is_a_grid_over_portfolio_indices() -> None:
    plan = plan_of("automode")
    (exp,) = plan.experiments
    assert plan.portfolio is not None and 1 < len(plan.portfolio) <= 10
    assert exp["spec"]["algorithm"] == {"algorithmName": "grid"}
    assert exp["spec"]["parameters"] == [
        {"name": "config", "parameterType": "categorical",
         "feasibleSpace": {"list": [str(i) for i in range(len(plan.portfolio))]}}
    ]
    assert exp["spec"]["maxTrialCount"] == len(plan.portfolio)
    assert plan.refinement_trials == 10 - len(plan.portfolio)
    assert json.loads(plan.config_map["data"]["automode.json"]) == plan.portfolio
    command = master_container(trial_spec(exp))["command"]
    i = command.index("--sampled-from")
    assert command[i:i + 4] == ["--sampled-from", "/etc/kubevision/automode.json", "--sampled-index",
                                "${trialParameters.config}"]
    assert "--set" not in command
    assert all("trainingCropSize" not in c for c in plan.portfolio)  # the user's fixed value is kept


def test_automode_portfolio_sees_the_gpu_the_node_selector_pins() -> None:
    job = parse_job(HAND_JOBS["automode"])
    assert gpu_memory_bytes(job.spec.resources) == 80 * 2**30
    small = json.loads(json.dumps(HAND_JOBS["automode"]))
    small["spec"]["resources"] = {"gpusPerNode": 0}
    cpu_job = parse_job(small)
    assert gpu_memory_bytes(cpu_job.spec.resources) is None
    gpu_plan = plan_job(job, namespace="ns", settings=SETTINGS).portfolio
    cpu_plan = plan_job(cpu_job, namespace="ns", settings=SETTINGS).portfolio
    assert gpu_plan is not None and cpu_plan is not None
    assert max(c.get("trainingBatchSize", 0) for c in cpu_plan) <= 16  # CPU: small batches only
    assert gpu_plan != cpu_plan
    selected = parse_job(job_manifest("g", {
        "task": "image_classification", "trainingData": {"path": "t.jsonl"},
        "resources": {"gpusPerNode": 1, "nodeSelector": {"nvidia.com/gpu.memory": "24576"}}}))
    assert gpu_memory_bytes(selected.spec.resources) == 24 * 2**30


def test_early_termination_passes_the_url_and_the_token_from_the_secret() -> None:
    plan = plan_of("early-termination")
    assert plan.early_termination
    container = master_container(trial_spec(plan.experiments[0]))
    url = SETTINGS_KW["termination_url"] + "/v1/namespaces/team-a/jobs/bandit/termination"
    assert container["command"][container["command"].index("--termination-url") + 1] == url
    assert container["env"] == [{"name": "KUBEVISION_TERMINATION_TOKEN",
                                 "valueFrom": {"secretKeyRef": {"name": token_secret_name("bandit"), "key": "token"}}}]
    assert "earlyStopping" not in plan.experiments[0]["spec"]  # the operator decides, not Katib's medianstop
    no_url = plan_of("early-termination", OperatorSettings(output_pvc="shared"))
    assert not no_url.early_termination
    assert "--termination-url" not in master_container(trial_spec(no_url.experiments[0]))["command"]
    assert any("bandit" in w and "runs to the end" in w for w in no_url.warnings)
    assert not plan_of("grid").early_termination


def test_multinode_trials_are_master_plus_workers_under_torchrun() -> None:
    plan = plan_of("multinode")
    (exp,) = plan.experiments
    assert len(exp["metadata"]["name"]) <= 40
    assert exp["metadata"]["namespace"] == "vision"
    job = trial_spec(exp)
    reps = replicas(job)
    assert (reps["Master"]["replicas"], reps["Worker"]["replicas"]) == (1, 2)
    assert job["spec"]["nprocPerNode"] == "8"
    assert job["spec"]["runPolicy"]["activeDeadlineSeconds"] == 240 * 60
    for role in ("Master", "Worker"):
        pod = reps[role]["template"]["spec"]
        container = pod["containers"][0]
        assert container["name"] == "pytorch"
        assert container["command"][:4] == ["torchrun", "--no-python", "kubevision", "train"]
        assert container["resources"]["limits"] == {"nvidia.com/gpu": 8}
        assert container["resources"]["requests"] == {"cpu": "64", "memory": "512Gi"}
        assert container["image"] == "registry.example/kubevision-trainer:1.2.3"
        assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "pool": "gpu"}
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}} in pod["volumes"]
    assert reps["Master"] is not reps["Worker"]
    assert "&id" not in render_documents(plan.experiments)  # no YAML anchors from shared dicts


def test_checkpoint_model_on_another_claim_is_mounted_read_only() -> None:
    plan = plan_of("checkpoint")
    container = master_container(trial_spec(plan.experiments[0]))
    cmd = container["command"]
    assert cmd[cmd.index("--checkpoint") + 1] == "/mnt/kubevision-claims/models/digits-v1/mlflow-model"
    assert cmd[cmd.index("--output") + 1] == "/mnt/kubevision/incremental/trials/${trialParameters.trialName}"
    pod = replicas(trial_spec(plan.experiments[0]))["Master"]["template"]["spec"]
    claims = {v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"].get("readOnly", False)
              for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"results": False, "models": True, "datasets": True}
    job_yaml = yaml.safe_load(plan.config_map["data"]["job.yaml"])
    assert job_yaml["spec"]["trainingData"] == {"path": "/mnt/kubevision-claims/datasets/digits/train.jsonl"}
    assert job_yaml["spec"]["validationData"] == {"path": "/mnt/kubevision/digits/val.jsonl"}
    assert "checkpoint" not in job_yaml["spec"] and "output" not in job_yaml["spec"]
    assert plan.model_uri("incremental-abc") == "pvc://results/incremental/trials/incremental-abc/mlflow-model"
    resolved = plan_of("checkpoint", checkpoint_uri="s3://models/best/mlflow-model")
    cmd = master_container(trial_spec(resolved.experiments[0]))["command"]
    assert cmd[cmd.index("--checkpoint") + 1] == "s3://models/best/mlflow-model"


def test_checkpoint_from_job_without_a_resolved_uri_is_a_warning() -> None:
    manifest = json.loads(json.dumps(HAND_JOBS["checkpoint"]))
    manifest["spec"]["checkpoint"] = {"fromJob": "digits-v1"}
    job = parse_job(manifest)
    plan = plan_job(job, namespace="ns", settings=SETTINGS)
    assert "--checkpoint" not in master_container(trial_spec(plan.experiments[0]))["command"]
    assert any("fromJob 'digits-v1'" in w for w in plan.warnings)
    resolved = plan_job(job, namespace="ns", settings=SETTINGS, checkpoint_uri="pvc://results/old/trials/t/mlflow-model")
    cmd = master_container(trial_spec(resolved.experiments[0]))["command"]
    assert cmd[cmd.index("--checkpoint") + 1] == "/mnt/kubevision/old/trials/t/mlflow-model"


# ---- storage -------------------------------------------------------------------------------------------


def test_relative_data_paths_live_on_the_operator_pvc() -> None:
    plan = plan_of("individual")
    job_yaml = yaml.safe_load(plan.config_map["data"]["job.yaml"])
    assert job_yaml["spec"]["trainingData"] == {"path": "/mnt/kubevision/data/digits/train.jsonl"}
    assert plan.output_root == "/mnt/kubevision/team-a/single-cpu"
    assert plan.model_uri("t1") == "pvc://kubevision-shared/team-a/single-cpu/trials/t1/mlflow-model"
    assert plan.warnings == []


def test_paths_climbing_out_and_missing_storage_are_warned() -> None:
    manifest = job_manifest("climb", {"task": "image_classification",
                                      "trainingData": {"path": "../data/train.jsonl"}})
    plan = plan_job(parse_job(manifest), namespace="ns", settings=OperatorSettings())
    job_yaml = yaml.safe_load(plan.config_map["data"]["job.yaml"])
    assert job_yaml["spec"]["trainingData"]["path"] == "/mnt/kubevision/data/train.jsonl"
    assert any("climbs out" in w for w in plan.warnings)
    assert any("no shared storage" in w for w in plan.warnings)
    assert plan.model_uri("t") is None
    pod = replicas(trial_spec(plan.experiments[0]))["Master"]["template"]["spec"]
    assert {"name": "kubevision-shared", "emptyDir": {}} in pod["volumes"]


def test_object_store_outputs_and_absolute_paths() -> None:
    manifest = job_manifest("s3out", {"task": "image_classification",
                                      "trainingData": {"path": "/data/train.jsonl"}})
    plan = plan_job(parse_job(manifest), namespace="ns",
                    settings=OperatorSettings(output_uri="s3://bucket/kv"))
    assert plan.output_root == "s3://bucket/kv/ns/s3out"
    assert plan.model_uri("t") == "s3://bucket/kv/ns/s3out/trials/t/mlflow-model"
    assert any("absolute path '/data/train.jsonl'" in w for w in plan.warnings)
    container = master_container(trial_spec(plan.experiments[0]))
    cmd = container["command"]
    assert cmd[cmd.index("--output") + 1] == "s3://bucket/kv/ns/s3out/trials/${trialParameters.trialName}"
    # The trainer stages object-store outputs locally; an emptyDir keeps them across container restarts.
    assert {"name": "KUBEVISION_STAGING", "value": "/var/kubevision/staging"} in container["env"]
    assert {"name": "kubevision-staging", "mountPath": "/var/kubevision/staging"} in container["volumeMounts"]


def test_unsafe_checkpoint_location_is_refused() -> None:
    with pytest.raises(KubevisionError, match="checkpoint"):
        plan_of("individual", checkpoint_uri="models/my model")


# ---- names, ownership, determinism --------------------------------------------------------------------


def test_names_are_short_katib_safe_deterministic_and_distinct() -> None:
    long_a, long_b = "a" * 55 + "-first", "a" * 55 + "-other"
    names = [experiment_name(n, i) for n, i in itertools.product([long_a, long_b, "job", "7up"], [None, 0, 12])]
    assert len(set(names)) == len(names)
    for name in [*names, refinement_experiment_name(long_a), refinement_experiment_name("7up")]:
        assert len(name) <= 40 and name[0].isalpha() and name[-1].isalnum(), name
    assert experiment_name(long_a, 3) == experiment_name(long_a, 3)
    assert experiment_name("job", None) == "job" and experiment_name("job", 2) == "job-s2"
    assert experiment_name("7up", None) == "x-7up"
    assert config_map_name("job") == "job-trial-config" and token_secret_name("job") == "job-termination-token"


def test_children_are_owned_and_labelled() -> None:
    owner = {**OWNER, "name": "dists"}
    plan = plan_of("random-subspaces", owner=owner)
    expected_ref = [{**owner, "controller": True, "blockOwnerDeletion": True}]
    for child in [plan.config_map, *plan.experiments]:
        assert child["metadata"]["ownerReferences"] == expected_ref
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubevision"
        assert child["metadata"]["labels"]["kubevision.io/job"] == "dists"
    for exp in plan.experiments:
        job = trial_spec(exp)
        assert job["metadata"]["labels"]["kubevision.io/job"] == "dists"
        assert "name" not in job["metadata"] and "ownerReferences" not in job["metadata"]
        pod_labels = replicas(job)["Master"]["template"]["metadata"]["labels"]
        assert pod_labels["kubevision.io/job"] == "dists" and pod_labels["sidecar.istio.io/inject"] == "false"
    assert "ownerReferences" not in plan_of("random-subspaces").config_map["metadata"]
    extra = plan_of("individual", OperatorSettings(extra_labels={"team": "vision", "kubevision.io/job": "spoof"}))
    assert extra.experiments[0]["metadata"]["labels"]["team"] == "vision"
    assert extra.experiments[0]["metadata"]["labels"]["kubevision.io/job"] == "single-cpu"


@pytest.mark.parametrize("name", sorted(HAND_JOBS))
def test_same_job_gives_byte_identical_manifests(name: str) -> None:
    first = plan_of(name, owner=OWNER)
    second = plan_of(name, owner=OWNER)
    assert render_documents([first.config_map, *first.experiments]) == render_documents(
        [second.config_map, *second.experiments]
    )
    assert first.warnings == second.warnings


def test_trial_parameters_command_placeholders_and_parameters_agree() -> None:
    for name in HAND_JOBS:
        for exp in plan_of(name).experiments:
            template = exp["spec"]["trialTemplate"]
            params = {p["name"] for p in exp["spec"]["parameters"]}
            refs = {tp["reference"] for tp in template["trialParameters"]}
            assert refs == params | {"${trialSpec.Name}"}
            text = json.dumps(template["trialSpec"])
            for tp in template["trialParameters"]:
                assert "${trialParameters." + tp["name"] + "}" in text


# ---- pieces --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("total", "weights", "caps"), [
    (10, [1, 1, 1], None), (7, [1, 2, 3], None), (100, [5, 1], None), (9, [4, 2], [4, 2]),
    (3, [1, 1, 1], None), (50, [1] * 7, None), (20, [3, 3, 3], [3, 30, 3]),
])
def test_split_budget_sums_and_respects_floors_and_caps(total: int, weights: list[int], caps: list[int] | None) -> None:
    shares = split_budget(total, weights, caps)
    limit = sum(caps) if caps else total
    assert sum(shares) == min(total, limit)
    assert all(s >= 1 for s in shares)
    assert caps is None or all(s <= c for s, c in zip(shares, caps, strict=True))
    assert shares == split_budget(total, weights, caps)


def test_split_budget_rules() -> None:
    assert split_budget(10, [1, 1, 1]) == [4, 3, 3]
    assert split_budget(8, [4, 12], [4, 12]) == [3, 5]
    with pytest.raises(ValueError, match="at least 1"):
        split_budget(2, [1, 1, 1])
    assert [max_failed_trials(n) for n in (1, 2, 4, 10)] == [1, 2, 3, 6]


def test_fewer_trials_than_sub_spaces_drops_the_last_with_a_warning() -> None:
    manifest = json.loads(json.dumps(HAND_JOBS["random-subspaces"]))
    manifest["spec"]["limits"] = {"maxTrials": 2, "maxConcurrentTrials": 1}
    plan = plan_job(parse_job(manifest), namespace="ns", settings=SETTINGS)
    assert plan.sub_spaces == [0, 1]
    assert [e["spec"]["maxTrialCount"] for e in plan.experiments] == [1, 1]
    assert any("sub-space 2 gets no Experiment" in w for w in plan.warnings)
    assert any("maxConcurrentTrials 1 is less than the 2 Experiments" in w for w in plan.warnings)


def test_katib_numbers_read_back_exactly_in_yaml_and_go() -> None:
    for value in (1e-05, 0.0001, 2.5e-10, 600, 600.0, 0.1, 1234567.891):
        text = katib_number(value)
        assert float(text) == value
        assert yaml.safe_load(text) == value
        assert isinstance(yaml.safe_load(text), int | float)
    assert katib_number(1e-05) == "1.0e-05" and katib_number(600.0) == "600"


def test_values_that_break_the_shell_line_are_refused() -> None:
    space = {"modelName": Choice(type="choice", values=["resnet18", "res net"])}
    with pytest.raises(KubevisionError, match="shell"):
        katib_parameters(space, where="spec.searchSpace[0]")


# ---- settings ------------------------------------------------------------------------------------------


def test_settings_from_env() -> None:
    env = {"KUBEVISION_TRAINER_IMAGE": "reg/t:1", "KUBEVISION_TERMINATION_URL": "http://op:8082/",
           "KUBEVISION_OUTPUT_PVC": "shared", "KUBEVISION_OUTPUT_URI": "", "KUBEVISION_BACKOFF_LIMIT": "0",
           "KUBEVISION_IMAGE_PULL_POLICY": "Always", "KUBEVISION_TRIAL_SERVICE_ACCOUNT": "trials",
           "KUBEVISION_TRIAL_FS_GROUP": "2000"}
    s = OperatorSettings.from_env(env)
    assert (s.trainer_image, s.termination_url, s.output_pvc, s.output_uri) == ("reg/t:1", "http://op:8082", "shared",
                                                                               None)
    assert (s.backoff_limit, s.image_pull_policy, s.service_account) == (0, "Always", "trials")
    assert OperatorSettings.from_env({}) == OperatorSettings()
    plan = plan_of("individual", s)
    pod = replicas(trial_spec(plan.experiments[0]))["Master"]["template"]["spec"]
    assert pod["serviceAccountName"] == "trials"
    assert pod["containers"][0]["imagePullPolicy"] == "Always"
    assert pod["securityContext"] == {"fsGroup": 2000}
    assert OperatorSettings.from_env({"KUBEVISION_TRIAL_FS_GROUP": "none"}).fs_group is None
    assert OperatorSettings().fs_group == 10001  # the trainer image's group: the shared volume is writable


def test_bad_settings_in_env_are_clear_errors() -> None:
    with pytest.raises(KubevisionError) as err:
        OperatorSettings.from_env({"KUBEVISION_BACKOFF_LIMIT": "three", "KUBEVISION_IMAGE_PULL_POLICY": "Sometimes",
                                   "KUBEVISION_TRIAL_FS_GROUP": "-5"})
    text = str(err.value)
    assert "KUBEVISION_BACKOFF_LIMIT: got 'three'" in text and "KUBEVISION_IMAGE_PULL_POLICY" in text
    assert "KUBEVISION_TRIAL_FS_GROUP: got '-5'" in text
