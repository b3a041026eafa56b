"""YOLO txt labels (boxes or segmentation polygons) to Azure JSONL records.

Why these layout rules: they are Ultralytics', the de-facto YOLO format. A label file belongs to the
image at the same relative path with `images/` replaced by `labels/` and the extension by `.txt`
(`root/images/train/a.jpg` <-> `root/labels/train/a.txt`); a `.txt` next to the image is accepted too.
An image without a label file is a background image (kept, empty label list). Lines are
`cls cx cy w h` (a box, normalized centre and size) or `cls x1 y1 x2 y2 ...` (a polygon, at least 3
points); a dataset with any polygon line is instance segmentation. Class names come from a
`classes.txt` (one per line) or an Ultralytics `data.yaml` (`names` as a list or an {id: name} map).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

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
from kubevision.data.convert.imagefiles import is_image_file, probe_image
from kubevision.data.convert.jsonl_writer import ImageRecord
from kubevision.data.convert.summary import Collector

__all__ = ["read_classes", "read_yolo"]

# Normalized coordinates above this are taken as pixel coordinates, an error; up to it they are clipped.
_TOLERANCE = 1.01
_CLASS_FILES = ("classes.txt", "data.yaml", "dataset.yaml")

_Shape = tuple[int, list[float], int]  # (class id, normalized coordinates, line number)


def read_yolo(source: Path, *, classes: Path | None, task: Task | None,
              log: Collector) -> tuple[list[ImageRecord], Task, Path]:
    """Read a YOLO dataset root (with images/ and labels/) or an images folder."""
    if not source.is_dir():
        raise KubevisionError("YOLO source must be a folder", [Problem(
            "pass the dataset root (with images/ and labels/) or the images folder", file=str(source))])
    images_root, labels_root = _layout(source)
    names = read_classes(classes if classes is not None else _find_classes(source))
    if task is not None and task not in (Task.IMAGE_OBJECT_DETECTION, Task.IMAGE_INSTANCE_SEGMENTATION):
        raise KubevisionError(f"YOLO converts to image_object_detection or image_instance_segmentation, "
                              f"not {task}")

    files = sorted(p for p in images_root.rglob("*") if p.is_file() and not p.name.startswith("."))
    image_files = [p for p in files if is_image_file(p)]
    for other in files:
        if not is_image_file(other) and other.suffix.lower() not in (".txt", ".yaml", ".yml", ".cache"):
            log.skip(str(other), "not an image file (by extension)")
    if not image_files:
        raise KubevisionError("no images found", [Problem("no image files under this folder",
                                                          file=str(images_root))])
    shapes: dict[Path, tuple[Path | None, list[_Shape]]] = {}
    used_labels: set[Path] = set()
    background = 0
    for image in image_files:
        label_file = _label_file(image, images_root, labels_root)
        if label_file is None:
            shapes[image] = (None, [])
            background += 1
            continue
        used_labels.add(label_file.absolute())
        shapes[image] = (label_file, _parse(label_file, len(names), log))
    _report_orphans(labels_root or images_root, used_labels, log)
    log.raise_if_problems(f"{source}: invalid YOLO labels")

    if task is None:
        has_polygon = any(len(coords) > 4 for _, items in shapes.values() for _, coords, _ in items)
        task = Task.IMAGE_INSTANCE_SEGMENTATION if has_polygon else Task.IMAGE_OBJECT_DETECTION
    if background:
        log.note(f"{background} images have no label file (kept as background images)")

    converted = Counter[str]()
    records: list[ImageRecord] = []
    for image, (label_file, items) in shapes.items():
        probed = probe_image(image)
        if isinstance(probed, str):
            log.problem(probed, file=image)
            continue
        labels = [lbl for lbl in (_label(names[cls], coords, task, f"{label_file}:{line}", log, converted)
                                  for cls, coords, line in items) if lbl is not None]
        records.append(ImageRecord(image=probed, label=labels))
    log.raise_if_problems(f"{source}: unreadable images")
    if converted["box_as_polygon"]:
        log.note(f"{converted['box_as_polygon']} box lines were written as rectangle polygons "
                 "(the dataset has segmentation lines)")
    if converted["polygon_as_box"]:
        log.note(f"{converted['polygon_as_box']} polygon lines were written as boxes (task {task})")
    return records, task, images_root


def read_classes(path: Path) -> list[str]:
    """Class names by id from a classes.txt or a data.yaml."""
    if not path.is_file():
        raise KubevisionError("YOLO class names not found", [Problem(
            "pass --classes with a classes.txt (one name per line) or a data.yaml with 'names'",
            file=str(path))])
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in (".yaml", ".yml"):
        return _yaml_names(path, text)
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    problems = [Problem("blank line: class ids are line numbers, so every line needs a name",
                        file=str(path), line=i) for i, line in enumerate(lines, 1) if not line.strip()]
    if problems or not lines:
        raise KubevisionError("invalid classes file", problems or [Problem("no class names", file=str(path))])
    return [line.strip() for line in lines]


def _yaml_names(path: Path, text: str) -> list[str]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise KubevisionError("invalid YAML", [Problem(str(err), file=str(path))]) from None
    names = doc.get("names") if isinstance(doc, dict) else None
    if isinstance(names, list) and names and all(isinstance(n, str | int) for n in names):
        return [str(n).strip() for n in names]
    if isinstance(names, dict) and names and all(isinstance(k, int) for k in names):
        if sorted(names) != list(range(len(names))):
            raise KubevisionError("invalid class names", [Problem(
                f"'names' ids must be 0..{len(names) - 1} without gaps, got {sorted(names)}",
                file=str(path), field="names")])
        return [str(names[i]).strip() for i in range(len(names))]
    raise KubevisionError("invalid class names", [Problem(
        "'names' must be a list of names or a map {id: name}", file=str(path), field="names")])


def _layout(source: Path) -> tuple[Path, Path | None]:
    """(images root, labels root or None for txt files next to the images)."""
    if (source / "images").is_dir():
        labels = source / "labels"
        return source / "images", labels if labels.is_dir() else None
    if source.name == "images" and (source.parent / "labels").is_dir():
        return source, source.parent / "labels"
    return source, None


def _find_classes(source: Path) -> Path:
    for folder in (source, source.parent):
        for name in _CLASS_FILES:
            if (folder / name).is_file():
                return folder / name
    raise KubevisionError("YOLO class names not found", [Problem(
        f"no {', '.join(_CLASS_FILES)} in {source} or its parent: pass --classes", file=str(source))])


def _label_file(image: Path, images_root: Path, labels_root: Path | None) -> Path | None:
    candidates = []
    if labels_root is not None:
        candidates.append(labels_root / image.relative_to(images_root).with_suffix(".txt"))
    candidates.append(image.with_suffix(".txt"))
    return next((c for c in candidates if c.is_file()), None)


def _report_orphans(labels_root: Path, used: set[Path], log: Collector) -> None:
    for txt in sorted(labels_root.rglob("*.txt")):
        if txt.name != "classes.txt" and txt.absolute() not in used:
            log.skip(str(txt), "label file without an image")


def _parse(label_file: Path, n_classes: int, log: Collector) -> list[_Shape]:
    shapes: list[_Shape] = []
    try:
        text = label_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        log.problem("not UTF-8 text", file=label_file)
        return shapes
    for line_no, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        shape = _parse_line(parts, n_classes, label_file, line_no, log)
        if shape is not None:
            shapes.append(shape)
    return shapes


def _parse_line(parts: list[str], n_classes: int, file: Path, line: int, log: Collector) -> _Shape | None:
    if len(parts) != 5 and (len(parts) < 7 or len(parts) % 2 == 0):
        log.problem(f"expected 'class cx cy w h' or 'class x1 y1 x2 y2 x3 y3 ...', got {len(parts)} values",
                    file=file, line=line)
        return None
    try:
        cls = int(parts[0])
    except ValueError:
        log.problem(f"class id must be an integer, got {parts[0]!r}", file=file, line=line)
        return None
    if not 0 <= cls < n_classes:
        log.problem(f"class id {cls} is outside 0..{n_classes - 1} (the class names file has {n_classes})",
                    file=file, line=line)
        return None
    try:
        coords = [float(v) for v in parts[1:]]
    except ValueError:
        log.problem("coordinates must be numbers", file=file, line=line)
        return None
    if not all(math.isfinite(v) and -(_TOLERANCE - 1) <= v <= _TOLERANCE for v in coords):
        log.problem("coordinates must be normalized to [0, 1] (these look like pixels)", file=file, line=line)
        return None
    if len(coords) == 4 and (coords[2] <= 0 or coords[3] <= 0):
        log.problem(f"box width and height must be positive, got w={coords[2]:g} h={coords[3]:g}",
                    file=file, line=line)
        return None
    return cls, coords, line


def _label(name: str, coords: list[float], task: Task, where: str, log: Collector,
           converted: Counter[str]) -> dict[str, Any] | None:
    if len(coords) == 4:
        cx, cy, w, h = coords
        box = Box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        polygon = None
    else:
        polygon = [coords]
        box = polygon_bbox(polygon)
    if task == Task.IMAGE_INSTANCE_SEGMENTATION:
        if polygon is None:
            polygon = box_to_polygon(box)
            converted["box_as_polygon"] += 1
        clipped_polygon, changed = clip_polygon(polygon)
        if not polygon_bbox(clipped_polygon).has_area:
            log.skip(where, "polygon has no area inside the image")
            return None
        log.clipped += int(changed)
        return polygon_label(name, clipped_polygon, is_crowd=0)
    if polygon is not None:
        converted["polygon_as_box"] += 1
    clipped, changed = box.clipped()
    if not clipped.has_area:
        log.skip(where, "box has no area inside the image")
        return None
    log.clipped += int(changed)
    return box_label(name, clipped, is_crowd=0)
