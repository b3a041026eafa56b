"""Where a trial pod finds its data and checkpoint and writes its outputs: volumes, mounts, paths.

Why this is planned, not left to the user: a Katib trial is a set of pods on arbitrary nodes, so a
path that was fine on a laptop means nothing there, and the best trial's model must end up where the
operator can point an InferenceEndpoint at it. The rules (docs/operator-mapping.md, "Storage"):

- The shared volume, mounted read-write at /mnt/kubevision in every trial pod: the claim of the job's
  `spec.output.uri` when it is `pvc://claim/...`, else the operator's output PVC
  (`KUBEVISION_OUTPUT_PVC`). Without either, an emptyDir stands in and the plan warns: outputs are then
  lost with the pod.
- Trial outputs: `<root>/trials/<trial name>`, where root is, in order: `spec.output.uri` (a pvc://
  URI becomes a path on the shared volume, an object-store URI is used as is, a relative path lies on
  the shared volume), `/mnt/kubevision/<namespace>/<job>` on the operator's PVC, or
  `<KUBEVISION_OUTPUT_URI>/<namespace>/<job>`.
- Data and checkpoint locations: a relative path is relative to the shared volume (a leading `..` that
  would climb out of it is dropped, with a warning, so the examples' `../data/...` reads
  /mnt/kubevision/data/...); `pvc://claim/path` on the shared claim becomes a path on it, on another
  claim that claim is mounted read-only under /mnt/kubevision-claims/<claim>; absolute paths and
  object-store URIs are passed through.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CLAIMS_MOUNT",
    "CONFIG_MOUNT",
    "SHARED_MOUNT",
    "Storage",
    "parse_pvc_uri",
    "plan_storage",
]

SHARED_MOUNT = "/mnt/kubevision"
CONFIG_MOUNT = "/etc/kubevision"
CLAIMS_MOUNT = "/mnt/kubevision-claims"
SHARED_VOLUME = "kubevision-shared"
STAGING_VOLUME = "kubevision-staging"
STAGING_MOUNT = "/var/kubevision/staging"
STAGING_ENV = "KUBEVISION_STAGING"
"""With an object-store output the trial works in a local staging folder and uploads from it; an
emptyDir keeps that folder across container restarts in the same pod, so a restart resumes from
local files instead of downloading its checkpoints again (kubevision.trainer.remote)."""


def parse_pvc_uri(uri: str) -> tuple[str, str] | None:
    """("claim", "path/inside") for pvc://claim/path/inside, None for anything else."""
    if not uri.startswith("pvc://"):
        return None
    rest = uri[len("pvc://"):]
    claim, _, path = rest.partition("/")
    return (claim, path.strip("/")) if claim else None


def _is_uri(location: str) -> bool:
    return "://" in location


