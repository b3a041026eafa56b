"""The ConfigMap every trial pod mounts at /etc/kubevision: the job as the trial reads it, and the AutoMode portfolio.

Why a ConfigMap and not the command line: the trial program validates the whole job (data, fixed
settings, task rules) exactly as `kubevision validate` does, so it gets the job YAML; Katib can only
put sampled values on the command line. The job is rewritten for the pod: data locations become what
the pod can open (see `storage`), and `checkpoint` and `output` are dropped because the command passes
them (`--checkpoint`, `--output`) already resolved. Keys are sorted, so the same job gives the same
bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from kubevision.api.models import AutoMLImageJob
from kubevision.operator.reconcile.storage import Storage, parse_pvc_uri

_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
"""libyaml's dumper when present: the ConfigMap dump was most of a reconcile's CPU (about 9 ms per job)."""

__all__ = ["AUTOMODE_KEY", "JOB_KEY", "config_map_manifest", "trial_job_document"]

JOB_KEY = "job.yaml"
AUTOMODE_KEY = "automode.json"


def _data_input(value: Mapping[str, Any], storage: Storage, where: str) -> dict[str, Any]:
    """A trainingData/validationData mapping rewritten to what the pod opens."""
    if value.get("path") is not None:
        return {"path": storage.locate(str(value["path"]), f"{where}.path")}
    uri = str(value["uri"])
    if parse_pvc_uri(uri) is not None:
        return {"path": storage.locate(uri, f"{where}.uri")}
    return {"uri": uri}


def trial_job_document(job: AutoMLImageJob, namespace: str, storage: Storage) -> dict[str, Any]:
    """The AutoMLImageJob as the trial reads it from /etc/kubevision/job.yaml."""
    spec = job.spec.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True)
    spec["trainingData"] = _data_input(spec["trainingData"], storage, "spec.trainingData")
    if "validationData" in spec:
        spec["validationData"] = _data_input(spec["validationData"], storage, "spec.validationData")
    spec.pop("checkpoint", None)
    spec.pop("output", None)
    return {
        "apiVersion": job.api_version,
        "kind": job.kind,
        "metadata": {"name": job.metadata.name, "namespace": namespace},
        "spec": spec,
    }


def config_map_manifest(
    *,
    metadata: Mapping[str, Any],
    job_document: Mapping[str, Any],
    portfolio: Sequence[Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """The ConfigMap: job.yaml, plus automode.json (a JSON list of camelCase value objects) in AutoMode."""
    data = {JOB_KEY: yaml.dump(dict(job_document), Dumper=_DUMPER, sort_keys=True, default_flow_style=False)}
    if portfolio is not None:
        data[AUTOMODE_KEY] = json.dumps([dict(c) for c in portfolio], sort_keys=True, indent=2) + "\n"
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": dict(metadata), "data": data}
