"""JSONL -> COCO: pixel geometry, category order, portable file names, readable by pycocotools."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from kubevision.api.errors import KubevisionError
from kubevision.data.export_coco import jsonl_to_coco


def test_detection_export(
    tmp_path: Path, make_image: Callable[..., Path], write_jsonl: Callable[..., Path]
) -> None:
    make_image("data/images/a.png", (200, 100))
    make_image("data/images/b.jpg", (50, 40))
    src = write_jsonl(
        tmp_path / "data" / "train.jsonl",
        [
            {
                "image_url": "images/a.png",
                "image_details": {"width": "200px", "height": "100px"},
                "label": [
                    {
                        "label": "zebra",
                        "topX": 0.1,
                        "topY": 0.2,
                        "bottomX": 0.6,
                        "bottomY": 0.7,
                        "isCrowd": "1",
                    },
                    {"label": "ant", "topX": "0", "topY": 0, "bottomX": 1, "bottomY": 1},
                ],
            },
            {
                "image_url": "images/b.jpg",
                "label": [
                    {
                        "label": "ant",
                        "topX": 0.5,
                        "topY": 0.5,
                        "bottomX": 1.0,
                        "bottomY": 1.0,
                        "isCrowd": False,
                    }
                ],
            },
            {"image_url": "images/b.jpg", "label": []},
        ],
    )
    out = tmp_path / "export" / "coco.json"
    summary = jsonl_to_coco(src, out)
    assert str(summary) == f"wrote {out}: 3 images, 3 annotations, 2 categories (image_object_detection)"
    coco = json.loads(out.read_text())
    assert coco["categories"] == [
        {"id": 1, "name": "ant", "supercategory": "none"},
        {"id": 2, "name": "zebra", "supercategory": "none"},
    ]
    assert coco["images"][0] == {"id": 1, "width": 200, "height": 100, "file_name": "../data/images/a.png"}
    assert coco["images"][1] == {"id": 2, "width": 50, "height": 40, "file_name": "../data/images/b.jpg"}
    zebra, ant, ant_b = coco["annotations"]
    assert zebra == {
        "id": 1,
        "image_id": 1,
        "category_id": 2,
        "bbox": [20.0, 20.0, 100.0, 50.0],
        "area": 5000.0,
        "iscrowd": 1,
        "segmentation": [],
    }
    assert ant["bbox"] == [0.0, 0.0, 200.0, 100.0] and ant["iscrowd"] == 0
    assert ant_b["image_id"] == 2 and ant_b["bbox"] == [25.0, 20.0, 25.0, 20.0]
    for image in coco["images"]:
        assert (out.parent / image["file_name"]).is_file()
    pycocotools = pytest.importorskip("pycocotools.coco")
    api = pycocotools.COCO(str(out))
    assert api.getAnnIds(imgIds=[1]) == [1, 2]
    assert api.getCatIds(catNms=["zebra"]) == [2]


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools vs numpy 2
def test_segmentation_export_is_in_pixels_and_masks_decode(
    tmp_path: Path, make_image: Callable[..., Path], write_jsonl: Callable[..., Path]
) -> None:
    make_image("a.png", (100, 50))
    square = [0.2, 0.2, 0.6, 0.2, 0.6, 0.6, 0.2, 0.6]
    src = write_jsonl(
        tmp_path / "seg.jsonl",
        [
            {
                "image_url": "a.png",
                "label": [
                    {"label": "cell", "isCrowd": 0, "polygon": [square, [0.8, 0.8, 0.9, 0.8, 0.9, 0.9]]}
                ],
            }
        ],
    )
    summary = jsonl_to_coco(src, tmp_path / "coco.json")
    assert summary.task == "image_instance_segmentation" and summary.categories == ("cell",)
    ann = json.loads((tmp_path / "coco.json").read_text())["annotations"][0]
    assert ann["segmentation"][0] == [20.0, 10.0, 60.0, 10.0, 60.0, 30.0, 20.0, 30.0]
    assert ann["bbox"] == [20.0, 10.0, 70.0, 35.0]
    assert ann["area"] == pytest.approx(40 * 20 + 0.5 * 10 * 5)
    coco_mod = pytest.importorskip("pycocotools.coco")
    mask = coco_mod.COCO(str(tmp_path / "coco.json")).annToMask(ann)
    assert mask.shape == (50, 100)
    assert abs(int(mask.sum()) - ann["area"]) < 0.15 * ann["area"]


def test_task_can_be_forced_and_classification_is_refused(
    tmp_path: Path, make_image: Callable[..., Path], write_jsonl: Callable[..., Path]
) -> None:
    make_image("a.png")
    src = write_jsonl(tmp_path / "c.jsonl", [{"image_url": "a.png", "label": "cat"}])
    with pytest.raises(KubevisionError, match="the labels are classes, not boxes or polygons"):
        jsonl_to_coco(src, tmp_path / "c.json")
    with pytest.raises(KubevisionError, match="COCO export needs boxes or polygons"):
        jsonl_to_coco(src, tmp_path / "c.json", task="image_classification")
    with pytest.raises(KubevisionError, match=r"c\.jsonl:1: label: expected a list of box objects"):
        jsonl_to_coco(src, tmp_path / "c.json", task="image_object_detection")


def test_missing_image_is_reported_with_its_line(tmp_path: Path, write_jsonl: Callable[..., Path]) -> None:
    src = write_jsonl(tmp_path / "d.jsonl", [{"image_url": "gone.png", "label": []}])
    with pytest.raises(KubevisionError) as err:
        jsonl_to_coco(src, tmp_path / "d.json")
    assert f"{src}:1: image_url: image file not found" in str(err.value)
    assert not (tmp_path / "d.json").exists()
