"""Batch scoring of files (`kubevision predict`, reference 9.7) on a real exported resnet18.

What is pinned: the folders a model may be given as, one JSON line per image in Azure's batch format,
the same numbers as the pyfunc for the same bytes, a corrupt file reported in its line without losing
the others (and a non-zero exit at the end), and the CLI wiring through click's runner.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from kubevision.api.errors import KubevisionError
from kubevision.cli import cli
from kubevision.trainer.export import write_model_artifacts
from kubevision.trainer.models import build_classifier
from kubevision.trainer.predict import find_images, load_predictor, resolve_model_dir, run_predict

CLASSES = ["ant", "bee", "cow"]
HP = {"modelName": "resnet18", "trainingCropSize": 32, "validationCropSize": 32, "validationResizeSize": 36}


def save_image(path: Path, seed: int, fmt: str = "PNG") -> Path:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(40 + seed, 50, 3), dtype=np.uint8)
    pixels[: 10 + seed] //= 3
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").save(path, fmt)
    return path


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_classifier("resnet18", len(CLASSES), image_size=32)
    with torch.no_grad():
        model.get_classifier().weight.mul_(30)  # type: ignore[operator]
    out = tmp_path_factory.mktemp("trial") / "outputs"
    write_model_artifacts(
        out,
        model=model,
        model_name="resnet18",
        task="image_classification",
        classes=CLASSES,
        hp=HP,
        metrics={"accuracy": 1.0},
        epoch=1,
        onnx=False,
    )
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("images")
    return [
        save_image(folder / "a.png", 1),
        save_image(folder / "sub" / "b.JPG", 2, fmt="JPEG"),
        save_image(folder / "c.bmp", 3, fmt="BMP"),
    ]


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_model_folder_forms_resolve_to_the_mlflow_model(outputs: Path, tmp_path: Path) -> None:
    mlflow_dir = outputs / "mlflow-model"
    best = tmp_path / "run" / "best"
    shutil.copytree(mlflow_dir, best)  # a run's best/ holding the model itself
    trial_dir = outputs.parent  # a trial folder with outputs/mlflow-model inside

    assert resolve_model_dir(mlflow_dir) == mlflow_dir
    assert resolve_model_dir(outputs) == mlflow_dir
    assert resolve_model_dir(trial_dir) == mlflow_dir
    assert resolve_model_dir(best) == best
    assert load_predictor(best).classes == CLASSES


def test_predictions_equal_the_pyfunc_for_the_same_bytes(outputs: Path, images: list[Path]) -> None:
    predictor = load_predictor(outputs)
    records = predictor.predict_files(images, batch_size=2)
    encoded = [base64.b64encode(path.read_bytes()).decode() for path in images]
    frame = predictor.scorer.predict(pd.DataFrame({"image": encoded}))

    assert [r["filename"] for r in records] == [str(p) for p in images]
    for record, probs in zip(records, frame.probs, strict=True):
        assert set(record) == {"filename", "probs", "labels"}
        assert record["labels"] == CLASSES
        assert record["probs"] == pytest.approx(probs, abs=1e-6)
        assert sum(record["probs"]) == pytest.approx(1.0, abs=1e-5)


def test_a_bad_file_gets_an_error_line_and_the_others_are_scored(
    outputs: Path, images: list[Path], tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    out_file = tmp_path / "preds" / "out.jsonl"

    with pytest.raises(KubevisionError, match=r"1 of 4 images could not be scored \(3 predictions") as caught:
        run_predict(outputs, [images[0], corrupt, images[1].parent.parent], out_file=out_file, batch_size=2)

    assert caught.value.problems[0].file == str(corrupt)
    lines = read_lines(out_file)
    assert [line["filename"] for line in lines] == [str(images[0]), str(corrupt), str(images[2]), str(images[1])]
    assert set(lines[1]) == {"filename", "error"}
    assert "image cannot be decoded" in str(lines[1]["error"])
    assert all("probs" in line for i, line in enumerate(lines) if i != 1)


def test_folders_expand_to_image_files_and_missing_input_fails_first(images: list[Path], tmp_path: Path) -> None:
    folder = images[0].parent
    (folder / "notes.txt").write_text("not an image")
    assert find_images([folder]) == sorted(images)  # recursive, sorted, images only
    assert find_images([images[2], folder]) == [images[2], *sorted(set(images) - {images[2]})]  # each once
    (tmp_path / "empty").mkdir()
    with pytest.raises(KubevisionError, match="cannot read the images") as caught:
        find_images([images[0], tmp_path / "nope.png", tmp_path / "empty"])
    problems = caught.value.problems
    assert [p.file for p in problems] == [str(tmp_path / "nope.png"), str(tmp_path / "empty")]
    assert problems[0].message == "no such file or folder"
    assert problems[1].message.startswith("no image files (.bmp, .gif, .jpeg")


def test_what_is_not_a_kubevision_model_is_refused(outputs: Path, tmp_path: Path) -> None:
    with pytest.raises(KubevisionError, match="model not found"):
        load_predictor(tmp_path / "missing")
    with pytest.raises(KubevisionError, match="no model in"):
        load_predictor(tmp_path)
    azure = tmp_path / "azure-model"
    azure.mkdir()
    (azure / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n")
    with pytest.raises(KubevisionError, match="is not a kubevision model") as caught:
        load_predictor(azure)
    assert "'mlflow.pyfunc.model'" in str(caught.value)


def test_cli_predict_writes_one_line_per_image(outputs: Path, images: list[Path], tmp_path: Path) -> None:
    out_file = tmp_path / "preds.jsonl"
    args = ["predict", "--model", str(outputs / "mlflow-model"), str(images[0]), str(images[2]), "--out", str(out_file)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    lines = read_lines(out_file)
    assert [line["filename"] for line in lines] == [str(images[0]), str(images[2])]
    assert all(line["labels"] == CLASSES and len(line["probs"]) == 3 for line in lines)  # type: ignore[arg-type]
    assert f"wrote 2 predictions to {out_file}" in result.stderr


def test_cli_predict_prints_to_stdout_and_fails_on_a_bad_image(
    outputs: Path, images: list[Path], tmp_path: Path
) -> None:
    result = CliRunner().invoke(cli, ["predict", "--model", str(outputs), str(images[0])])
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    assert json.loads(line)["filename"] == str(images[0])

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = CliRunner().invoke(cli, ["predict", "--model", str(outputs), str(bad), str(images[1])])
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) == 2
    assert "error: 1 of 2 images could not be scored" in result.stderr
    assert str(bad) in result.stderr
