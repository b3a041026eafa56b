"""Classification metrics under Azure's names (reference 8.1), from labels and probabilities.

Why our own module over sklearn's scorers: the per-epoch metrics line, metrics.jsonl and summary.json
must carry exactly Azure's names, and a validation split of a small dataset routinely lacks a class
or even holds one class only. sklearn then warns (warnings are errors in our tests and noise in a
trial log) or raises, and Azure's runtime raises for AUC. Here every metric is either a number or
absent: undefined metrics are left out of the scalar dicts (`None` in the report), never NaN, so the
results are valid JSON and a Katib collector never parses "nan". Pure numpy plus sklearn's ranking
metrics; no torch, so the local runner and the tests can use it without a model.

Conventions (the same for multi-class and multi-label):

- Predictions: multi-class takes the argmax (no threshold); multi-label marks a class positive when
  its probability is >= `threshold` (0.5, reference 4.2).
- precision / recall / f1 / iou per class count only classes "in play": present in `y_true` or
  predicted at least once. Within those a zero division counts as 0 (a present class that is never
  predicted has precision 0). A class neither present nor predicted has nothing to measure and is
  left out of the macro average. For multi-class this is exactly sklearn's default (`labels=None`,
  `zero_division=0`), which Azure uses; for multi-label Azure averages over every class, so a rare
  class missing from the validation split would count as 0: kubevision does not do that.
- AUC of a class needs positives and negatives in `y_true`; average precision needs positives.
  Classes without them are skipped in the macro and weighted averages (Azure averages over the
  classes present in `y_true` too). Micro averages pool all (sample, class) pairs.
- Weighted averages weight each class by its support (its number of true instances).
- `iou` (the multi-label primary metric) is the Jaccard index per sample, averaged over samples
  (sklearn `average="samples"`, Azure's `iou`); a sample with no true and no predicted label scores
  1 (complete agreement). `iou_micro`, `iou_macro`, `iou_weighted` are the class averages.
- `accuracy` is multi-class accuracy, or for multi-label the exact-match ratio (all classes right),
  as in Azure. `accuracy_top5` uses min(5, number of classes).
- `log_loss` is a loss (lower is better, see `LOSS_METRICS`): mean negative log-likelihood of the
  true class for multi-class; for multi-label the mean binary cross-entropy over all (sample, class)
  pairs, the quantity the model is trained on (Azure's sklearn call renormalises the sigmoid outputs
  per sample, which does not measure multi-label predictions). Probabilities are clipped to 1e-15.
- Two-class multi-class data adds `*_binary` metrics for the second class (index 1), as Azure does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = [
    "LOSS_METRICS",
    "MULTICLASS_METRICS",
    "MULTILABEL_METRICS",
    "classification_report",
    "confusion_matrix",
    "multiclass_metrics",
    "multilabel_confusion_matrix",
    "multilabel_metrics",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

_AVERAGES = ("macro", "micro", "weighted")
_SHARED = tuple(
    f"{metric}_{average}"
    for metric in ("precision_score", "recall_score", "f1_score", "AUC", "average_precision_score")
    for average in _AVERAGES
)
MULTICLASS_METRICS: tuple[str, ...] = (
    "accuracy",
    "accuracy_top5",
    *_SHARED,
    "log_loss",
    "precision_score_binary",
    "recall_score_binary",
    "f1_score_binary",
    "AUC_binary",
    "average_precision_score_binary",
)
"""Every name `multiclass_metrics` can return (the `*_binary` ones for two classes only)."""

MULTILABEL_METRICS: tuple[str, ...] = (
    "accuracy",
    "iou",
    "iou_macro",
    "iou_micro",
    "iou_weighted",
    *_SHARED,
    "log_loss",
)
"""Every name `multilabel_metrics` can return."""

LOSS_METRICS: frozenset[str] = frozenset({"log_loss"})
"""Metrics where lower is better; all others are scores in [0, 1] where higher is better."""

_EPS = 1e-15


@dataclass(frozen=True)
class _Table:
    """Everything the metrics need, computed once: per-class arrays with NaN where undefined."""

    n: int
    support: IntArray
    tp: IntArray
    fp: IntArray
    fn: IntArray
    in_play: BoolArray
    precision: FloatArray
    recall: FloatArray
    f1: FloatArray
    iou: FloatArray
    auc: FloatArray
    ap: FloatArray
    auc_micro: float
    ap_micro: float


def _divide(num: IntArray, den: IntArray, in_play: BoolArray) -> FloatArray:
    """num/den where den > 0; 0 where den == 0 for classes in play; NaN for the others."""
    out = np.where(in_play, 0.0, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _per_class_ranking(
    truth: BoolArray, probs: FloatArray, support: IntArray
) -> tuple[FloatArray, FloatArray]:
    n, classes = truth.shape
    auc = np.full(classes, np.nan)
    ap = np.full(classes, np.nan)
    for c in range(classes):
        if support[c] > 0:
            ap[c] = average_precision_score(truth[:, c], probs[:, c])
            if support[c] < n:
                auc[c] = roc_auc_score(truth[:, c], probs[:, c])
    return auc, ap


def _table(truth: BoolArray, pred: BoolArray, probs: FloatArray) -> _Table:
    support = truth.sum(axis=0).astype(np.int64)
    tp = (truth & pred).sum(axis=0).astype(np.int64)
    fp = (~truth & pred).sum(axis=0).astype(np.int64)
    fn = (truth & ~pred).sum(axis=0).astype(np.int64)
    in_play = (support + fp) > 0
    auc, ap = _per_class_ranking(truth, probs, support)
    flat_truth = truth.ravel()
    has_pos, has_neg = bool(flat_truth.any()), not bool(flat_truth.all())
    return _Table(
        n=truth.shape[0],
        support=support,
        tp=tp,
        fp=fp,
        fn=fn,
        in_play=in_play,
        precision=_divide(tp, tp + fp, in_play),
        recall=_divide(tp, support, in_play),
        f1=_divide(2 * tp, 2 * tp + fp + fn, in_play),
        iou=_divide(tp, tp + fp + fn, in_play),
        auc=auc,
        ap=ap,
        auc_micro=float(roc_auc_score(flat_truth, probs.ravel())) if has_pos and has_neg else np.nan,
        ap_micro=float(average_precision_score(flat_truth, probs.ravel())) if has_pos else np.nan,
    )


def _macro(values: FloatArray) -> float:
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else np.nan


def _weighted(values: FloatArray, support: IntArray) -> float:
    mask = ~np.isnan(values) & (support > 0)
    total = support[mask].sum()
    return float((values[mask] * support[mask]).sum() / total) if total > 0 else np.nan


def _ratio(num: int, den: int, in_play: bool) -> float:
    """Micro ratio: 0/0 is 0 while some class is in play, undefined when none is."""
    if not in_play:
        return np.nan
    return num / den if den > 0 else 0.0


def _averages(table: _Table) -> dict[str, dict[str, float]]:
    """{"macro"|"micro"|"weighted": {metric: value or NaN}} for the class-averaged metrics."""
    tp, fp, fn = int(table.tp.sum()), int(table.fp.sum()), int(table.fn.sum())
    per_class = {
        "precision_score": table.precision,
        "recall_score": table.recall,
        "f1_score": table.f1,
        "iou": table.iou,
        "AUC": table.auc,
        "average_precision_score": table.ap,
    }
    any_in_play = bool(table.in_play.any())
    micro = {
        "precision_score": _ratio(tp, tp + fp, any_in_play),
        "recall_score": _ratio(tp, tp + fn, any_in_play),
        "f1_score": _ratio(2 * tp, 2 * tp + fp + fn, any_in_play),
        "iou": _ratio(tp, tp + fp + fn, any_in_play),
        "AUC": table.auc_micro,
        "average_precision_score": table.ap_micro,
    }
    return {
        "macro": {name: _macro(values) for name, values in per_class.items()},
        "micro": micro,
        "weighted": {name: _weighted(values, table.support) for name, values in per_class.items()},
    }


def _flatten(averages: dict[str, dict[str, float]], names: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for average, values in averages.items():
        for metric, value in values.items():
            out[f"{metric}_{average}"] = value
    return {name: out[name] for name in names if name in out}


def _defined(metrics: dict[str, float]) -> dict[str, float]:
    return {name: value for name, value in metrics.items() if not np.isnan(value)}


# ---- inputs -----------------------------------------------------------------------------------


def _check_probs(probs: npt.ArrayLike, class_names: Sequence[str]) -> FloatArray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"probs must have shape (n_samples >= 1, n_classes), got {p.shape}")
    if p.shape[1] != len(class_names):
        raise ValueError(f"probs has {p.shape[1]} columns for {len(class_names)} class names")
    if len(set(class_names)) != len(class_names):
        raise ValueError("class names must be unique")
    if not np.isfinite(p).all():
        raise ValueError("probs contain NaN or infinite values (did the model diverge?)")
    return p


def _multiclass_inputs(
    y_true: npt.ArrayLike, probs: npt.ArrayLike, class_names: Sequence[str]
) -> tuple[IntArray, FloatArray, BoolArray, BoolArray]:
    p = _check_probs(probs, class_names)
    y = np.asarray(y_true)
    if y.shape != (p.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y_true must be {p.shape[0]} integer class indices, got {y.dtype} {y.shape}")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"y_true holds class indices outside 0..{p.shape[1] - 1}")
    eye = np.eye(p.shape[1], dtype=bool)
    return y.astype(np.int64), p, eye[y], eye[p.argmax(axis=1)]


def _multilabel_inputs(
    y_true: npt.ArrayLike, probs: npt.ArrayLike, class_names: Sequence[str], threshold: float
) -> tuple[FloatArray, BoolArray, BoolArray]:
    p = _check_probs(probs, class_names)
    y = np.asarray(y_true)
    if y.shape != p.shape or not np.isin(y, (0, 1)).all():
        raise ValueError(f"y_true must be a 0/1 matrix of shape {p.shape}, got {y.shape}")
    return p, y.astype(bool), p >= threshold


# ---- public -----------------------------------------------------------------------------------


def multiclass_metrics(
    y_true: npt.ArrayLike, probs: npt.ArrayLike, class_names: Sequence[str]
) -> dict[str, float]:
    """Azure's multi-class metrics from class indices (n,) and probabilities (n, C).

    Keys are a subset of `MULTICLASS_METRICS`; undefined metrics (e.g. `AUC_macro` when `y_true`
    holds one class only) are absent. `accuracy` and `log_loss` are always present.
    """
    y, p, truth, pred = _multiclass_inputs(y_true, probs, class_names)
    table = _table(truth, pred, p)
    n, classes = p.shape
    k = min(5, classes)
    top_k = np.argpartition(-p, k - 1, axis=1)[:, :k]
    metrics = {
        "accuracy": float((truth & pred).any(axis=1).mean()),
        "accuracy_top5": float((top_k == y[:, None]).any(axis=1).mean()),
        **_flatten(_averages(table), _SHARED),
        "log_loss": float(-np.log(np.clip(p[np.arange(n), y], _EPS, 1.0)).mean()),
    }
    if classes == 2:
        metrics |= {
            "precision_score_binary": float(table.precision[1]),
            "recall_score_binary": float(table.recall[1]),
            "f1_score_binary": float(table.f1[1]),
            "AUC_binary": float(table.auc[1]),
            "average_precision_score_binary": float(table.ap[1]),
        }
    return _defined(metrics)


def multilabel_metrics(
    y_true: npt.ArrayLike, probs: npt.ArrayLike, class_names: Sequence[str], threshold: float = 0.5
) -> dict[str, float]:
    """Azure's multi-label metrics from a 0/1 matrix (n, C) and per-class probabilities (n, C).

    Keys are a subset of `MULTILABEL_METRICS`; undefined metrics are absent. `iou`, `accuracy` and
    `log_loss` are always present.
    """
    p, truth, pred = _multilabel_inputs(y_true, probs, class_names, threshold)
    table = _table(truth, pred, p)
    intersection = (truth & pred).sum(axis=1)
    union = (truth | pred).sum(axis=1)
    per_sample_iou = np.divide(intersection, union, out=np.ones(len(union)), where=union > 0)
    clipped = np.clip(p, _EPS, 1.0 - _EPS)
    bce = -np.where(truth, np.log(clipped), np.log1p(-clipped))
    metrics = {
        "accuracy": float((truth == pred).all(axis=1).mean()),
        "iou": float(per_sample_iou.mean()),
        **_flatten(_averages(table), ("iou_macro", "iou_micro", "iou_weighted", *_SHARED)),
        "log_loss": float(bce.mean()),
    }
    return _defined(metrics)


def classification_report(
    y_true: npt.ArrayLike,
    probs: npt.ArrayLike,
    class_names: Sequence[str],
    multilabel: bool,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Per-class and averaged precision, recall, f1-score, support, AUC, average precision (+ iou
    for multi-label), for summary.json (reference 8.1).

    Shape: `{"per_class": {name: {...}}, "micro avg": {...}, "macro avg": {...}, "weighted avg": {...}}`;
    undefined values are `None`. The averages equal the scalar metrics of `multiclass_metrics` /
    `multilabel_metrics`; an average's `support` is the total number of true labels.
    """
    if multilabel:
        p, truth, pred = _multilabel_inputs(y_true, probs, class_names, threshold)
    else:
        _, p, truth, pred = _multiclass_inputs(y_true, probs, class_names)
    table = _table(truth, pred, p)
    columns = {
        "precision": table.precision,
        "recall": table.recall,
        "f1-score": table.f1,
        "AUC": table.auc,
        "average_precision": table.ap,
    }
    if multilabel:
        columns["iou"] = table.iou
    report: dict[str, Any] = {"per_class": {}}
    for c, name in enumerate(class_names):
        row: dict[str, Any] = {key: _or_none(values[c]) for key, values in columns.items()}
        row["support"] = int(table.support[c])
        report["per_class"][name] = row
    renamed = {
        "precision_score": "precision",
        "recall_score": "recall",
        "f1_score": "f1-score",
        "average_precision_score": "average_precision",
    }
    for average, values in _averages(table).items():
        row = {renamed.get(metric, metric): _or_none(value) for metric, value in values.items()}
        if not multilabel:
            del row["iou"]
        row["support"] = int(table.support.sum())
        report[f"{average} avg"] = row
    return report


