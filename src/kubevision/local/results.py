"""Writing a run's results: leaderboard.csv/.md, best/ and report.html, each all or nothing.

Why atomic: people (and scripts, dashboards, `kubevision serve`) read these files while a run is
still going or after it was killed; a half-written leaderboard or a best/ folder holding half of
one model and half of another is worse than a stale one. Files go through
`kubevision.data.atomic`; best/ is copied to a hidden staging folder and renamed into place, the
previous best/ moved aside first and removed after.

Errors are `OSError`s, left to the runner: it knows the command that writes them again
(`--resume` on a finished run rewrites every result file without training anything).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from kubevision.data.atomic import atomic_write_text
from kubevision.local.layout import RunLayout
from kubevision.local.leaderboard import Row, to_csv, to_markdown
from kubevision.local.report import ReportData, render_report

__all__ = ["copy_tree_atomically", "write_best", "write_leaderboard", "write_report"]


def write_leaderboard(layout: RunLayout, rows: Sequence[Row], metric: str, *, title: str) -> None:
    atomic_write_text(layout.leaderboard_csv, to_csv(rows, metric))
    atomic_write_text(layout.leaderboard_md, to_markdown(rows, metric, title=title))


def copy_tree_atomically(source: Path, target: Path, extra: Mapping[str, Path] | None = None) -> None:
    """Replace folder `target` by a copy of `source` (plus `extra` files by name); readers see the old
    copy or the new one."""
    tag = f"{os.getpid()}"
    staging = target.parent / f".{target.name}.staging-{tag}"
    previous = target.parent / f".{target.name}.previous-{tag}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        shutil.copytree(source, staging, ignore=shutil.ignore_patterns(".*.staging-*", "*.tmp"))
        for name, path in (extra or {}).items():
            shutil.copy2(path, staging / name)
        if target.exists():
            os.replace(target, previous)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if previous.exists() and not target.exists():
            os.replace(previous, target)
        raise
    shutil.rmtree(previous, ignore_errors=True)


def write_best(layout: RunLayout, model_dir: Path, onnx: Path | None = None) -> Path:
    """best/ = a copy of `model_dir` (an mlflow-model folder), plus model.onnx when given."""
    extra = {"model.onnx": onnx} if onnx is not None and onnx.is_file() else {}
    copy_tree_atomically(model_dir, layout.best, extra)
    return layout.best


def write_report(layout: RunLayout, data: ReportData) -> Path:
    atomic_write_text(layout.report, render_report(data))
    return layout.report
