"""The training and evaluation loops (the torchvision references' `train_one_epoch` / `evaluate`, typed).

Why these functions take everything as arguments: the trial program (train.py) owns the order of
things (resume, epochs, validation frequency, early stopping, checkpoints); these two only run an
epoch. They know three things the references leave to the caller:

- **Azure's runtime behaviour** (reference 4.1): gradients are clipped by value at 5.0, by norm at
  1.0 for ViTs (`clip_for_model`); `gradientAccumulationStep` batches make one optimizer step, and
  the learning-rate scheduler steps once per optimizer step (the schedules are built per step).
- **A diverging run is the user's to fix, not a crash**: a non-finite loss raises
  `NonFiniteLossError` (a `KubevisionError`) naming the epoch and batch and what to lower. The check
  reads the loss of batch i after batch i+1 has been queued on the GPU, so it never stalls the
  pipeline (the torchvision loop syncs on every `loss.item()`); the step it lets through is on
  weights the failed trial discards anyway.
- **DDP**: accumulation micro-batches run under `no_sync()`; an all-bad batch (every image failed to
  decode) still runs forward and backward with a zero loss, so no rank ever skips a collective;
  evaluation gathers logits from every rank and drops the duplicates `DistributedSampler` pads the
  last batch with (by dataset index), so metrics are over each validation image exactly once.

Mixed precision (`amp_settings`) is CUDA only: bf16 where the GPU has it (no loss scaling needed),
else fp16 with a GradScaler. On CPU autocast would run bf16 kernels that are slower than fp32 on
most CPUs and change results between machines, so it is off.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from kubevision.api.errors import KubevisionError
from kubevision.trainer.data import Batch, prepare_images
from kubevision.trainer.models import model_family

__all__ = [
    "AmpSettings",
    "ClipSettings",
    "EpochStats",
    "EvalOutput",
    "NonFiniteLossError",
    "ProcessGroup",
    "amp_settings",
    "clip_for_model",
    "clip_gradients",
    "evaluate",
    "train_one_epoch",
    "use_channels_last",
]

_logger = logging.getLogger(__name__)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ProcessGroup(Protocol):
    """What the loops need of `kubevision.trainer.distributed.DistributedContext`."""

    @property
    def world_size(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    def gather_arrays(self, array: npt.NDArray[Any], /) -> npt.NDArray[Any]:
        """Every rank's `array`, concatenated along axis 0 in rank order, on every rank."""
        ...


class BatchSource(Iterable[Batch], Sized, Protocol):
    """A DataLoader of `Batch`es (or any sized iterable of them)."""


# ---- settings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AmpSettings:
    """Autocast on or off, and in which dtype; `use_scaler` when fp16 needs a GradScaler."""

    enabled: bool
    dtype: torch.dtype
    use_scaler: bool

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)


def amp_settings(device: torch.device, mode: str) -> AmpSettings:
    """Mixed precision for `device` and `runtime.amp` (`auto`, `off`, `bf16`, `fp16`).

    Off on anything but CUDA. `auto` is bf16 where the GPU supports it, else fp16; `bf16` on a GPU
    without it falls back to fp16 (with a warning) rather than failing a trial on an older node.
    """
    if mode not in ("auto", "off", "bf16", "fp16"):
        raise KubevisionError(f"runtime.amp must be auto, off, bf16 or fp16, not {mode!r}")
    if device.type != "cuda" or mode == "off":
        return AmpSettings(enabled=False, dtype=torch.float32, use_scaler=False)
    bf16 = torch.cuda.is_bf16_supported()
    if mode == "bf16" and not bf16:
        _logger.warning("this GPU has no bf16 support; mixed precision uses fp16 with loss scaling")
    if mode in ("auto", "bf16") and bf16:
        return AmpSettings(enabled=True, dtype=torch.bfloat16, use_scaler=False)
    return AmpSettings(enabled=True, dtype=torch.float16, use_scaler=True)


@dataclass(frozen=True)
class ClipSettings:
    """Gradient clipping: by `value` (each gradient element to +-max_value), by `norm`, or none."""

    kind: Literal["value", "norm"] | None
    max_value: float = 0.0


def clip_for_model(model_name: str) -> ClipSettings:
    """Azure's clipping for a classification model: norm 1.0 for ViTs, value 5.0 for CNNs (reference 4.1)."""
    if model_family(model_name) == "vit":
        return ClipSettings("norm", 1.0)
    return ClipSettings("value", 5.0)


