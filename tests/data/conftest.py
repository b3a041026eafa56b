"""Fixtures for the data-layer tests: real (tiny) PNG/JPEG files written with Pillow into tmp_path.

Real images, not mocks, because the data check's job is to decode them; a corrupt-file test only
means something if the good files next to it go through the very same decoder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

BCCD = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "bccd" / "BCCD"


def _write_image(
    path: Path, size: tuple[int, int] = (32, 24), color: tuple[int, int, int] = (200, 30, 30)
) -> Path:
    """Write a real image; the format follows the suffix (.png, .jpg, ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, color)
    # A little structure, so JPEG has non-trivial entropy-coded data to decode.
    for x in range(0, size[0], 4):
        img.putpixel((x, x * size[1] // max(size[0], 1)), (255, 255, 255))
    img.save(path)
    return path


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any] | str]) -> Path:
    """Write rows (dicts are JSON-encoded, strings written verbatim) one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows)
    path.write_text(text + "\n", encoding="utf-8")
    return path


@pytest.fixture
def write_image() -> Callable[..., Path]:
    """`write_image(path, size=(w, h), color=(r, g, b))`: a real image; format from the suffix."""
    return _write_image


@pytest.fixture
def write_jsonl() -> Callable[..., Path]:
    """`write_jsonl(path, rows)`: dicts JSON-encoded, strings written verbatim, one per line."""
    return _write_jsonl


@pytest.fixture
def bccd() -> Path:
    """The BCCD VOC dataset folder (BCCD/{Annotations,JPEGImages}); skips when it is absent."""
    if not (BCCD / "JPEGImages").is_dir():
        pytest.skip(f"BCCD dataset not found at {BCCD} (see shared/datasets/README.md)")
    return BCCD


@pytest.fixture
def make_image(tmp_path: Path) -> Callable[..., Path]:
    """`make_image("images/a.png", size=(w, h))` -> the path, under tmp_path."""

    def make(
        name: str = "img.png", size: tuple[int, int] = (32, 24), color: tuple[int, int, int] = (200, 30, 30)
    ) -> Path:
        return _write_image(tmp_path / name, size, color)

    return make


@pytest.fixture
def classification_data(tmp_path: Path) -> Callable[..., Path]:
    """`classification_data(n=12, classes=("cat", "dog"))`: n PNGs in images/ and train.jsonl."""

    def make(n: int = 12, classes: tuple[str, ...] = ("cat", "dog"), name: str = "train.jsonl") -> Path:
        rows = []
        for i in range(n):
            _write_image(tmp_path / "images" / f"{i}.png", (32 + i, 24), (10 * i % 255, 40, 90))
            rows.append({"image_url": f"images/{i}.png", "label": classes[i % len(classes)]})
        return _write_jsonl(tmp_path / name, rows)

    return make
