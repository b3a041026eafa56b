"""Loading manifests from files: every failure is a KubevisionError with file, line and field."""

from __future__ import annotations

import textwrap

import pytest

from kubevision.api import KubevisionError, load_job, load_manifest, parse_manifest
from kubevision.api.models import AutoMLImageJob, InferenceEndpoint

GOOD_JOB = """\
apiVersion: kubevision.io/v1alpha1
kind: AutoMLImageJob
metadata: {name: fridge-od}
spec:
  task: image_object_detection
  trainingData: {path: data/train.jsonl}
  limits: {maxTrials: 10, maxConcurrentTrials: 2}
  sweep:
    samplingAlgorithm: random
    earlyTermination: {type: bandit, evaluationInterval: 2, slackFactor: 0.2, delayEvaluation: 6}
  searchSpace:
    - modelName: {type: choice, values: [fasterrcnn_resnet50_fpn]}
      learningRate: {type: uniform, minValue: 1e-4, maxValue: 1e-3}
"""

GOOD_ENDPOINT = """\
apiVersion: kubevision.io/v1alpha1
kind: InferenceEndpoint
metadata: {name: fridge}
spec:
  deployments:
    - {name: main, model: {fromJob: fridge-od}}
"""


def raised(path) -> KubevisionError:
    with pytest.raises(KubevisionError) as info:
        load_manifest(path)
    return info.value


def where(err: KubevisionError) -> dict[str, int | None]:
    return {p.field or "": p.line for p in err.problems}


def test_a_good_job_loads(write):
    job = load_manifest(write(GOOD_JOB))
    assert isinstance(job, AutoMLImageJob)
    assert job.spec.search_space is not None
    # YAML 1.1 reads 1e-4 as a string; job files are loaded as YAML 1.2 / JSON would.
    assert job.spec.search_space[0]["learningRate"].model_dump(by_alias=True)["minValue"] == 0.0001


def test_a_good_endpoint_loads(write):
    assert isinstance(load_manifest(write(GOOD_ENDPOINT)), InferenceEndpoint)


def test_load_job_returns_a_job_and_refuses_an_endpoint(write):
    assert isinstance(load_job(write(GOOD_JOB)), AutoMLImageJob)
    with pytest.raises(KubevisionError, match="holds an InferenceEndpoint, not an AutoMLImageJob"):
        load_job(write(GOOD_ENDPOINT))


# ---- file-level failures ------------------------------------------------------------------------


def test_missing_file(tmp_path):
    err = raised(tmp_path / "nope.yaml")
    assert "no such file" in str(err)


def test_a_folder_is_not_a_file(tmp_path):
    assert "is a folder" in str(raised(tmp_path))


def test_binary_file(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert "is not UTF-8 text" in str(raised(path))


def test_invalid_yaml_reports_line_and_column(write):
    err = raised(write("kind: AutoMLImageJob\nspec:\n  task: [image_classification\n  other: 1\n"))
    assert err.headline.endswith("job.yaml is not valid YAML")
    assert err.problems[0].line is not None and err.problems[0].line >= 3
    assert "(column " in err.problems[0].message


def test_tabs_are_invalid_yaml_with_a_line(write):
    err = raised(write("kind: AutoMLImageJob\nspec:\n\ttask: x\n"))
    assert err.problems[0].line == 3


def test_multiple_documents(write):
    err = raised(write(GOOD_JOB + "---\n" + GOOD_ENDPOINT))
    assert "holds more than one YAML document" in err.headline
    assert err.problems[0].line == 15


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("- a\n- b\n", "got a list; expected a mapping with apiVersion, kind, metadata and spec"),
        ("just text\n", "got 'just text'; expected a mapping"),
        ("42\n", "got 42; expected a mapping"),
    ],
)
def test_not_a_mapping(write, text, fragment):
    err = raised(write(text))
    assert fragment in str(err)


def test_empty_file(write):
    assert "is empty" in str(raised(write("# only a comment\n")))


def test_duplicate_keys_are_reported(write):
    err = raised(
        write(
            GOOD_JOB.replace(
                "  task: image_object_detection\n",
                "  task: image_object_detection\n  task: image_classification\n",
            )
        )
    )
    assert where(err) == {"spec.task": 6}
    assert "duplicate key 'task'" in str(err)


# ---- kind and apiVersion ------------------------------------------------------------------------


def test_unknown_kind_suggests_the_closest(write):
    err = raised(write(GOOD_JOB.replace("kind: AutoMLImageJob", "kind: AutoMLImageJobs")))
    assert where(err) == {"kind": 2}
    assert (
        "unknown kind 'AutoMLImageJobs'; expected one of AutoMLImageJob, InferenceEndpoint; did you mean "
        "'AutoMLImageJob'?" in str(err)
    )


