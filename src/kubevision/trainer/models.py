"""The twelve Azure classification model names, built from timm, never downloaded.

Why an explicit registry: the user writes Azure's names (`vitb16r224`, `seresnext`), timm knows the
architectures under its own names, and the trainer, the freezing table and the tests all need the
same answer to "which network is `resnest101`". A frozen table of `ModelSpec`s says it once; there
is no lookup through a module's namespace, so a typo cannot reach an unrelated timm model.

Why never a hub download: trials run on cluster nodes that often have no internet, and tests must not
touch the network (DESIGN.md). `timm.create_model` is always called with `pretrained=False`; weights
come only from a file the user points `pretrainedWeights` at, loaded with `load_intersecting`, which
keeps every tensor whose name and shape fit and reports the rest (the class head usually differs).
Incremental training (reference 9.9) loads its checkpoint through the same function.
"""

from __future__ import annotations

import logging
import math
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import torch
from torch import nn

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.tasks import CLASSIFICATION_MODELS

__all__ = [
    "CLASSIFIERS",
    "Family",
    "LoadReport",
    "ModelSpec",
    "build_classifier",
    "extract_state_dict",
    "load_intersecting",
    "model_family",
    "model_spec",
    "read_weights",
]

_logger = logging.getLogger(__name__)

Family = Literal["mobilenetv2", "resnet", "resnest", "seresnext", "vit"]


@dataclass(frozen=True)
class ModelSpec:
    """One Azure model name and the timm architecture that implements it."""

    name: str
    """The Azure / kubevision name (`modelName`)."""
    timm_name: str
    family: Family

    @property
    def fixed_input_size(self) -> bool:
        """ViTs learn one position embedding per patch, so the input size is part of the model."""
        return self.family == "vit"


CLASSIFIERS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            ModelSpec("mobilenetv2", "mobilenetv2_100", "mobilenetv2"),
            ModelSpec("resnet18", "resnet18", "resnet"),
            ModelSpec("resnet34", "resnet34", "resnet"),
            ModelSpec("resnet50", "resnet50", "resnet"),
            ModelSpec("resnet101", "resnet101", "resnet"),
            ModelSpec("resnet152", "resnet152", "resnet"),
            ModelSpec("resnest50", "resnest50d", "resnest"),
            ModelSpec("resnest101", "resnest101e", "resnest"),
            ModelSpec("seresnext", "seresnext50_32x4d", "seresnext"),
            ModelSpec("vits16r224", "vit_small_patch16_224", "vit"),
            ModelSpec("vitb16r224", "vit_base_patch16_224", "vit"),
            ModelSpec("vitl16r224", "vit_large_patch16_224", "vit"),
        )
    }
)
"""Azure classification model name -> spec. Same names, same order as `api.tasks.CLASSIFICATION_MODELS`."""

# Checkpoint layouts seen in the wild, tried in this order: ours and Azure's (reference 9.2), the
# torchvision references, timm's train.py / Lightning.
_NESTED_STATE_KEYS = ("model_state", "model", "state_dict")
_DDP_PREFIX = "module."


def model_spec(model_name: str) -> ModelSpec:
    """The spec of an Azure classification model name; `KubevisionError` listing the valid ones."""
    try:
        return CLASSIFIERS[model_name]
    except KeyError:
        raise KubevisionError(
            f"Unknown classification model {model_name!r}",
            [Problem(f"modelName must be one of: {', '.join(CLASSIFICATION_MODELS)}", field="modelName")],
        ) from None


def model_family(model_name: str) -> Family:
    """The family of a model name, which decides its layer names and input-size rules.

    One of "resnet", "mobilenetv2", "seresnext", "resnest", "vit".
    """
    return model_spec(model_name).family


