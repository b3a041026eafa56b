"""Small real datasets written to disk in the Azure JSONL layout, for first runs, demos and tests.

Why digits: scikit-learn bundles 1,797 real 8x8 handwritten digits (`load_digits`), so a new user can
go from install to a trained model without downloading anything, and tests can train on real images
offline. Each digit is upscaled to 32x32 with nearest-neighbour (no invented detail) and written as an
RGB PNG, dark ink on white: every consumer (pretrained backbones, XAI overlays) expects three channels,
and PNG stores the three equal channels in a few hundred bytes. The multi-label variant tiles four
random digits into a 64x64 mosaic labelled with the digits present, a real multi-label problem.

Layout of `out_dir`: `images/*.png`, `train.jsonl` and `val.jsonl` (a seeded 80/20 split, stratified
by class for multi-class; image_url relative to out_dir), and `kubevision-dataset.json` (what was
written). No MLTable folders: a job's trainingData/validationData path takes the JSONL file directly,
and an MLTable next to it would duplicate the JSONL. Rerunning replaces a folder this function wrote
(recognised by kubevision-dataset.json) and refuses to touch any other non-empty folder.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.tasks import Task
from kubevision.data.convert.jsonl_writer import atomic_write_text

__all__ = ["MARKER", "DatasetSummary", "write_digits"]

MARKER = "kubevision-dataset.json"
_TILE = 32  # pixels per digit side after upscaling
_MOSAICS = 1500
_VAL_FRACTION = 0.2


@dataclass(frozen=True)
class DatasetSummary:
    """What `write_digits` wrote; `str()` is what the CLI prints."""

    out_dir: Path
    task: str
    images: int
    train: int
    val: int
    classes: tuple[str, ...]
    image_size: int

    @property
    def train_jsonl(self) -> Path:
        return self.out_dir / "train.jsonl"

    @property
    def val_jsonl(self) -> Path:
        return self.out_dir / "val.jsonl"

    def __str__(self) -> str:
        return "\n".join([
            f"wrote {self.images} images ({self.image_size}x{self.image_size} PNG) "
            f"to {self.out_dir / 'images'}",
            f"  {self.train_jsonl}: {self.train} images",
            f"  {self.val_jsonl}: {self.val} images",
            f"  task {self.task}, {len(self.classes)} classes: {' '.join(self.classes)}",
            f"next: kubevision data check {self.train_jsonl} --task {self.task}",
            f"      then use trainingData: {{path: {self.train_jsonl}}} and "
            f"validationData: {{path: {self.val_jsonl}}} in a job YAML",
        ])


def write_digits(out_dir: Path, *, multilabel: bool = False, seed: int = 0) -> DatasetSummary:
    """Write scikit-learn's digits (or 2x2 digit mosaics with `multilabel`) as PNG + train/val JSONL."""
    images, targets = _load_digits()
    rng = np.random.default_rng(seed)
    _prepare(out_dir)
    # Claim the folder first, so that a run interrupted half way can be rerun over.
    (out_dir / MARKER).write_text('{"dataset": "digits", "complete": false}\n', encoding="utf-8")
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    stale = {p.name for p in image_dir.iterdir()}  # a previous run's files: overwritten or removed below

    tiles = np.stack([_tile(img) for img in images])
    rows: list[tuple[str, Any, int]] = []  # (relative path, label, stratum)
    if multilabel:
        task = Task.IMAGE_CLASSIFICATION_MULTILABEL
        for i in range(_MOSAICS):
            picks = rng.integers(0, len(tiles), size=4)
            mosaic = np.vstack([np.hstack([tiles[picks[0]], tiles[picks[1]]]),
                                np.hstack([tiles[picks[2]], tiles[picks[3]]])])
            name = f"images/mosaic_{i:04d}.png"
            _save(mosaic, out_dir / name)
            rows.append((name, [str(d) for d in sorted({int(targets[p]) for p in picks})], 0))
        size = 2 * _TILE
    else:
        task = Task.IMAGE_CLASSIFICATION
        for i, (tile, target) in enumerate(zip(tiles, targets, strict=True)):
            name = f"images/digit_{i:04d}.png"
            _save(tile, out_dir / name)
            rows.append((name, str(int(target)), int(target)))
        size = _TILE

    for name in stale - {Path(row[0]).name for row in rows}:
        path = image_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()

    val_index = _split([stratum for _, _, stratum in rows], rng)
    train_lines: list[str] = []
    val_lines: list[str] = []
    for index, (name, label, _) in enumerate(rows):
        line = json.dumps({"image_url": name,
                           "image_details": {"format": "png", "width": size, "height": size},
                           "label": label}, separators=(",", ":"))
        (val_lines if index in val_index else train_lines).append(line)
    atomic_write_text(out_dir / "train.jsonl", "".join(f"{line}\n" for line in train_lines))
    atomic_write_text(out_dir / "val.jsonl", "".join(f"{line}\n" for line in val_lines))
    classes = tuple(str(d) for d in range(10))
    (out_dir / MARKER).write_text(json.dumps({
        "dataset": "digits", "complete": True, "source": "sklearn.datasets.load_digits", "task": task.value,
        "multilabel": multilabel, "seed": seed, "images": len(rows), "train": len(train_lines),
        "val": len(val_lines)}, indent=2) + "\n", encoding="utf-8")
    return DatasetSummary(out_dir=out_dir, task=task.value, images=len(rows), train=len(train_lines),
                          val=len(val_lines), classes=classes, image_size=size)


def _load_digits() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise KubevisionError(
            "the digits dataset ships with scikit-learn: pip install scikit-learn") from None
    bunch = load_digits()
    return np.asarray(bunch.images, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


def _prepare(out_dir: Path) -> None:
    """Refuse a non-empty folder we did not write; drop our previous JSONL (images are reconciled later)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise KubevisionError("--out must be a folder", [Problem("is a file", file=str(out_dir))])
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / MARKER).is_file():
            raise KubevisionError(
                "refusing to write into a non-empty folder that kubevision did not create",
                [Problem(f"no {MARKER} here; choose an empty or new --out", file=str(out_dir))])
        for name in ("train.jsonl", "val.jsonl"):
            (out_dir / name).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def _tile(image: NDArray[np.float64]) -> NDArray[np.uint8]:
    """8x8 ink intensities 0..16 -> 32x32 uint8, dark ink on white, nearest-neighbour."""
    gray = 255 - np.rint(np.clip(image, 0, 16) * (255 / 16)).astype(np.uint8)
    scale = _TILE // image.shape[0]
    return np.kron(gray, np.ones((scale, scale), dtype=np.uint8))


def _save(gray: NDArray[np.uint8], path: Path) -> None:
    Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2), mode="RGB").save(path, optimize=False)


def _split(strata: list[int], rng: np.random.Generator) -> set[int]:
    """Indices of a validation set: round(20%) of each stratum, drawn with `rng`."""
    by_stratum: dict[int, list[int]] = {}
    for index, stratum in enumerate(strata):
        by_stratum.setdefault(stratum, []).append(index)
    val: set[int] = set()
    for stratum in sorted(by_stratum):
        members = np.array(by_stratum[stratum])
        count = round(len(members) * _VAL_FRACTION)
        val.update(int(i) for i in rng.permutation(members)[:count])
    return val
