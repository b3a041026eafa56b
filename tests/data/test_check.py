"""`check_dataset`: every line, every image, the numbers and the verdict."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubevision.data.check import check_dataset


def box(label: str, tx: float = 0.1, ty: float = 0.1, bx: float = 0.5, by: float = 0.6) -> dict[str, Any]:
    return {"label": label, "topX": tx, "topY": ty, "bottomX": bx, "bottomY": by, "isCrowd": 0}


def test_valid_classification_dataset(classification_data: Callable[..., Path]) -> None:
    path = classification_data(n=20)
    report = check_dataset(path, task="image_classification")
    assert report.ok, report.render()
    assert report.images == 20 and report.lines == 20
    assert report.class_counts == {"cat": 10, "dog": 10}
    assert report.width_range == (32, 51) and report.height_range == (24, 24)
    assert report.warnings == []
    text = report.render()
    assert "valid images: 20" in text
    assert "image size: width 32..51 px, height 24..24 px" in text
    assert "classes: 2 (images per class)" in text
    assert text.endswith("result: OK")


def test_fewer_than_ten_images_is_an_error_and_few_per_class_a_warning(
    classification_data: Callable[..., Path],
) -> None:
    report = check_dataset(classification_data(n=9), task="image_classification")
    assert not report.ok
    assert "only 9 valid image(s); AutoML needs at least 10 images to train" in report.render()
    assert report.warnings == [
        "2 class(es) have fewer than 10 images: cat (5), dog (4); aim for at least 10-15 per class"
    ]


def test_missing_and_corrupt_images_are_errors_on_their_lines(
    tmp_path: Path, classification_data: Callable[..., Path], write_jsonl: Callable[..., Path]
) -> None:
    classification_data(n=12)
    (tmp_path / "images" / "bad.png").write_bytes(b"\x89PNG garbage")
    rows = [{"image_url": f"images/{i}.png", "label": "cat" if i % 2 else "dog"} for i in range(12)]
    rows[3]["image_url"] = "images/missing.png"
    rows[5]["image_url"] = "images/bad.png"
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    report = check_dataset(path, task="image_classification")
    errors = [str(p) for p in report.errors]
    assert errors[0].startswith(
        f"{path}:4: image_url: image file not found: {tmp_path / 'images' / 'missing.png'}"
    )
    assert (
        errors[1]
        == f"{path}:6: image_url: not an image file Pillow can read: {tmp_path / 'images' / 'bad.png'}"
    )
    assert report.images == 10


def test_every_line_is_validated_and_render_truncates(
    tmp_path: Path, classification_data: Callable[..., Path], write_jsonl: Callable[..., Path]
) -> None:
    classification_data(n=12)
    rows: list[Any] = [{"image_url": f"images/{i}.png", "label": "cat"} for i in range(12)]
    rows += [{"image_url": "images/0.png", "label": i} for i in range(30)]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    report = check_dataset(path, task="image_classification")
    line_errors = [p for p in report.errors if p.field == "label" and p.line is not None]
    assert [p.line for p in line_errors] == list(range(13, 43))
    assert "More than one type found for the class field: string" in str(report.errors[0])
    text = report.render(max_errors=5)
    assert "errors (31):" in text
    assert "... and 26 more (raise --max-errors to see them)" in text
    assert "lines: 42 (30 with errors)" in text


def test_mixed_label_types_are_one_error_naming_the_first_lines(
    tmp_path: Path, classification_data: Callable[..., Path], write_jsonl: Callable[..., Path]
) -> None:
    classification_data(n=12)
    rows: list[Any] = [{"image_url": f"images/{i}.png", "label": "cat"} for i in range(12)]
    rows[6]["label"] = ["cat", "dog"]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    report = check_dataset(path, task="image_classification")
    assert (
        f"label: More than one type found for the class field: string (first at {path}:1), "
        f"list of strings (first at {path}:7)"
    ) in report.render()


def test_duplicates_and_disagreeing_image_details_are_warnings(
    tmp_path: Path, classification_data: Callable[..., Path], write_jsonl: Callable[..., Path]
) -> None:
    classification_data(n=12)
    rows: list[Any] = [
        {"image_url": f"images/{i}.png", "label": "cat" if i % 2 else "dog"} for i in range(12)
    ]
    rows[0]["image_details"] = {"width": "32px", "height": "24px", "format": "png"}
    rows[1]["image_details"] = {"width": 400, "height": 300}
    rows.append({"image_url": "./images/2.png", "label": "cat"})
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    report = check_dataset(path, task="image_classification")
    assert report.ok, report.render()
    assert (
        f"{path}:2: image_details: says 400x300 but the image is 33x24; kubevision uses the real size"
        in report.warnings
    )
    assert (
        f"image_url 'images/2.png' appears on 2 lines ({path}:3, {path}:13); each line counts as a separate "
        "image" in report.warnings
    )


def test_detection_and_segmentation_count_boxes_and_instances(
    tmp_path: Path, make_image: Callable[..., Path], write_jsonl: Callable[..., Path]
) -> None:
    rows = []
    for i in range(10):
        make_image(f"{i}.jpg", (64, 48))
        rows.append(
            {
                "image_url": f"{i}.jpg",
                "label": [box("rbc"), box("rbc", 0.5, 0.5, 0.9, 0.9)] + ([box("wbc")] if i < 3 else []),
            }
        )
    rows.append({"image_url": "0.jpg", "label": []})
    report = check_dataset(write_jsonl(tmp_path / "od.jsonl", rows), task="image_object_detection")
    assert report.class_counts == {"rbc": 20, "wbc": 3}
    assert report.without_labels == 1
    assert "classes: 2 (boxes per class)" in report.render()
    assert "images without boxes: 1" in report.render()
    assert "1 class(es) have fewer than 10 boxes: wbc (3)" in report.warnings[-1]

    segs = [
        {"image_url": f"{i}.jpg", "label": [{"label": "cell", "polygon": [[0.1, 0.1, 0.4, 0.1, 0.2, 0.3]]}]}
        for i in range(10)
    ]
    seg_report = check_dataset(write_jsonl(tmp_path / "is.jsonl", segs), task="image_instance_segmentation")
    assert seg_report.ok and seg_report.class_counts == {"cell": 10} and seg_report.count_unit == "instances"


def test_nonexistent_path_and_bad_mltable_are_reported_not_raised(tmp_path: Path) -> None:
    report = check_dataset(tmp_path / "nope.jsonl", task="image_classification")
    assert not report.ok and "does not exist" in report.render()
    (tmp_path / "tbl").mkdir()
    (tmp_path / "tbl" / "MLTable").write_text(
        "paths:\n  - file: ./x.jsonl\ntransformations:\n  - filter: x\n"
    )
    report = check_dataset(tmp_path / "tbl", task="image_classification")
    assert "unknown transformation 'filter'" in report.render()


def test_mltable_drop_turns_line_errors_into_warnings(
    tmp_path: Path, classification_data: Callable[..., Path]
) -> None:
    path = classification_data(n=20)
    with path.open("a") as f:
        f.write("{broken\n")
    (tmp_path / "MLTable").write_text(
        "paths:\n  - file: ./train.jsonl\ntransformations:\n  - read_json_lines:\n      invalid_lines: drop\n"
    )
    report = check_dataset(tmp_path, task="image_classification")
    assert report.ok, report.render()
    assert report.warnings == [
        f"dropped (the MLTable says invalid_lines: drop): {path}:21: not valid JSON: "
        "Expecting property name enclosed in double quotes (column 2)"
    ]


def _bccd_rows(bccd: Path, names: list[str]) -> tuple[list[dict[str, Any]], Counter[str]]:
    rows, counts = [], Counter[str]()
    for name in names:
        root = ET.parse(bccd / "Annotations" / f"{name}.xml").getroot()
        width, height = int(root.findtext("size/width", "0")), int(root.findtext("size/height", "0"))
        boxes = []
        for obj in root.iter("object"):
            x0, y0, x1, y1 = (
                float(obj.findtext(f"bndbox/{k}", "0")) for k in ("xmin", "ymin", "xmax", "ymax")
            )
            if x1 > x0 and y1 > y0:
                label = obj.findtext("name", "").strip()
                counts[label] += 1
                boxes.append(box(label, x0 / width, y0 / height, x1 / width, y1 / height))
        rows.append(
            {
                "image_url": str(bccd / "JPEGImages" / f"{name}.jpg"),
                "image_details": {"format": "jpg", "width": width, "height": height},
                "label": boxes,
            }
        )
    return rows, counts


def test_real_bccd_images(bccd: Path, tmp_path: Path, write_jsonl: Callable[..., Path]) -> None:
    names = sorted(p.stem for p in (bccd / "Annotations").glob("*.xml"))[:24]
    rows, counts = _bccd_rows(bccd, names)
    path = write_jsonl(tmp_path / "bccd.jsonl", rows)
    started = time.perf_counter()
    report = check_dataset(path, task="image_object_detection")
    assert time.perf_counter() - started < 10
    assert report.ok, report.render()
    assert report.images == 24
    assert report.class_counts == dict(counts) and {"RBC", "WBC"} <= set(counts)
    assert report.width_range == (640, 640) and report.height_range == (480, 480)
    # A real JPEG cut short (written to tmp, never into the repo) is caught by decoding.
    cut = tmp_path / "cut.jpg"
    data = (bccd / "JPEGImages" / f"{names[0]}.jpg").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    rows[0]["image_url"] = str(cut)
    report = check_dataset(write_jsonl(tmp_path / "cut.jsonl", rows), task="image_object_detection")
    assert str(report.errors[0]).startswith(
        f"{tmp_path / 'cut.jsonl'}:1: image_url: image cannot be decoded: {cut}"
    )
