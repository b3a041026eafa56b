"""A multi-label CSV (`filename,label1 label2 ...`) to Azure JSONL records.

Why this format: it is what Azure's `ClassificationJSONLConverter` reads (reference 10.1, the
multilabelFridgeObjects `labels.csv`): two columns, the labels of an image separated by spaces. It is
parsed with the csv module so quoted fields work (`"a b.jpg","can carton"`), and inside a quoted field
commas also separate labels. Azure always skips the first line; here the first row is taken as a header
only when its first field is not an image in the images folder, so a CSV without a header loses
nothing. Unlike Azure, which skips malformed lines silently, a row without exactly two fields is an
error with its line number. An empty label field is an image with no labels (valid for multi-label).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.tasks import Task
from kubevision.data.convert.imagefiles import probe_image
from kubevision.data.convert.jsonl_writer import ImageRecord, Label
from kubevision.data.convert.summary import Collector

__all__ = ["read_csv_labels"]

_SEPARATORS = re.compile(r"[\s,]+")


def read_csv_labels(source: Path, *, images: Path | None, task: Task | None,
                    log: Collector) -> tuple[list[ImageRecord], Task, Path]:
    """Read the CSV; returns the records, the task and the images root."""
    if not source.is_file():
        raise KubevisionError("CSV source not found", [Problem("pass the labels CSV file", file=str(source))])
    images_root = images if images is not None else source.parent / "images"
    if not images_root.is_dir():
        raise KubevisionError("images folder not found", [Problem(
            "pass --images (default: the 'images' folder next to the CSV)", file=str(images_root))])
    task = task or Task.IMAGE_CLASSIFICATION_MULTILABEL
    if task not in (Task.IMAGE_CLASSIFICATION, Task.IMAGE_CLASSIFICATION_MULTILABEL):
        raise KubevisionError(f"a labels CSV converts to image_classification_multilabel (or "
                              f"image_classification with one label per row), not {task}")
    try:
        text = source.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise KubevisionError("CSV is not UTF-8 text", [Problem("cannot decode", file=str(source))]) from None

    records: list[ImageRecord] = []
    seen: dict[str, int] = {}
    first = True
    reader = csv.reader(text.splitlines())
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if first:
            first = False
            if not (images_root / row[0].strip()).is_file():
                log.note(f"first row taken as a header: {','.join(row)}")
                continue
        record = _row(row, line, source, images_root, task, seen, log)
        if record is not None:
            records.append(record)
    log.raise_if_problems(f"{source}: invalid labels CSV")
    if not records:
        raise KubevisionError("no images listed", [Problem("the CSV has no data rows", file=str(source))])
    return records, task, images_root


def _row(row: list[str], line: int, source: Path, images_root: Path, task: Task, seen: dict[str, int],
         log: Collector) -> ImageRecord | None:
    if len(row) != 2:
        log.problem(f"expected 2 fields 'filename,labels' (labels separated by spaces), got {len(row)}",
                    file=source, line=line)
        return None
    name = row[0].strip()
    if not name:
        log.problem("empty filename", file=source, line=line)
        return None
    if name in seen:
        log.problem(f"{name} is listed again (first on line {seen[name]})", file=source, line=line)
        return None
    seen[name] = line
    labels = list(dict.fromkeys(v for v in _SEPARATORS.split(row[1].strip()) if v))
    label: Label = labels
    if task == Task.IMAGE_CLASSIFICATION:
        if len(labels) != 1:
            log.problem(f"image_classification needs exactly one label per image, got {len(labels)}",
                        file=source, line=line)
            return None
        label = labels[0]
    probed = probe_image(images_root / name)
    if isinstance(probed, str):
        log.problem(f"{probed}: {images_root / name}", file=source, line=line)
        return None
    return ImageRecord(image=probed, label=label)