def test_wrong_api_version(write):
    err = raised(write(GOOD_JOB.replace("kubevision.io/v1alpha1", "kubevision.io/v1")))
    assert where(err) == {"apiVersion": 1}
    assert "got 'kubevision.io/v1'; expected kubevision.io/v1alpha1" in str(err)


def test_missing_kind_and_api_version_are_both_reported(write):
    err = raised(write("metadata: {name: x}\nspec: {}\n"))
    assert set(where(err)) == {"kind", "apiVersion"}


# ---- line numbers of validation errors ----------------------------------------------------------


def test_line_numbers_of_field_errors(write):
    text = textwrap.dedent("""\
        apiVersion: kubevision.io/v1alpha1
        kind: AutoMLImageJob
        metadata:
          name: Bad_Name
        spec:
          task: image_object_detection
          trainingData:
            path: data/train.jsonl
          limits:
            maxTrials: 0
          trainingParameters:
            learningrate: 0.01
            numberOfEpochs: many
          searchSpace:
            - learningRate:
                type: uniform
                minValue: 0.001
                maxValue: oops
        """)
    err = raised(write(text))
    assert where(err) == {
        "metadata.name": 4,
        "spec.limits.maxTrials": 10,
        "spec.trainingParameters.learningrate": 12,
        "spec.trainingParameters.numberOfEpochs": 13,
        "spec.searchSpace[0].learningRate.maxValue": 18,
    }
    assert err.headline.endswith("job.yaml is not a valid AutoMLImageJob (5 problems)")
    assert [p.line for p in err.problems] == sorted(p.line or 0 for p in err.problems)
    assert "job.yaml:10: spec.limits.maxTrials: got 0; expected an integer from 1 to 1000" in str(err)


def test_a_missing_key_points_at_its_parent(write):
    err = raised(
        write(
            "apiVersion: kubevision.io/v1alpha1\nkind: AutoMLImageJob\nmetadata: {name: a}\n"
            "spec:\n  task: image_classification\n"
        )
    )
    assert where(err) == {"spec.trainingData": 4}


def test_line_numbers_of_rule_violations(write):
    text = (
        GOOD_JOB.replace("samplingAlgorithm: random", "samplingAlgorithm: grid")
        + "    - modelName: {type: choice, values: [resnet50]}\n"
    )
    err = raised(write(text))
    assert where(err) == {
        "spec.searchSpace[0].learningRate.type": 13,
        "spec.searchSpace[1].modelName.values[0]": 14,
    }


def test_one_problem_headline_is_singular(write):
    err = raised(write(GOOD_JOB.replace("maxTrials: 10", "maxTrials: 0")))
    assert err.headline.endswith("is not a valid AutoMLImageJob (1 problem)")
    assert where(err) == {"spec.limits.maxTrials": 7}


# ---- parse_manifest (API server objects) --------------------------------------------------------


def test_parse_manifest_has_fields_but_no_lines(job):
    obj = job(limits={"maxTrials": 0})
    with pytest.raises(KubevisionError) as info:
        parse_manifest(obj, source="ml/fridge")
    assert info.value.headline == "ml/fridge is not a valid AutoMLImageJob (1 problem)"
    problem = info.value.problems[0]
    assert (problem.file, problem.line, problem.field) == ("ml/fridge", None, "spec.limits.maxTrials")


def test_parse_manifest_without_source(job):
    with pytest.raises(KubevisionError, match="the manifest is not a valid AutoMLImageJob"):
        parse_manifest(job(limits={"maxTrials": 0}))


@pytest.mark.parametrize(
    "obj",
    [
        {"kind": "AutoMLImageJob", "apiVersion": "kubevision.io/v1alpha1", "metadata": [], "spec": "x"},
        {
            "kind": "AutoMLImageJob",
            "apiVersion": "kubevision.io/v1alpha1",
            "metadata": {"name": 5},
            "spec": {1: 2},
        },
        {"kind": "InferenceEndpoint", "apiVersion": "kubevision.io/v1alpha1", "spec": {"deployments": "all"}},
        {"kind": ["x"], "apiVersion": None},
        {
            "kind": "AutoMLImageJob",
            "apiVersion": "kubevision.io/v1alpha1",
            "metadata": {"name": "a"},
            "spec": {
                "task": "image_classification",
                "trainingData": {"path": "x"},
                "searchSpace": [{"lr": 1}],
                "limits": {"maxTrials": 2},
            },
        },
    ],
)
def test_garbage_is_always_a_kubevision_error(obj):
    with pytest.raises(KubevisionError) as info:
        parse_manifest(obj)
    assert info.value.problems
    assert all(p.message for p in info.value.problems)
