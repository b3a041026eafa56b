"""Every planned Experiment against the upstream Katib and PyTorchJob schemas, Katib's rules and the trial CLI.

Acceptance of issue #5: for each examples/*.yaml job and each hand-written job (individual, random over
sub-spaces with every distribution, grid, bayesian, AutoMode, early termination, multinode,
checkpoint), every Experiment validates against the Katib OpenAPI definitions, deserializes into the
kubeflow-katib-api models unchanged, passes the rules of Katib's webhook, and its PyTorchJob validates
against the training operator's CRD before and after Katib substitutes sample values; the resulting
command then parses with the real `kubevision train`. The last tests show each check rejects what it
should, so a passing run means something.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from plan_helpers import (
    HAND_JOBS,
    OWNER,
    SETTINGS_KW,
    all_errors,
    example_jobs,
    katib_model_roundtrip,
    katib_schema_errors,
    katib_webhook_errors,
    master_container,
    parse_job,
    parse_train_command,
    pytorchjob_schema_errors,
    sample_assignments,
    substitute,
)

from kubevision.api.loading import load_job
from kubevision.api.models import AutoMLImageJob
from kubevision.operator.reconcile import JobPlan, plan_job
from kubevision.operator.reconcile.plan import plan_automode_refinement
from kubevision.operator.settings import OperatorSettings

SETTINGS = OperatorSettings(**SETTINGS_KW)


def _jobs() -> list[tuple[str, AutoMLImageJob]]:
    jobs: list[tuple[str, AutoMLImageJob]] = [(f"example:{p.name}", load_job(p)) for p in example_jobs()]
    jobs += [(f"hand:{name}", parse_job(manifest)) for name, manifest in HAND_JOBS.items()]
    return jobs


JOBS = _jobs()


def _plan(job: AutoMLImageJob) -> JobPlan:
    namespace = job.metadata.namespace or "team-a"
    owner = {**OWNER, "name": job.metadata.name}
    return plan_job(job, namespace=namespace, settings=SETTINGS, owner=owner)


def test_every_example_job_is_covered() -> None:
    names = {p.name for p in example_jobs()}
    assert {"digits-classification.yaml", "multinode-detection.yaml", "digits-multilabel-automode.yaml"} <= names
    assert "digits-endpoint.yaml" not in names  # an InferenceEndpoint, not planned


@pytest.mark.parametrize(("label", "job"), JOBS, ids=[label for label, _ in JOBS])
def test_experiments_pass_every_upstream_check(label: str, job: AutoMLImageJob) -> None:
    plan = _plan(job)
    assert plan.experiments
    for experiment in plan.experiments:
        assert all_errors(experiment) == [], experiment["metadata"]["name"]


@pytest.mark.parametrize(("label", "job"), JOBS, ids=[label for label, _ in JOBS])
def test_trial_commands_parse_with_the_real_trial_cli(
    label: str, job: AutoMLImageJob, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEVISION_TERMINATION_TOKEN", "s3cret")
    plan = _plan(job)
    for experiment in plan.experiments:
        trial_name = f"{experiment['metadata']['name']}-x7k2m9qd"
        for values in sample_assignments(experiment):
            pytorchjob = substitute(experiment, values, trial_name=trial_name)
            command = master_container(pytorchjob)["command"]
            config = parse_train_command(command, plan.config_map, tmp_path)
            assert config.trial_name == trial_name
            assert config.output_dir == f"{plan.output_root}/trials/{trial_name}"
            hp = config.hyperparameters()
            if plan.portfolio is not None:
                expected = plan.portfolio[int(values["config"])]
                assert {k: hp[k] for k in expected} == expected
            else:
                for name, value in values.items():
                    assert str(config.sampled[name]).lower() == value.lower() or float(config.sampled[name]) == float(
                        value
                    ), (name, value, config.sampled[name])
            if plan.early_termination:
                assert config.early_termination is not None
                assert config.early_termination.token == "s3cret"
                assert config.early_termination.url.endswith(
                    f"/v1/namespaces/{experiment['metadata']['namespace']}/jobs/{job.metadata.name}/termination"
                )
            else:
                assert config.early_termination is None


def test_automode_refinement_experiment_passes_every_check(tmp_path: Path) -> None:
    job = parse_job(HAND_JOBS["automode"])
    plan = _plan(job)
    assert plan.portfolio is not None and plan.refinement_trials == 10 - len(plan.portfolio) > 0
    best = plan.portfolio[1]
    refine = plan_automode_refinement(job, namespace="team-a", settings=SETTINGS, best=best, owner=OWNER)
    assert refine is not None
    assert all_errors(refine) == []
    assert refine["metadata"]["name"] == "auto-refine"
    assert refine["spec"]["algorithm"]["algorithmName"] == "tpe"
    assert refine["spec"]["maxTrialCount"] == plan.refinement_trials
    swept = {p["name"] for p in refine["spec"]["parameters"]}
    assert {"learningRate", "numberOfEpochs"} <= swept
    values = next(iter(sample_assignments(refine)))
    command = master_container(substitute(refine, values, trial_name="auto-refine-abcdefgh"))["command"]
    config = parse_train_command(command, plan.config_map, tmp_path)
    hp = config.hyperparameters()
    assert hp["modelName"] == best["modelName"]
    assert hp["trainingBatchSize"] == best["trainingBatchSize"]  # kept from the best config, not swept
    assert float(hp["learningRate"]) == pytest.approx(float(values["learningRate"]))


# ---- the checks themselves reject bad manifests -------------------------------------------------------


@pytest.fixture(scope="module")
def experiment() -> dict[str, Any]:
    job = parse_job(HAND_JOBS["early-termination"])
    return _plan(job).experiments[0]


def test_katib_schema_rejects_a_misspelt_field_and_a_wrong_type(experiment: dict[str, Any]) -> None:
    bad = copy.deepcopy(experiment)
    bad["spec"]["parallelTrialCounts"] = bad["spec"].pop("parallelTrialCount")
    assert any("parallelTrialCounts" in e for e in katib_schema_errors(bad))
    bad = copy.deepcopy(experiment)
    bad["spec"]["maxTrialCount"] = "6"
    assert any("maxTrialCount" in e for e in katib_schema_errors(bad))


def test_katib_models_reject_wrong_types(experiment: dict[str, Any]) -> None:
    bad = copy.deepcopy(experiment)
    bad["spec"]["objective"]["goal"] = "high"
    with pytest.raises(ValueError, match="goal"):
        katib_model_roundtrip(bad)


def test_webhook_rules_catch_counts_names_and_placeholders(experiment: dict[str, Any]) -> None:
    bad = copy.deepcopy(experiment)
    bad["metadata"]["name"] = "x" * 41
    bad["spec"]["parallelTrialCount"] = bad["spec"]["maxTrialCount"] + 1
    bad["spec"]["trialTemplate"]["trialParameters"].pop(0)
    errors = katib_webhook_errors(bad)
    assert any("metadata.name" in e for e in errors)
    assert any("parallelTrialCount" in e for e in errors)
    assert any("placeholders" in e for e in errors)
    bad = copy.deepcopy(experiment)
    bad["spec"]["parameters"][0]["feasibleSpace"]["list"] = ["1"]
    assert any("needs min and max" in e for e in katib_webhook_errors(bad))


def test_pytorchjob_schema_rejects_unknown_fields_and_bad_types(experiment: dict[str, Any]) -> None:
    trial_spec = experiment["spec"]["trialTemplate"]["trialSpec"]
    assert pytorchjob_schema_errors(trial_spec) == []
    bad = copy.deepcopy(trial_spec)
    bad["spec"]["runPolicy"]["cleanupPolicy"] = "Running"
    bad["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = "1"
    errors = pytorchjob_schema_errors(bad)
    assert any("cleanupPolicy" in e for e in errors)
    assert any("replicas" in e for e in errors)
