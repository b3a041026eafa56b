"""Operator-wide settings: what the cluster provides that a job does not say (image, storage, endpoints).

Why a frozen dataclass read from the environment: the planners in `kubevision.operator.reconcile` are
pure functions and take every cluster fact as an argument; the operator Deployment (Helm values ->
env) and `kubevision plan` (flags) are the only two places that build one. A job can still override
some of these (`spec.resources.image`, `spec.output.uri`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from kubevision import __version__
from kubevision.api.errors import KubevisionError, Problem

__all__ = ["DEFAULT_TRAINER_IMAGE", "ENV", "OperatorSettings"]

DEFAULT_TRAINER_IMAGE = f"ghcr.io/kubevision/trainer:{__version__}"

PullPolicy = Literal["Always", "IfNotPresent", "Never"]
_PULL_POLICIES: tuple[str, ...] = ("Always", "IfNotPresent", "Never")

ENV: dict[str, str] = {
    "trainer_image": "KUBEVISION_TRAINER_IMAGE",
    "termination_url": "KUBEVISION_TERMINATION_URL",
    "output_pvc": "KUBEVISION_OUTPUT_PVC",
    "output_uri": "KUBEVISION_OUTPUT_URI",
    "service_account": "KUBEVISION_TRIAL_SERVICE_ACCOUNT",
    "image_pull_policy": "KUBEVISION_IMAGE_PULL_POLICY",
    "shm_size": "KUBEVISION_SHM_SIZE",
    "backoff_limit": "KUBEVISION_BACKOFF_LIMIT",
    "default_cpu": "KUBEVISION_DEFAULT_CPU",
    "default_memory": "KUBEVISION_DEFAULT_MEMORY",
    "fs_group": "KUBEVISION_TRIAL_FS_GROUP",
}
"""Field -> environment variable read by `OperatorSettings.from_env` (the Helm chart sets these)."""


@dataclass(frozen=True)
class OperatorSettings:
    """Cluster facts the planners need; every field has a default so `kubevision plan` works bare."""

    trainer_image: str = DEFAULT_TRAINER_IMAGE
    """Image of the trial program (`kubevision train`); a job's `spec.resources.image` wins."""
    termination_url: str | None = None
    """Base URL of the operator's early-termination service as trial pods reach it,
    e.g. http://kubevision-operator.kubevision-system.svc:8082 (None: early termination is off)."""
    output_pvc: str | None = None
    """ReadWriteMany PVC mounted at /mnt/kubevision in every trial pod (outputs and relative data paths)."""
    output_uri: str | None = None
    """Object-store base URI for trial outputs when there is no PVC (s3://bucket/prefix)."""
    service_account: str | None = None
    """ServiceAccount of trial pods (object-store credentials via workload identity)."""
    image_pull_policy: PullPolicy = "IfNotPresent"
    shm_size: str = "2Gi"
    """Size of the in-memory /dev/shm of trial pods (DataLoader workers share batches through it)."""
    backoff_limit: int = 3
    """PyTorchJob runPolicy.backoffLimit: pod restarts before a trial counts as failed."""
    default_cpu: str = "4"
    """CPU request per trial pod when the job gives none."""
    default_memory: str = "16Gi"
    """Memory request per trial pod when the job gives none."""
    fs_group: int | None = 10001
    """Pod securityContext.fsGroup of trial pods, so the non-root trainer (uid/gid 10001 in
    Dockerfile.trainer) can write to the shared volume; "none" in the environment leaves it unset."""
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    """Labels added to every child (e.g. a team or cost-center label); ours win on conflicts."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> OperatorSettings:
        """Settings from KUBEVISION_* variables (see `ENV`); unset or empty variables keep the default."""
        values: dict[str, object] = {}
        problems: list[Problem] = []
        for name, var in ENV.items():
            raw = environ.get(var, "").strip()
            if not raw:
                continue
            if name == "fs_group" and raw.lower() == "none":
                values[name] = None
            elif name in ("backoff_limit", "fs_group"):
                try:
                    number = int(raw)
                except ValueError:
                    number = -1
                if number < 0:
                    problems.append(Problem(f"got {raw!r}; expected an integer >= 0", field=var))
                    continue
                values[name] = number
            elif name == "image_pull_policy":
                if raw not in _PULL_POLICIES:
                    problems.append(Problem(f"got {raw!r}; expected one of {', '.join(_PULL_POLICIES)}", field=var))
                    continue
                values[name] = raw
            else:
                values[name] = raw.rstrip("/") if name in ("termination_url", "output_uri") else raw
        if problems:
            raise KubevisionError("invalid operator settings in the environment", problems)
        return cls(**values)  # type: ignore[arg-type]
