"""Result files: the report (real matplotlib, real PNGs), best/ swapped in whole, progress rendering.

The report is checked the way a person would: it is one HTML file whose <img> tags carry PNG data
(decoded and checked for the PNG signature and size), with user text escaped.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest
from PIL import Image

from kubevision.local.leaderboard import rank
from kubevision.local.outcomes import TrialOutcome
from kubevision.local.progress import PlainProgress, RunningTrial, Snapshot, make_progress, render
from kubevision.local.report import ReportData, render_report
from kubevision.local.results import copy_tree_atomically

CLASSES = ["cat", "dog", "<bird>"]


def _outcomes() -> list[TrialOutcome]:
    return [
        TrialOutcome(number=0, name="j-0", params={"learningRate": 0.01}, source="random", state="succeeded",
                     value=0.8, epochs_run=3, epochs_planned=3, duration_s=30, model_dir="/x"),
        TrialOutcome(number=1, name="j-1", params={"learningRate": 1e-9}, source="random", state="early_terminated",
                     value=0.3, epochs_run=1, epochs_planned=3, duration_s=10, stop_reason="bandit: 0.3 < 0.667"),
        TrialOutcome(number=2, name="j-2", params={"learningRate": 0.1}, source="random", state="failed",
                     error="error: <script>alert(1)</script>", log_tail=["line & more"], duration_s=3),
    ]


def _pngs(page: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(data)))
            for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


@pytest.mark.parametrize("multilabel", [False, True])
def test_report_is_one_page_with_four_plots_and_escaped_text(multilabel: bool) -> None:
    matrix = ([[[5, 1], [0, 4]], [[3, 2], [1, 4]], [[6, 0], [2, 2]]] if multilabel
              else [[5, 1, 0], [2, 3, 0], [0, 0, 4]])
    summary = {"classes": CLASSES, "confusion_matrix": matrix,
               "classification_report": {"per_class": {c: {"precision": 0.5, "recall": 0.7} for c in CLASSES}}}
    data = ReportData(job="digits", task="image_classification", metric="accuracy", mode="random sweep", planned=4,
                      concurrency=2, wall_s=75, phase="succeeded", rows=rank(_outcomes()),
                      histories={0: [(1, 0.5), (2, 0.7), (3, 0.8)], 1: [(1, 0.3)], 2: []}, best_summary=summary,
                      best_model="/runs/digits/best", details=[("seed", "7")])
    page = render_report(data)
    images = _pngs(page)
    assert len(images) == 4 and all(img.format == "PNG" and img.size[0] > 300 for img in images)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert "0.8000 (trial 0)" in page and "learningRate=0.01" in page and "1m 15s" in page
    assert "bandit: 0.3 &lt; 0.667" in page and "line &amp; more" in page


def test_report_without_a_best_model_has_the_two_trial_plots() -> None:
    outcomes = [o for o in _outcomes() if o.state == "failed"]
    data = ReportData(job="j", task="image_classification", metric="accuracy", mode="AutoMode", planned=2,
                      concurrency=1, wall_s=5, phase="failed", rows=rank(outcomes), histories={2: []})
    page = render_report(data)
    assert len(_pngs(page)) == 2 and "no trial produced a model" in page


def test_copy_tree_atomically_replaces_the_whole_folder(tmp_path: Path) -> None:
    first, second, target = tmp_path / "a", tmp_path / "b", tmp_path / "best"
    for folder, name in ((first, "old.txt"), (second, "new.txt")):
        (folder / "artifacts").mkdir(parents=True)
        (folder / "artifacts" / name).write_text(name)
    copy_tree_atomically(first, target)
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"onnx")
    copy_tree_atomically(second, target, {"model.onnx": onnx})
    assert sorted(p.name for p in target.rglob("*")) == ["artifacts", "model.onnx", "new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "best", "model.onnx"]  # no staging left


def test_a_failed_copy_leaves_the_previous_best_in_place(tmp_path: Path) -> None:
    good, target = tmp_path / "good", tmp_path / "best"
    good.mkdir()
    (good / "MLmodel").write_text("model")
    copy_tree_atomically(good, target)
    with pytest.raises(OSError):
        copy_tree_atomically(tmp_path / "missing", target)
    assert (target / "MLmodel").read_text() == "model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "good"]


def test_progress_renders_plain_lines_off_a_terminal_and_a_table_on_one() -> None:
    stream = io.StringIO()
    progress = make_progress(stream)
    assert isinstance(progress, PlainProgress)
    progress.event("trial 0 started\n  detail")
    assert re.fullmatch(r"\[00:0\d\] trial 0 started\n\[00:0\d\]   detail\n", stream.getvalue())

    from rich.console import Console

    snapshot = Snapshot(job="digits", metric="accuracy", planned=4, concurrency=2, elapsed_s=65, eta_s=120,
                        running=[RunningTrial(3, {"learningRate": 0.01}, 2, 3, 0.61, 20.0)],
                        finished=_outcomes(), best=_outcomes()[0])
    console = Console(record=True, width=160)
    console.print(render(snapshot))
    text = console.export_text()
    assert "running 1  done 1  failed 1  stopped 1  of 4" in text and "best accuracy 0.8000 (trial 0)" in text
    assert "left ~2m 00s" in text and "2/3" in text and "early_terminated" in text
