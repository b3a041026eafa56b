"""The CRDs are generated from the models, structural, and identical to the committed files."""

from __future__ import annotations

import copy
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from kubevision.api.crds import render_crds, structural_problems, to_structural
from kubevision.cli import cli

ROOT = Path(__file__).resolve().parents[2]


class _Base(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class _Choice(_Base):
    type: Literal["choice"]
    values: list[int | float | str] = Field(min_length=1)


class _Uniform(_Base):
    type: Literal["uniform"]
    min_value: float
    max_value: float = Field(gt=0)


class _Toy(_Base):
    count: int | None = Field(None, ge=1, le=5, description="How many.")
    colour: _Colour = _Colour.RED
    space: list[dict[str, Annotated[_Choice | _Uniform, Field(discriminator="type")]]] = []
    labels: dict[str, str] | None = None
    settings: str | dict[str, object] | None = None


def test_toy_model_becomes_structural() -> None:
    schema = to_structural(_Toy.model_json_schema(by_alias=True))
    assert structural_problems(schema) == []
    count = schema["properties"]["count"]
    assert count == {"type": "integer", "minimum": 1, "maximum": 5, "nullable": True, "description": "How many."}
    assert schema["properties"]["colour"]["enum"] == ["red", "blue"]
    assert "Default: red." in schema["properties"]["colour"]["description"]
    dist = schema["properties"]["space"]["items"]["additionalProperties"]
    assert dist["properties"]["type"]["enum"] == ["choice", "uniform"]
    assert dist["properties"]["maxValue"] == {"type": "number", "minimum": 0, "exclusiveMinimum": True}
    assert dist["required"] == ["type"]
    assert schema["properties"]["settings"] == {"x-kubernetes-preserve-unknown-fields": True, "nullable": True}


def test_structural_checker_catches_violations() -> None:
    bad = {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}]}, "b": {"$ref": "#/x"}}}
    problems = structural_problems(bad)
    assert ".a: no type" in problems
    assert ".a: keyword 'anyOf' is not allowed" in problems
    assert ".b: keyword '$ref' is not allowed" in problems


@pytest.fixture(scope="module")
def crds() -> dict[str, dict]:
    return {name: yaml.safe_load(text) for name, text in render_crds().items()}


def test_generated_crds_are_structural_with_status_and_columns(crds: dict[str, dict]) -> None:
    assert set(crds) == {"kubevision.io_automlimagejobs.yaml", "kubevision.io_inferenceendpoints.yaml"}
    for crd in crds.values():
        version = crd["spec"]["versions"][0]
        assert version["name"] == "v1alpha1" and version["storage"] and version["served"]
        assert version["subresources"] == {"status": {}}
        assert structural_problems(version["schema"]["openAPIV3Schema"]) == []
        assert crd["spec"]["names"]["shortNames"]
    job = crds["kubevision.io_automlimagejobs.yaml"]
    columns = [c["name"] for c in job["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns[:3] == ["Task", "Phase", "Trials"] and "Best" in columns and columns[-1] == "Age"
    status = job["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["properties"]["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


@pytest.mark.parametrize("folder", ["crds", "charts/kubevision/crds"])
def test_committed_crds_match_the_models(folder: str) -> None:
    for name, text in render_crds().items():
        assert (ROOT / folder / name).read_text() == text, f"{folder}/{name} is stale: run kubevision crds"


def test_crds_check_flags_drift(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["crds", "--out", str(tmp_path)]).exit_code == 0
    assert runner.invoke(cli, ["crds", "--out", str(tmp_path), "--check"]).exit_code == 0
    target = tmp_path / "kubevision.io_automlimagejobs.yaml"
    target.write_text(target.read_text().replace("maxTrials", "maxTrialz"))
    result = runner.invoke(cli, ["crds", "--out", str(tmp_path), "--check"])
    assert result.exit_code == 1
    assert "kubevision.io_automlimagejobs.yaml" in result.output and "Traceback" not in result.output


def _validate(obj: dict, crds: dict[str, dict]) -> None:
    """Validate like the API server would (OpenAPI 3.0 = draft 4 semantics for exclusive bounds)."""
    schema = crds["kubevision.io_automlimagejobs.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.Draft4Validator(schema).validate(obj)


JOB = {
    "apiVersion": "kubevision.io/v1alpha1",
    "kind": "AutoMLImageJob",
    "metadata": {"name": "fridge-od"},
    "spec": {
        "task": "image_object_detection",
        "trainingData": {"path": "data/train.jsonl"},
        "limits": {"maxTrials": 10, "maxConcurrentTrials": 2},
        "sweep": {"samplingAlgorithm": "random",
                  "earlyTermination": {"type": "bandit", "evaluationInterval": 2, "slackFactor": 0.2}},
        "searchSpace": [{"modelName": {"type": "choice", "values": ["fasterrcnn_resnet50_fpn"]},
                         "learningRate": {"type": "uniform", "minValue": 0.0001, "maxValue": 0.001}}],
        "resources": {"nodeCountPerTrial": 2, "gpusPerNode": 4, "cpu": 8, "memory": "32Gi"},  # int-or-string
    },
}


def test_crd_schema_accepts_a_valid_job_and_rejects_out_of_range(crds: dict[str, dict]) -> None:
    from kubevision.api import parse_manifest

    parse_manifest(copy.deepcopy(JOB))  # the models accept it
    _validate(JOB, crds)
    bad = copy.deepcopy(JOB)
    bad["spec"]["limits"]["maxTrials"] = 0
    with pytest.raises(jsonschema.ValidationError, match="minimum"):
        _validate(bad, crds)
    bad = copy.deepcopy(JOB)
    bad["spec"]["task"] = "image_captioning"
    with pytest.raises(jsonschema.ValidationError):
        _validate(bad, crds)
