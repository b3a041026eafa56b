"""Batch scoring of image files with a trained model: `kubevision predict` (reference 9.7).

Why this exists beside the pyfunc: Azure needed a custom scoring script for batch endpoints even for
MLflow models (a known pain point); kubevision scores a folder of images from the command line, one
JSON line per image in Azure's batch format `{"filename", "probs", "labels"}`. The model is loaded and
run by `pyfunc.ImageClassifierPyfunc`, the same code that answers online requests, so a file scores
exactly as its base64 would at the endpoint.

Why a bad file does not stop the run: in a folder of thousands of images one corrupt file is normal,
and losing the other predictions to it helps nobody. Its line is `{"filename", "error"}` in its place,
the other images are scored, and at the end `run_predict` raises `KubevisionError` naming the files
that failed (the CLI exits 1), after the output was written. Input that cannot be scored at all (a
missing path, a folder without images, not a kubevision model) fails before anything is scored.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import torch
import yaml
from PIL import Image

from kubevision.api.errors import KubevisionError, Problem
from kubevision.data.atomic import write_text_atomically
from kubevision.trainer.pyfunc import (
    DEFAULT_BATCH_SIZE,
    LOADER_MODULE,
    ImageClassifierPyfunc,
    decode_image_bytes,
)

__all__ = ["IMAGE_SUFFIXES", "Predictor", "find_images", "load_predictor", "resolve_model_dir", "run_predict"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
"""Files picked up from a folder (case-insensitive). Files named explicitly are scored whatever their name."""


class Predictor:
    """A loaded model that scores image files."""

    def __init__(self, scorer: ImageClassifierPyfunc, model_dir: Path) -> None:
        self.scorer = scorer
        self.model_dir = model_dir
        """The MLflow model folder it was loaded from."""

    @property
    def classes(self) -> list[str]:
        return list(self.scorer.classes)

    def predict_files(self, paths: Sequence[Path], batch_size: int = DEFAULT_BATCH_SIZE) -> list[dict[str, Any]]:
        """One record per path, in order: `{"filename", "probs", "labels"}`, or `{"filename", "error"}`."""
        return [record for chunk in self.iter_predictions(paths, batch_size) for record in chunk]

    def iter_predictions(
        self, paths: Sequence[Path], batch_size: int = DEFAULT_BATCH_SIZE
    ) -> Iterator[list[dict[str, Any]]]:
        """`predict_files`, one batch of records at a time (at most `batch_size` images in memory)."""
        if batch_size < 1:
            raise KubevisionError("batch size must be positive", [Problem(f"got {batch_size}", field="batchSize")])
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            records: list[dict[str, Any]] = []
            tensors: list[torch.Tensor] = []
            slots: list[int] = []
            for path in chunk:
                record: dict[str, Any] = {"filename": str(path)}
                try:
                    image = _open_image(path)
                    tensors.append(self.scorer.preprocess(image))
                    slots.append(len(records))
                except (OSError, ValueError) as err:
                    record["error"] = str(err)
                records.append(record)
            if tensors:
                for slot, scored in zip(slots, self.scorer.score_tensors(torch.stack(tensors)), strict=True):
                    records[slot].update(scored.as_dict())
            yield records


def _open_image(path: Path) -> Image.Image:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError("file not found") from None
    except OSError as err:
        raise ValueError(f"cannot read file ({err.strerror or err})") from None
    return decode_image_bytes(data)


def resolve_model_dir(model_dir: Path) -> Path:
    """The MLflow model folder for an mlflow-model folder, a trial's outputs folder or a run's best/ folder."""
    model_dir = Path(model_dir)
    if not model_dir.exists():
        raise KubevisionError(f"model not found: {model_dir}")
    if not model_dir.is_dir():
        raise KubevisionError(
            f"not a model folder: {model_dir}",
            [Problem("pass the mlflow-model folder, or the trial outputs folder that contains it")],
        )
    for candidate in (model_dir, model_dir / "mlflow-model", model_dir / "outputs" / "mlflow-model"):
        if (candidate / "MLmodel").is_file():
            return candidate
    raise KubevisionError(
        f"no model in {model_dir}",
        [Problem("expected an MLmodel file in it, in its mlflow-model/ or in outputs/mlflow-model/")],
    )


def load_predictor(model_dir: Path, *, device: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> Predictor:
    """Load a kubevision model for scoring files (see `resolve_model_dir` for the folders accepted)."""
    mlflow_dir = resolve_model_dir(model_dir)
    mlmodel = mlflow_dir / "MLmodel"
    try:
        meta = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise KubevisionError(f"{mlmodel} is not valid YAML", [Problem(str(err), file=str(mlmodel))]) from err
    flavors = meta.get("flavors") if isinstance(meta, dict) else None
    flavor = flavors.get("python_function") if isinstance(flavors, dict) else None
    if not isinstance(flavor, dict) or flavor.get("loader_module") != LOADER_MODULE:
        loader = flavor.get("loader_module") if isinstance(flavor, dict) else None
        raise KubevisionError(
            f"{mlflow_dir} is not a kubevision model",
            [Problem(f"its python_function loader_module is {loader!r}, not {LOADER_MODULE!r}", file=str(mlmodel))],
        )
    data_dir = mlflow_dir / str(flavor.get("data", "artifacts"))
    scorer = ImageClassifierPyfunc.from_artifacts(data_dir, device=device, batch_size=batch_size)
    return Predictor(scorer, mlflow_dir)


def find_images(inputs: Sequence[Path]) -> list[Path]:
    """Files as given, folders expanded to their image files (recursively, sorted), each file once."""
    found: list[Path] = []
    problems: list[Problem] = []
    for entry in inputs:
        path = Path(entry)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not inside:
                problems.append(Problem(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))})", file=str(path)))
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            problems.append(Problem("no such file or folder", file=str(path)))
    if problems:
        raise KubevisionError("cannot read the images to score", problems)
    if not found:
        raise KubevisionError("no images to score")
    # A file named and also inside a named folder is scored once, where it first appears.
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def run_predict(model_dir: Path, images: list[Path], *, out_file: Path | None, batch_size: int) -> int:
    """Score `images` (files or folders) and write one JSON line per image to `out_file` or stdout.

    `out_file` is replaced atomically when the run completes. Returns the number of predictions. When
    some images could not be scored, their lines carry `error`, the others are written anyway, and
    `KubevisionError` lists the failures at the end.
    """
    if batch_size < 1:
        raise KubevisionError("batch size must be positive", [Problem(f"got {batch_size}", field="--batch-size")])
    paths = find_images(images)
    predictor = load_predictor(model_dir, batch_size=batch_size)
    failed: list[Problem] = []
    written = 0

    def emit(stream: IO[str]) -> None:
        nonlocal written
        for records in predictor.iter_predictions(paths, batch_size):
            for record in records:
                stream.write(json.dumps(record, ensure_ascii=False) + "\n")
                if "error" in record:
                    failed.append(Problem(str(record["error"]), file=record["filename"]))
                else:
                    written += 1
            stream.flush()

    if out_file is None:
        emit(sys.stdout)
    else:
        write_text_atomically(Path(out_file), emit)
    if failed:
        where = f" to {out_file}" if out_file else ""
        errors = "error line" if len(failed) == 1 else "error lines"
        raise KubevisionError(
            f"{len(failed)} of {len(paths)} images could not be scored "
            f"({written} predictions and {len(failed)} {errors} written{where})",
            failed,
        )
    return written


