"""Multi-label CSV -> JSONL (kubevision.data.convert.csv_labels through the `convert` dispatcher)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from kubevision.api.errors import KubevisionError
from kubevision.data.convert import convert


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 9), (9, 9, 9)).save(path)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    for name in ("1.jpg", "2.jpg", "3 b.jpg", "4.jpg"):
        _image(tmp_path / "images" / name)
    return tmp_path


def test_azure_multilabel_csv(dataset: Path) -> None:
    csv_file = dataset / "labels.csv"
    csv_file.write_text('\ufefffilename,labels\n1.jpg,can milk_bottle\n\n2.jpg,carton\n'
                        '"3 b.jpg","can, carton can"\n4.jpg,\n')
    out = dataset / "train.jsonl"
    summary = convert("csv", "jsonl", csv_file, out)
    lines = _lines(out)
    assert [(line["image_url"], line["label"]) for line in lines] == [
        ("images/1.jpg", ["can", "milk_bottle"]), ("images/2.jpg", ["carton"]),
        ("images/3 b.jpg", ["can", "carton"]), ("images/4.jpg", [])]
    assert summary.task == "image_classification_multilabel"
    assert summary.images_without_labels == 1
    assert dict(summary.labels_per_class) == {"can": 2, "milk_bottle": 1, "carton": 2}
    assert summary.notes == ["first row taken as a header: filename,labels"]


def test_csv_without_header_keeps_the_first_row(dataset: Path) -> None:
    csv_file = dataset / "labels.csv"
    csv_file.write_text("1.jpg,a\n2.jpg,b\n")
    out = dataset / "o.jsonl"
    convert("csv", "jsonl", csv_file, out)
    assert [line["label"] for line in _lines(out)] == [["a"], ["b"]]


def test_single_label_task_and_images_option(dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "meta").mkdir()
    csv_file = tmp_path / "meta" / "l.csv"
    csv_file.write_text("file,label\n1.jpg,cat\n2.jpg,dog\n")
    out = tmp_path / "mc.jsonl"
    convert("csv", "jsonl", csv_file, out, images=dataset / "images", task="image_classification")
    assert [line["label"] for line in _lines(out)] == ["cat", "dog"]
    csv_file.write_text("file,label\n1.jpg,cat dog\n")
    with pytest.raises(KubevisionError, match="exactly one label per image, got 2") as err:
        convert("csv", "jsonl", csv_file, out, images=dataset / "images", task="image_classification")
    assert err.value.problems[0].line == 2


def test_bad_rows_are_reported_with_line_numbers(dataset: Path) -> None:
    csv_file = dataset / "labels.csv"
    csv_file.write_text("filename,labels\n1.jpg,a,b\n2.jpg,a\nmissing.jpg,a\n2.jpg,c\n,a\n")
    out = dataset / "o.jsonl"
    with pytest.raises(KubevisionError) as err:
        convert("csv", "jsonl", csv_file, out)
    got = [(p.line, p.message.split(":")[0].split(" (")[0]) for p in err.value.problems]
    assert got == [
        (2, "expected 2 fields 'filename,labels'"),
        (4, "image file not found"),
        (5, "2.jpg is listed again"),
        (6, "empty filename"),
    ]
    assert all(p.file == str(csv_file) for p in err.value.problems)
    assert not out.exists()


def test_missing_images_folder_and_detection_task(dataset: Path, tmp_path: Path) -> None:
    lonely = tmp_path / "elsewhere" / "l.csv"
    lonely.parent.mkdir()
    lonely.write_text("1.jpg,a\n")
    with pytest.raises(KubevisionError, match="images folder not found"):
        convert("csv", "jsonl", lonely, tmp_path / "o.jsonl")
    with pytest.raises(KubevisionError, match="not image_object_detection"):
        convert("csv", "jsonl", lonely, tmp_path / "o.jsonl", images=dataset / "images",
                task="image_object_detection")
