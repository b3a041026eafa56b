"""Fixtures for the API tests: minimal valid manifests per task, and a way to collect problems.

The seam under test is `kubevision.api` as the rest of kubevision sees it: manifests in (dicts or
YAML files), models or `KubevisionError` problems out. Nothing is mocked.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kubevision.api import KubevisionError, parse_manifest
from kubevision.api.models import AutoMLImageJob, InferenceEndpoint

JobFactory = Callable[..., dict[str, Any]]


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def job() -> JobFactory:
    """`job(task, **spec)`: a minimal valid AutoMLImageJob dict, spec keys deep-merged in."""

    def make(task: str = "image_classification", **spec: Any) -> dict[str, Any]:
        base = {
            "apiVersion": "kubevision.io/v1alpha1",
            "kind": "AutoMLImageJob",
            "metadata": {"name": "test-job"},
            "spec": {"task": task, "trainingData": {"path": "data/train.jsonl"}},
        }
        return _merge(base, {"spec": spec})

    return make


@pytest.fixture
def endpoint() -> Callable[..., dict[str, Any]]:
    """`endpoint(*deployments, **spec)`: an InferenceEndpoint dict."""

    def make(*deployments: dict[str, Any], **spec: Any) -> dict[str, Any]:
        deps = list(deployments) or [{"name": "main", "model": {"fromJob": "fridge"}}]
        return {
            "apiVersion": "kubevision.io/v1alpha1",
            "kind": "InferenceEndpoint",
            "metadata": {"name": "fridge"},
            "spec": {"deployments": deps, **spec},
        }

    return make


@pytest.fixture
def parse_job() -> Callable[[dict[str, Any]], AutoMLImageJob]:
    def parse(obj: dict[str, Any]) -> AutoMLImageJob:
        resource = parse_manifest(obj)
        assert isinstance(resource, AutoMLImageJob)
        return resource

    return parse


@pytest.fixture
def parse_endpoint() -> Callable[[dict[str, Any]], InferenceEndpoint]:
    def parse(obj: dict[str, Any]) -> InferenceEndpoint:
        resource = parse_manifest(obj)
        assert isinstance(resource, InferenceEndpoint)
        return resource

    return parse


@pytest.fixture
def problems() -> Callable[[dict[str, Any]], dict[str, str]]:
    """`problems(obj)` -> {field: message} of the KubevisionError that parsing `obj` must raise."""

    def collect(obj: dict[str, Any]) -> dict[str, str]:
        with pytest.raises(KubevisionError) as info:
            parse_manifest(obj)
        return {p.field or "": p.message for p in info.value.problems}

    return collect


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], Path]:
    """`write(text)` -> path of a job.yaml holding `text`."""

    def put(text: str) -> Path:
        path = tmp_path / "job.yaml"
        path.write_text(text)
        return path

    return put
