"""COCO (detection or instance segmentation) to Azure JSONL records.

Why these rules: they are those of Azure's `COCOJSONLConverter` (reference 10.1), so a dataset
converted here gives the same JSONL as there: a bbox `[x, y, w, h]` in pixels becomes normalized
corners (a bbox whose largest value is below 1.5 is taken as already normalized, as Azure does), a
list-of-lists segmentation is normalized by the image size, an RLE segmentation (compressed or not)
is traced into polygons, `iscrowd` becomes `isCrowd`. Unlike Azure, bad input is reported with the
file and annotation id instead of a KeyError, and images without annotations are kept (with an empty
label list) because they are valid negatives for a detector.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.tasks import Task
from kubevision.data.convert.geometry import (
    Box,
    box_label,
    box_to_polygon,
    clip_polygon,
    polygon_bbox,
    polygon_label,
)
from kubevision.data.convert.imagefiles import ImageInfo, probe_image
from kubevision.data.convert.jsonl_writer import ImageRecord
from kubevision.data.convert.masks import mask_to_polygons, rle_to_mask
from kubevision.data.convert.summary import Collector

__all__ = ["read_coco"]


def read_coco(source: Path, *, images: Path | None, task: Task | None,
              log: Collector) -> tuple[list[ImageRecord], Task, Path]:
    """Read a COCO JSON file; returns the records, the task and the images root."""
    if not source.is_file():
        raise KubevisionError("COCO source must be a JSON file",
                              [Problem("file not found", file=str(source))])
    images_root = images if images is not None else source.parent
    if not images_root.is_dir():
        raise KubevisionError("images folder not found", [Problem(
            "pass --images with the folder the COCO file_names are relative to", file=str(images_root))])
    doc = _load(source)
    file = str(source)
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            log.problem(f"missing key '{key}' (a list)", file=file, field=key)
    log.raise_if_problems(f"{source} is not a COCO file")

    categories = _categories(doc["categories"], file, log)
    image_entries = _images(doc["images"], file, log)
    log.raise_if_problems(f"{source}: invalid COCO images or categories")

    if task is None:
        has_segmentation = any(isinstance(a, dict) and a.get("segmentation") for a in doc["annotations"])
        task = Task.IMAGE_INSTANCE_SEGMENTATION if has_segmentation else Task.IMAGE_OBJECT_DETECTION
    elif task not in (Task.IMAGE_OBJECT_DETECTION, Task.IMAGE_INSTANCE_SEGMENTATION):
        raise KubevisionError(f"COCO converts to image_object_detection or image_instance_segmentation, "
                              f"not {task}")

    # Probe every image once: a missing file is an error, and the real size fills gaps in the COCO file.
    infos: dict[Any, ImageInfo] = {}
    for image_id, entry in image_entries.items():
        info = _probe(images_root, entry, file, log)
        if info is not None:
            infos[image_id] = info

    labels: dict[Any, list[dict[str, Any]]] = {image_id: [] for image_id in image_entries}
    converted = Counter[str]()
    for index, ann in enumerate(doc["annotations"]):
        ann_id = ann.get("id", f"#{index}") if isinstance(ann, dict) else f"#{index}"
        where = f"annotation id {ann_id}"
        if not isinstance(ann, dict):
            log.problem("must be an object", file=file, field=where)
            continue
        image_id, category_id = ann.get("image_id"), ann.get("category_id")
        if not _is_id(image_id) or image_id not in image_entries:
            log.problem(f"image_id {image_id!r} is not in 'images'", file=file, field=where)
            continue
        if not _is_id(category_id) or category_id not in categories:
            log.problem(f"category_id {category_id!r} is not in 'categories'", file=file, field=where)
            continue
        info = infos.get(image_id)
        if info is None:
            continue  # the image itself is already reported
        label = _annotation_label(ann, categories[category_id], info, task, file, where, log, converted)
        if label is not None:
            labels[image_id].append(label)
    log.raise_if_problems(f"{source}: invalid COCO annotations")

    if converted["box_as_polygon"]:
        log.note(f"{converted['box_as_polygon']} annotations without segmentation were written as "
                 "rectangle polygons (from their bbox)")
    if converted["polygon_as_box"]:
        log.note(f"{converted['polygon_as_box']} segmentations were written as boxes (task {task})")
    records = [ImageRecord(image=infos[i], label=labels[i]) for i in image_entries if i in infos]
    return records, task, images_root


def _load(source: Path) -> dict[str, Any]:
    try:
        doc = json.loads(source.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise KubevisionError("COCO file is not valid JSON", [
            Problem(err.msg, file=str(source), line=err.lineno)]) from None
    except UnicodeDecodeError:
        raise KubevisionError("COCO file is not UTF-8 text", [Problem("cannot decode", file=str(source))]) \
            from None
    if not isinstance(doc, dict):
        raise KubevisionError("COCO file must hold a JSON object", [Problem("top level is not an object",
                                                                            file=str(source))])
    return doc


def _categories(entries: list[Any], file: str, log: Collector) -> dict[Any, str]:
    categories: dict[Any, str] = {}
    for index, cat in enumerate(entries):
        field = f"categories[{index}]"
        if not isinstance(cat, dict) or not _is_id(cat.get("id")) or not isinstance(cat.get("name"), str) \
                or not cat["name"].strip():
            log.problem("needs an 'id' (integer or string) and a non-empty 'name'", file=file, field=field)
        elif cat["id"] in categories:
            log.problem(f"duplicate category id {cat['id']!r}", file=file, field=field)
        else:
            categories[cat["id"]] = cat["name"].strip()
    return categories


def _images(entries: list[Any], file: str, log: Collector) -> dict[Any, dict[str, Any]]:
    images: dict[Any, dict[str, Any]] = {}
    for index, entry in enumerate(entries):
        field = f"images[{index}]"
        if not isinstance(entry, dict) or not _is_id(entry.get("id")) \
                or not isinstance(entry.get("file_name"), str):
            log.problem("needs an 'id' (integer or string) and a 'file_name'", file=file, field=field)
        elif entry["id"] in images:
            log.problem(f"duplicate image id {entry['id']!r}", file=file, field=field)
        else:
            images[entry["id"]] = entry
    return images


def _probe(images_root: Path, entry: dict[str, Any], file: str, log: Collector) -> ImageInfo | None:
    name = entry["file_name"]
    path = images_root / name
    if not path.is_file() and (images_root / Path(name).name).is_file():
        path = images_root / Path(name).name  # Azure's converter uses basename(file_name)
    probed = probe_image(path)
    where = f"image id {entry['id']!r}"
    if isinstance(probed, str):
        log.problem(f"{probed}: {path}", file=file, field=where)
        return None
    width, height = entry.get("width"), entry.get("height")
    if width is None and height is None:
        return probed
    if (width, height) != (probed.width, probed.height):
        log.problem(f"COCO says {width}x{height} but the image file is {probed.width}x{probed.height}",
                    file=file, field=where)
        return None
    return probed


def _annotation_label(ann: dict[str, Any], name: str, info: ImageInfo, task: Task, file: str, where: str,
                      log: Collector, converted: Counter[str]) -> dict[str, Any] | None:
    is_crowd = 1 if ann.get("iscrowd") in (1, True, "1") else 0
    segmentation = ann.get("segmentation")
    polygon: list[list[float]] | None = None
    if segmentation:
        polygon = _segmentation_polygon(segmentation, info, file, where, log)
        if polygon is None:
            return None
        if not polygon:
            log.skip(f"{file}: {where}", "segmentation traces to no polygon with 3 or more points")
            return None
    if task == Task.IMAGE_INSTANCE_SEGMENTATION:
        if polygon is None:
            box = _bbox(ann, info, file, where, log)
            if box is None:
                return None
            polygon = box_to_polygon(box)
            converted["box_as_polygon"] += 1
        polygon, changed = clip_polygon(polygon)
        if not polygon_bbox(polygon).has_area:
            log.skip(f"{file}: {where}", "polygon has no area inside the image")
            return None
        log.clipped += int(changed)
        return polygon_label(name, polygon, is_crowd=is_crowd)
    if "bbox" in ann or polygon is None:
        box = _bbox(ann, info, file, where, log)
    else:
        box = polygon_bbox(polygon)
        converted["polygon_as_box"] += 1
    if box is None:
        return None
    clipped, changed = box.clipped()
    if not clipped.has_area:
        log.skip(f"{file}: {where}", "box has no area inside the image")
        return None
    log.clipped += int(changed)
    return box_label(name, clipped, is_crowd=is_crowd)


def _bbox(ann: dict[str, Any], info: ImageInfo, file: str, where: str, log: Collector) -> Box | None:
    bbox = ann.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
        log.problem(f"bbox must be [x, y, width, height] numbers, got {bbox!r}", file=file, field=where)
        return None
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        log.problem(f"bbox width and height must be positive, got {bbox!r}", file=file, field=where)
        return None
    if max(x, y, w, h) < 1.5:  # already normalized (Azure's rule)
        return Box(x, y, x + w, y + h)
    return Box(x / info.width, y / info.height, (x + w) / info.width, (y + h) / info.height)


def _segmentation_polygon(segmentation: Any, info: ImageInfo, file: str, where: str,
                          log: Collector) -> list[list[float]] | None:
    """Normalized polygon segments; [] when a mask traces to nothing; None after reporting a problem."""
    if isinstance(segmentation, dict):
        try:
            mask = rle_to_mask(segmentation, info.height, info.width)
        except KubevisionError as err:
            log.problem(err.headline, file=file, field=f"{where}.segmentation")
            return None
        return [_normalize(segment, info) for segment in mask_to_polygons(mask)]
    if isinstance(segmentation, list) and all(isinstance(s, list) for s in segmentation):
        segments = [s for s in segmentation if s]
        for segment in segments:
            if len(segment) < 6 or len(segment) % 2 or not all(_is_number(v) for v in segment):
                log.problem("each polygon must be an even list of at least 6 numbers (3 points)",
                            file=file, field=f"{where}.segmentation")
                return None
        return [_normalize(segment, info) for segment in segments]
    log.problem("segmentation must be a list of polygons or an RLE object", file=file,
                field=f"{where}.segmentation")
    return None


def _normalize(segment: list[float], info: ImageInfo) -> list[float]:
    return [float(v) / (info.width if i % 2 == 0 else info.height) for i, v in enumerate(segment)]


def _is_id(value: Any) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
