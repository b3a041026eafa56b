"""Acceptance: the real BCCD dataset (Pascal VOC) -> JSONL -> COCO keeps every box.

The expected numbers are computed here from the XML files themselves, not from the converter, so a
converter that loses or invents boxes fails. BCCD has two single-click "boxes" (xmin == xmax and
ymin == ymax): the converter widens them to one pixel and says so, so every object arrives, per class.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from kubevision.cli import cli
from kubevision.data.convert import convert

BCCD = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "bccd" / "BCCD"

pytestmark = pytest.mark.skipif(
    not (BCCD / "Annotations").is_dir(),
    reason=f"BCCD dataset not found at {BCCD} (a developer-machine dataset; see shared/datasets/README.md)",
)


def _expected() -> tuple[int, Counter[str], Counter[str], int]:
    """(XML files, objects per class, zero-area objects per class, boxes past the image) from the XML."""
    objects, zero_area = Counter[str](), Counter[str]()
    outside = 0
    files = sorted((BCCD / "Annotations").glob("*.xml"))
    for xml_file in files:
        root = ET.parse(xml_file).getroot()
        width, height = float(root.findtext("size/width") or 0), float(root.findtext("size/height") or 0)
        for obj in root.iter("object"):
            name = (obj.findtext("name") or "").strip()
            objects[name] += 1
            x0, y0, x1, y1 = (float(obj.findtext(f"bndbox/{key}") or 0)
                              for key in ("xmin", "ymin", "xmax", "ymax"))
            if x1 <= x0 or y1 <= y0:
                zero_area[name] += 1
            elif min(x0, y0) < 0 or x1 > width or y1 > height:
                outside += 1
    return len(files), objects, zero_area, outside


def test_voc_to_jsonl_to_coco_keeps_every_box(tmp_path: Path) -> None:
    n_files, objects, zero_area, outside = _expected()
    assert n_files == 364 and set(objects) == {"RBC", "WBC", "Platelets"}
    kept = objects

    jsonl = tmp_path / "bccd.jsonl"
    summary = convert("voc", "jsonl", BCCD / "Annotations", jsonl)
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    in_jsonl = Counter(box["label"] for line in lines for box in line["label"])
    assert len(lines) == summary.images == 364
    assert in_jsonl == kept
    assert summary.labels_per_class == kept
    assert summary.clipped == outside
    assert summary.widened == sum(zero_area.values()) == 2
    assert summary.skipped == []
    assert sum(in_jsonl.values()) == sum(objects.values()) == 4888
    for line in lines:  # every box, widened ones included, has area and lies in [0, 1]
        for box in line["label"]:
            assert 0 <= box["topX"] < box["bottomX"] <= 1 and 0 <= box["topY"] < box["bottomY"] <= 1
    assert all((BCCD / "JPEGImages" / Path(line["image_url"]).name).is_file() for line in lines)
    assert all((jsonl.parent / line["image_url"]).resolve().is_file() for line in lines)

    coco_file = tmp_path / "bccd_coco.json"
    coco_summary = convert("jsonl", "coco", jsonl, coco_file)
    coco = json.loads(coco_file.read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    in_coco = Counter(names[a["category_id"]] for a in coco["annotations"])
    assert len(coco["images"]) == 364
    assert in_coco == kept
    assert coco_summary.labels_per_class == kept and coco_summary.images == 364
    assert all((coco_file.parent / image["file_name"]).resolve().is_file() for image in coco["images"])


def test_cli_converts_bccd(tmp_path: Path) -> None:
    _, _, zero_area, _ = _expected()
    out = tmp_path / "cli.jsonl"
    result = CliRunner().invoke(cli, ["convert", str(BCCD / "Annotations"), "--from", "voc", "--to", "jsonl",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "364 images" in result.output and "RBC" in result.output
    assert f"widened to 1 pixel: {sum(zero_area.values())}" in result.output
    assert "skipped" not in result.output
    assert len(out.read_text().splitlines()) == 364
