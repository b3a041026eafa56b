"""The report's four plots as PNG bytes (matplotlib, Agg canvas, no pyplot).

Why no pyplot: pyplot keeps global figure state and picks a GUI backend when one is around; the
runner draws from a CLI process, maybe over SSH or in CI. A `Figure` on a `FigureCanvasAgg` is
plain in-memory rendering, needs no display, and is freed when it goes out of scope.

Each function takes plain data (what summary.json and metrics.jsonl hold), so the report can be
redrawn from an output folder alone.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from kubevision.local.outcomes import TrialOutcome

__all__ = ["STATE_COLORS", "best_vs_trial", "confusion_matrix", "learning_curves", "precision_recall"]

STATE_COLORS = {
    "succeeded": "#2a7ab9",
    "early_terminated": "#e8a33d",
    "timed_out": "#9b59b6",
    "interrupted": "#7f8c8d",
    "failed": "#c0392b",
}


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _legend(ax: Axes) -> None:
    """A legend beside the plot, when something in it has a label (matplotlib warns otherwise)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))


def best_vs_trial(outcomes: Sequence[TrialOutcome], metric: str) -> bytes:
    """Each trial's metric by trial number (coloured by state) and the best so far as a step line."""
    figure = Figure(figsize=(7, 3.6), layout="constrained")
    ax = figure.add_subplot()
    ordered = sorted(outcomes, key=lambda o: o.number)
    for state, color in STATE_COLORS.items():
        points = [(o.number, o.value) for o in ordered if o.state == state and o.value is not None]
        if points:
            ax.scatter([p[0] for p in points], [p[1] for p in points], color=color, label=state, zorder=3)
    failed = [o.number for o in ordered if o.value is None]
    if failed:
        ax.scatter(failed, [0.0] * len(failed), marker="x", color=STATE_COLORS["failed"], label="no metric", zorder=3)
    running_best: list[tuple[int, float]] = []
    best = -math.inf
    for o in ordered:
        if o.value is not None and o.state != "failed":
            best = max(best, o.value)
        if best > -math.inf:
            running_best.append((o.number, best))
    if running_best:
        ax.step([p[0] for p in running_best], [p[1] for p in running_best], where="post", color="black",
                linewidth=1.2, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    _legend(ax)
    return _png(figure)


def learning_curves(histories: Mapping[int, Sequence[tuple[int, float]]], outcomes: Sequence[TrialOutcome],
                    metric: str) -> bytes:
    """The primary metric per epoch of every trial (stopped trials dashed)."""
    figure = Figure(figsize=(7, 3.6), layout="constrained")
    ax = figure.add_subplot()
    states = {o.number: o.state for o in outcomes}
    for number in sorted(histories):
        points = histories[number]
        if not points:
            continue
        style = "-" if states.get(number) == "succeeded" else "--"
        ax.plot([p[0] for p in points], [p[1] for p in points], style, marker="o", markersize=3,
                label=f"trial {number}")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.set_title("learning curves (dashed: stopped or failed)")
    ax.grid(alpha=0.3)
    if len(histories) <= 12:
        _legend(ax)
    return _png(figure)


def confusion_matrix(matrix: Sequence[Any], classes: Sequence[str]) -> bytes:
    """Multi-class `matrix[true][predicted]`, or multi-label per-class `[[tn, fp], [fn, tp]]` as a table."""
    multilabel = bool(matrix) and isinstance(matrix[0], list) and bool(matrix[0]) and isinstance(matrix[0][0], list)
    if multilabel:
        rows = [[m[0][0], m[0][1], m[1][0], m[1][1]] for m in matrix]
        x_labels, y_labels = ["TN", "FP", "FN", "TP"], list(classes)
        xlabel, ylabel = "outcome at threshold 0.5", "class"
    else:
        rows = [list(r) for r in matrix]
        x_labels = y_labels = list(classes)
        xlabel, ylabel = "predicted", "true"
    n_rows, n_cols = len(rows), len(x_labels)
    size = min(9.0, max(4.0, 0.45 * max(n_rows, n_cols) + 2))
    figure = Figure(figsize=(size, size * 0.85), layout="constrained")
    ax = figure.add_subplot()
    image = ax.imshow(rows, cmap="Blues")
    figure.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(n_cols), labels=x_labels, rotation=90 if n_cols > 10 else 0)
    ax.set_yticks(range(n_rows), labels=y_labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("confusion matrix of the best model (validation)")
    if n_rows * n_cols <= 400:
        peak = max((max(r) for r in rows if r), default=0) or 1
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                ax.text(j, i, str(value), ha="center", va="center", fontsize=7,
                        color="white" if value > peak / 2 else "black")
    return _png(figure)


def precision_recall(report: Mapping[str, Any], classes: Sequence[str]) -> bytes:
    """Per-class precision and recall bars from summary.json's classification_report."""
    per_class = report.get("per_class", {}) if isinstance(report, Mapping) else {}
    names = [c for c in classes if c in per_class] or list(per_class)

    def values(key: str) -> list[float]:
        out = []
        for name in names:
            value = per_class[name].get(key)
            out.append(float(value) if isinstance(value, int | float) else 0.0)
        return out

    figure = Figure(figsize=(max(6.0, 0.5 * len(names) + 3), 3.6), layout="constrained")
    ax = figure.add_subplot()
    positions = list(range(len(names)))
    width = 0.4
    ax.bar([p - width / 2 for p in positions], values("precision"), width, label="precision", color="#2a7ab9")
    ax.bar([p + width / 2 for p in positions], values("recall"), width, label="recall", color="#e8a33d")
    ax.set_xticks(positions, labels=names, rotation=90 if len(names) > 12 else 0)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("class")
    ax.set_title("per-class precision and recall of the best model (validation)")
    ax.grid(axis="y", alpha=0.3)
    _legend(ax)
    return _png(figure)
