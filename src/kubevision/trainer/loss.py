"""The classification loss, with Azure's `weightedLoss` rule (reference 4.2).

Why a module of its own: the rule has a trap users hit (reference 12.8): Azure applies the weights
only when the training set is imbalanced, largest class count / smallest class count > 2, and says
nothing otherwise. Here the decision and its reason travel with the loss (`LossSetup.reason`) so the
trial log states whether weighting is on and why.

Decisions (all visible in the tests):

- Multi-class: `CrossEntropyLoss(weight=w)`. `w` is inverse class frequency normalised as sklearn's
  "balanced" weights, `w_c = N / (K * n_c)` (N training images, K classes present), so a balanced set
  gets all ones and the weighted number of examples equals N. Cross-entropy with `reduction="mean"`
  divides by the summed weights of the batch, so this normalisation does not change training compared
  with Azure's unnormalised `1 / n_c`; it only makes the logged weights readable.
- Multi-label: `BCEWithLogitsLoss(pos_weight=p)` with `p_c = (N - n_c) / n_c`, negatives over
  positives of class c (Azure's runtime and torch's documented meaning of `pos_weight`). `num_images`
  (N) is required for it. Unlike cross-entropy weights, the scale of `pos_weight` matters: it trades
  recall against precision per class. A class on every image (no negatives) gets 1, not Azure's 0:
  a zero `pos_weight` would silence the class's positives and it would never be learned.
- `weightedLoss: 1` takes the square root of those weights, `2` uses them as they are, `0` or a
  balanced set gives the plain loss.
- Imbalance is `max(n_c) / min(n_c)` over classes with at least one training example, with true
  division (> 2 means e.g. 5 vs 2 counts as imbalanced). A class with no training example cannot be
  reweighted and must not make a balanced set look infinitely imbalanced; its weight is 1 (neutral:
  the class never occurs as a target, so the value has no effect on training, but it stays finite
  when the same loss is evaluated on a validation set that has the class).
- Weights are registered buffers of the loss module: `loss.to(device)` moves them with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["IMBALANCE_THRESHOLD", "LossSetup", "build_loss", "imbalance_rate"]

IMBALANCE_THRESHOLD = 2.0
"""Azure's `imbalance_rate_threshold`: weighting applies only when largest/smallest class count exceeds it."""

_MULTICLASS = "image_classification"
_MULTILABEL = "image_classification_multilabel"


@dataclass(frozen=True)
class LossSetup:
    """The loss module and whether class weighting is on, with a sentence for the trial log."""

    fn: nn.Module
    weighted: bool
    reason: str


def imbalance_rate(class_counts: Sequence[int]) -> float:
    """Largest over smallest count among classes with at least one example (1.0 when fewer than one class)."""
    present = [int(c) for c in class_counts if c > 0]
    if not present:
        return 1.0
    return max(present) / min(present)


def _class_weights(task: str, counts: Sequence[int], num_images: int | None, power: float) -> torch.Tensor:
    n = torch.tensor([float(c) for c in counts], dtype=torch.float32)
    present = n > 0
    if task == _MULTICLASS:
        total = float(n.sum())
        raw = total / (float(present.sum()) * n.clamp(min=1.0))
    else:
        if num_images is None:
            raise ValueError("build_loss needs num_images for multi-label weighting (pos_weight = negatives/positives)")
        if any(c > num_images for c in counts):
            raise ValueError(f"a class count exceeds num_images={num_images}: {list(counts)}")
        negatives = float(num_images) - n
        present &= negatives > 0
        raw = negatives / n.clamp(min=1.0)
    return torch.where(present, raw.pow(power), torch.ones_like(raw))


def build_loss(
    task: str, hp: Mapping[str, Any], class_counts: Sequence[int], *, num_images: int | None = None
) -> LossSetup:
    """The training loss of a classification task.

    `class_counts[i]` is the number of training examples of class i (for multi-label: the number of
    images labelled with it). `num_images` is the number of training images; multi-label weighting
    needs it. Detection and segmentation models compute their own losses and have no `weightedLoss`.
    """
    task = str(getattr(task, "value", task))
    if task not in (_MULTICLASS, _MULTILABEL):
        raise ValueError(f"build_loss is for classification tasks, not {task!r}")
    mode = int(hp.get("weightedLoss") or 0)
    plain: nn.Module = nn.CrossEntropyLoss() if task == _MULTICLASS else nn.BCEWithLogitsLoss()
    if mode == 0:
        return LossSetup(plain, False, "weightedLoss is 0: plain loss")
    if mode not in (1, 2):
        raise ValueError(f"weightedLoss must be 0, 1 or 2, got {mode}")
    rate = imbalance_rate(class_counts)
    if rate <= IMBALANCE_THRESHOLD:
        return LossSetup(
            plain,
            False,
            f"weightedLoss is {mode} but the classes are balanced enough "
            f"(largest/smallest class = {rate:.3g} <= {IMBALANCE_THRESHOLD:g}): plain loss",
        )
    power = 0.5 if mode == 1 else 1.0
    weights = _class_weights(task, class_counts, num_images, power)
    kind = "sqrt of class weights" if mode == 1 else "class weights"
    values = ", ".join(f"{w:.3g}" for w in weights.tolist())
    reason = (
        f"weightedLoss is {mode}: {kind} applied (largest/smallest class = {rate:.3g} > {IMBALANCE_THRESHOLD:g}); "
        f"{'weights' if task == _MULTICLASS else 'pos_weight'} [{values}]"
    )
    fn: nn.Module = (
        nn.CrossEntropyLoss(weight=weights) if task == _MULTICLASS else nn.BCEWithLogitsLoss(pos_weight=weights)
    )
    return LossSetup(fn, True, reason)