def clip_gradients(parameters: Iterable[nn.Parameter], clip: ClipSettings) -> None:
    """Clip the gradients of `parameters` in place as `clip` says."""
    if clip.kind == "value":
        nn.utils.clip_grad_value_(parameters, clip.max_value)
    elif clip.kind == "norm":
        nn.utils.clip_grad_norm_(parameters, clip.max_value)


def use_channels_last(device: torch.device, model_name: str) -> bool:
    """Channels-last memory pays on CUDA convolutions; ViTs and CPUs gain nothing from it.

    The caller converts the model once (`model.to(memory_format=torch.channels_last)`); the loops
    convert each batch when `channels_last` is passed to them.
    """
    return device.type == "cuda" and model_family(model_name) != "vit"


# ---- training -----------------------------------------------------------------------------------


class NonFiniteLossError(KubevisionError):
    """The training loss became NaN or infinite: the run diverged."""

    def __init__(self, value: float, epoch: int, batch: int) -> None:
        self.value = value
        self.epoch = epoch
        self.batch = batch
        name = "NaN" if math.isnan(value) else "infinite"
        super().__init__(
            f"loss became {name} at epoch {epoch}, batch {batch}; lower learningRate (or use a "
            "warmup_cosine learningRateScheduler, or a larger trainingBatchSize)")


@dataclass(frozen=True)
class EpochStats:
    """One training epoch over all ranks.

    `loss` is the mean training loss per image; `images` the images trained on and `bad_images` those
    skipped because they could not be read (the bad fraction is `bad / (images + bad)`); `lr` the
    learning rate of the first parameter group after the epoch's last step.
    """

    loss: float
    images: int
    bad_images: int
    seconds: float
    lr: float
    steps: int


def _check_finite(loss: torch.Tensor, batch: int, *, epoch: int) -> None:
    value = float(loss.item())
    if not math.isfinite(value):
        raise NonFiniteLossError(value, epoch, batch)


