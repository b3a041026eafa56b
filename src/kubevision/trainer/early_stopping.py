"""Early stopping and the best epoch, exactly as Azure's training loop decides them (reference 7).

Why reproduce the rule literally rather than use a textbook "patience" counter: `earlyStopping`,
`earlyStoppingPatience` and `earlyStoppingDelay` are Azure's hyperparameters, and users port jobs and
compare epoch counts. Azure's rule has two quirks that a textbook counter does not:

- The counter only starts at `epoch >= delay`, but improvements before the delay still reset it and
  still move the best epoch.
- A tie (`score == best`) does not reset the counter but does make this epoch the best one, so the
  kept weights are the latest of equally good epochs (reference 12.9).

After each validation at `epoch` (numbered as the trainer numbers it; Azure's loop counts from 0):
    if epoch >= delay: no_progress += 1
    if score > best:   no_progress = 0
    if score >= best:  best, best_epoch = score, epoch      (is_best)
    stop = enabled and no_progress > patience
The scores are "higher is better" (every primary metric is). A NaN score is never best and counts as
no progress. Before the first validation `best_score` is -inf, so the first finite score is best.
With `enabled` false the best epoch is still tracked (the best weights are exported either way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["EarlyStopper", "StopDecision"]


@dataclass(frozen=True)
class StopDecision:
    """What one validation means: keep these weights as the best? stop training now?"""

    is_best: bool
    stop: bool


class EarlyStopper:
    """Azure's early-stopping rule; `update` once per validation, in epoch order."""

    def __init__(self, enabled: bool, patience: int, delay: int) -> None:
        if patience < 0 or delay < 0:
            raise ValueError(f"patience and delay must be >= 0, got {patience} and {delay}")
        self.enabled = enabled
        self.patience = patience
        self.delay = delay
        self.best_score = -math.inf
        self.best_epoch: int | None = None
        self.no_progress = 0

    def update(self, epoch: int, score: float) -> StopDecision:
        """Record the primary metric of the validation at `epoch`."""
        if epoch >= self.delay:
            self.no_progress += 1
        is_best = False
        if not math.isnan(score):
            if score > self.best_score:
                self.no_progress = 0
            if score >= self.best_score:
                self.best_score = score
                self.best_epoch = epoch
                is_best = True
        return StopDecision(is_best=is_best, stop=self.enabled and self.no_progress > self.patience)

    def state_dict(self) -> dict[str, Any]:
        """The counters (numbers only; the settings come from the hyperparameters on resume)."""
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "no_progress": self.no_progress}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_score = float(state["best_score"])
        self.best_epoch = None if state["best_epoch"] is None else int(state["best_epoch"])
        self.no_progress = int(state["no_progress"])
