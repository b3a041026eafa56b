"""Metrics against hand-computed values (4 samples, 3 classes) and sklearn where conventions agree."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from sklearn import metrics as skm

from kubevision.trainer.metrics import (
    LOSS_METRICS,
    MULTICLASS_METRICS,
    MULTILABEL_METRICS,
    classification_report,
    confusion_matrix,
    multiclass_metrics,
    multilabel_confusion_matrix,
    multilabel_metrics,
)

NAMES = ["A", "B", "C"]

# Multi-class: predictions 0, 1, 1, 2 against truth 0, 1, 2, 2 (sample 2 is wrong).
MC_Y = np.array([0, 1, 2, 2])
MC_P = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.3, 0.4, 0.3],
        [0.2, 0.5, 0.3],
        [0.1, 0.2, 0.7],
    ]
)

# Multi-label: predictions (>= 0.5) [1,0,1], [0,0,1], [1,1,0], [0,0,0].
ML_Y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
ML_P = np.array(
    [
        [0.9, 0.2, 0.6],
        [0.1, 0.4, 0.7],
        [0.8, 0.7, 0.1],
        [0.3, 0.2, 0.1],
    ]
)


def approx(value: float) -> object:
    return pytest.approx(value, abs=1e-9)


def test_multiclass_hand_computed() -> None:
    m = multiclass_metrics(MC_Y, MC_P, NAMES)

    # per class: A P=1 R=1 F1=1; B P=1/2 R=1 F1=2/3; C P=1 R=1/2 F1=2/3; supports 1, 1, 2
    assert m["accuracy"] == approx(0.75)
    assert m["accuracy_top5"] == approx(1.0)  # three classes: the top 5 hold every class
    assert m["precision_score_macro"] == approx(2.5 / 3)
    assert m["recall_score_macro"] == approx(2.5 / 3)
    assert m["f1_score_macro"] == approx((1 + 2 / 3 + 2 / 3) / 3)
    for metric in ("precision_score", "recall_score", "f1_score"):
        assert m[f"{metric}_micro"] == approx(0.75)  # single-label: micro == accuracy
    assert m["precision_score_weighted"] == approx((1 + 0.5 + 2 * 1) / 4)
    assert m["recall_score_weighted"] == approx((1 + 1 + 2 * 0.5) / 4)
    assert m["f1_score_weighted"] == approx((1 + 2 / 3 + 2 * 2 / 3) / 4)

    # AUC one-vs-rest: A 1, B 2/3 (0.4 beats two of 0.2, 0.5, 0.2), C 3.5/4 (tie at 0.3 counts 1/2)
    assert m["AUC_macro"] == approx((1 + 2 / 3 + 0.875) / 3)
    assert m["AUC_weighted"] == approx((1 + 2 / 3 + 2 * 0.875) / 4)
    assert m["AUC_micro"] == approx(29 / 32)  # 4 positives x 8 negatives, 29 wins counting the tie 1/2
    # AP: A 1; B 1/2 (its positive ranks second); C 0.5*1 + 0.5*2/3 (tied 0.3 block holds one negative)
    ap_c = 0.5 + 0.5 * 2 / 3
    assert m["average_precision_score_macro"] == approx((1 + 0.5 + ap_c) / 3)
    assert m["average_precision_score_weighted"] == approx((1 + 0.5 + 2 * ap_c) / 4)
    assert m["average_precision_score_micro"] == approx(0.5 * 1 + 0.25 * 3 / 4 + 0.25 * 4 / 7)
    assert m["log_loss"] == approx(-(math.log(0.7) + math.log(0.4) + math.log(0.3) + math.log(0.7)) / 4)

    binary = {name for name in MULTICLASS_METRICS if name.endswith("_binary")}
    assert set(m) == set(MULTICLASS_METRICS) - binary


def test_top5_counts_only_the_five_most_probable_classes() -> None:
    probs = np.array([[0.5, 0.2, 0.1, 0.08, 0.07, 0.05], [0.5, 0.2, 0.1, 0.08, 0.07, 0.05]])
    m = multiclass_metrics(np.array([4, 5]), probs, list("abcdef"))
    assert m["accuracy_top5"] == approx(0.5)
    assert m["accuracy"] == approx(0.0)


def test_binary_metrics_for_two_classes() -> None:
    y = np.array([0, 1, 1, 0])
    p1 = np.array([0.2, 0.8, 0.4, 0.6])
    m = multiclass_metrics(y, np.stack([1 - p1, p1], axis=1), ["neg", "pos"])
    assert m["precision_score_binary"] == approx(0.5)
    assert m["recall_score_binary"] == approx(0.5)
    assert m["f1_score_binary"] == approx(0.5)
    assert m["AUC_binary"] == approx(0.75)
    assert m["average_precision_score_binary"] == approx(0.5 + 0.5 * 2 / 3)


def test_class_neither_present_nor_predicted_is_left_out_of_macro() -> None:
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.8, 0.15, 0.05], [0.1, 0.85, 0.05], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1]])
    m = multiclass_metrics(y, probs, NAMES)
    assert m["precision_score_macro"] == approx(1.0)  # not 2/3: class C has nothing to measure
    assert m["recall_score_macro"] == approx(1.0)
    assert m["AUC_macro"] == approx(1.0)
    report = classification_report(y, probs, NAMES, multilabel=False)
    assert report["per_class"]["C"] == {
        "precision": None,
        "recall": None,
        "f1-score": None,
        "AUC": None,
        "average_precision": None,
        "support": 0,
    }


def test_class_predicted_but_absent_counts_as_zero_like_sklearn() -> None:
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.1, 0.7], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
    pred = probs.argmax(axis=1)
    m = multiclass_metrics(y, probs, NAMES)
    for metric in ("precision", "recall", "f1"):
        for average in ("macro", "micro", "weighted"):
            expected = getattr(skm, f"{metric}_score")(y, pred, average=average, zero_division=0)
            assert m[f"{metric}_score_{average}"] == approx(expected), (metric, average)
    assert m["precision_score_macro"] == approx((1 + 1 + 0) / 3)


def test_single_class_validation_set_leaves_undefined_auc_out() -> None:
    y = np.array([1, 1, 1])
    probs = np.array([[0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.8, 0.1]])
    m = multiclass_metrics(y, probs, NAMES)
    assert "AUC_macro" not in m and "AUC_weighted" not in m
    assert m["AUC_micro"] == approx(skm.roc_auc_score(np.eye(3)[y].ravel(), probs.ravel()))
    assert m["average_precision_score_macro"] == approx(1.0)  # only class B counts, and it has no negatives
    assert m["accuracy"] == approx(2 / 3)
    assert all(math.isfinite(v) for v in m.values())


def test_multiclass_agrees_with_sklearn_on_random_data() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(60, 4))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = rng.integers(0, 4, size=60)
    m = multiclass_metrics(y, probs, list("wxyz"))
    onehot = np.eye(4)[y]
    assert m["AUC_macro"] == approx(skm.roc_auc_score(onehot, probs, average="macro"))
    assert m["AUC_weighted"] == approx(skm.roc_auc_score(onehot, probs, average="weighted"))
    assert m["AUC_micro"] == approx(skm.roc_auc_score(onehot, probs, average="micro"))
    assert m["average_precision_score_macro"] == approx(
        skm.average_precision_score(onehot, probs, average="macro")
    )
    assert m["log_loss"] == approx(skm.log_loss(y, probs, labels=range(4)))
    assert m["accuracy_top5"] == approx(1.0)


def test_multilabel_hand_computed() -> None:
    m = multilabel_metrics(ML_Y, ML_P, NAMES)

    # per-sample Jaccard 1, 0, 1 and 1 for the sample with no true and no predicted label
    assert m["iou"] == approx(0.75)
    assert m["accuracy"] == approx(0.75)  # exact match
    # per class: A P1 R1 IoU1; B P1 R1/2 IoU1/2; C P1/2 R1 IoU1/2; supports 2, 2, 1
    assert m["iou_macro"] == approx(2 / 3)
    assert m["iou_micro"] == approx(4 / 6)
    assert m["iou_weighted"] == approx((2 + 1 + 0.5) / 5)
    assert m["precision_score_macro"] == approx(2.5 / 3)
    assert m["precision_score_micro"] == approx(0.8)
    assert m["precision_score_weighted"] == approx(4.5 / 5)
    assert m["recall_score_macro"] == approx(2.5 / 3)
    assert m["recall_score_weighted"] == approx(0.8)
    assert m["f1_score_micro"] == approx(0.8)
    assert m["f1_score_weighted"] == approx(0.8)
    assert m["AUC_macro"] == approx((1 + 1 + 2 / 3) / 3)
    assert m["AUC_weighted"] == approx((2 + 2 + 2 / 3) / 5)
    assert m["average_precision_score_macro"] == approx(2.5 / 3)
    assert m["average_precision_score_weighted"] == approx(4.5 / 5)
    bce = -np.where(ML_Y == 1, np.log(ML_P), np.log(1 - ML_P)).mean()
    assert m["log_loss"] == approx(bce)
    assert set(m) == set(MULTILABEL_METRICS)


def test_multilabel_iou_is_sklearn_samples_jaccard() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=(40, 5))
    probs = rng.random((40, 5))
    m = multilabel_metrics(y, probs, list("abcde"))
    pred = (probs >= 0.5).astype(int)
    assert m["iou"] == approx(skm.jaccard_score(y, pred, average="samples", zero_division=1.0))
    assert m["iou_macro"] == approx(skm.jaccard_score(y, pred, average="macro"))
    assert m["accuracy"] == approx(skm.accuracy_score(y, pred))


def test_multilabel_threshold_is_inclusive_and_configurable() -> None:
    y = np.array([[1, 0], [0, 1]])
    probs = np.array([[0.5, 0.2], [0.3, 0.6]])
    assert multilabel_metrics(y, probs, ["a", "b"])["iou"] == approx(1.0)
    assert multilabel_metrics(y, probs, ["a", "b"], threshold=0.55)["iou"] == approx(0.5)


def test_multilabel_class_without_positives_is_skipped() -> None:
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    probs = np.array([[0.9, 0.1, 0.2], [0.2, 0.8, 0.1], [0.7, 0.6, 0.3]])
    m = multilabel_metrics(y, probs, NAMES)
    assert m["precision_score_macro"] == approx(1.0)  # class C neither true nor predicted anywhere
    assert m["iou_macro"] == approx(1.0)
    assert m["AUC_macro"] == approx(1.0)  # C has no positives; A and B separate perfectly
    pred = (probs >= 0.5).astype(int)
    assert m["recall_score_weighted"] == approx(
        skm.recall_score(y, pred, average="weighted", zero_division=0)
    )


def test_multilabel_with_no_labels_at_all() -> None:
    y = np.zeros((3, 2), dtype=int)
    probs = np.full((3, 2), 0.1)
    m = multilabel_metrics(y, probs, ["a", "b"])
    assert m["iou"] == approx(1.0)
    assert m["accuracy"] == approx(1.0)
    assert "precision_score_macro" not in m and "precision_score_micro" not in m
    assert "AUC_micro" not in m and "average_precision_score_micro" not in m
    assert m["log_loss"] == approx(-math.log(0.9))


def test_confusion_matrices() -> None:
    assert confusion_matrix(MC_Y, MC_P) == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert multilabel_confusion_matrix(ML_Y, ML_P) == [
        [[2, 0], [0, 2]],
        [[2, 0], [1, 1]],
        [[2, 1], [0, 1]],
    ]


@pytest.mark.parametrize("multilabel", [False, True], ids=["multiclass", "multilabel"])
def test_report_averages_equal_the_scalar_metrics(multilabel: bool) -> None:
    y, p = (ML_Y, ML_P) if multilabel else (MC_Y, MC_P)
    report = classification_report(y, p, NAMES, multilabel=multilabel)
    scalars = multilabel_metrics(y, p, NAMES) if multilabel else multiclass_metrics(y, p, NAMES)
    json.dumps(report, allow_nan=False)
    assert list(report["per_class"]) == NAMES
    for average in ("macro", "micro", "weighted"):
        row = report[f"{average} avg"]
        assert row["precision"] == approx(scalars[f"precision_score_{average}"])
        assert row["recall"] == approx(scalars[f"recall_score_{average}"])
        assert row["f1-score"] == approx(scalars[f"f1_score_{average}"])
        assert row["AUC"] == approx(scalars[f"AUC_{average}"])
        assert row["average_precision"] == approx(scalars[f"average_precision_score_{average}"])
        assert ("iou" in row) is multilabel
        if multilabel:
            assert row["iou"] == approx(scalars[f"iou_{average}"])
    if multilabel:
        assert report["per_class"]["C"] == {
            "precision": 0.5,
            "recall": 1.0,
            "f1-score": approx(2 / 3),
            "AUC": approx(2 / 3),
            "average_precision": 0.5,
            "iou": 0.5,
            "support": 1,
        }
        assert report["macro avg"]["support"] == 5
    else:
        assert report["per_class"]["B"] == {
            "precision": 0.5,
            "recall": 1.0,
            "f1-score": approx(2 / 3),
            "AUC": approx(2 / 3),
            "average_precision": 0.5,
            "support": 1,
        }
        assert report["weighted avg"]["support"] == 4


@pytest.mark.parametrize(
    ("y", "probs", "message"),
    [
        (np.array([0, 3]), np.full((2, 3), 1 / 3), "outside"),
        (np.array([0, 1, 2]), np.full((2, 3), 1 / 3), "y_true"),
        (np.array([0.0, 1.0]), np.full((2, 3), 1 / 3), "integer"),
        (np.array([0, 1]), np.array([[np.nan, 0.5, 0.5], [0.2, 0.3, 0.5]]), "NaN"),
        (np.array([0, 1]), np.full((2, 4), 0.25), "columns"),
        (np.array([], dtype=int), np.zeros((0, 3)), "n_samples"),
    ],
    ids=["label-out-of-range", "length-mismatch", "float-labels", "nan-probs", "wrong-width", "empty"],
)
def test_bad_inputs_raise_value_error(y: np.ndarray, probs: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        multiclass_metrics(y, probs, NAMES)


def test_multilabel_rejects_non_binary_truth() -> None:
    with pytest.raises(ValueError, match="0/1"):
        multilabel_metrics(np.array([[2, 0, 1]]), np.array([[0.1, 0.2, 0.3]]), NAMES)


def test_log_loss_is_the_only_loss_and_survives_zero_probability() -> None:
    assert set(LOSS_METRICS) == {"log_loss"}
    m = multiclass_metrics(np.array([0]), np.array([[0.0, 1.0]]), ["a", "b"])
    assert m["log_loss"] == approx(-math.log(1e-15))


def test_metrics_module_does_not_import_torch() -> None:
    code = "import sys, kubevision.trainer.metrics; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
