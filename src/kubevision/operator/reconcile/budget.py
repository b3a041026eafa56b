"""Splitting a job's trial budget and concurrency over its Experiments (one per sub-space).

Why a split at all: Katib has no conditional search spaces, so a job with N sub-spaces becomes N
Experiments, each with its own maxTrialCount and parallelTrialCount; together they must spend what the
job allows. The rule (docs/operator-mapping.md): every Experiment gets one trial first, the rest goes
in proportion to the weights (equal weights for random and bayesian sampling, the number of grid points
for grid sampling) by largest remainder, ties to the earlier sub-space, never above a cap (a grid
Experiment cannot run more trials than it has points: Katib's grid rejects that).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["max_failed_trials", "split_budget"]


def split_budget(total: int, weights: Sequence[float], caps: Sequence[int | None] | None = None) -> list[int]:
    """`total` split into len(weights) shares >= 1 (<= cap); sums to `total` unless the caps are smaller.

    Raises ValueError when `total` is smaller than the number of shares (every share needs one).
    """
    n = len(weights)
    if n == 0:
        return []
    limits = list(caps) if caps is not None else [None] * n
    if len(limits) != n:
        raise ValueError("caps and weights differ in length")
    if any(w <= 0 for w in weights):
        raise ValueError("weights must be positive")
    if any(c is not None and c < 1 for c in limits):
        raise ValueError("caps must be >= 1")
    if total < n:
        raise ValueError(f"cannot give {n} shares at least 1 each out of {total}")
    shares = [1] * n
    remaining = total - n

    def room(i: int) -> int | None:
        cap = limits[i]
        return None if cap is None else cap - shares[i]

    while remaining > 0:
        open_ = [i for i in range(n) if room(i) is None or (room(i) or 0) > 0]
        if not open_:
            break
        weight = sum(weights[i] for i in open_)
        ideal = {i: remaining * weights[i] / weight for i in open_}
        give = {i: int(ideal[i]) for i in open_}
        for i in open_:
            r = room(i)
            if r is not None:
                give[i] = min(give[i], r)
        left = remaining - sum(give.values())
        for i in sorted(open_, key=lambda i: (-(ideal[i] - int(ideal[i])), i)):
            if left == 0:
                break
            r = room(i)
            if r is None or give[i] < r:
                give[i] += 1
                left -= 1
        for i in open_:
            shares[i] += give[i]
        if left == remaining:  # nothing could be placed
            break
        remaining = left
    return shares


def max_failed_trials(max_trials: int) -> int:
    """maxFailedTrialCount of an Experiment: it fails once more than half of its trials failed.

    Why not maxTrialCount: a systematic problem (unreadable data, a bad image) fails every trial fast,
    and spending the whole budget to learn that wastes GPU hours. Why not 1: a config that runs out of
    GPU memory fails on its own, and the rest of the search is still worth running.
    """
    return min(max_trials, max_trials // 2 + 1)
