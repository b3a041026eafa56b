"""`kubevision plan`: every example job renders, the output is the planner's, bad input exits 1 with a message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from plan_helpers import EXAMPLES, all_errors, example_jobs

from kubevision.cli import cli


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["plan", *args], env=env or {})
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("path", example_jobs(), ids=lambda p: p.name)
def test_plan_prints_valid_manifests_for_every_example(path: Path) -> None:
    code, out, err = _run(str(path), "--output-pvc", "shared", "--termination-url", "http://op.kv.svc:8082")
    assert code == 0, err
    docs = list(yaml.safe_load_all(out))
    assert docs[0]["kind"] == "ConfigMap" and docs[0]["data"]["job.yaml"].startswith("apiVersion: kubevision.io")
    experiments = docs[1:]
    assert experiments and all(d["kind"] == "Experiment" for d in experiments)
    for experiment in experiments:
        assert all_errors(experiment) == []
    if "../data/" in path.read_text():
        assert "climbs out of it" in err  # the examples' relative paths are warned about, on stderr only
    assert "warning:" not in out


def test_plan_options_reach_the_manifests(tmp_path: Path) -> None:
    path = EXAMPLES / "bccd-detection.yaml"
    code, out, err = _run(str(path), "--namespace", "team-b", "--trainer-image", "reg.example/trainer:9",
                          "--output-uri", "s3://bucket/runs/", "--termination-url", "http://op:8082/")
    assert code == 0, err
    _, experiment = list(yaml.safe_load_all(out))
    assert experiment["metadata"]["namespace"] == "team-b"
    container = experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["pytorchReplicaSpecs"]["Master"][
        "template"]["spec"]["containers"][0]
    assert container["image"] == "reg.example/trainer:9"
    cmd = container["command"]
    assert cmd[cmd.index("--output") + 1] == "s3://bucket/runs/team-b/bccd-detection/trials/${trialParameters.trialName}"
    assert cmd[cmd.index("--termination-url") + 1] == "http://op:8082/v1/namespaces/team-b/jobs/bccd-detection/termination"
    assert "bccd-detection-termination-token" in err


def test_plan_reads_settings_from_the_environment() -> None:
    code, out, err = _run(str(EXAMPLES / "digits-classification.yaml"),
                          env={"KUBEVISION_TRAINER_IMAGE": "env.example/trainer:2", "KUBEVISION_OUTPUT_PVC": "pvc-a"})
    assert code == 0, err
    assert "image: env.example/trainer:2" in out and "claimName: pvc-a" in out
    assert "no shared storage" not in err


def test_plan_output_is_deterministic() -> None:
    path = str(EXAMPLES / "bccd-detection-conditional.yaml")
    assert _run(path)[1] == _run(path)[1]


def test_plan_refuses_an_inference_endpoint() -> None:
    code, out, err = _run(str(EXAMPLES / "digits-endpoint.yaml"))
    assert code == 1 and out == ""
    assert "holds an InferenceEndpoint, not an AutoMLImageJob" in err
    assert "Traceback" not in err


def test_plan_reports_an_invalid_job_like_validate(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: kubevision.io/v1alpha1\nkind: AutoMLImageJob\nmetadata: {name: bad}\n"
        "spec:\n  task: image_classification\n  trainingData: {path: t.jsonl}\n"
        "  limits: {maxTrials: 0}\n"
    )
    code, out, err = _run(str(bad))
    assert code == 1 and out == ""
    assert "is not a valid AutoMLImageJob" in err and "spec.limits.maxTrials" in err and "bad.yaml:7" in err
    validate = CliRunner().invoke(cli, ["validate", "--no-data-check", str(bad)])
    assert validate.exit_code == 1 and validate.stderr == err


def test_plan_reports_a_missing_file_and_bad_settings(tmp_path: Path) -> None:
    code, _, err = _run(str(tmp_path / "nope.yaml"))
    assert code == 1 and "no such file" in err
    code, _, err = _run(str(EXAMPLES / "digits-classification.yaml"), env={"KUBEVISION_BACKOFF_LIMIT": "-1"})
    assert code == 1 and "KUBEVISION_BACKOFF_LIMIT" in err