@dataclass(frozen=True)
class LoadReport:
    """What `load_intersecting` did, tensor by tensor name (parameters and buffers)."""

    loaded: tuple[str, ...]
    shape_mismatch: tuple[str, ...]
    """In both, with another shape (typically the class head): kept at the model's initialisation."""
    unexpected: tuple[str, ...]
    """In the file only: ignored."""
    missing: tuple[str, ...]
    """In the model only (includes `shape_mismatch`): kept at the model's initialisation."""

    @property
    def skipped(self) -> int:
        """Tensors of the file that were not loaded."""
        return len(self.shape_mismatch) + len(self.unexpected)

    def summary(self, source: str = "weights") -> str:
        """One human line, e.g. for the trial log."""
        model_total = len(self.loaded) + len(self.missing)
        file_total = len(self.loaded) + self.skipped
        line = (
            f"loaded {len(self.loaded)} of {model_total} model tensors from {source}; "
            f"skipped {self.skipped} of its {file_total}"
        )
        details = []
        if self.shape_mismatch:
            details.append(f"{len(self.shape_mismatch)} with another shape: {_sample(self.shape_mismatch)}")
        if self.unexpected:
            details.append(f"{len(self.unexpected)} the model lacks: {_sample(self.unexpected)}")
        left = len(self.missing) - len(self.shape_mismatch)
        if left:
            missing = [k for k in self.missing if k not in set(self.shape_mismatch)]
            details.append(f"{left} model tensors absent from the file: {_sample(missing)}")
        return f"{line} ({'; '.join(details)})" if details else line


def _sample(names: tuple[str, ...] | list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown}, ..." if len(names) > limit else shown


def load_intersecting(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str = "weights"
) -> LoadReport:
    """Copy into `model` every tensor of `state_dict` whose name and shape match; report the rest.

    This is how a pretrained or previous-run model gets a new class head: the head's tensors have
    another shape and stay at their initialisation, everything else is loaded. An empty intersection
    means the file is for another architecture, which is the user's to fix: `KubevisionError`.
    """
    own = model.state_dict()
    loaded, mismatch, unexpected = [], [], []
    for key, tensor in state_dict.items():
        if key not in own:
            unexpected.append(key)
        elif tuple(own[key].shape) != tuple(tensor.shape):
            mismatch.append(key)
        else:
            loaded.append(key)
    if not loaded:
        raise KubevisionError(
            f"No tensor of {source} fits the model: it was saved from another architecture",
            [
                Problem(f"the file holds {len(state_dict)} tensors, e.g. {_sample(list(state_dict))}"),
                Problem(f"the model expects tensors such as {_sample(list(own))}"),
            ],
        )
    model.load_state_dict({key: state_dict[key] for key in loaded}, strict=False)
    missing = tuple(key for key in own if key not in set(loaded))
    return LoadReport(tuple(loaded), tuple(mismatch), tuple(unexpected), missing)


