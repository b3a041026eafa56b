"""ImageRecord and label dataclasses: the derived values other layers rely on."""

from __future__ import annotations

import dataclasses

import pytest

from kubevision.data.records import BoxLabel, ImageRecord, PolygonLabel


def test_polygon_bbox_spans_every_segment() -> None:
    poly = PolygonLabel("can", [[0.2, 0.3, 0.4, 0.3, 0.3, 0.5], [0.6, 0.1, 0.9, 0.2, 0.7, 0.4]])
    assert poly.bbox == (0.2, 0.1, 0.9, 0.5)


def test_classes_are_distinct_in_first_seen_order_and_label_names_keep_repeats() -> None:
    boxes = (
        BoxLabel("b", 0, 0, 1, 1, False),
        BoxLabel("a", 0, 0, 1, 1, True),
        BoxLabel("b", 0, 0, 1, 1, False),
    )
    record = ImageRecord("x.png", 1, "t.jsonl", boxes, None, None, None)
    assert record.classes() == ("b", "a")
    assert record.label_names() == ("b", "a", "b")


def test_classes_of_multiclass_and_multilabel_records() -> None:
    assert ImageRecord("x.png", 1, "t.jsonl", "cat").classes() == ("cat",)
    assert ImageRecord("x.png", 2, "t.jsonl", ("milk", "can")).classes() == ("milk", "can")
    assert ImageRecord("x.png", 3, "t.jsonl", ()).classes() == ()


def test_records_are_frozen() -> None:
    record = ImageRecord("x.png", 1, "t.jsonl", "cat")
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.label = "dog"  # type: ignore[misc]
