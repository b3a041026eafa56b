"""The examples are documentation that must keep working.

Each examples/*.yaml is checked twice, the two ways a user meets it: by `kubevision validate`'s loader
(pydantic models and job rules; data paths are not checked because most examples need a dataset the
user writes or downloads first) and by the Kubernetes API server, approximated by validating it
against the committed CRD schema in crds/ with jsonschema (no defaulting or pruning, and jsonschema
ignores `nullable` and the `x-kubernetes-*` keys). The README's digits job is also run through the
data-path check after writing the digits dataset exactly as the README says.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kubevision.api import load_manifest
from kubevision.api.models import AutoMLImageJob, InferenceEndpoint
from kubevision.api.search_space import Choice

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CRDS = ROOT / "crds"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


def _crd_schema(kind: str) -> dict[str, Any]:
    """openAPIV3Schema of the committed CRD for `kind` (crds/ is written by `kubevision crds`)."""
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if isinstance(crd, dict) and crd.get("spec", {}).get("names", {}).get("kind") == kind:
            schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            return schema
    pytest.fail(f"no CRD for kind {kind} in {CRDS}; run `kubevision crds --out crds`")


def _validator(schema: dict[str, Any]) -> jsonschema.Draft4Validator:
    """Draft 4, because a CRD schema is OpenAPI 3.0, whose `exclusiveMinimum: true` is a flag on
    `minimum` as in Draft 4 (Draft 7 reads it as the number 1 and would reject 0.2 > 0)."""
    return jsonschema.Draft4Validator(schema)


def test_there_are_examples() -> None:
    assert len(EXAMPLE_FILES) >= 7


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_passes_kubevision_validation(path: Path) -> None:
    resource = load_manifest(path)
    assert resource.metadata.name


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_passes_the_crd_schema(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    validator = _validator(_crd_schema(document["kind"]))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_crd_schema_check_is_not_vacuous() -> None:
    """The schema check must reject what the API server would: a wrong type deep in the spec."""
    document = yaml.safe_load((EXAMPLES / "digits-classification.yaml").read_text())
    document["spec"]["limits"]["maxTrials"] = "four"
    schema = _crd_schema("AutoMLImageJob")
    assert not _validator(schema).is_valid(document)
    document["spec"]["limits"]["maxTrials"] = 4
    document["spec"]["validationDataSize"] = 0.0  # exclusiveMinimum 0: the bound must bite
    assert not _validator(schema).is_valid(document)
    document["spec"]["validationDataSize"] = 0.2
    assert _validator(schema).is_valid(document)


def test_examples_cover_what_the_readme_promises() -> None:
    """One job per task, AutoMode, a bandit sweep, a conditional space, multi-node, a canary endpoint."""
    jobs = {}
    endpoints = []
    for path in EXAMPLE_FILES:
        resource = load_manifest(path)
        if isinstance(resource, AutoMLImageJob):
            jobs[path.name] = resource.spec
        else:
            assert isinstance(resource, InferenceEndpoint)
            endpoints.append(resource.spec)
    specs = list(jobs.values())
    assert {str(s.task) for s in specs} == {
        "image_classification", "image_classification_multilabel",
        "image_object_detection", "image_instance_segmentation",
    }
    assert any(s.mode == "automode" for s in specs)
    assert any(s.sweep and s.sweep.early_termination and s.sweep.early_termination.type == "bandit"
               for s in specs)
    assert any(s.search_space and len(s.search_space) >= 2 for s in specs)
    multinode = [s.resources for s in specs if s.resources.node_count_per_trial == 2]
    assert any(r.gpus_per_node == 4 and r.node_selector and r.tolerations for r in multinode)
    assert any(sorted(e.traffic.values()) == [10, 90] and len(e.deployments) == 2 for e in endpoints)


def test_digits_example_is_small_and_runs_on_cpu() -> None:
    job = load_manifest(EXAMPLES / "digits-classification.yaml")
    assert isinstance(job, AutoMLImageJob)
    spec = job.spec
    assert spec.task == "image_classification"
    assert spec.resources.gpus_per_node == 0
    assert spec.limits.max_trials <= 4 and spec.limits.max_concurrent_trials <= 2
    assert spec.search_space is not None
    models = spec.search_space[0]["modelName"]
    assert isinstance(models, Choice) and set(models.values) <= {"resnet18", "mobilenetv2"}
    assert spec.training_parameters.training_crop_size <= 32  # the digits are 32 px PNGs of 8x8 images


def test_digits_example_reads_the_dataset_the_readme_writes(tmp_path: Path) -> None:
    """`kubevision datasets digits --out data/digits` from the repo root, then validate with data check."""
    pytest.importorskip("sklearn", reason="the digits dataset comes from scikit-learn")
    from kubevision.data import check_job_data_paths
    from kubevision.data.datasets import write_digits

    repo = tmp_path / "repo"
    (repo / "examples").mkdir(parents=True)
    job_file = repo / "examples" / "digits-classification.yaml"
    shutil.copy(EXAMPLES / "digits-classification.yaml", job_file)
    write_digits(repo / "data" / "digits")
    job = load_manifest(job_file)
    assert isinstance(job, AutoMLImageJob)
    check_job_data_paths(job, base_dir=job_file.parent, job_file=str(job_file))
