"""Write a trial's model outputs: the MLflow model folder, `labels.json` and `model.onnx` (reference 9.1).

Why the MLflow format: it is what Azure registers and deploys (`az ml model create --type mlflow_model`),
what KServe's MLflow runtime and `mlflow models serve` understand, and what data scientists already
load with `mlflow.pyfunc.load_model(dir).predict(df)`. The folder is:

    mlflow-model/
      MLmodel            python_function flavor, loader_module kubevision.trainer.pyfunc, data: artifacts
      conda.yaml  python_env.yaml  requirements.txt
      labels.json        class names, index = class id
      artifacts/model.pt       Azure's checkpoint dict (reference 9.2), tensors and primitives only
      artifacts/settings.json  valid_resize_size, valid_crop_size, train_crop_size (reference 9.3)

Why no pickled Python object: the MLmodel names a loader module (see `pyfunc`) instead of
`python_model.pkl`, so the model is plain data that `torch.load(weights_only=True)` reads safely and
that survives refactors and library upgrades. Why no `import mlflow` here: the MLmodel is a small YAML
written directly, so the training image does not need MLflow to train; a test loads the result with
the real `mlflow.pyfunc.load_model` in a fresh process to keep this honest.

Why atomic: a trial may be killed at any moment (preemption, timeout, kill -9) and a half-written
model must never be served. Every file is written to a temporary name and renamed; the MLflow folder
is assembled under a hidden staging name and swapped in whole, so `mlflow-model/` is either the
previous complete model or the new complete one. The optimizer and scheduler states of Azure's
training checkpoint are not part of the exported model (the trial's `checkpoints/` hold those).

ONNX export failures do not fail the export: the MLflow model is the deployable artifact and is
already in place; `ExportResult.onnx_error` says what went wrong so the trial summary can report it,
and a `model.onnx` of an earlier export is removed rather than left disagreeing with the new weights.
"""

from __future__ import annotations

import contextlib
import json
import logging
import numbers
import os
import secrets
import shutil
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from kubevision import __version__
from kubevision.api.tasks import PRIMARY_METRIC, Task, is_classification
from kubevision.data.atomic import atomic_write_bytes, write_atomically
from kubevision.trainer.onnx_export import export_onnx
from kubevision.trainer.presets import settings_json
from kubevision.trainer.pyfunc import LOADER_MODULE, MODEL_FILE, SETTINGS_FILE

__all__ = [
    "LABELS_FILE",
    "LOADER_MODULE",
    "MLFLOW_MODEL_DIR",
    "ONNX_FILE",
    "ExportResult",
    "runtime_requirements",
    "write_model_artifacts",
]

MLFLOW_MODEL_DIR = "mlflow-model"
ARTIFACTS_DIR = "artifacts"
LABELS_FILE = "labels.json"
ONNX_FILE = "model.onnx"

# Azure's classification signature (reference 9.1): one string column in, four string columns out
# (`visualizations` and `attributions` are filled only when explanations are requested).
_SIGNATURE_INPUTS = [{"type": "string", "name": "image"}]
_SIGNATURE_OUTPUTS = [
    {"type": "string", "name": name} for name in ("probs", "labels", "visualizations", "attributions")
]

# What loading and scoring a model needs (not training): distribution name -> requirement when the
# distribution is not installed where the model is exported.
_RUNTIME_DISTRIBUTIONS: tuple[tuple[str, str], ...] = (
    ("kubevision", f"kubevision=={__version__}"),
    ("mlflow-skinny", "mlflow-skinny>=3.0"),
    ("torch", "torch"),
    ("torchvision", "torchvision"),
    ("timm", "timm>=1.0.31"),
    ("pillow", "pillow>=10"),
    ("numpy", "numpy>=1.26"),
    ("pandas", "pandas>=2.1"),
    ("pyyaml", "PyYAML>=6"),
    ("pydantic", "pydantic>=2.7,<3"),
)

_DIR_MODE = 0o755

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    """Where `write_model_artifacts` put things."""

    mlflow_model_dir: Path
    model_pt: Path
    settings_json: Path
    labels_json: Path
    """`<outputs>/labels.json`, beside `model.onnx` (a copy is in the MLflow folder)."""
    onnx: Path | None
    """`<outputs>/model.onnx`, or None when disabled or failed."""
    onnx_error: str | None = None
    """Why the ONNX export failed (the MLflow model is written regardless)."""


