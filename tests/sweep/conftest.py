"""Fixtures for the sweep tests: jobs built through the real API models.

The seam under test is `kubevision.sweep` as the runner and the operator use it: validated
`AutoMLImageJob`s in, suggestions / decisions / portfolios out, with a real Optuna study in a real
SQLite file under `tmp_path`. Nothing of ours is mocked. A job the API would refuse (to exercise
the sampler's own guard, `check_sweep`) is made with pydantic's `model_copy(update=...)`, which
skips validation, exactly like a job built in code would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kubevision.api.models import AutoMLImageJob

JobMaker = Callable[..., AutoMLImageJob]


def make_job(task: str = "image_classification", **spec: Any) -> AutoMLImageJob:
    """A validated job of `task` with the given spec keys (camelCase)."""
    return AutoMLImageJob.model_validate(
        {
            "apiVersion": "kubevision.io/v1alpha1",
            "kind": "AutoMLImageJob",
            "metadata": {"name": "sweep-test"},
            "spec": {"task": task, "trainingData": {"path": "data/train.jsonl"}, **spec},
        }
    )


def unchecked(job: AutoMLImageJob, **spec_updates: Any) -> AutoMLImageJob:
    """`job` with spec fields (snake_case) replaced WITHOUT validation (a job built in code)."""
    return job.model_copy(update={"spec": job.spec.model_copy(update=spec_updates)})


@pytest.fixture
def job() -> JobMaker:
    """`job(task, **spec)`: a validated AutoMLImageJob."""
    return make_job


@pytest.fixture
def bypass() -> Callable[..., AutoMLImageJob]:
    """`bypass(job, **spec_updates)`: the job with spec fields replaced without validation."""
    return unchecked