def _or_none(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def confusion_matrix(y_true: npt.ArrayLike, probs: npt.ArrayLike) -> list[list[int]]:
    """Multi-class confusion matrix: `matrix[true][predicted]` counts (argmax prediction)."""
    p = np.asarray(probs, dtype=np.float64)
    names = [str(c) for c in range(p.shape[1])] if p.ndim == 2 else []
    y, p, _, _ = _multiclass_inputs(y_true, p, names)
    classes = p.shape[1]
    counts = np.bincount(y * classes + p.argmax(axis=1), minlength=classes * classes)
    return [[int(v) for v in row] for row in counts.reshape(classes, classes)]


def multilabel_confusion_matrix(
    y_true: npt.ArrayLike, probs: npt.ArrayLike, threshold: float = 0.5
) -> list[list[list[int]]]:
    """One 2x2 matrix per class, `[[tn, fp], [fn, tp]]` (sklearn's layout)."""
    p = np.asarray(probs, dtype=np.float64)
    names = [str(c) for c in range(p.shape[1])] if p.ndim == 2 else []
    _, truth, pred = _multilabel_inputs(y_true, p, names, threshold)
    tn = (~truth & ~pred).sum(axis=0)
    fp = (~truth & pred).sum(axis=0)
    fn = (truth & ~pred).sum(axis=0)
    tp = (truth & pred).sum(axis=0)
    return [[[int(tn[c]), int(fp[c])], [int(fn[c]), int(tp[c])]] for c in range(p.shape[1])]
