"""`kubevision validate`'s data check: locations resolve against the job file, misses name the field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kubevision.api.errors import KubevisionError
from kubevision.api.models import AutoMLImageJob
from kubevision.data import check_job_data_paths


def job(training: dict[str, str], validation: dict[str, str] | None = None) -> AutoMLImageJob:
    spec: dict[str, Any] = {"task": "image_object_detection", "trainingData": training}
    if validation is not None:
        spec["validationData"] = validation
    return AutoMLImageJob.model_validate({"metadata": {"name": "t"}, "spec": spec})


def problems(err: pytest.ExceptionInfo[KubevisionError]) -> list[str]:
    return [str(p) for p in err.value.problems]


def test_relative_jsonl_and_mltable_folder_resolve_against_the_job_folder(
    tmp_path: Path, write_jsonl: Callable[..., Path]
) -> None:
    write_jsonl(tmp_path / "data" / "train.jsonl", [{"image_url": "a.png", "label": []}])
    val = tmp_path / "data" / "val-mltable"
    write_jsonl(val / "v.jsonl", [{"image_url": "a.png", "label": []}])
    (val / "MLTable").write_text("paths:\n  - file: ./v.jsonl\n")
    check_job_data_paths(
        job({"path": "data/train.jsonl"}, {"path": "data/val-mltable"}),
        base_dir=tmp_path,
        job_file="job.yaml",
    )


def test_missing_path_names_job_file_field_and_resolved_path(tmp_path: Path) -> None:
    with pytest.raises(KubevisionError) as err:
        check_job_data_paths(
            job({"path": "data/train.jsonl"}, {"path": "../val"}),
            base_dir=tmp_path / "jobs",
            job_file="jobs/job.yaml",
        )
    assert problems(err) == [
        f"jobs/job.yaml: spec.trainingData.path: data/train.jsonl does not exist "
        f"(resolved to {tmp_path / 'jobs' / 'data' / 'train.jsonl'})",
        f"jobs/job.yaml: spec.validationData.path: ../val does not exist (resolved to {tmp_path / 'val'})",
    ]


def test_mltable_folder_problems_are_reported_against_the_field(tmp_path: Path) -> None:
    (tmp_path / "tbl").mkdir()
    (tmp_path / "tbl" / "MLTable").write_text("paths:\n  - file: ./gone.jsonl\n")
    (tmp_path / "empty").mkdir()
    with pytest.raises(KubevisionError) as err:
        check_job_data_paths(job({"path": "tbl"}, {"path": "empty"}), base_dir=tmp_path, job_file="job.yaml")
    found = problems(err)
    assert found[0].startswith("job.yaml: spec.trainingData.path: tbl: ")
    assert f"references {tmp_path / 'tbl' / 'gone.jsonl'}, which does not exist" in found[0]
    assert found[1].startswith("job.yaml: spec.validationData.path: empty: ")
    assert "is a folder without an MLTable file" in found[1]


def test_remote_uris_are_checked_by_scheme_only(tmp_path: Path, write_jsonl: Callable[..., Path]) -> None:
    for uri in (
        "https://example.org/train.jsonl",
        "s3://bucket/train.jsonl",
        "gs://b/t",
        "az://c/t",
        "abfs://c/t",
    ):
        check_job_data_paths(job({"uri": uri}), base_dir=tmp_path, job_file="job.yaml")
    local = write_jsonl(tmp_path / "t.jsonl", [{"image_url": "a.png", "label": []}])
    check_job_data_paths(job({"uri": local.as_uri()}), base_dir=tmp_path, job_file="job.yaml")
    with pytest.raises(KubevisionError, match=r"file:///nowhere/t\.jsonl does not exist"):
        check_job_data_paths(job({"uri": "file:///nowhere/t.jsonl"}), base_dir=tmp_path, job_file="job.yaml")


def test_azureml_and_unsupported_uris_are_errors_with_hints(tmp_path: Path) -> None:
    # The API model already rejects some of these; the check must hold on its own too.
    data = SimpleNamespace(path=None, uri="azureml://datastores/d/paths/train.jsonl")
    other = SimpleNamespace(path=None, uri="ftp://host/t.jsonl")
    stand_in = SimpleNamespace(spec=SimpleNamespace(training_data=data, validation_data=other))
    with pytest.raises(KubevisionError) as err:
        check_job_data_paths(stand_in, base_dir=tmp_path, job_file="job.yaml")  # type: ignore[arg-type]
    found = problems(err)
    assert found[0].startswith(
        "job.yaml: spec.trainingData.uri: azureml://datastores/d/paths/train.jsonl is an Azure ML data asset"
    )
    assert "az ml data download" in found[0]
    assert found[1].startswith("job.yaml: spec.validationData.uri: unsupported scheme ftp://; use one of")