def read_weights(location: str) -> dict[str, torch.Tensor]:
    """Read a state dict from a local path or `file://` URI (`.safetensors` or a torch pickle).

    Remote locations are refused rather than fetched: a trial must not depend on the network, and
    the user can download once and point at the copy. Checkpoints that wrap the weights (ours,
    Azure's `model_state`, torchvision's `model`, timm's `state_dict`) are unwrapped.
    """
    path = _local_path(location)
    if not path.is_file():
        raise KubevisionError(
            f"Pretrained weights not found: {location}",
            [Problem("pretrainedWeights must name an existing file", field="pretrainedWeights")],
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw: Any = load_file(str(path), device="cpu")
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any decoding failure is the same user problem: not a weights file
        raise KubevisionError(
            f"Cannot read pretrained weights from {location}",
            [Problem(f"expected a PyTorch state dict (.pt/.pth) or .safetensors file: {err}")],
        ) from err
    return extract_state_dict(raw, source=location)


def _local_path(location: str) -> Path:
    parsed = urllib.parse.urlparse(location)
    # One-letter "schemes" are Windows drive letters, not URLs.
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:
        if parsed.scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise KubevisionError(
                    f"Unsupported file URI {location}",
                    [Problem("use file:///absolute/path (no host)", field="pretrainedWeights")],
                )
            return Path(urllib.parse.unquote(parsed.path))
        return Path(location).expanduser()
    raise KubevisionError(
        f"Pretrained weights must be a local file, not a {parsed.scheme}:// location: {location}",
        [
            Problem(
                "download the file first (e.g. `curl -L -o weights.pth <url>`, or copy it into the "
                "image or a mounted volume) and set pretrainedWeights to its path",
                field="pretrainedWeights",
            )
        ],
    )


def extract_state_dict(obj: object, *, source: str = "weights") -> dict[str, torch.Tensor]:
    """The tensor-name -> tensor mapping inside a loaded checkpoint, without DDP's `module.` prefix."""
    state = obj
    while isinstance(state, Mapping):
        nested = next((state[k] for k in _NESTED_STATE_KEYS if isinstance(state.get(k), Mapping)), None)
        if nested is None:
            break
        state = nested
    if not isinstance(state, Mapping) or not state:
        raise KubevisionError(
            f"{source} holds no state dict",
            [Problem(f"expected a mapping of tensor names to tensors, found {type(state).__name__}")],
        )
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise KubevisionError(f"{source} holds no tensors", [Problem(f"keys: {_sample(list(state))}")])
    if all(k.startswith(_DDP_PREFIX) for k in tensors):
        tensors = {k[len(_DDP_PREFIX) :]: v for k, v in tensors.items()}
    return tensors


def build_classifier(
    model_name: str,
    num_classes: int,
    *,
    pretrained_weights: str | None = None,
    image_size: int | None = None,
) -> nn.Module:
    """A timm classifier for an Azure model name with a `num_classes`-way head.

    `image_size` is the training crop. ViTs are built for it (timm `img_size`), so small crops work,
    and pretrained ViT position embeddings are resampled to it; CNNs pool globally and ignore it.
    Without `pretrained_weights` the model starts from random initialisation and one info line says
    so; with them, see `read_weights` and `load_intersecting`.
    """
    spec = model_spec(model_name)
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if image_size is not None and image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")

    # Defensive only: pretrained=False never downloads, but nothing in a trial should reach a hub.
    # Set before timm (and with it huggingface_hub) is first imported, which reads it at import time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import timm

    kwargs: dict[str, Any] = {}
    if spec.fixed_input_size and image_size is not None:
        kwargs["img_size"] = image_size
    model: nn.Module = timm.create_model(spec.timm_name, pretrained=False, num_classes=num_classes, **kwargs)

    if pretrained_weights is None:
        _logger.info(
            "%s (timm %s) starts from random initialisation: no pretrainedWeights given",
            model_name,
            spec.timm_name,
        )
        return model
    state = read_weights(pretrained_weights)
    if spec.fixed_input_size:
        state = _resample_vit_pos_embed(state, model)
    report = load_intersecting(model, state, source=pretrained_weights)
    _logger.info("%s (timm %s): %s", model_name, spec.timm_name, report.summary(pretrained_weights))
    return model


def _resample_vit_pos_embed(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Resample a square grid of position embeddings to the model's patch grid (bicubic, as timm).

    A ViT pretrained at 224 has 14x14 position embeddings; the same ViT trained on 64-pixel crops
    has 4x4. Without this the embeddings would be skipped as a shape mismatch and start random.
    """
    from timm.layers.pos_embed import resample_abs_pos_embed

    theirs = state.get("pos_embed")
    ours = getattr(model, "pos_embed", None)
    if not isinstance(theirs, torch.Tensor) or not isinstance(ours, torch.Tensor):
        return state
    if theirs.shape == ours.shape or theirs.ndim != 3 or theirs.shape[-1] != ours.shape[-1]:
        return state
    prefix_tokens = int(getattr(model, "num_prefix_tokens", 1))
    if theirs.shape[1] <= prefix_tokens:
        return state
    side = math.isqrt(theirs.shape[1] - prefix_tokens)
    if side * side != theirs.shape[1] - prefix_tokens:
        return state  # not a square grid: leave it to load_intersecting to skip and report
    grid = [int(n) for n in model.patch_embed.grid_size]  # type: ignore[union-attr]
    resampled = resample_abs_pos_embed(theirs, new_size=grid, num_prefix_tokens=prefix_tokens)
    _logger.info("resampled pretrained position embeddings from %dx%d to %dx%d patches", side, side, *grid)
    return {**state, "pos_embed": resampled}
