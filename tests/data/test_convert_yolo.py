"""YOLO txt -> JSONL (kubevision.data.convert.yolo through the `convert` dispatcher)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from kubevision.api.errors import KubevisionError
from kubevision.data.convert import convert
from kubevision.data.convert.yolo import read_classes


def _image(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (200, 200, 10)).save(path)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def ultralytics(tmp_path: Path) -> Path:
    """root/images/train/*.jpg <-> root/labels/train/*.txt, names in data.yaml as a map."""
    root = tmp_path / "ds"
    _image(root / "images" / "train" / "a.jpg", 200, 100)
    _image(root / "images" / "train" / "bg.jpg", 20, 20)  # no label file: background image
    _write(root / "labels" / "train" / "a.txt", "0 0.5 0.5 0.2 0.4\n\n1 0.95 0.5 0.2 0.2\n")
    _write(root / "labels" / "train" / "orphan.txt", "0 0.5 0.5 0.1 0.1\n")
    _write(root / "images" / "train" / "c.webp", "not a format Azure takes")
    _write(root / "data.yaml", "path: .\ntrain: images/train\nnames:\n  0: cell\n  1: nucleus\n")
    return root


def test_standard_layout_boxes(ultralytics: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    summary = convert("yolo", "jsonl", ultralytics, out)
    a, bg = _lines(out)
    assert a["image_url"] == "ds/images/train/a.jpg"
    assert a["image_details"] == {"format": "jpg", "width": 200, "height": 100}
    assert a["label"][0] == {"label": "cell", "topX": 0.4, "topY": 0.3, "bottomX": 0.6, "bottomY": 0.7,
                             "isCrowd": 0}
    nucleus = a["label"][1]
    assert nucleus["label"] == "nucleus" and nucleus["bottomX"] == 1.0  # 0.95 + 0.1 clipped
    assert nucleus["topX"] == pytest.approx(0.85)
    assert bg["label"] == []
    assert summary.task == "image_object_detection" and summary.clipped == 1
    assert [(Path(s.what).name, s.why) for s in summary.skipped] == [
        ("c.webp", "not an image file (by extension)"), ("orphan.txt", "label file without an image")]
    assert any("1 images have no label file" in note for note in summary.notes)


def test_same_folder_txt_with_classes_txt_and_base_url(tmp_path: Path) -> None:
    folder = tmp_path / "flat"
    _image(folder / "x.png", 40, 40)
    _write(folder / "x.txt", "2 0.5 0.5 0.5 0.5\n")
    classes = _write(tmp_path / "names.txt", "a\nb\nc\n\n")
    out = tmp_path / "out.jsonl"
    convert("yolo", "jsonl", folder, out, classes=classes, base_url="azureml://ds/paths/flat")
    (line,) = _lines(out)
    assert line["image_url"] == "azureml://ds/paths/flat/x.png"
    assert line["label"][0]["label"] == "c"


def test_images_folder_as_source_finds_sibling_labels(ultralytics: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    summary = convert("yolo", "jsonl", ultralytics / "images", out, classes=ultralytics / "data.yaml")
    assert summary.images == 2 and summary.labels == 2


def test_segmentation_lines_make_polygons(tmp_path: Path) -> None:
    root = tmp_path / "seg"
    _image(root / "images" / "s.jpg", 100, 100)
    _write(root / "labels" / "s.txt", "0 0.1 0.1 0.5 0.1 0.5 0.5\n1 0.5 0.5 0.2 0.2\n")
    _write(root / "data.yaml", "names: [leaf, bug]\n")
    out = tmp_path / "out.jsonl"
    summary = convert("yolo", "jsonl", root, out)
    (line,) = _lines(out)
    assert summary.task == "image_instance_segmentation"
    assert line["label"][0] == {"label": "leaf", "isCrowd": 0, "polygon": [[0.1, 0.1, 0.5, 0.1, 0.5, 0.5]]}
    assert line["label"][1]["polygon"] == [[0.4, 0.4, 0.6, 0.4, 0.6, 0.6, 0.4, 0.6]]
    assert any("rectangle polygons" in note for note in summary.notes)
    boxes = tmp_path / "boxes.jsonl"
    convert("yolo", "jsonl", root, boxes, task="image_object_detection")
    first = _lines(boxes)[0]["label"][0]
    assert [first[k] for k in ("topX", "topY", "bottomX", "bottomY")] == [0.1, 0.1, 0.5, 0.5]


def test_bad_lines_are_reported_with_file_and_line(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    _image(root / "images" / "a.jpg", 10, 10)
    label = _write(root / "labels" / "a.txt", "\n".join([
        "0 0.5 0.5 0.2",  # 4 values
        "7 0.5 0.5 0.2 0.2",  # class out of range
        "x 0.5 0.5 0.2 0.2",  # class not an int
        "0 0.5 0.5 nope 0.2",  # not a number
        "0 320 240 50 60",  # pixels
        "0 0.5 0.5 0 0.2",  # zero width
        "0 0.5 0.5 0.2 0.2",  # fine
    ]) + "\n")
    _write(root / "classes.txt", "only\n")
    with pytest.raises(KubevisionError) as err:
        convert("yolo", "jsonl", root, tmp_path / "o.jsonl")
    problems = [str(p) for p in err.value.problems]
    assert [p.line for p in err.value.problems] == [1, 2, 3, 4, 5, 6]
    assert problems[0].startswith(f"{label}:1: expected 'class cx cy w h'")
    assert "class id 7 is outside 0..0" in problems[1]
    assert "look like pixels" in problems[4]
    assert "width and height must be positive" in problems[5]


def test_class_names_files(tmp_path: Path) -> None:
    assert read_classes(_write(tmp_path / "d.yaml", "names: [a, b]\n")) == ["a", "b"]
    assert read_classes(_write(tmp_path / "e.yaml", "names: {1: b, 0: a}\n")) == ["a", "b"]
    with pytest.raises(KubevisionError, match="'names' must be"):
        read_classes(_write(tmp_path / "f.yaml", "nc: 2\n"))
    with pytest.raises(KubevisionError, match="without gaps"):
        read_classes(_write(tmp_path / "g.yaml", "names: {0: a, 2: c}\n"))
    with pytest.raises(KubevisionError) as err:
        read_classes(_write(tmp_path / "c.txt", "a\n\nb\n"))
    assert err.value.problems[0].line == 2


def test_missing_class_names_and_images(tmp_path: Path) -> None:
    folder = tmp_path / "nothing"
    _image(folder / "a.jpg", 5, 5)
    with pytest.raises(KubevisionError, match="pass --classes"):
        convert("yolo", "jsonl", folder, tmp_path / "o.jsonl")
    empty = tmp_path / "empty"
    _write(empty / "classes.txt", "a\n")
    with pytest.raises(KubevisionError, match="no images found"):
        convert("yolo", "jsonl", empty, tmp_path / "o.jsonl")
    with pytest.raises(KubevisionError, match="--images do\\(es\\) not apply to --from yolo"):
        convert("yolo", "jsonl", folder, tmp_path / "o.jsonl", images=folder)
