"""Converters from common label formats to Azure-schema JSONL, and JSONL back to COCO.

Why converters are part of kubevision: nobody's labels start as Azure JSONL. Data arrives as COCO,
Pascal VOC, YOLO, a folder per class or a CSV, and Azure only ships loose notebook scripts that fail
with KeyErrors. `convert()` is the one entry point (`kubevision convert` calls it): it checks the
options for the chosen pair, runs the reader for the source format (one module per format), writes
the JSONL atomically and returns a `ConversionSummary` that says what was written, clipped and left
out. Every problem with the input raises `KubevisionError` naming the file, line or annotation.
JSONL -> COCO is the data layer's `export_coco.jsonl_to_coco`; this module only routes to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.tasks import Task
from kubevision.data.convert.jsonl_writer import ImageRecord, write_jsonl
from kubevision.data.convert.summary import Collector, ConversionSummary, Skipped

__all__ = ["SUPPORTED", "ConversionSummary", "Skipped", "convert"]

# (from, to) pairs, and which optional inputs each source format uses.
SUPPORTED: tuple[tuple[str, str], ...] = (
    ("coco", "jsonl"),
    ("voc", "jsonl"),
    ("yolo", "jsonl"),
    ("folders", "jsonl"),
    ("csv", "jsonl"),
    ("jsonl", "coco"),
)
_OPTIONS_USED: dict[str, frozenset[str]] = {
    "coco": frozenset({"images", "base_url", "task"}),
    "voc": frozenset({"images", "masks", "base_url", "task"}),
    "yolo": frozenset({"classes", "base_url", "task"}),
    "folders": frozenset({"base_url", "task"}),
    "csv": frozenset({"images", "base_url", "task"}),
    "jsonl": frozenset({"task"}),
}

_Reader = Callable[[Path, Collector], tuple[list[ImageRecord], Task, Path]]


def convert(from_format: str, to_format: str, source: Path, out: Path, *, images: Path | None = None,
            masks: Path | None = None, classes: Path | None = None, base_url: str | None = None,
            task: str | None = None) -> ConversionSummary:
    """Convert `source` in `from_format` to `out` in `to_format`; see `SUPPORTED` for the pairs."""
    if (from_format, to_format) not in SUPPORTED:
        pairs = ", ".join(f"{a} -> {b}" for a, b in SUPPORTED)
        raise KubevisionError(f"cannot convert {from_format} to {to_format}; supported: {pairs}")
    given = {"images": images, "masks": masks, "classes": classes, "base_url": base_url, "task": task}
    unused = [name for name, value in given.items() if value is not None
              and name not in _OPTIONS_USED[from_format]]
    if unused:
        flags = ", ".join("--" + name.replace("_", "-") for name in unused)
        raise KubevisionError(f"{flags} do(es) not apply to --from {from_format}")
    if not source.exists():
        raise KubevisionError("source not found", [Problem("no such file or folder", file=str(source))])
    if out.is_dir():
        raise KubevisionError("--out must be a file path, not a folder",
                              [Problem("is a folder", file=str(out))])
    if out.absolute() == source.absolute():
        raise KubevisionError("--out would overwrite the source", [Problem("same path", file=str(out))])
    task_value = _task(task)

    if from_format == "jsonl":
        return _jsonl_to_coco(source, out, task_value)

    reader = _reader(from_format, images=images, masks=masks, classes=classes, task=task_value)
    log = Collector()
    records, final_task, images_root = reader(source, log)
    write_jsonl(records, out, images_root=images_root, base_url=base_url)
    return _summary(out, from_format, to_format, final_task, records, log)


def _task(task: str | None) -> Task | None:
    if task is None:
        return None
    try:
        return Task(task)
    except ValueError:
        raise KubevisionError(f"unknown task {task!r}; one of {', '.join(t.value for t in Task)}") from None


def _reader(from_format: str, *, images: Path | None, masks: Path | None, classes: Path | None,
            task: Task | None) -> _Reader:
    # Each format's module is imported only when used (the mask tracing needs optional packages).
    if from_format == "coco":
        from kubevision.data.convert.coco import read_coco

        return lambda source, log: read_coco(source, images=images, task=task, log=log)
    if from_format == "voc":
        from kubevision.data.convert.voc import read_voc

        return lambda source, log: read_voc(source, images=images, masks=masks, task=task, log=log)
    if from_format == "yolo":
        from kubevision.data.convert.yolo import read_yolo

        return lambda source, log: read_yolo(source, classes=classes, task=task, log=log)
    if from_format == "folders":
        from kubevision.data.convert.folders import read_folders

        return lambda source, log: read_folders(source, task=task, log=log)
    from kubevision.data.convert.csv_labels import read_csv_labels

    return lambda source, log: read_csv_labels(source, images=images, task=task, log=log)


def _summary(out: Path, from_format: str, to_format: str, task: Task, records: list[ImageRecord],
             log: Collector) -> ConversionSummary:
    summary = ConversionSummary(out=out, from_format=from_format, to_format=to_format, task=task.value,
                                images=len(records), clipped=log.clipped, widened=log.widened,
                                skipped=list(log.skipped),
                                notes=list(log.notes))
    for record in records:
        label = record.label
        if isinstance(label, str):
            names = [label]
        else:
            names = [item if isinstance(item, str) else str(item["label"]) for item in label]
        if not names:
            summary.images_without_labels += 1
        summary.labels_per_class.update(names)
        summary.images_per_class.update(set(names))
    return summary


def _jsonl_to_coco(source: Path, out: Path, task: Task | None) -> ConversionSummary:
    """Delegate to the data layer's exporter, then count what it wrote for the usual summary."""
    from kubevision.data.export_coco import jsonl_to_coco

    result = jsonl_to_coco(source, out, task=task.value if task else None)
    coco = json.loads(out.read_text(encoding="utf-8"))
    names = {cat["id"]: cat["name"] for cat in coco["categories"]}
    summary = ConversionSummary(out=out, from_format="jsonl", to_format="coco", task=str(result.task),
                                images=len(coco["images"]))
    per_image: dict[Any, set[str]] = {image["id"]: set() for image in coco["images"]}
    for ann in coco["annotations"]:
        name = names[ann["category_id"]]
        summary.labels_per_class[name] += 1
        per_image[ann["image_id"]].add(name)
    for present in per_image.values():
        summary.images_per_class.update(present)
        summary.images_without_labels += not present
    return summary
