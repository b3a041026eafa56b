"""Parsing the Azure JSONL schema: lenient where the schema is, precise about what is wrong and where."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kubevision.api.errors import KubevisionError
from kubevision.data import read_dataset
from kubevision.data.jsonl import label_kind, mixed_kinds_problem, parse_jsonl, parse_line
from kubevision.data.records import BoxLabel, PolygonLabel


def line(obj: Any, task: str, **kw: Any) -> Any:
    return parse_line(json.dumps(obj), task=task, source="train.jsonl", **kw)


def messages(parsed: Any) -> list[str]:
    return [str(p) for p in parsed.problems]


def test_detection_accepts_numeric_strings_iscrowd_variants_and_pixel_strings() -> None:
    parsed = line(
        {
            "image_url": "images/1.jpg",
            "image_details": {"format": "JPG", "width": "499px", "height": "666"},
            "label": [
                {
                    "label": "can",
                    "topX": "0.26",
                    "topY": 0.406,
                    "bottomX": 0.735,
                    "bottomY": "0.701",
                    "isCrowd": "1",
                },
                {"label": "can", "topX": 0, "topY": 0, "bottomX": 1, "bottomY": 1, "isCrowd": True},
                {"label": "milk", "topX": 0.1, "topY": 0.1, "bottomX": 0.2, "bottomY": 0.2},
            ],
        },
        "image_object_detection",
    )
    assert parsed.problems == []
    record = parsed.record
    assert record is not None
    assert (record.width, record.height, record.format) == (499, 666, "jpg")
    assert record.label[0] == BoxLabel("can", 0.26, 0.406, 0.735, 0.701, True)
    assert record.label[1] == BoxLabel("can", 0.0, 0.0, 1.0, 1.0, True)
    assert record.label[2].is_crowd is False  # type: ignore[union-attr]


def test_segmentation_record_and_extra_keys_are_ignored() -> None:
    parsed = line(
        {
            "image_url": "a.png",
            "label": [
                {
                    "label": "carton",
                    "isCrowd": 0,
                    "bbox": "null",
                    "polygon": [[0.24, 0.65, 0.234, 0.654, 0.23, 0.2]],
                },
            ],
        },
        "image_instance_segmentation",
    )
    assert parsed.problems == []
    assert parsed.record is not None
    assert parsed.record.label == (PolygonLabel("carton", [[0.24, 0.65, 0.234, 0.654, 0.23, 0.2]], False),)
    assert parsed.record.width is None


def test_multilabel_deduplicates_and_allows_an_empty_list() -> None:
    assert line(
        {"image_url": "a.png", "label": ["can", "milk", "can"]}, "image_classification_multilabel"
    ).record.label == ("can", "milk")
    assert line({"image_url": "a.png", "label": []}, "image_classification_multilabel").record.label == ()


@pytest.mark.parametrize(
    ("task", "label", "fragment"),
    [
        (
            "image_classification",
            ["cat"],
            "expected a class name string for image_classification, found a list of "
            "strings (is the task image_classification_multilabel?)",
        ),
        ("image_classification", 3, "found the number 3"),
        ("image_classification", " ", "class name is empty"),
        ("image_classification_multilabel", "cat", "expected a list of class name strings"),
        (
            "image_classification_multilabel",
            ["cat", 4],
            "label[1]: expected a class name string, found the number 4",
        ),
        ("image_object_detection", ["cat"], "(is the task image_classification_multilabel?)"),
        (
            "image_object_detection",
            [{"label": "a", "topX": 0.1, "topY": 0.1, "bottomX": 0.5}],
            "label[0].bottomY: missing",
        ),
        (
            "image_object_detection",
            [{"label": "a", "topX": 120, "topY": 0.1, "bottomX": 0.5, "bottomY": 0.5}],
            "label[0].topX: 120 is outside [0, 1]; coordinates are fractions of the image width/height",
        ),
        (
            "image_object_detection",
            [{"label": "a", "topX": 0.5, "topY": 0.1, "bottomX": 0.5, "bottomY": 0.5}],
            "label[0]: empty or inverted box: topX 0.5 must be less than bottomX 0.5",
        ),
        (
            "image_object_detection",
            [{"label": "a", "topX": 0.1, "topY": 0.6, "bottomX": 0.5, "bottomY": 0.5}],
            "topY 0.6 must be less than bottomY 0.5",
        ),
        (
            "image_object_detection",
            [{"label": "a", "topX": "x", "topY": 0.1, "bottomX": 0.5, "bottomY": 0.5}],
            'label[0].topX: expected a number in [0, 1], found the string "x"',
        ),
        (
            "image_object_detection",
            [{"label": "a", "topX": 0.1, "topY": 0.1, "bottomX": 0.5, "bottomY": 0.5, "isCrowd": 2}],
            "label[0].isCrowd: expected true/false or 0/1",
        ),
        (
            "image_object_detection",
            [{"label": "a", "polygon": [[0.1, 0.1, 0.2, 0.1, 0.2, 0.2]]}],
            "found a list of polygon objects (is the task image_instance_segmentation?)",
        ),
        (
            "image_object_detection",
            [
                {"label": "a", "topX": 0.1, "topY": 0.1, "bottomX": 0.5, "bottomY": 0.5},
                {"label": "b", "polygon": [[0.1, 0.1, 0.2, 0.1, 0.2, 0.2]]},
            ],
            "label[1]: expected a box object {label, topX, topY, bottomX, bottomY}, found a polygon object",
        ),
        (
            "image_instance_segmentation",
            [{"label": "a", "polygon": [0.1, 0.1, 0.2, 0.1, 0.2, 0.2]}],
            "found a flat list of numbers; wrap it in another list",
        ),
        (
            "image_instance_segmentation",
            [{"label": "a", "polygon": [[0.1, 0.1, 0.2, 0.1]]}],
            "label[0].polygon[0]: has 2 points; a polygon needs at least 3",
        ),
        (
            "image_instance_segmentation",
            [{"label": "a", "polygon": [[0.1, 0.1, 0.2, 0.1, 0.2]]}],
            "has 5 numbers, an odd count",
        ),
        (
            "image_instance_segmentation",
            [{"label": "a", "polygon": [[0.1, 0.1, 0.2, 1.5, 0.2, 0.2]]}],
            "label[0].polygon[0][3]: 1.5 is outside [0, 1]",
        ),
        (
            "image_instance_segmentation",
            [{"label": "a", "polygon": [[0.1, 0.1, 0.2, 0.1, 0.3, 0.1]]}],
            "the polygon has no area",
        ),
        (
            "image_instance_segmentation",
            [{"label": "a", "topX": 0.1, "topY": 0.1, "bottomX": 0.5, "bottomY": 0.5}],
            "label: expected a list of polygon objects {label, polygon} for image_instance_segmentation, "
            "found a list of box objects (is the task image_object_detection?)",
        ),
        (
            "image_instance_segmentation",
            [{"label": "a", "polygon": [[0.1, 0.1, 0.2, 0.1, 0.2, 0.2]]}, {"label": "b", "topX": 0.1}],
            "label[1].polygon: missing (a list of segments [[x1, y1, x2, y2, ...]]) "
            "(this is a box; is the task image_object_detection?)",
        ),
    ],
)
def test_wrong_labels_are_reported_with_place_and_reason(task: str, label: Any, fragment: str) -> None:
    parsed = line({"image_url": "a.png", "label": label}, task)
    assert parsed.record is None
    text = "\n".join(messages(parsed))
    assert fragment in text
    assert "train.jsonl:1: label" in text


def test_every_problem_on_a_line_is_reported() -> None:
    parsed = line(
        {
            "image_url": 5,
            "image_details": {"width": "wide"},
            "label": [
                {"label": "a", "topX": 2, "topY": 0.1, "bottomX": 0.5, "bottomY": 0.5},
                {"label": "", "topX": 0.1, "topY": 0.1, "bottomX": 0.5, "bottomY": 0.5},
            ],
        },
        "image_object_detection",
    )
    fields = [p.field for p in parsed.problems]
    assert fields == ["image_url", "image_details.width", "label[0].topX", "label[1].label"]


def test_not_json_and_not_an_object() -> None:
    bad = parse_line(
        '{"image_url": "a.png", "label": "cat"', task="image_classification", source="t.jsonl", line=7
    )
    assert [str(p) for p in bad.problems] == [
        "t.jsonl:7: not valid JSON: Expecting ',' delimiter (column 38)"
    ]
    arr = parse_line('["a.png", "cat"]', task="image_classification", source="t.jsonl", line=2)
    assert "t.jsonl:2: expected a JSON object" in str(arr.problems[0])
    assert "found a list of strings" in str(arr.problems[0])


def test_missing_keys_and_custom_target_column() -> None:
    parsed = line({"label": "cat"}, "image_classification", target_column="category")
    fields = {p.field: p.message for p in parsed.problems}
    assert set(fields) == {"image_url", "category"}
    assert "is the target column 'label'?" in fields["category"]
    ok = line({"image_url": "a.png", "category": "cat"}, "image_classification", target_column="category")
    assert ok.record is not None and ok.record.label == "cat"


def test_label_kind_names() -> None:
    assert label_kind("x") == "string"
    assert label_kind([]) == "empty list"
    assert label_kind(["a"]) == "list of strings"
    assert label_kind([{"topX": 0}]) == "list of box objects"
    assert label_kind([{"polygon": []}]) == "list of polygon objects"
    assert label_kind(["a", {"topX": 0}]) == "list of mixed items"


def test_blank_lines_are_skipped_and_line_numbers_are_the_files(
    tmp_path: Path, write_jsonl: Callable[..., Path]
) -> None:
    path = write_jsonl(
        tmp_path / "t.jsonl",
        [{"image_url": "a.png", "label": "cat"}, "", "   ", {"image_url": "b.png", "label": 1}],
    )
    result = parse_jsonl(path, task="image_classification")
    assert [p.line for p in result.lines] == [1, 4]
    assert str(result.lines[1].problems[0]).startswith(f"{path}:4: label:")


def test_utf8_bom_is_accepted_and_bad_bytes_are_located(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(
        b'\xef\xbb\xbf{"image_url": "a.png", "label": "cat"}\n{"image_url": "b.png", "label": "caf\xe9"}\n'
    )
    result = parse_jsonl(path, task="image_classification")
    assert result.lines[0].record is not None
    assert "t.jsonl:2: not valid utf-8" in str(result.lines[1].problems[0])
    latin = parse_jsonl(path, task="image_classification", encoding="latin1")
    assert latin.lines[1].record is not None and latin.lines[1].record.label == "café"


def test_mixed_label_types_name_the_first_line_of_each_type(
    tmp_path: Path, write_jsonl: Callable[..., Path]
) -> None:
    path = write_jsonl(
        tmp_path / "t.jsonl",
        [
            {"image_url": "a.png", "label": "cat"},
            {"image_url": "b.png", "label": []},
            {"image_url": "c.png", "label": ["cat"]},
            {"image_url": "d.png", "label": "dog"},
        ],
    )
    problem = mixed_kinds_problem(parse_jsonl(path, task="image_classification").lines)
    assert problem is not None
    assert str(problem) == (
        f"label: More than one type found for the class field: string (first at {path}:1), "
        f"list of strings (first at {path}:3); every line's label must have the same type, "
        "the one of the task"
    )


def test_read_dataset_returns_sorted_classes_and_records(
    tmp_path: Path, write_jsonl: Callable[..., Path]
) -> None:
    path = write_jsonl(
        tmp_path / "t.jsonl",
        [{"image_url": "a.png", "label": ["milk", "can"]}, {"image_url": "b.png", "label": ["water"]}],
    )
    dataset = read_dataset(path, "image_classification_multilabel")
    assert dataset.classes == ["can", "milk", "water"]
    assert [r.line for r in dataset.records] == [1, 2]
    assert dataset.records[0].source == str(path)
    assert dataset.source == str(path) and dataset.dropped == []


def test_read_dataset_raises_with_every_place_or_drops(
    tmp_path: Path, write_jsonl: Callable[..., Path]
) -> None:
    path = write_jsonl(
        tmp_path / "t.jsonl",
        [
            {"image_url": "a.png", "label": "cat"},
            "{oops",
            {"image_url": "c.png"},
            {"image_url": "d.png", "label": "dog"},
        ],
    )
    with pytest.raises(KubevisionError) as err:
        read_dataset(path, "image_classification")
    text = str(err.value)
    assert f"{path}:2: not valid JSON" in text
    assert f"{path}:3: label: missing" in text
    assert "kubevision data check" in text
    dataset = read_dataset(path, "image_classification", invalid_lines="drop")
    assert [r.line for r in dataset.records] == [1, 4]
    assert [p.line for p in dataset.dropped] == [2, 3]


def test_read_dataset_error_lists_at_most_twenty_problems(
    tmp_path: Path, write_jsonl: Callable[..., Path]
) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"image_url": f"{i}.png", "label": 1} for i in range(30)])
    with pytest.raises(KubevisionError) as err:
        read_dataset(path, "image_classification")
    assert len(err.value.problems) == 20
    assert "30 problem(s)" in err.value.headline


def test_read_dataset_rejects_unknown_task_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KubevisionError, match="unknown task 'image_segmentation'"):
        read_dataset(tmp_path / "x.jsonl", "image_segmentation")
    with pytest.raises(KubevisionError, match=r"x\.jsonl: does not exist \(resolved to /"):
        read_dataset(tmp_path / "x.jsonl", "image_classification")


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text("\n\n")
    with pytest.raises(KubevisionError, match="no labelled images"):
        read_dataset(tmp_path / "t.jsonl", "image_classification")


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(
        b'{"image_url": "a.png", "label": "cat"}\r\n\r\n{"image_url": "b.png", "label": null}\r\n'
    )
    result = parse_jsonl(path, task="image_classification")
    assert result.lines[0].record is not None and result.lines[0].record.label == "cat"
    assert str(result.lines[1].problems[0]) == (
        f"{path}:3: label: expected a class name string for image_classification, found null"
    )