def write_model_artifacts(
    outputs_dir: Path,
    *,
    model: nn.Module,
    model_name: str,
    task: str,
    classes: Sequence[str],
    hp: Mapping[str, Any],
    metrics: Mapping[str, float],
    epoch: int,
    training_run_id: str | None = None,
    onnx: bool = True,
) -> ExportResult:
    """Export a trained classifier to `outputs_dir` (see the module docstring for the layout).

    `model` may still be wrapped in DDP or torch.compile; its unwrapped weights are saved on the CPU.
    `hp` are the trial's resolved hyperparameters under their API names (camelCase); the image sizes
    and `enableOnnxNormalization` are read from them, and the JSON-compatible ones are kept in the
    checkpoint. `onnx=False` skips `model.onnx`.
    """
    if not is_classification(task):
        raise ValueError(f"write_model_artifacts exports classification models, not {task}")
    task = Task(task)
    classes = [str(name) for name in classes]
    _check_classes(model, classes)
    settings = settings_json(task, hp)
    outputs_dir = Path(outputs_dir)
    outputs_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(outputs_dir)

    labels_bytes = (json.dumps(classes, ensure_ascii=False) + "\n").encode("utf-8")
    final = outputs_dir / MLFLOW_MODEL_DIR
    staging = Path(tempfile.mkdtemp(prefix=f".{MLFLOW_MODEL_DIR}.staging-", dir=outputs_dir))
    try:
        staging.chmod(_DIR_MODE)
        artifacts = staging / ARTIFACTS_DIR
        artifacts.mkdir(mode=_DIR_MODE)
        checkpoint = _checkpoint(
            model,
            model_name=model_name,
            task=task,
            classes=classes,
            settings=settings,
            hp=hp,
            metrics=metrics,
            epoch=epoch,
        )
        write_atomically(artifacts / MODEL_FILE, lambda handle: torch.save(checkpoint, handle))
        atomic_write_bytes(artifacts / SETTINGS_FILE, (json.dumps(settings, indent=2) + "\n").encode())
        atomic_write_bytes(staging / LABELS_FILE, labels_bytes)
        requirements = runtime_requirements()
        atomic_write_bytes(staging / "requirements.txt", ("\n".join(requirements) + "\n").encode())
        atomic_write_bytes(staging / "python_env.yaml", _yaml(_python_env()))
        atomic_write_bytes(staging / "conda.yaml", _yaml(_conda_env(requirements)))
        # Written last: a folder with an MLmodel is a complete model.
        atomic_write_bytes(
            staging / "MLmodel",
            _yaml(_mlmodel(model_name=model_name, task=task, training_run_id=training_run_id)),
        )
        _swap_in(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    atomic_write_bytes(outputs_dir / LABELS_FILE, labels_bytes)

    onnx_path: Path | None = None
    onnx_error: str | None = None
    if onnx:
        try:
            onnx_path = export_onnx(
                model,
                outputs_dir / ONNX_FILE,
                crop_size=settings["valid_crop_size"],
                normalize=bool(hp.get("enableOnnxNormalization") or False),
            )
        except Exception as err:  # the MLflow model is in place; an exporter gap must not lose the trial
            onnx_error = f"{type(err).__name__}: {err}"
            _logger.warning("ONNX export of %s failed, MLflow model written anyway: %s", model_name, onnx_error)
    if onnx_path is None:
        # An earlier export's model.onnx holds other weights than the MLflow model now: never leave it.
        (outputs_dir / ONNX_FILE).unlink(missing_ok=True)
    _logger.info("exported %s model to %s", model_name, final)
    return ExportResult(
        mlflow_model_dir=final,
        model_pt=final / ARTIFACTS_DIR / MODEL_FILE,
        settings_json=final / ARTIFACTS_DIR / SETTINGS_FILE,
        labels_json=outputs_dir / LABELS_FILE,
        onnx=onnx_path,
        onnx_error=onnx_error,
    )


def runtime_requirements() -> list[str]:
    """requirements.txt lines for loading and scoring: installed versions pinned (local labels dropped)."""
    lines = []
    for dist, fallback in _RUNTIME_DISTRIBUTIONS:
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            lines.append(fallback)
            continue
        name = fallback.split("=")[0].split(">")[0].split("<")[0]
        lines.append(f"{name}=={version.split('+')[0]}")
    return lines


# -- checkpoint ----------------------------------------------------------------------------------------


def _unwrap(model: nn.Module) -> nn.Module:
    inner = getattr(model, "module", model)  # DistributedDataParallel / DataParallel
    inner = getattr(inner, "_orig_mod", inner)  # torch.compile
    if not isinstance(inner, nn.Module):
        raise TypeError(f"expected a torch module, got {type(inner).__name__}")
    return inner


def _check_classes(model: nn.Module, classes: list[str]) -> None:
    if not classes:
        raise ValueError("a classifier needs at least one class name")
    duplicates = sorted({name for name in classes if classes.count(name) > 1})
    if duplicates:
        raise ValueError(f"class names must be unique, repeated: {', '.join(duplicates)}")
    head = getattr(_unwrap(model), "num_classes", None)
    if isinstance(head, int) and head != len(classes):
        raise ValueError(f"the model has {head} outputs but {len(classes)} class names were given")


def _state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    state = _unwrap(model).state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        for prefix in ("module.", "_orig_mod."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = tensor.detach().to("cpu").clone()
    return out


def _checkpoint(
    model: nn.Module,
    *,
    model_name: str,
    task: Task,
    classes: list[str],
    settings: Mapping[str, int],
    hp: Mapping[str, Any],
    metrics: Mapping[str, float],
    epoch: int,
) -> dict[str, Any]:
    """Reference 9.2's dict, restricted to what `torch.load(weights_only=True)` accepts."""
    multilabel = task == Task.IMAGE_CLASSIFICATION_MULTILABEL
    clean_metrics = {str(k): float(v) for k, v in metrics.items()}
    score = clean_metrics.get(PRIMARY_METRIC[task])
    return {
        "epoch": int(epoch),
        "model_name": str(model_name),
        "number_of_classes": len(classes),
        "specs": {
            # What build_classifier needs to rebuild the network.
            "model_specs": {
                "model_name": str(model_name),
                "num_classes": len(classes),
                "image_size": int(settings["train_crop_size"]),
                "multilabel": multilabel,
            },
            "model_settings": dict(settings),
            "classes": list(classes),
            "inference_settings": {"task": task.value, "multilabel": multilabel, **settings},
        },
        "model_state": _state_dict(model),
        "score": score,
        "metrics": clean_metrics,
        "hyperparameters": _plain(hp),
        "kubevision_version": __version__,
    }


def _plain(value: Any) -> Any:
    """`value` as JSON-like builtins (what weights_only unpickling accepts); other values are dropped."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):  # also numpy integers
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)  # plain str, also for StrEnum members
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            plain = _plain(item)
            if plain is not None or item is None:
                out[str(key)] = plain
        return out
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return None


# -- MLmodel and environment files --------------------------------------------------------------------


def _python_version() -> str:
    return ".".join(str(part) for part in sys.version_info[:3])


def _mlmodel(*, model_name: str, task: Task, training_run_id: str | None) -> dict[str, Any]:
    mlmodel: dict[str, Any] = {
        "flavors": {
            "python_function": {
                "loader_module": LOADER_MODULE,
                "data": ARTIFACTS_DIR,
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "python_version": _python_version(),
            }
        },
        "metadata": {
            "base_model_name": model_name,
            "finetuning_task": task.value,
            "is_automl_model": True,
            "training_run_id": training_run_id,
            "kubevision_version": __version__,
        },
        "model_uuid": uuid.uuid4().hex,
        "signature": {
            "inputs": json.dumps(_SIGNATURE_INPUTS),
            "outputs": json.dumps(_SIGNATURE_OUTPUTS),
            "params": None,
        },
        "utc_time_created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    # Informational, as MLflow writes it; read from package metadata without importing mlflow.
    with contextlib.suppress(metadata.PackageNotFoundError):
        mlmodel["mlflow_version"] = metadata.version("mlflow-skinny")
    return mlmodel


def _python_env() -> dict[str, Any]:
    return {
        "python": _python_version(),
        "build_dependencies": ["pip", "setuptools", "wheel"],
        "dependencies": ["-r requirements.txt"],
    }


def _conda_env(requirements: list[str]) -> dict[str, Any]:
    return {
        "name": "kubevision-env",
        "channels": ["conda-forge"],
        "dependencies": [f"python={_python_version()}", "pip", {"pip": requirements}],
    }


def _yaml(data: Mapping[str, Any]) -> bytes:
    return yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=False).encode("utf-8")


# -- atomic files ----------------------------------------------------------------------------------------




def _swap_in(staging: Path, final: Path) -> None:
    """Replace the folder `final` by `staging` so that `final` is never a partial model."""
    if not final.exists():
        os.replace(staging, final)
        return
    retired = final.with_name(f".{final.name}.retired-{secrets.token_hex(4)}")
    os.replace(final, retired)
    os.replace(staging, final)
    shutil.rmtree(retired, ignore_errors=True)


def _remove_stale_staging(outputs_dir: Path) -> None:
    """Leftovers of an export that was killed midway (never a complete model)."""
    for leftover in outputs_dir.glob(f".{MLFLOW_MODEL_DIR}.*"):
        shutil.rmtree(leftover, ignore_errors=True)
