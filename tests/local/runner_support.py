"""Helpers shared by the embedded-runner tests (a module with a unique name: test folders have no __init__)."""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
KUBEVISION = [sys.executable, "-m", "kubevision.cli"]

FAST = {
    "modelName": "resnet18", "numberOfEpochs": 1, "trainingBatchSize": 16, "validationBatchSize": 64,
    "trainingCropSize": 16, "validationResizeSize": 16, "validationCropSize": 16, "numberOfWorkers": 0,
    "warmupCosineLrWarmupEpochs": 0,
}
"""Fixed training settings of a cheap trial: 16 px crops of the 32 px digits, no loader workers."""


def subset(src: Path, dst: Path, n: int) -> Path:
    """The first n lines of a JSONL file, written beside it (image_url stays relative)."""
    lines = src.read_text().splitlines()[:n]
    dst.write_text("\n".join(lines) + "\n")
    return dst


def write_job(path: Path, data: Path, *, name: str = "t", train: str = "train64", val: str = "val40",
              params: dict[str, Any] | None = None, limits: dict[str, Any] | None = None,
              sweep: dict[str, Any] | None = None, search_space: list[dict[str, Any]] | None = None,
              task: str = "image_classification", base: dict[str, Any] | None = None) -> Path:
    """A job YAML at `path` training on `data`/<train>.jsonl, validating on <val>.jsonl, on the CPU."""
    spec: dict[str, Any] = {
        "task": task,
        "trainingData": {"path": str(data / f"{train}.jsonl")},
        "validationData": {"path": str(data / f"{val}.jsonl")},
        "limits": limits or {"maxTrials": 1},
        "trainingParameters": {**(FAST if base is None else base), **(params or {})},
        "resources": {"gpusPerNode": 0},
    }
    if sweep is not None:
        spec["sweep"] = sweep
    if search_space is not None:
        spec["searchSpace"] = search_space
    job = {"apiVersion": "kubevision.io/v1alpha1", "kind": "AutoMLImageJob", "metadata": {"name": name},
           "spec": spec}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def kubevision_run(job: Path, out: Path, *args: str) -> Ran:
    """`kubevision run JOB --output OUT ...` in this process (its trials are subprocesses all the same).

    In-process saves the runner's own start-up (Optuna, SQLAlchemy, rich, matplotlib: seconds of
    CPU per run); stdout is not a terminal, so the progress is one plain line per event. The
    environment of the trials is the test process's (OMP_NUM_THREADS=1 via pytest's environment).
    """
    from click.testing import CliRunner

    from kubevision.cli import cli

    previous = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    try:
        result = CliRunner().invoke(cli, ["run", str(job), "--output", str(out), *args], catch_exceptions=False)
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return Ran(result.exit_code, result.stdout, result.stderr)


@dataclass(frozen=True)
class Ran:
    """How a `kubevision run` ended: exit code, stdout, stderr."""

    returncode: int
    stdout: str
    stderr: str


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def leaderboard(out: Path) -> list[dict[str, str]]:
    with open(out / "leaderboard.csv", newline="") as handle:
        return list(csv.DictReader(handle))
