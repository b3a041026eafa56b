"""The trial config: the contract between the backends and the trial program.

Why it lives in `api`: the local runner writes it for each trial, the operator renders the same
values into a PyTorchJob command, and the trainer reads it; `api` is the only layer all three may
import (the operator never imports torch or the trainer). One pydantic model keeps the three from
disagreeing about a key.

A trial config is the job's data and fixed settings plus the values a sampler chose for this trial
(`sampled`). It is not yet defaulted: the trainer resolves the full hyperparameter set with
`resolve_training_parameters(task, trainingParameters, sampled)`, so defaults live in one table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from kubevision.api.base import KubeModel
from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.hyperparameters import resolve_training_parameters
from kubevision.api.models import AutoMLImageJob, DataInput
from kubevision.api.tasks import PRIMARY_METRIC, Task
from kubevision.api.training_parameters import TrainingParameters

__all__ = [
    "TERMINATION_TOKEN_ENV",
    "RuntimeSettings", "TerminationEndpoint", "TrialConfig", "load_trial_config", "trial_config_from_job"]


TERMINATION_TOKEN_ENV = "KUBEVISION_TERMINATION_TOKEN"
"""Environment variable holding the early-termination bearer token of `kubevision train --termination-url`
(a cluster trial gets it from the job's Secret, so it never shows in a command line)."""


class TerminationEndpoint(KubeModel):
    """Where the trial asks, after each validation, whether to stop early (runner or operator)."""

    url: str = Field(description="HTTP endpoint of the early-termination decision protocol.")
    token: str | None = Field(None, description="Bearer token proving the caller is a trial of this job.")


class RuntimeSettings(KubeModel):
    """How to run, not what to learn: never part of a search space."""

    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = CUDA when available.")
    cache_images: bool = Field(
        False, description="Keep decoded images in memory after the first epoch (small datasets)."
    )
    max_bad_image_fraction: float = Field(
        0.05, ge=0, le=1, description="Fail the trial when more than this fraction of images cannot be decoded."
    )
    amp: Literal["auto", "off", "bf16", "fp16"] = Field(
        "auto", description="Mixed precision on CUDA: auto = bf16 where supported, else fp16."
    )
    export_onnx: bool = Field(
        True, description="Also export model.onnx (a runner may skip it per trial and export only the best)."
    )


class TrialConfig(KubeModel):
    """Everything one trial needs; written as JSON by the runner, read by `kubevision train`."""

    trial_name: str = Field("trial", description="Name shown in logs and results.")
    task: Task
    training_data: DataInput
    validation_data: DataInput | None = None
    validation_data_size: float = Field(0.2, gt=0, lt=1)
    target_column_name: str = "label"
    training_parameters: TrainingParameters = Field(default_factory=TrainingParameters)
    sampled: dict[str, Any] = Field(default_factory=dict, description="Values the sampler chose (camelCase).")
    output_dir: str = Field(description="Where outputs/ of this trial go; reused on restart to resume.")
    base_dir: str | None = Field(None, description="Folder relative data paths are resolved against.")
    checkpoint_model_uri: str | None = Field(None, description="Incremental training: earlier model.pt or model dir.")
    early_termination: TerminationEndpoint | None = None
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)

    @property
    def primary_metric(self) -> str:
        return PRIMARY_METRIC[self.task]

    def hyperparameters(self) -> dict[str, Any]:
        """The full, defaulted hyperparameter set of this trial (camelCase keys)."""
        return resolve_training_parameters(self.task, self.training_parameters, self.sampled)

    def resolve_path(self, path: str) -> Path:
        """A data path as the trainer opens it: relative paths are relative to `base_dir`."""
        p = Path(path)
        if not p.is_absolute() and self.base_dir:
            p = Path(self.base_dir) / p
        return p


def load_trial_config(path: str | Path) -> TrialConfig:
    """Read a trial config JSON file; any problem is a `KubevisionError` naming the file and field."""
    file = str(path)
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as err:
        raise KubevisionError(f"cannot read the trial config {file}: {err.strerror or err}") from None
    except json.JSONDecodeError as err:
        raise KubevisionError(
            f"{file} is not valid JSON", [Problem(err.msg, file=file, line=err.lineno)]
        ) from None
    try:
        return TrialConfig.model_validate(raw)
    except ValidationError as err:
        problems = [
            Problem(e["msg"], file=file, field=".".join(str(p) for p in e["loc"])) for e in err.errors()
        ]
        raise KubevisionError(f"{file} is not a valid trial config ({len(problems)} problems)", problems) from None


def trial_config_from_job(
    job: AutoMLImageJob,
    *,
    job_dir: Path,
    output_dir: Path,
    sampled: dict[str, Any] | None = None,
    trial_name: str = "trial",
) -> TrialConfig:
    """A trial config for one trial of `job` (fixed settings plus `sampled` values)."""
    spec = job.spec
    try:
        return TrialConfig(
            trial_name=trial_name,
            task=spec.task,
            training_data=spec.training_data,
            validation_data=spec.validation_data,
            validation_data_size=spec.validation_data_size,
            target_column_name=spec.target_column_name,
            training_parameters=spec.training_parameters or TrainingParameters(),
            sampled=dict(sampled or {}),
            output_dir=str(output_dir),
            base_dir=str(job_dir),
            checkpoint_model_uri=spec.checkpoint.model_uri if spec.checkpoint else None,
        )
    except ValidationError as err:
        problems = [Problem(e["msg"], field=".".join(str(p) for p in e["loc"])) for e in err.errors()]
        raise KubevisionError("the --set values do not make a valid trial", problems) from None