@dataclass
class Storage:
    """Volumes and paths of the trial pods of one job (built by `plan_storage`)."""

    shared_claim: str | None
    """PVC mounted read-write at /mnt/kubevision (None: emptyDir or nothing)."""
    shared_empty_dir: bool
    """True when no claim is known and an emptyDir stands in at /mnt/kubevision."""
    output_root: str
    """Base of the trial output folders: a path in the pod or an object-store URI (no trailing /)."""
    extra_claims: list[str] = field(default_factory=list)
    """Other PVCs the job reads from, mounted read-only under /mnt/kubevision-claims/<claim>."""
    warnings: list[str] = field(default_factory=list)

    def _claim_path(self, claim: str, inside: str) -> str:
        if claim == self.shared_claim:
            return posixpath.join(SHARED_MOUNT, inside) if inside else SHARED_MOUNT
        if claim not in self.extra_claims:
            self.extra_claims.append(claim)
        base = posixpath.join(CLAIMS_MOUNT, claim)
        return posixpath.join(base, inside) if inside else base

    def locate(self, location: str, where: str) -> str:
        """A data or model location as the trial pod reads it (see the module docstring)."""
        pvc = parse_pvc_uri(location)
        if pvc is not None:
            return self._claim_path(*pvc)
        if _is_uri(location):
            return location
        if posixpath.isabs(location):
            if not any(location.startswith(m + "/") for m in (SHARED_MOUNT, CLAIMS_MOUNT)):
                self.warnings.append(
                    f"{where}: the absolute path {location!r} must exist inside every trial pod (image or node); "
                    f"put the file on the shared volume ({SHARED_MOUNT}) or use a URI"
                )
            return location
        parts = [p for p in posixpath.normpath(location).split("/") if p not in ("", ".")]
        climbed = 0
        while parts and parts[0] == "..":
            parts.pop(0)
            climbed += 1
        resolved = posixpath.join(SHARED_MOUNT, *parts) if parts else SHARED_MOUNT
        if climbed:
            self.warnings.append(
                f"{where}: relative paths are relative to the shared volume in the cluster; {location!r} climbs "
                f"out of it, so trials read {resolved}"
            )
        if self.shared_claim is None:
            self.warnings.append(
                f"{where}: the relative path {location!r} needs a shared volume, and this job has none "
                "(set the operator's output PVC, or spec.output.uri: pvc://claim/...); trials cannot read it"
            )
        return resolved

    def volumes(self, config_map: str, shm_size: str) -> list[dict[str, Any]]:
        """Pod volumes: the job ConfigMap, the shared volume, read-only claims, and an in-memory /dev/shm."""
        volumes: list[dict[str, Any]] = [{"name": "kubevision-config", "configMap": {"name": config_map}}]
        if self.shared_claim is not None:
            volumes.append({"name": SHARED_VOLUME, "persistentVolumeClaim": {"claimName": self.shared_claim}})
        elif self.shared_empty_dir:
            volumes.append({"name": SHARED_VOLUME, "emptyDir": {}})
        for i, claim in enumerate(self.extra_claims):
            volumes.append(
                {"name": f"kubevision-claim-{i}", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
            )
        if self.remote_output:
            volumes.append({"name": STAGING_VOLUME, "emptyDir": {}})
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm_size}})
        return volumes

    @property
    def remote_output(self) -> bool:
        """Trial outputs go to an object store (through a local staging folder)."""
        return _is_uri(self.output_root)

    def volume_mounts(self) -> list[dict[str, Any]]:
        """The container's mounts matching `volumes`."""
        mounts: list[dict[str, Any]] = [{"name": "kubevision-config", "mountPath": CONFIG_MOUNT, "readOnly": True}]
        if self.shared_claim is not None or self.shared_empty_dir:
            mounts.append({"name": SHARED_VOLUME, "mountPath": SHARED_MOUNT})
        for i, claim in enumerate(self.extra_claims):
            mounts.append(
                {"name": f"kubevision-claim-{i}", "mountPath": posixpath.join(CLAIMS_MOUNT, claim), "readOnly": True}
            )
        if self.remote_output:
            mounts.append({"name": STAGING_VOLUME, "mountPath": STAGING_MOUNT})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
        return mounts


def plan_storage(
    *,
    job_name: str,
    namespace: str,
    output_uri: str | None,
    operator_pvc: str | None,
    operator_uri: str | None,
) -> Storage:
    """Shared volume and output root of a job (`output_uri` is the job's spec.output.uri)."""
    warnings: list[str] = []
    job_pvc = parse_pvc_uri(output_uri) if output_uri else None
    shared_claim = job_pvc[0] if job_pvc else operator_pvc
    default_root = posixpath.join(SHARED_MOUNT, namespace, job_name)
    empty_dir = False
    if job_pvc is not None:
        root = posixpath.join(SHARED_MOUNT, job_pvc[1]) if job_pvc[1] else default_root
    elif output_uri is not None and _is_uri(output_uri):
        root = output_uri.rstrip("/")
    elif output_uri is not None:
        storage = Storage(shared_claim, shared_claim is None, "", warnings=warnings)
        root = storage.locate(output_uri, "spec.output.uri")
        empty_dir = shared_claim is None
    elif operator_pvc is not None:
        root = default_root
    elif operator_uri is not None:
        root = f"{operator_uri.rstrip('/')}/{namespace}/{job_name}"
    else:
        root = default_root
        empty_dir = True
    if empty_dir and shared_claim is None:
        warnings.append(
            "no shared storage: neither spec.output.uri nor the operator's output PVC or URI is set, so trial "
            "outputs go to an emptyDir and are lost with the pod (no best model can be served)"
        )
    return Storage(shared_claim, empty_dir and shared_claim is None, root.rstrip("/") or "/", warnings=warnings)
