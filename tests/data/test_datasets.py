"""The bundled digits dataset writer (kubevision.data.datasets)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from sklearn.datasets import load_digits

from kubevision.api.errors import KubevisionError
from kubevision.cli import cli
from kubevision.data.datasets import MARKER, write_digits


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default dataset, written once through the CLI (writing 1,797 files takes a few seconds)."""
    out = tmp_path_factory.mktemp("digits") / "digits"
    result = CliRunner().invoke(cli, ["datasets", "digits", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 1797 images (32x32 PNG)" in result.output
    return out


def test_every_real_digit_is_written_and_split_stratified(digits: Path) -> None:
    bunch = load_digits()
    train, val = _lines(digits / "train.jsonl"), _lines(digits / "val.jsonl")
    assert len(train) + len(val) == 1797
    urls = [line["image_url"] for line in train + val]
    assert len(set(urls)) == 1797 and all((digits / url).is_file() for url in urls)
    per_class = Counter(int(t) for t in bunch.target)
    in_val = Counter(int(line["label"]) for line in val)
    assert in_val == {c: round(n * 0.2) for c, n in per_class.items()}
    first = next(line for line in train + val if line["image_url"] == "images/digit_0000.png")
    assert first["label"] == str(bunch.target[0])
    assert first["image_details"] == {"format": "png", "width": 32, "height": 32}


def test_pixels_are_the_upscaled_digit(digits: Path) -> None:
    source = load_digits().images[5]
    pixels = _pixels(digits / "images" / "digit_0005.png")
    assert pixels.shape == (32, 32, 3)
    expected = 255 - np.rint(source * 255 / 16).astype(np.uint8)
    assert np.array_equal(pixels[::4, ::4, 0], expected)  # nearest-neighbour 4x blocks
    assert np.array_equal(pixels[3::4, 3::4, 2], expected)


def test_reruns_are_seeded_and_replace_their_own_folder(tmp_path: Path, digits: Path) -> None:
    out = tmp_path / "d"
    same = write_digits(out)
    assert (out / "val.jsonl").read_text() == (digits / "val.jsonl").read_text()
    assert same.train == 1438 and same.val == 359  # sum of round(20%) per class
    text = str(same)
    assert "1797 images" in text and "kubevision data check" in text and "--task image_classification" in text
    write_digits(out, seed=1)
    assert (out / "val.jsonl").read_text() != (digits / "val.jsonl").read_text()
    assert json.loads((out / MARKER).read_text())["seed"] == 1

    summary = write_digits(out, multilabel=True, seed=3)
    names = {p.name for p in (out / "images").iterdir()}
    assert len(names) == 1500 and all(n.startswith("mosaic_") for n in names)  # no digit_*.png left
    assert summary.task == "image_classification_multilabel" and summary.images == 1500
    lines = _lines(out / "train.jsonl") + _lines(out / "val.jsonl")
    assert len(lines) == 1500 and summary.val == 300
    bunch = load_digits()
    tile_targets: dict[bytes, set[str]] = {}
    for image, target in zip(bunch.images, bunch.target, strict=True):
        gray = 255 - np.rint(image * 255 / 16).astype(np.uint8)
        tile_targets.setdefault(gray.tobytes(), set()).add(str(target))
    for line in lines[:60]:
        assert line["label"] == sorted(set(line["label"]))
        pixels = _pixels(out / line["image_url"])[:, :, 0]
        assert pixels.shape == (64, 64)
        shown = [tile_targets[pixels[r:r + 32:4, c:c + 32:4].tobytes()] for r in (0, 32) for c in (0, 32)]
        # each quadrant is a real digit; identical 8x8 images with different targets are rare but exist
        assert set(line["label"]) <= set().union(*shown)
        assert all(options & set(line["label"]) for options in shown)


def test_refuses_a_non_empty_folder_it_did_not_write(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(KubevisionError, match="refusing to write into a non-empty folder"):
        write_digits(foreign)
    assert (foreign / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(KubevisionError, match="must be a folder"):
        write_digits(tmp_path / "file")


def test_output_passes_the_data_check(digits: Path) -> None:
    from kubevision.data.check import check_dataset

    report = check_dataset(digits / "train.jsonl", task="image_classification")
    assert report.ok, report.render()
