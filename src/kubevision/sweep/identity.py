"""What makes a resumed sweep "the same job": the spec fields that define its trials.

Why not hash the whole spec: `--resume` after raising `limits.timeoutMinutes`, allowing more
concurrent trials, moving to other GPUs or another output folder continues the same sweep; the
trials already run are still valid answers to the same question. What changes the question is
what trials learn from and how they are chosen: the task and data, the fixed training
parameters, the search space and sweep, incremental training, and `limits.maxTrials` (AutoMode's
portfolio and the number of trials depend on it). Those fields are the identity; a study records
them when created and refuses a job whose identity differs, naming each changed field.

Pure (no Optuna): the operator records the same identity on the Experiments it creates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kubevision.api.values import show

if TYPE_CHECKING:
    from kubevision.api.models import AutoMLImageJob

__all__ = ["IDENTITY_FIELDS", "identity_changes", "spec_fingerprint", "spec_identity"]

IDENTITY_FIELDS: tuple[str, ...] = (
    "task",
    "trainingData",
    "validationData",
    "validationDataSize",
    "targetColumnName",
    "primaryMetric",
    "trainingParameters",
    "searchSpace",
    "sweep",
    "checkpoint",
)
"""Spec fields (camelCase) that are part of a sweep's identity, besides limits.maxTrials."""


def spec_identity(job: AutoMLImageJob) -> dict[str, Any]:
    """The identity fields of the job's spec as plain JSON data (defaults filled in)."""
    spec = job.spec.model_dump(mode="json", by_alias=True)
    identity = {name: spec.get(name) for name in IDENTITY_FIELDS}
    identity["limits"] = {"maxTrials": spec["limits"]["maxTrials"]}
    return identity


def spec_fingerprint(job: AutoMLImageJob) -> str:
    """sha256 of the canonical JSON of `spec_identity(job)`."""
    text = json.dumps(spec_identity(job), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for key in sorted(value):
            _flatten(value[key], f"{path}.{key}", out)
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            _flatten(item, f"{path}[{i}]", out)
    else:
        out[path] = value


def identity_changes(old: Mapping[str, Any], new: Mapping[str, Any], *, limit: int = 8) -> list[str]:
    """Human lines "spec.limits.maxTrials: 10 -> 20" for each leaf that differs (at most `limit`)."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    _flatten(dict(old), "spec", before)
    _flatten(dict(new), "spec", after)
    missing = object()
    lines = []
    for path in sorted(before.keys() | after.keys()):
        a, b = before.get(path, missing), after.get(path, missing)
        if a != b:
            was = "(unset)" if a is missing else show(a)
            now = "(unset)" if b is missing else show(b)
            lines.append(f"{path}: {was} -> {now}")
    if len(lines) > limit:
        lines = [*lines[:limit], f"... and {len(lines) - limit} more"]
    return lines
