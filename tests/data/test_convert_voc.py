"""Pascal VOC -> JSONL (kubevision.data.convert.voc through the `convert` dispatcher)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from kubevision.api.errors import KubevisionError
from kubevision.data.convert import convert


def _image(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (10, 200, 30)).save(path)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _xml(path: Path, filename: str, width: int, height: int,
         objects: list[tuple[str, int, tuple[object, object, object, object]]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [f"<annotation><folder>JPEGImages</folder><filename>{filename}</filename>",
             f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"]
    for name, difficult, (x0, y0, x1, y1) in objects:
        parts.append(f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>"
                     f"<xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")
    path.write_text("".join(parts) + "</annotation>\n")


@pytest.fixture
def voc(tmp_path: Path) -> Path:
    """Annotations/ + JPEGImages/: one XML names its image without extension, one image is a PNG."""
    _image(tmp_path / "JPEGImages" / "a.jpg", 200, 100)
    _image(tmp_path / "JPEGImages" / "b.png", 50, 40)
    _xml(tmp_path / "Annotations" / "a.xml", "a.jpg", 200, 100, [
        ("RBC", 0, (20, 10, 120, 60)),
        ("WBC", 1, (150, 50, 210, 110)),  # past the right and bottom edges: clipped
        ("RBC", 0, (30, 30, 30, 30)),  # a single click: zero area, widened to one pixel and counted
        ("RBC", 0, (250, 20, 260, 30)),  # wholly outside the 200 px wide image: dropped and reported
    ])
    _xml(tmp_path / "Annotations" / "b.xml", "b", 50, 40, [(" Platelets ", 0, (5, 4, 25, 24))])
    return tmp_path / "Annotations"


def test_boxes_follow_azure_normalization(voc: Path, tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    summary = convert("voc", "jsonl", voc, out)
    a, b = _lines(out)
    assert a["image_url"] == "JPEGImages/a.jpg"
    assert a["label"] == [
        {"label": "RBC", "topX": 0.1, "topY": 0.1, "bottomX": 0.6, "bottomY": 0.6, "isCrowd": 0},
        {"label": "WBC", "topX": 0.75, "topY": 0.5, "bottomX": 1.0, "bottomY": 1.0, "isCrowd": 1},
        {"label": "RBC", "topX": 0.1475, "topY": 0.295, "bottomX": 0.1525, "bottomY": 0.305, "isCrowd": 0},
    ]
    assert b["image_url"] == "JPEGImages/b.png" and b["image_details"] == {"format": "png", "width": 50,
                                                                             "height": 40}
    assert b["label"] == [{"label": "Platelets", "topX": 0.1, "topY": 0.1, "bottomX": 0.5, "bottomY": 0.6,
                           "isCrowd": 0}]
    assert summary.task == "image_object_detection"
    assert summary.clipped == 1
    assert summary.widened == 1
    assert len(summary.skipped) == 1
    assert "a.xml: object[3] (RBC)" in summary.skipped[0].what
    assert "outside the image (xmin=250 ymin=20 xmax=260 ymax=30)" in summary.skipped[0].why
    assert dict(summary.labels_per_class) == {"RBC": 2, "WBC": 1, "Platelets": 1}
    text = str(summary)
    assert "clipped to the image bounds: 1 boxes" in text and "skipped 1:" in text
    assert "widened to 1 pixel: 1" in text


def test_single_xml_and_explicit_images_folder(voc: Path, tmp_path: Path) -> None:
    out = tmp_path / "one.jsonl"
    summary = convert("voc", "jsonl", voc / "b.xml", out, images=tmp_path / "JPEGImages",
                      base_url="https://store/x")
    (line,) = _lines(out)
    assert line["image_url"] == "https://store/x/b.png"
    assert summary.images == 1


def _instance_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = array.shape
    image = Image.frombytes("P", (width, height), array.astype(np.uint8).tobytes())
    image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (252 * 3) + [224, 224, 192])
    image.save(path)


def test_instance_masks_become_polygons_in_object_order(tmp_path: Path) -> None:
    _image(tmp_path / "JPEGImages" / "m.jpg", 100, 50)
    _xml(tmp_path / "Annotations" / "m.xml", "m.jpg", 100, 50, [
        ("can", 0, (10, 5, 40, 25)), ("carton", 1, (60, 20, 90, 45))])
    ids = np.zeros((50, 100), dtype=np.uint8)
    ids[5:25, 10:40] = 1
    ids[20:45, 60:90] = 2
    ids[4, 10:40] = 255  # VOC "void" border: ignored
    _instance_png(tmp_path / "masks" / "m.png", ids)
    out = tmp_path / "seg.jsonl"
    summary = convert("voc", "jsonl", tmp_path / "Annotations", out, masks=tmp_path / "masks")
    (line,) = _lines(out)
    assert summary.task == "image_instance_segmentation"
    can, carton = line["label"]
    assert (can["label"], can["isCrowd"], carton["label"], carton["isCrowd"]) == ("can", 0, "carton", 1)
    (poly,) = can["polygon"]
    assert (min(poly[0::2]), max(poly[0::2]), min(poly[1::2]), max(poly[1::2])) == \
        pytest.approx((0.1, 0.4, 0.1, 0.5))
    (poly,) = carton["polygon"]
    assert (min(poly[0::2]), max(poly[0::2]), min(poly[1::2]), max(poly[1::2])) == \
        pytest.approx((0.6, 0.9, 0.4, 0.9))


def test_mask_problems(tmp_path: Path) -> None:
    _image(tmp_path / "JPEGImages" / "m.jpg", 100, 50)
    _image(tmp_path / "JPEGImages" / "n.jpg", 100, 50)
    _xml(tmp_path / "Annotations" / "m.xml", "m.jpg", 100, 50, [("can", 0, (10, 5, 40, 25))] * 2)
    _xml(tmp_path / "Annotations" / "n.xml", "n.jpg", 100, 50, [("can", 0, (10, 5, 40, 25))])
    ids = np.zeros((50, 100), dtype=np.uint8)
    ids[5:25, 10:40] = 3
    _instance_png(tmp_path / "masks" / "m.png", ids)
    with pytest.raises(KubevisionError) as err:
        convert("voc", "jsonl", tmp_path / "Annotations", tmp_path / "o.jsonl", masks=tmp_path / "masks")
    text = str(err.value)
    assert "m.xml: m.png has 1 instances (pixel values [3]) but the XML has 2 objects" in text
    assert "n.xml: instance mask" in text and "n.png not found" in text


def test_detection_task_with_masks_and_segmentation_without_are_refused(voc: Path, tmp_path: Path) -> None:
    with pytest.raises(KubevisionError, match="pass --masks"):
        convert("voc", "jsonl", voc, tmp_path / "o.jsonl", task="image_instance_segmentation")


def test_bad_xml_is_reported_with_file_and_field(voc: Path, tmp_path: Path) -> None:
    (voc / "c.xml").write_text("<annotation><filename>a.jpg</filename>\n<size>\n</annotation>")
    _xml(voc / "d.xml", "a.jpg", 200, 100, [("RBC", 0, (20, "x", 120, 60))])
    _xml(voc / "e.xml", "missing.jpg", 200, 100, [])
    _xml(voc / "f.xml", "a.jpg", 200, 100, [("", 0, (1, 2, 3, 4))])
    _xml(voc / "g.xml", "a.jpg", 200, 100, [("RBC", 0, (50, 2, 10, 4))])
    _xml(voc / "h.xml", "a.jpg", 640, 480, [])
    out = tmp_path / "o.jsonl"
    with pytest.raises(KubevisionError) as err:
        convert("voc", "jsonl", voc, out)
    text = str(err.value)
    assert f"{voc / 'c.xml'}:3: not well-formed XML" in text
    assert f"{voc / 'd.xml'}: object[0].bndbox.ymin: <ymin> must be a number, got 'x'" in text
    assert f"{voc / 'e.xml'}: filename: image 'missing.jpg' not found" in text
    assert f"{voc / 'f.xml'}: object[0].name: missing <name>" in text
    assert f"{voc / 'g.xml'}: object[0].bndbox: box corners are reversed" in text
    assert f"{voc / 'h.xml'}: size: XML size 640x480 differs from the image file's 200x100" in text
    assert not out.exists()


def test_missing_default_images_folder_suggests_the_option(tmp_path: Path) -> None:
    _xml(tmp_path / "ann" / "a.xml", "a.jpg", 10, 10, [])
    with pytest.raises(KubevisionError, match="images folder not found") as err:
        convert("voc", "jsonl", tmp_path / "ann", tmp_path / "o.jsonl")
    assert "pass --images" in str(err.value)
    _image(tmp_path / "images" / "a.jpg", 10, 10)  # Azure's fridge layout: annotations/ + images/
    convert("voc", "jsonl", tmp_path / "ann", tmp_path / "o.jsonl")
    assert _lines(tmp_path / "o.jsonl")[0]["image_url"] == "images/a.jpg"
    (tmp_path / "empty").mkdir()
    with pytest.raises(KubevisionError, match="no Pascal VOC annotations found"):
        convert("voc", "jsonl", tmp_path / "empty", tmp_path / "o.jsonl")


def test_colour_instance_masks_are_refused_and_gray_rgb_is_accepted(tmp_path: Path) -> None:
    _image(tmp_path / "JPEGImages" / "m.jpg", 20, 10)
    _xml(tmp_path / "Annotations" / "m.xml", "m.jpg", 20, 10, [("can", 0, (2, 2, 8, 8))])
    gray = np.zeros((10, 20, 3), dtype=np.uint8)
    gray[2:8, 2:8] = 1
    (tmp_path / "masks").mkdir()
    Image.fromarray(gray).save(tmp_path / "masks" / "m.png")
    out = tmp_path / "o.jsonl"
    convert("voc", "jsonl", tmp_path / "Annotations", out, masks=tmp_path / "masks")
    assert _lines(out)[0]["label"][0]["label"] == "can"
    colour = gray.copy()
    colour[2:8, 2:8] = (200, 10, 10)
    Image.fromarray(colour).save(tmp_path / "masks" / "m.png")
    with pytest.raises(KubevisionError, match=r"m\.png is a colour image; instance masks must be single"):
        convert("voc", "jsonl", tmp_path / "Annotations", out, masks=tmp_path / "masks")
