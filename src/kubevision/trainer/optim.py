"""Optimizer and learning-rate schedule from the hyperparameters (reference 4.1), as Azure's runtime builds them.

Why our own factory and not timm's `create_optimizer_v2` / `create_scheduler`: the job names Azure's
hyperparameters and a user comparing a kubevision trial with an Azure one must get the same
learning-rate curve from the same `learningRate`, `warmupCosineLrCycles` ... timm's defaults differ
(no weight decay on biases and norms, per-epoch cosine with a floor). So:

- Only parameters with `requires_grad` go to the optimizer: frozen layers (`layersToFreeze`) are not
  in its state at all, which keeps AdamW's moment buffers small and makes the checkpoint's optimizer
  state match the trainable set exactly.
- Weight decay applies to every trainable parameter, biases and norm weights included, as in Azure's
  runtime (one parameter group). Excluding them is a common refinement, but it would change what a
  given `weightDecay` means relative to Azure, and `weightDecay` is a searched hyperparameter.
- `sgd` takes `momentum`, `nesterov`, `weightDecay`; Nesterov needs momentum, so `nesterov` with
  `momentum: 0` falls back to plain SGD (logged) instead of torch's ValueError: `nesterov` defaults to
  true, and a user who sweeps `momentum` down to 0 did not ask for an error. `adam` and `adamw` take
  `beta1`, `beta2`, `amsGradient`, `weightDecay` (Adam's is an L2 term in the gradient, AdamW's is
  decoupled, as in torch).

Schedules are `LambdaLR`s stepped once per OPTIMIZER step (after gradient accumulation), so their
`state_dict` holds only numbers and a resumed trial continues on the same curve. With `s` the number
of optimizer steps taken so far, `S = steps_per_epoch`, `E = epochs`:

- `warmup_cosine` (Azure's `WarmupCosineSchedule`, the HF/BERT schedule): `W = warmupCosineLrWarmupEpochs * S`,
  `T = E * S`, `c = warmupCosineLrCycles`;
  `factor(s) = s / max(1, W)` while `s < W`, else with `progress = (s - W) / max(1, T - W)`:
  `factor(s) = max(0, 0.5 * (1 + cos(pi * c * 2 * progress)))`.
  The warmup starts at 0, so the very first optimizer step runs at learning rate 0 (as Azure's does).
  With the default c = 0.45 the curve ends at 0.5 * (1 + cos(0.9 pi)) = 0.0245 of `learningRate`, not 0;
  c = 0.5 decays to exactly 0 at the last step.
- `step`: `factor(s) = stepLrGamma ** (s // (stepLrStepSize * S))`, i.e. torch's per-epoch `StepLR`
  expressed in optimizer steps: the learning rate is multiplied by gamma every `stepLrStepSize` epochs.

The learning rate in effect is `learningRate * factor(s)`; `lr_at` computes it at the start of an
epoch without building a model, for tests and reports.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from kubevision.api.errors import KubevisionError, Problem

__all__ = ["StepFactor", "WarmupCosineFactor", "build_optimizer", "build_scheduler", "lr_at"]

_logger = logging.getLogger(__name__)


def build_optimizer(model: nn.Module, hp: Mapping[str, Any]) -> torch.optim.Optimizer:
    """The optimizer `hp["optimizer"]` over the trainable parameters of `model`.

    `hp` is the resolved camelCase hyperparameter dict (`resolve_training_parameters`).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise KubevisionError(
            "the model has no trainable parameters",
            [Problem(f"{hp.get('layersToFreeze')} freezes every layer; lower it", field="layersToFreeze")],
        )
    name = str(hp["optimizer"]).lower()
    lr = float(hp["learningRate"])
    weight_decay = float(hp["weightDecay"])
    if name == "sgd":
        momentum = float(hp["momentum"])
        nesterov = bool(hp["nesterov"])
        if nesterov and momentum <= 0:
            _logger.info("nesterov needs momentum > 0; momentum is %s, so plain SGD is used", momentum)
            nesterov = False
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(
            params,
            lr=lr,
            betas=(float(hp["beta1"]), float(hp["beta2"])),
            weight_decay=weight_decay,
            amsgrad=bool(hp["amsGradient"]),
        )
    raise KubevisionError(
        f"unknown optimizer {hp['optimizer']!r}", [Problem("expected one of sgd, adam, adamw", field="optimizer")]
    )


@dataclass
class WarmupCosineFactor:
    """Learning-rate factor of Azure's warmup-cosine schedule at optimizer step `s` (module docstring).

    A plain class with number attributes (not a closure) so that `LambdaLR.state_dict()` stores its
    parameters and `load_state_dict` puts them back: a resumed trial continues on the curve it started on.
    """

    warmup_steps: int
    total_steps: int
    cycles: float

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return float(step) / float(max(1, self.warmup_steps))
        progress = float(step - self.warmup_steps) / float(max(1, self.total_steps - self.warmup_steps))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * self.cycles * 2.0 * progress)))


@dataclass
class StepFactor:
    """Learning-rate factor of the step schedule: `gamma ** (step // step_steps)`."""

    step_steps: int
    gamma: float

    def __call__(self, step: int) -> float:
        return float(self.gamma ** (step // self.step_steps))


def _factor(hp: Mapping[str, Any], steps_per_epoch: int, epochs: int) -> WarmupCosineFactor | StepFactor:
    if steps_per_epoch < 1 or epochs < 1:
        raise ValueError(f"steps_per_epoch and epochs must be >= 1, got {steps_per_epoch} and {epochs}")
    name = str(hp["learningRateScheduler"]).lower()
    if name == "warmup_cosine":
        return WarmupCosineFactor(
            warmup_steps=int(hp["warmupCosineLrWarmupEpochs"]) * steps_per_epoch,
            total_steps=epochs * steps_per_epoch,
            cycles=float(hp["warmupCosineLrCycles"]),
        )
    if name == "step":
        return StepFactor(step_steps=int(hp["stepLrStepSize"]) * steps_per_epoch, gamma=float(hp["stepLrGamma"]))
    raise KubevisionError(
        f"unknown learning-rate scheduler {hp['learningRateScheduler']!r}",
        [Problem("expected one of warmup_cosine, step", field="learningRateScheduler")],
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, hp: Mapping[str, Any], *, steps_per_epoch: int, epochs: int
) -> LRScheduler:
    """The schedule `hp["learningRateScheduler"]`, to be stepped once per optimizer step.

    `steps_per_epoch` counts optimizer steps, i.e. `ceil(batches per epoch / gradientAccumulationStep)`.
    Building it sets the optimizer's learning rate to the step-0 value (0 under a warmup).
    """
    return LambdaLR(optimizer, lr_lambda=_factor(hp, steps_per_epoch, epochs))


def lr_at(hp: Mapping[str, Any], epoch: int, steps_per_epoch: int, epochs: int) -> float:
    """The learning rate in effect at the start of `epoch` (0-based: epoch 0 starts at step 0)."""
    return float(hp["learningRate"]) * _factor(hp, steps_per_epoch, epochs)(epoch * steps_per_epoch)
