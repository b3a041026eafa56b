"""Azure's early-stopping rule (reference 7) on hand-written score sequences."""

from __future__ import annotations

import math

import pytest

from kubevision.trainer.early_stopping import EarlyStopper, StopDecision


def run(stopper: EarlyStopper, scores: list[float], start: int = 0) -> list[StopDecision]:
    return [stopper.update(epoch, score) for epoch, score in enumerate(scores, start=start)]


def test_stops_when_no_progress_exceeds_patience() -> None:
    stopper = EarlyStopper(enabled=True, patience=2, delay=0)
    decisions = run(stopper, [0.5, 0.6, 0.6, 0.55, 0.58, 0.59])
    # no_progress: 0 (best), 0 (better), 1 (tie), 2, 3 -> stop at epoch 4 (3 > 2)
    assert [d.stop for d in decisions] == [False, False, False, False, True, True]
    assert [d.is_best for d in decisions] == [True, True, True, False, False, False]
    assert stopper.best_score == 0.6


def test_a_tie_moves_the_best_epoch_later_but_is_not_progress() -> None:
    stopper = EarlyStopper(enabled=True, patience=1, delay=0)
    decisions = run(stopper, [0.7, 0.7, 0.7])
    assert [d.is_best for d in decisions] == [True, True, True]
    assert stopper.best_epoch == 2
    assert [d.stop for d in decisions] == [False, False, True]  # ties: no_progress 1, 2 > 1


def test_counting_starts_at_the_delay() -> None:
    stopper = EarlyStopper(enabled=True, patience=1, delay=3)
    decisions = run(stopper, [0.9, 0.1, 0.1, 0.1, 0.1, 0.1])
    # epochs 0-2: before the delay, nothing counts; epoch 3: 1, epoch 4: 2 > 1 -> stop
    assert [d.stop for d in decisions] == [False, False, False, False, True, True]
    assert stopper.best_epoch == 0


def test_an_improvement_before_the_delay_still_resets_the_counter() -> None:
    stopper = EarlyStopper(enabled=True, patience=0, delay=2)
    decisions = run(stopper, [0.2, 0.3, 0.4, 0.4])
    # epoch 2: counter 1 then reset by the improvement; epoch 3: tie, counter 1 > 0 -> stop
    assert [d.stop for d in decisions] == [False, False, False, True]
    assert stopper.best_epoch == 3


def test_validations_every_other_epoch_use_the_epoch_numbers_given() -> None:
    stopper = EarlyStopper(enabled=True, patience=1, delay=4)
    decisions = [stopper.update(epoch, score) for epoch, score in [(2, 0.5), (4, 0.4), (6, 0.4), (8, 0.4)]]
    assert [d.stop for d in decisions] == [False, False, True, True]


def test_disabled_tracks_the_best_but_never_stops() -> None:
    stopper = EarlyStopper(enabled=False, patience=0, delay=0)
    decisions = run(stopper, [0.3, 0.2, 0.1, 0.4])
    assert not any(d.stop for d in decisions)
    assert (stopper.best_epoch, stopper.best_score) == (3, 0.4)


def test_nan_is_never_best_and_counts_as_no_progress() -> None:
    stopper = EarlyStopper(enabled=True, patience=1, delay=0)
    decisions = run(stopper, [math.nan, 0.5, math.nan, math.nan])
    assert [d.is_best for d in decisions] == [False, True, False, False]
    assert [d.stop for d in decisions] == [False, False, False, True]
    assert (stopper.best_epoch, stopper.best_score) == (1, 0.5)


def test_state_dict_round_trip_resumes_the_same_decisions() -> None:
    scores = [0.5, 0.6, 0.55, 0.6, 0.58, 0.57, 0.56]
    whole = run(EarlyStopper(True, 2, 1), scores)
    first = EarlyStopper(True, 2, 1)
    head = run(first, scores[:3])
    resumed = EarlyStopper(True, 2, 1)
    resumed.load_state_dict(first.state_dict())
    tail = run(resumed, scores[3:], start=3)
    assert head + tail == whole
    assert resumed.best_epoch == 3


def test_fresh_state_has_no_best() -> None:
    stopper = EarlyStopper(True, 5, 5)
    assert stopper.best_epoch is None and stopper.best_score == -math.inf
    with pytest.raises(ValueError):
        EarlyStopper(True, -1, 0)
