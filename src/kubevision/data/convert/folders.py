"""A folder per class (ImageNet style) to multi-class Azure JSONL records.

Why nested folders are an error and not flattened: the common mistake is pointing SOURCE one level too
high (at `data/` holding `train/cat`, `train/dog`, `val/...`), and flattening would silently make
`train` and `val` the classes. An error that names the nested folder makes the fix obvious. Files
that are not images (notes, `.DS_Store`, annotation leftovers) are left out and listed in the summary;
hidden folders (`.ipynb_checkpoints`) are left out too.
"""

from __future__ import annotations

from pathlib import Path

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.tasks import Task
from kubevision.data.convert.imagefiles import is_image_file, probe_image
from kubevision.data.convert.jsonl_writer import ImageRecord, Label
from kubevision.data.convert.summary import Collector

__all__ = ["read_folders"]


def read_folders(source: Path, *, task: Task | None, log: Collector) -> tuple[list[ImageRecord], Task, Path]:
    """Read SOURCE/<class>/<image>; returns the records, the task and the images root (SOURCE)."""
    if not source.is_dir():
        raise KubevisionError("class-folder source not found", [Problem(
            "pass a folder whose sub-folders are the classes", file=str(source))])
    task = task or Task.IMAGE_CLASSIFICATION
    if task not in (Task.IMAGE_CLASSIFICATION, Task.IMAGE_CLASSIFICATION_MULTILABEL):
        raise KubevisionError(f"class folders convert to image_classification (or "
                              f"image_classification_multilabel with one label each), not {task}")

    records: list[ImageRecord] = []
    for entry in sorted(source.iterdir()):
        if entry.name.startswith("."):
            log.skip(str(entry), "hidden")
        elif entry.is_file():
            log.skip(str(entry), "not inside a class folder")
        elif entry.is_dir():
            records.extend(_class_folder(entry, task, log))
    log.raise_if_problems(f"{source}: cannot convert class folders")
    if not records:
        raise KubevisionError("no images found", [Problem(
            "expected SOURCE/<class>/<image files>", file=str(source))])
    return records, task, source


def _class_folder(folder: Path, task: Task, log: Collector) -> list[ImageRecord]:
    name = folder.name
    label: Label = [name] if task == Task.IMAGE_CLASSIFICATION_MULTILABEL else name
    records: list[ImageRecord] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            log.skip(str(entry), "hidden")
        elif entry.is_dir():
            log.problem("nested folder: class folders must hold image files directly; point SOURCE at the "
                        "folder whose sub-folders are the classes", file=entry)
        elif not is_image_file(entry):
            log.skip(str(entry), "not an image file (by extension)")
        else:
            probed = probe_image(entry)
            if isinstance(probed, str):
                log.problem(probed, file=entry)
            else:
                records.append(ImageRecord(image=probed, label=label))
    if not records and not any(p.is_dir() for p in folder.iterdir()):
        log.skip(str(folder), "class folder without images (no class created)")
    return records
