"""JSONL -> COCO: hand a kubevision/Azure dataset to the COCO tool ecosystem.

Why: COCO is what evaluation tools (pycocotools), viewers and other trainers read; users with Azure
JSONL data need a way out as much as a way in (`kubevision convert --from jsonl --to coco`).
The file is written to be portable: `file_name` is the image path relative to the COCO file's folder,
so the JSON and the images can move together. Pixel coordinates need the image size, which is taken
from `image_details` when present and otherwise read from the image header (no full decode).
Categories are numbered 1..N in sorted class order, the same order kubevision uses for model outputs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.tasks import Task
from kubevision.data.images import is_remote, resolve_image
from kubevision.data.reader import open_source, parse_source, read_dataset
from kubevision.data.records import BoxLabel, ImageRecord, PolygonLabel

__all__ = ["CocoSummary", "jsonl_to_coco"]


@dataclass(frozen=True)
class CocoSummary:
    """What `jsonl_to_coco` wrote."""

    out: Path
    task: Task
    images: int
    annotations: int
    categories: tuple[str, ...]

    def __str__(self) -> str:
        return (f"wrote {self.out}: {self.images} images, {self.annotations} annotations, "
                f"{len(self.categories)} categories ({self.task})")


def jsonl_to_coco(
    source: str | Path, out: str | Path, *, task: str | None = None, target_column: str = "label"
) -> CocoSummary:
    """Convert a detection or segmentation JSONL file (or MLTable folder) into one COCO JSON file.

    `task` defaults to what the labels are: polygons -> instance segmentation, boxes -> detection.
    """
    out = Path(out)
    task_ = Task(task) if task else _infer_task(source, target_column)
    if task_ not in (Task.IMAGE_OBJECT_DETECTION, Task.IMAGE_INSTANCE_SEGMENTATION):
        raise KubevisionError(f"COCO export needs boxes or polygons; {task_} labels have neither")
    dataset = read_dataset(source, task_, target_column=target_column)
    categories = {name: i for i, name in enumerate(dataset.classes, start=1)}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for image_id, record in enumerate(dataset.records, start=1):
        try:
            entry = _image_entry(record, image_id, out.parent)
        except KubevisionError as err:
            problems.append(Problem(err.headline, file=record.source, line=record.line, field="image_url"))
            continue
        images.append(entry)
        for item in record.label:
            assert isinstance(item, BoxLabel | PolygonLabel)
            annotation = _annotation(item, entry["width"], entry["height"])
            annotation.update(id=len(annotations) + 1, image_id=image_id, category_id=categories[item.label])
            annotations.append(annotation)
    if problems:
        raise KubevisionError(f"cannot export {source} to COCO: {len(problems)} image(s) unusable", problems)
    coco = {
        "info": {"description": f"exported by kubevision from {source}"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": name, "supercategory": "none"} for name, i in categories.items()],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(coco), encoding="utf-8")
    return CocoSummary(out=out, task=task_, images=len(images), annotations=len(annotations),
                       categories=tuple(categories))


def _infer_task(source: str | Path, target_column: str) -> Task:
    lines, _ = parse_source(open_source(source), task=Task.IMAGE_OBJECT_DETECTION,
                            target_column=target_column)
    kinds = {parsed.kind for parsed in lines}
    if "list of polygon objects" in kinds:
        return Task.IMAGE_INSTANCE_SEGMENTATION
    if kinds & {"string", "list of strings"}:
        raise KubevisionError(f"{source}: the labels are classes, not boxes or polygons; COCO export "
                              "supports object detection and instance segmentation")
    return Task.IMAGE_OBJECT_DETECTION


def _image_entry(record: ImageRecord, image_id: int, out_dir: Path) -> dict[str, Any]:
    width, height = record.width, record.height
    remote = is_remote(record.image_url)
    local: Path | None = None
    if not remote or width is None or height is None:
        local = resolve_image(record)
    if width is None or height is None:
        assert local is not None
        try:
            with Image.open(local) as img:
                width, height = img.size
        except Exception as err:  # Pillow raises many types for unreadable files
            raise KubevisionError(f"cannot read the image size of {local}: {err}") from None
    entry: dict[str, Any] = {"id": image_id, "width": width, "height": height}
    if remote:
        entry.update(file_name=record.image_url, coco_url=record.image_url)
    else:
        assert local is not None
        entry["file_name"] = Path(os.path.relpath(local, os.path.abspath(out_dir))).as_posix()
    return entry


def _annotation(item: BoxLabel | PolygonLabel, width: int, height: int) -> dict[str, Any]:
    if isinstance(item, BoxLabel):
        x0, y0, x1, y1 = item.top_x, item.top_y, item.bottom_x, item.bottom_y
        segmentation: list[list[float]] = []
        area = (x1 - x0) * width * (y1 - y0) * height
    else:
        x0, y0, x1, y1 = item.bbox
        segmentation = [[round(v * (width if k % 2 == 0 else height), 2) for k, v in enumerate(segment)]
                        for segment in item.polygon]
        area = sum(_shoelace(segment) for segment in segmentation)
    bbox = [x0 * width, y0 * height, (x1 - x0) * width, (y1 - y0) * height]
    return {
        "bbox": [round(v, 2) for v in bbox],
        "area": round(area, 2),
        "iscrowd": int(item.is_crowd),
        "segmentation": segmentation,
    }


def _shoelace(flat: list[float]) -> float:
    xs, ys = flat[0::2], flat[1::2]
    twice = sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs)))
    return abs(twice) / 2.0
