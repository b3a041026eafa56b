"""weightedLoss: which loss, whether weights are applied (imbalance > 2 only), and their values."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from kubevision.api.hyperparameters import resolve_training_parameters
from kubevision.trainer.loss import LossSetup, build_loss, imbalance_rate

MULTICLASS = "image_classification"
MULTILABEL = "image_classification_multilabel"


def hp(task: str, weighted_loss: int) -> dict[str, Any]:
    return resolve_training_parameters(task, None, {"modelName": "resnet18", "weightedLoss": weighted_loss})


def weights(setup: LossSetup) -> torch.Tensor | None:
    """The class weights (cross-entropy) or pos_weight (BCE) the loss carries."""
    value = setup.fn.weight if isinstance(setup.fn, nn.CrossEntropyLoss) else setup.fn.pos_weight
    assert value is None or isinstance(value, torch.Tensor)
    return value


def values(setup: LossSetup) -> list[float]:
    tensor = weights(setup)
    assert tensor is not None
    return [float(v) for v in tensor.tolist()]


def test_plain_losses_without_weighting() -> None:
    multiclass = build_loss(MULTICLASS, hp(MULTICLASS, 0), [100, 1])
    multilabel = build_loss(MULTILABEL, hp(MULTILABEL, 0), [100, 1], num_images=120)
    assert type(multiclass.fn) is nn.CrossEntropyLoss and weights(multiclass) is None
    assert type(multilabel.fn) is nn.BCEWithLogitsLoss and weights(multilabel) is None
    assert not multiclass.weighted and not multilabel.weighted
    assert "weightedLoss is 0" in multiclass.reason


@pytest.mark.parametrize(("counts", "weighted"), [([20, 10, 11], False), ([21, 10, 15], True), ([30, 0, 15], False)])
def test_weights_only_when_largest_over_smallest_exceeds_two(counts: list[int], weighted: bool) -> None:
    # 20/10 = 2 is not > 2; 21/10 is. A class with no training image does not count as the smallest.
    setup = build_loss(MULTICLASS, hp(MULTICLASS, 2), counts)
    assert setup.weighted is weighted
    assert (weights(setup) is not None) is weighted
    if not weighted:
        assert "balanced enough" in setup.reason


def test_multiclass_class_weights_are_normalised_inverse_frequency() -> None:
    counts = [60, 20, 10]  # N = 90, K = 3: w_c = 90 / (3 * n_c)
    setup = build_loss(MULTICLASS, hp(MULTICLASS, 2), counts)
    assert values(setup) == pytest.approx([0.5, 1.5, 3.0])
    # The weighted number of examples equals N: each class counts as much as N / K examples.
    assert sum(w * n for w, n in zip(values(setup), counts, strict=True)) == pytest.approx(90)
    assert "class weights applied" in setup.reason and "6" in setup.reason


def test_weighted_loss_1_takes_the_square_root() -> None:
    setup = build_loss(MULTICLASS, hp(MULTICLASS, 1), [60, 20, 10])
    assert values(setup) == pytest.approx([math.sqrt(0.5), math.sqrt(1.5), math.sqrt(3.0)])
    assert "sqrt" in setup.reason


def test_weights_change_the_loss_towards_the_rare_class() -> None:
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0]])
    targets = torch.tensor([0, 1])  # one example of each, the rare class 1 badly predicted
    plain = build_loss(MULTICLASS, hp(MULTICLASS, 0), [90, 10]).fn(logits, targets)
    weighted = build_loss(MULTICLASS, hp(MULTICLASS, 2), [90, 10]).fn(logits, targets)
    assert weighted > plain


def test_a_class_without_examples_gets_a_neutral_finite_weight() -> None:
    setup = build_loss(MULTICLASS, hp(MULTICLASS, 2), [40, 0, 10])
    assert all(math.isfinite(v) for v in values(setup))
    assert values(setup) == pytest.approx([50 / 80, 1.0, 50 / 20])  # K = 2 classes present
    loss = setup.fn(torch.zeros(1, 3), torch.tensor([1]))  # the class may occur in validation
    assert math.isfinite(float(loss))


def test_multilabel_pos_weight_is_negatives_over_positives() -> None:
    counts = [80, 10, 0, 100]  # 100 images: class 3 on every image, class 2 on none
    setup = build_loss(MULTILABEL, hp(MULTILABEL, 2), counts, num_images=100)
    assert type(setup.fn) is nn.BCEWithLogitsLoss and setup.weighted
    assert values(setup) == pytest.approx([20 / 80, 90 / 10, 1.0, 1.0])
    assert "pos_weight" in setup.reason
    sqrt_setup = build_loss(MULTILABEL, hp(MULTILABEL, 1), counts, num_images=100)
    assert values(sqrt_setup) == pytest.approx([0.5, 3.0, 1.0, 1.0])


def test_multilabel_weighting_needs_the_number_of_images() -> None:
    with pytest.raises(ValueError, match="num_images"):
        build_loss(MULTILABEL, hp(MULTILABEL, 2), [80, 10])
    with pytest.raises(ValueError, match="exceeds num_images"):
        build_loss(MULTILABEL, hp(MULTILABEL, 2), [80, 10], num_images=50)


def test_weights_move_with_the_module() -> None:
    setup = build_loss(MULTICLASS, hp(MULTICLASS, 2), [60, 20, 10])
    assert "weight" in dict(setup.fn.named_buffers())
    setup.fn.to(torch.float64)
    moved = weights(setup)
    assert moved is not None and moved.dtype == torch.float64


def test_detection_tasks_have_no_classification_loss() -> None:
    with pytest.raises(ValueError, match="classification"):
        build_loss("image_object_detection", {}, [1, 2])


def test_imbalance_rate() -> None:
    assert imbalance_rate([5, 2]) == 2.5
    assert imbalance_rate([0, 7, 7]) == 1.0
    assert imbalance_rate([0, 0]) == 1.0
