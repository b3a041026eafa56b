"""Hold out a validation split when the job gives no validation data (reference 2.4).

Why not a plain random cut: AutoML datasets are small (tens to a few hundred images), and a random 20%
of 40 images can easily leave a class out of validation — its metric is then undefined and the run
compares trials on a different set of classes than it trains. The split is stratified: every class
with at least two images lands in both parts when the validation size allows it, each class gets
about its share, and the whole thing is a pure function of the records and the seed, so every trial
of a sweep (and every rank of a distributed trial) sees the same split.

For labels that are not a single class (multi-label, boxes, polygons) a record is stratified by its
rarest class — the usual approximation, and what keeps rare classes represented on both sides.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Sequence

from kubevision.api.errors import KubevisionError
from kubevision.data.records import ImageRecord

__all__ = ["split_train_val"]


def split_train_val(
    records: Sequence[ImageRecord],
    *,
    validation_size: float = 0.2,
    seed: int = 0,
    stratify: bool = True,
) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Split into (train, validation), both non-empty and in the records' original order."""
    if not 0.0 < validation_size < 1.0:
        raise KubevisionError(f"validation size must be between 0 and 1 (exclusive), not {validation_size}")
    n = len(records)
    if n < 2:
        raise KubevisionError(
            f"cannot hold out a validation split from {n} image(s); add images or give validation data")
    n_val = min(max(round(n * validation_size), 1), n - 1)
    rng = random.Random(seed)
    if stratify:
        chosen = _stratified(records, n_val, validation_size, rng)
    else:
        order = list(range(n))
        rng.shuffle(order)
        chosen = set(order[:n_val])
    train = [r for i, r in enumerate(records) if i not in chosen]
    val = [r for i, r in enumerate(records) if i in chosen]
    return train, val


def _stratum(record: ImageRecord, frequency: Counter[str]) -> str:
    if isinstance(record.label, str):
        return record.label
    names = record.classes()
    return min(names, key=lambda name: (frequency[name], name)) if names else ""


def _stratified(records: Sequence[ImageRecord], n_val: int, size: float, rng: random.Random) -> set[int]:
    frequency: Counter[str] = Counter(name for r in records for name in r.classes())
    groups: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        groups.setdefault(_stratum(record, frequency), []).append(i)
    keys = sorted(groups)
    for key in keys:
        rng.shuffle(groups[key])
    # A class of two or more keeps at least one image in training; a singleton goes either way.
    cap = {k: len(groups[k]) - 1 if len(groups[k]) >= 2 else 1 for k in keys}
    take = dict.fromkeys(keys, 0)
    several = sorted((k for k in keys if len(groups[k]) >= 2), key=lambda k: (-len(groups[k]), k))
    for key in several[:n_val]:  # coverage first: one validation image per class that can spare one
        take[key] = 1
    # Then fill up to n_val, always giving the next image to the class furthest below its share.
    heap = [(take[k] - len(groups[k]) * size, rng.random(), k) for k in keys if take[k] < cap[k]]
    heapq.heapify(heap)
    remaining = n_val - sum(take.values())
    while remaining > 0 and heap:
        _, _, key = heapq.heappop(heap)
        take[key] += 1
        remaining -= 1
        if take[key] < cap[key]:
            heapq.heappush(heap, (take[key] - len(groups[key]) * size, rng.random(), key))
    return {i for k in keys for i in groups[k][: take[k]]}
