"""Class folders -> JSONL (kubevision.data.convert.folders through the `convert` dispatcher)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from kubevision.api.errors import KubevisionError
from kubevision.data.convert import convert


def _image(path: Path, width: int = 12, height: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (1, 2, 3)).save(path)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    root = tmp_path / "fridge"
    _image(root / "can" / "1.jpg")
    _image(root / "can" / "2.PNG", 30, 20)
    _image(root / "milk bottle" / "3.jpeg")
    (root / "can" / "notes.txt").write_text("taken on a phone")
    (root / "can" / ".DS_Store").write_bytes(b"\0")
    (root / "README.md").write_text("x")
    (root / ".ipynb_checkpoints").mkdir()
    (root / "empty").mkdir()
    return root


def test_each_folder_is_a_class(folders: Path, tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    summary = convert("folders", "jsonl", folders, out)
    lines = _lines(out)
    assert [(line["image_url"], line["label"]) for line in lines] == [
        ("fridge/can/1.jpg", "can"), ("fridge/can/2.PNG", "can"),
        ("fridge/milk bottle/3.jpeg", "milk bottle")]
    assert lines[1]["image_details"] == {"format": "png", "width": 30, "height": 20}
    assert summary.task == "image_classification"
    assert dict(summary.labels_per_class) == {"can": 2, "milk bottle": 1}
    skipped = {Path(s.what).name: s.why for s in summary.skipped}
    assert skipped == {
        ".ipynb_checkpoints": "hidden", "README.md": "not inside a class folder", ".DS_Store": "hidden",
        "notes.txt": "not an image file (by extension)",
        "empty": "class folder without images (no class created)",
    }
    assert "skipped 5:" in str(summary)


def test_multilabel_task_wraps_the_class_in_a_list(folders: Path, tmp_path: Path) -> None:
    out = tmp_path / "ml.jsonl"
    convert("folders", "jsonl", folders, out, task="image_classification_multilabel",
            base_url="azureml://x/paths/fridge/")
    first = _lines(out)[0]
    assert first["label"] == ["can"] and first["image_url"] == "azureml://x/paths/fridge/can/1.jpg"


def test_nested_folders_are_an_error(folders: Path, tmp_path: Path) -> None:
    _image(folders / "can" / "deeper" / "4.jpg")
    with pytest.raises(KubevisionError) as err:
        convert("folders", "jsonl", folders, tmp_path / "o.jsonl")
    (problem,) = err.value.problems
    assert problem.file == str(folders / "can" / "deeper") and "nested folder" in problem.message


def test_corrupt_image_and_wrong_tasks(folders: Path, tmp_path: Path) -> None:
    (folders / "can" / "broken.jpg").write_text("not really a jpeg")
    with pytest.raises(KubevisionError, match="not an image Pillow can read") as err:
        convert("folders", "jsonl", folders, tmp_path / "o.jsonl")
    assert err.value.problems[0].file == str(folders / "can" / "broken.jpg")
    with pytest.raises(KubevisionError, match="not image_object_detection"):
        convert("folders", "jsonl", folders, tmp_path / "o.jsonl", task="image_object_detection")


def test_no_class_folders(tmp_path: Path) -> None:
    _image(tmp_path / "flat" / "a.jpg")
    with pytest.raises(KubevisionError, match="no images found"):
        convert("folders", "jsonl", tmp_path / "flat", tmp_path / "o.jsonl")
