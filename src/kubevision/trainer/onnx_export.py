"""Export a trained classifier to ONNX with Azure's contract (reference 9.8).

Why ONNX at all: users deploy AutoML models where Python and PyTorch are unwelcome (C#, Java, edge
devices, Triton). Azure exports every trial's best model as `model.onnx` with input `input1`
`(batch, 3, crop, crop)` (dynamic batch) and output `output1` `(batch, num_classes)` logits, and its
published client code depends on those names; kubevision keeps them so that code works unchanged.

Why the torch.export-based ("dynamo") exporter: since PyTorch 2.9 it is the default and the TorchScript
exporter raises a DeprecationWarning on every call; in torch 2.14 the dynamo exporter runs warning-free
on every classification backbone (it needs onnxscript, a trainer dependency). The batch axis is
declared with `torch.export.Dim`, and the example batch has two images so it is not specialised to 1.

`normalize=True` (`enableOnnxNormalization`) puts ImageNet mean/std (the constants of `presets`) into the
graph, so a client feeds RGB in [0, 1] after resize and centre crop and needs to know nothing about the
model. The model is exported from a CPU float32 copy in eval mode: the caller's model (perhaps on a GPU,
perhaps still training) is left untouched, and the graph never carries dropout or batch statistics.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from kubevision.trainer.presets import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "export_onnx"]

INPUT_NAME = "input1"
OUTPUT_NAME = "output1"

_logger = logging.getLogger(__name__)

# The dynamo exporter's passes log dozens of INFO lines per export; they say nothing a user can act
# on and would bury the trial's own log.
for _noisy in ("onnxscript", "onnx_ir", "torch.onnx", "torch.export"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


class _OnnxClassifier(nn.Module):
    """The exported graph: logits of `model`, optionally of ImageNet-normalised input.

    The wrapper also fixes the forward argument's name to `input1`, whatever the backbone calls it, so
    the dynamic-shape spec and the graph's input name agree.
    """

    def __init__(self, model: nn.Module, *, normalize: bool) -> None:
        super().__init__()
        self.model = model
        self.normalize = normalize
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, input1: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            input1 = (input1 - self.mean) / self.std
        logits: torch.Tensor = self.model(input1)
        return logits


def export_onnx(model: nn.Module, path: Path, *, crop_size: int, normalize: bool = False) -> Path:
    """Write `model` as an ONNX classifier to `path` (atomically) and return `path`.

    Input `input1` float32 `(batch, 3, crop_size, crop_size)` with a dynamic batch axis; output
    `output1` float32 `(batch, num_classes)` logits (apply softmax or sigmoid on the client). With
    `normalize`, the input is RGB in [0, 1] and the graph applies ImageNet mean/std itself; without,
    the input is already normalised exactly as `ClassificationPresetEval` does.
    """
    if crop_size < 1:
        raise ValueError(f"crop_size must be positive, got {crop_size}")
    # DDP / DataParallel and torch.compile wrappers hold the real module; export that.
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    cpu_copy = copy.deepcopy(inner).to(device="cpu", dtype=torch.float32)
    wrapper = _OnnxClassifier(cpu_copy, normalize=normalize).eval()
    example = torch.rand(2, 3, crop_size, crop_size)
    batch = torch.export.Dim("batch")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    program = torch.onnx.export(
        wrapper,
        (example,),
        None,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes={INPUT_NAME: {0: batch}},
        dynamo=True,
        verbose=False,
    )
    if program is None:  # only the TorchScript exporter returns None
        raise RuntimeError("torch.onnx.export returned no ONNX program")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o644)  # readable by the serving process, not mkstemp's 0600
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # One self-contained file: every kubevision classifier is below protobuf's 2 GB limit, and
        # external data would be named after the temporary file.
        program.save(tmp, external_data=False)
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _logger.info("exported ONNX model to %s (crop %d, normalization %s)", path, crop_size, normalize)
    return path


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
