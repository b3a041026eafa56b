"""Names and metadata of the children of an AutoMLImageJob: deterministic, short, and owned.

Why deterministic names: the operator may restart between creating an Experiment and recording it in
the job's status; recomputing the same name from the job lets it find (not duplicate) what it made.
Why <= 40 characters: Katib's webhook rejects longer Experiment names (a trial is named
`<experiment>-<8 chars>` and its PyTorchJob pods `<trial>-master-0`, which must stay DNS labels).
Katib also wants the name to start with a letter (`^[a-z]([-a-z0-9]*[a-z0-9])?`), while a job name
(a DNS-1123 label) may start with a digit; such names get an `x-` prefix.

A name that does not fit is cut and gets a stable 8-hex-digit hash of the full (job, sub-space) pair,
so two long job names that share a prefix still get different Experiments.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "EXPERIMENT_NAME_MAX",
    "JOB_LABEL",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "SUB_SPACE_LABEL",
    "child_labels",
    "child_metadata",
    "config_map_name",
    "experiment_name",
    "owner_references",
    "refinement_experiment_name",
    "token_secret_name",
]

EXPERIMENT_NAME_MAX = 40
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "kubevision"
JOB_LABEL = "kubevision.io/job"
SUB_SPACE_LABEL = "kubevision.io/sub-space"

_KATIB_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _hash(*parts: object) -> str:
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()[:8]


def experiment_name(job_name: str, sub_space_index: int | None) -> str:
    """The Katib Experiment of a job (None) or of one of its sub-spaces: DNS-1123, <= 40 chars, letter first."""
    if sub_space_index is not None and sub_space_index < 0:
        raise ValueError(f"sub_space_index must be >= 0, got {sub_space_index}")
    base = job_name if job_name[:1].isalpha() else f"x-{job_name}"
    suffix = "" if sub_space_index is None else f"-s{sub_space_index}"
    name = base + suffix
    if len(name) > EXPERIMENT_NAME_MAX:
        digest = _hash(job_name, sub_space_index)
        keep = EXPERIMENT_NAME_MAX - len(suffix) - len(digest) - 1
        name = f"{base[:keep].rstrip('-')}-{digest}{suffix}"
    if not _KATIB_NAME.match(name):  # a job name is a DNS label, so this is a bug, not bad input
        raise ValueError(f"cannot derive a Katib name from job {job_name!r}: got {name!r}")
    return name


def refinement_experiment_name(job_name: str) -> str:
    """AutoMode's second Experiment (TPE around the best portfolio config): `<job>-refine`, <= 40 chars."""
    base = job_name if job_name[:1].isalpha() else f"x-{job_name}"
    name = f"{base}-refine"
    if len(name) > EXPERIMENT_NAME_MAX:
        digest = _hash(job_name, "refine")
        name = f"{base[: EXPERIMENT_NAME_MAX - len('-refine') - len(digest) - 1].rstrip('-')}-{digest}-refine"
    return name


def config_map_name(job_name: str) -> str:
    """The ConfigMap holding the job YAML (and AutoMode portfolio) that every trial reads."""
    return f"{job_name}-trial-config"


def token_secret_name(job_name: str) -> str:
    """The Secret (key "token") holding the job's early-termination bearer token; the runtime creates it."""
    return f"{job_name}-termination-token"


def child_labels(job_name: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Labels on every child of a job: `extra` first, ours last so they always win."""
    return {**dict(extra or {}), MANAGED_BY_LABEL: MANAGED_BY, JOB_LABEL: job_name}


def owner_references(owner: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The job as controlling owner (cascading deletion); empty without an owner (`kubevision plan`)."""
    if owner is None:
        return []
    missing = [k for k in ("apiVersion", "kind", "name", "uid") if not owner.get(k)]
    if missing:
        raise ValueError(f"owner needs apiVersion, kind, name and uid; missing {', '.join(missing)}")
    return [
        {
            "apiVersion": str(owner["apiVersion"]),
            "kind": str(owner["kind"]),
            "name": str(owner["name"]),
            "uid": str(owner["uid"]),
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def child_metadata(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    owner: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """metadata of a child object: name, namespace, labels and (with an owner) ownerReferences."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
    refs = owner_references(owner)
    if refs:
        meta["ownerReferences"] = refs
    return meta
