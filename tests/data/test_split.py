"""Train/validation hold-out: deterministic, stratified, never empty."""

from __future__ import annotations

import random

import pytest

from kubevision.api.errors import KubevisionError
from kubevision.data.records import BoxLabel, ImageRecord
from kubevision.data.split import split_train_val


def records(labels: list[str]) -> list[ImageRecord]:
    return [ImageRecord(f"{i}.png", i + 1, "t.jsonl", label) for i, label in enumerate(labels)]


def lines(part: list[ImageRecord]) -> list[int]:
    return [r.line for r in part]


def test_is_a_deterministic_partition_in_original_order() -> None:
    data = records([c for c in "aabbbbccccccdddddddd" * 3])
    train, val = split_train_val(data, seed=7, stratify=True)
    assert sorted(lines(train) + lines(val)) == list(range(1, 61))
    assert lines(train) == sorted(lines(train)) and lines(val) == sorted(lines(val))
    assert len(val) == 12
    assert split_train_val(data, seed=7, stratify=True) == (train, val)
    assert split_train_val(data, seed=8, stratify=True) != (train, val)


def test_stratified_split_gives_each_class_its_share() -> None:
    data = records(["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    _, val = split_train_val(data, validation_size=0.2, seed=0, stratify=True)
    assert sorted(r.label for r in val) == ["a"] * 10 + ["b"] * 6 + ["c"] * 4  # type: ignore[type-var]


def test_every_class_with_two_images_is_on_both_sides() -> None:
    rng = random.Random(1)
    for trial in range(200):
        classes = [f"c{k}" for k in range(rng.randint(2, 8))]
        labels = [rng.choice(classes) for _ in range(rng.randint(10, 60))]
        train, val = split_train_val(records(labels), seed=trial, stratify=True)
        n_val = max(1, round(len(labels) * 0.2))
        assert len(val) == n_val
        several = {c for c in set(labels) if labels.count(c) >= 2}
        assert several <= {r.label for r in train}
        if len(several) <= n_val:
            assert several <= {r.label for r in val}, (labels, trial)


def test_singletons_and_tiny_datasets_never_leave_a_side_empty() -> None:
    train, val = split_train_val(records(["a", "b"]), stratify=True)
    assert len(train) == 1 and len(val) == 1
    train, val = split_train_val(records(["a", "b", "c"]), validation_size=0.9, stratify=False)
    assert len(train) == 1 and len(val) == 2
    with pytest.raises(KubevisionError, match=r"cannot hold out a validation split from 1 image"):
        split_train_val(records(["a"]), stratify=True)
    with pytest.raises(KubevisionError, match="between 0 and 1"):
        split_train_val(records(["a", "b"]), validation_size=1.0, stratify=True)


def test_detection_records_are_stratified_by_their_rarest_class() -> None:
    def det(i: int, names: list[str]) -> ImageRecord:
        return ImageRecord(f"{i}.png", i + 1, "t.jsonl", tuple(BoxLabel(n, 0, 0, 1, 1, False) for n in names))

    data = [det(i, ["rbc", "rbc", "wbc"] if i % 10 == 0 else ["rbc"]) for i in range(50)]
    data.append(det(50, []))
    for seed in range(20):
        train, val = split_train_val(data, seed=seed, stratify=True)
        assert any("wbc" in r.classes() for r in val) and any("wbc" in r.classes() for r in train)


def test_unstratified_split_is_seeded() -> None:
    data = records(["a"] * 30)
    assert split_train_val(data, seed=3, stratify=False) == split_train_val(data, seed=3, stratify=False)
    assert split_train_val(data, seed=3, stratify=False) != split_train_val(data, seed=4, stratify=False)