def train_one_epoch(
    model: nn.Module,
    loader: BatchSource,
    optimizer: Optimizer,
    scheduler: LRScheduler | None,
    loss_fn: LossFn,
    *,
    ctx: ProcessGroup,
    amp: AmpSettings,
    scaler: torch.amp.GradScaler | None,
    grad_accumulation: int,
    clip: ClipSettings,
    epoch: int,
    channels_last: bool,
) -> EpochStats:
    """Train `model` for one pass over `loader`; returns the epoch's statistics over all ranks.

    Every `grad_accumulation` batches (and at the end of the epoch) the accumulated gradient is
    unscaled, clipped, applied, and `scheduler` steps once. `loss_fn` returns the mean loss of a
    batch; each micro-batch's loss is divided by the number of batches in its accumulation group, so
    a step always applies a mean gradient. `epoch` is only used in messages. Raises
    `NonFiniteLossError` when the loss becomes NaN or infinite.
    """
    if grad_accumulation < 1:
        raise ValueError(f"grad_accumulation must be >= 1, got {grad_accumulation}")
    if amp.use_scaler and scaler is None:
        raise ValueError("fp16 mixed precision needs a GradScaler")
    model.train()
    device = ctx.device
    batches = len(loader)
    ddp = model if isinstance(model, DistributedDataParallel) else None
    start = time.perf_counter()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    images = bad = steps = 0
    pending: tuple[torch.Tensor, int] | None = None
    optimizer.zero_grad(set_to_none=True)
    for i, batch in enumerate(loader):
        group_start = i - i % grad_accumulation
        group_size = min(grad_accumulation, batches - group_start)
        step_now = i + 1 == group_start + group_size
        inputs = prepare_images(batch, device, channels_last=channels_last)
        targets = batch.targets.to(device, non_blocking=True)
        n = batch.size
        sync = ddp.no_sync() if ddp is not None and not step_now else contextlib.nullcontext()
        with sync:
            with amp.autocast(device):
                logits = model(inputs)
                # An all-bad batch still goes through forward/backward: DDP needs every rank in every step.
                loss = loss_fn(logits, targets) if n else logits.sum() * 0.0
            scaled = loss / group_size
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        if pending is not None:  # batch i is queued; reading batch i-1's loss now does not stall the device
            _check_finite(*pending, epoch=epoch)
        pending = (loss.detach(), i + 1)
        loss_sum += loss.detach().to(torch.float64) * n
        images += n
        bad += batch.bad_count
        if step_now:
            if scaler is not None:
                scaler.unscale_(optimizer)
            clip_gradients(model.parameters(), clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if scheduler is not None:
                scheduler.step()
            steps += 1
    if pending is not None:
        _check_finite(*pending, epoch=epoch)
    totals = ctx.gather_arrays(np.array([[float(loss_sum.item()), images, bad]], dtype=np.float64)).sum(axis=0)
    all_images, all_bad = int(totals[1]), int(totals[2])
    return EpochStats(
        loss=float(totals[0]) / all_images if all_images else math.nan,
        images=all_images,
        bad_images=all_bad,
        seconds=time.perf_counter() - start,
        lr=float(optimizer.param_groups[0]["lr"]),
        steps=steps,
    )


# ---- evaluation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalOutput:
    """Validation results over all ranks, one row per validation image, in dataset order.

    `probs` (n, C) float64: softmax (multi-class) or sigmoid (multi-label) probabilities; `targets`
    int64 (n,) class indices or float32 (n, C) multi-hot; `indices` the dataset index of each row;
    `loss` the mean validation loss; `bad_images` the images that could not be read.
    """

    probs: npt.NDArray[np.float64]
    targets: npt.NDArray[Any]
    indices: npt.NDArray[np.int64]
    loss: float
    bad_images: int


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: BatchSource,
    loss_fn: LossFn,
    *,
    ctx: ProcessGroup,
    amp: AmpSettings,
    multilabel: bool,
    channels_last: bool = False,
) -> EvalOutput:
    """Score `loader` on every rank and gather the results on every rank (see `EvalOutput`).

    The loss is `loss_fn` over the gathered, de-duplicated logits, so it does not depend on how the
    images were split into batches or ranks.
    """
    model.eval()
    device = ctx.device
    logits_parts: list[torch.Tensor] = []
    target_parts: list[torch.Tensor] = []
    index_parts: list[torch.Tensor] = []
    bad_indices: list[int] = []
    for batch in loader:
        bad_indices.extend(b.index for b in batch.bad)
        if batch.size == 0:
            continue
        inputs = prepare_images(batch, device, channels_last=channels_last)
        with amp.autocast(device):
            logits = model(inputs)
        logits_parts.append(logits.float())
        target_parts.append(batch.targets)
        index_parts.append(batch.indices)
    num_classes = _num_classes(model, logits_parts)
    logits_np = (torch.cat(logits_parts).cpu().numpy() if logits_parts
                 else np.zeros((0, num_classes), dtype=np.float32))
    if target_parts:
        targets_np = torch.cat(target_parts).numpy()
    else:
        targets_np = (np.zeros((0, num_classes), dtype=np.float32) if multilabel else np.zeros(0, dtype=np.int64))
    indices_np = torch.cat(index_parts).numpy() if index_parts else np.zeros(0, dtype=np.int64)

    all_logits = ctx.gather_arrays(logits_np)
    all_targets = ctx.gather_arrays(targets_np)
    all_indices = ctx.gather_arrays(indices_np)
    all_bad = ctx.gather_arrays(np.asarray(bad_indices, dtype=np.int64))
    # DistributedSampler pads the last round with repeats of the first indices: keep one row per index.
    unique, first = np.unique(all_indices, return_index=True)
    logits_t = torch.from_numpy(np.ascontiguousarray(all_logits[first]))
    targets_t = torch.from_numpy(np.ascontiguousarray(all_targets[first]))
    if unique.size:
        loss = float(loss_fn(logits_t.to(device), targets_t.to(device)).item())
        probs_t = torch.sigmoid(logits_t) if multilabel else torch.softmax(logits_t, dim=1)
    else:
        loss = math.nan
        probs_t = logits_t
    return EvalOutput(
        probs=probs_t.to(torch.float64).numpy(),
        targets=targets_t.numpy(),
        indices=unique.astype(np.int64),
        loss=loss,
        bad_images=int(np.unique(all_bad).size),
    )


def _num_classes(model: nn.Module, logits: list[torch.Tensor]) -> int:
    if logits:
        return int(logits[0].shape[1])
    count = getattr(model.module if isinstance(model, DistributedDataParallel) else model, "num_classes", 0)
    return int(count) if isinstance(count, int) else 0
