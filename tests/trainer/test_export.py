"""`write_model_artifacts` on a real resnet18: the files of reference 9.1/9.2/9.3, a real MLflow load in a
fresh process, ONNX parity, and what a crash midway leaves behind.

The MLflow check runs in a subprocess on purpose: it is how a model is used (another process, later),
it proves no state of the exporting process is needed, and importing mlflow there keeps its import-time
warnings out of this pytest process (warnings are errors here).
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from kubevision.api.tasks import Task
from kubevision.trainer import export as export_module
from kubevision.trainer.export import ExportResult, write_model_artifacts
from kubevision.trainer.models import build_classifier
from kubevision.trainer.presets import ClassificationPresetEval

CLASSES = ["can", "carton", "milk_bottle"]
HP: dict[str, Any] = {
    "modelName": "resnet18",
    "trainingCropSize": 32,
    "validationCropSize": 32,
    "validationResizeSize": 40,
    "learningRate": 0.01,
    "task": Task.IMAGE_CLASSIFICATION,  # a StrEnum must be stored as a plain str (weights_only loading)
    "unpicklable": object(),  # not JSON-like: dropped from the checkpoint, never an error
}
METRICS = {"accuracy": 0.75, "log_loss": 0.6}


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = build_classifier("resnet18", len(CLASSES), image_size=32)
    with torch.no_grad():
        model.get_classifier().weight.mul_(30)  # type: ignore[operator]
    return model.eval()


def png_bytes(seed: int, size: tuple[int, int] = (50, 44)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    pixels[:, : size[0] // 2] //= seed + 2
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PNG")
    return buffer.getvalue()


def write(outputs: Path, model: nn.Module, *, onnx: bool = False, **overrides: Any) -> ExportResult:
    kwargs: dict[str, Any] = {
        "model": model,
        "model_name": "resnet18",
        "task": "image_classification",
        "classes": CLASSES,
        "hp": HP,
        "metrics": METRICS,
        "epoch": 7,
        "training_run_id": "trial-3",
        "onnx": onnx,
    }
    return write_model_artifacts(outputs, **{**kwargs, **overrides})


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return tiny_model()


@pytest.fixture(scope="module")
def exported(model: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    # Wrapped as DDP wraps it: the checkpoint must hold the inner model's names, without `module.`.
    return write(tmp_path_factory.mktemp("trial") / "outputs", nn.DataParallel(model), onnx=True)


def test_layout_of_the_outputs_folder(exported: ExportResult) -> None:
    mlflow_dir = exported.mlflow_model_dir
    outputs = mlflow_dir.parent
    assert mlflow_dir == outputs / "mlflow-model"
    files = sorted(str(p.relative_to(outputs)) for p in outputs.rglob("*") if p.is_file())
    assert files == [
        "labels.json",
        "mlflow-model/MLmodel",
        "mlflow-model/artifacts/model.pt",
        "mlflow-model/artifacts/settings.json",
        "mlflow-model/conda.yaml",
        "mlflow-model/labels.json",
        "mlflow-model/python_env.yaml",
        "mlflow-model/requirements.txt",
        "model.onnx",
    ]
    assert exported.onnx == outputs / "model.onnx" and exported.onnx_error is None
    assert exported.model_pt == mlflow_dir / "artifacts" / "model.pt"
    for labels in (outputs / "labels.json", mlflow_dir / "labels.json"):
        assert json.loads(labels.read_text()) == CLASSES
    assert json.loads(exported.settings_json.read_text()) == {
        "valid_resize_size": 40,
        "valid_crop_size": 32,
        "train_crop_size": 32,
    }
    # Readable by a model server running as another user (mkstemp would leave 0600).
    assert exported.model_pt.stat().st_mode & 0o777 == 0o644
    assert mlflow_dir.stat().st_mode & 0o777 == 0o755


def test_model_pt_is_the_azure_checkpoint_and_loads_weights_only(exported: ExportResult, model: nn.Module) -> None:
    checkpoint = torch.load(exported.model_pt, map_location="cpu", weights_only=True)

    assert {"epoch", "model_name", "number_of_classes", "specs", "model_state", "score", "metrics"} <= set(checkpoint)
    assert (checkpoint["epoch"], checkpoint["model_name"], checkpoint["number_of_classes"]) == (7, "resnet18", 3)
    specs = checkpoint["specs"]
    assert set(specs) == {"model_specs", "model_settings", "classes", "inference_settings"}
    assert specs["model_specs"] == {"model_name": "resnet18", "num_classes": 3, "image_size": 32, "multilabel": False}
    assert specs["model_settings"] == {"valid_resize_size": 40, "valid_crop_size": 32, "train_crop_size": 32}
    assert specs["classes"] == CLASSES
    assert specs["inference_settings"]["task"] == "image_classification"
    assert checkpoint["score"] == 0.75 and checkpoint["metrics"] == METRICS
    assert checkpoint["hyperparameters"]["task"] == "image_classification"
    assert type(checkpoint["hyperparameters"]["task"]) is str
    assert "unpicklable" not in checkpoint["hyperparameters"]

    state = checkpoint["model_state"]
    expected = model.state_dict()
    assert list(state) == list(expected)  # no DDP `module.` prefix
    for key, tensor in expected.items():
        assert torch.equal(state[key], tensor), key


def test_mlmodel_names_the_loader_module_and_azure_metadata(exported: ExportResult) -> None:
    mlflow_dir = exported.mlflow_model_dir
    mlmodel = yaml.safe_load((mlflow_dir / "MLmodel").read_text())

    flavor = mlmodel["flavors"]["python_function"]
    assert flavor["loader_module"] == "kubevision.trainer.pyfunc"
    assert flavor["data"] == "artifacts"
    assert flavor["env"] == {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}
    assert mlmodel["metadata"] == {
        "base_model_name": "resnet18",
        "finetuning_task": "image_classification",
        "is_automl_model": True,
        "training_run_id": "trial-3",
        "kubevision_version": mlmodel["metadata"]["kubevision_version"],
    }
    assert json.loads(mlmodel["signature"]["inputs"]) == [{"type": "string", "name": "image"}]
    outputs = [column["name"] for column in json.loads(mlmodel["signature"]["outputs"])]
    assert outputs == ["probs", "labels", "visualizations", "attributions"]
    assert not list(mlflow_dir.rglob("*.pkl"))  # no pickled Python object in the model

    requirements = (mlflow_dir / "requirements.txt").read_text().split()
    names = {line.split("==")[0].split(">=")[0] for line in requirements}
    assert {"kubevision", "torch", "torchvision", "timm", "mlflow-skinny", "pandas", "pillow"} <= names
    assert not any("+" in line for line in requirements)  # local version labels (+cu130) are not on PyPI
    assert yaml.safe_load((mlflow_dir / "python_env.yaml").read_text())["dependencies"] == ["-r requirements.txt"]
    conda = yaml.safe_load((mlflow_dir / "conda.yaml").read_text())
    assert {"pip": requirements} in conda["dependencies"]


_FRESH_PROCESS = """
import json, sys
import kubevision.trainer.export, kubevision.trainer.predict
assert "mlflow" not in sys.modules, "exporting or batch scoring imported mlflow"
import mlflow.pyfunc
import pandas as pd
model_dir, images_file = sys.argv[1], sys.argv[2]
model = mlflow.pyfunc.load_model(model_dir)
frame = model.predict(pd.DataFrame({"image": json.load(open(images_file))}))
print(json.dumps({"loader": model.loader_module, "probs": frame["probs"].tolist(), "labels": frame["labels"].tolist()}))
"""


def test_mlflow_loads_and_predicts_in_a_fresh_process(exported: ExportResult, model: nn.Module, tmp_path: Path) -> None:
    images = [png_bytes(1), png_bytes(2, size=(70, 40))]
    images_file = tmp_path / "images.json"
    images_file.write_text(json.dumps([base64.encodebytes(data).decode() for data in images]))

    done = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, str(exported.mlflow_model_dir), str(images_file)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["loader"] == "kubevision.trainer.pyfunc"
    assert result["labels"] == [CLASSES, CLASSES]
    preset = ClassificationPresetEval(40, 32)
    with torch.inference_mode():
        batch = torch.stack([preset(Image.open(io.BytesIO(data))) for data in images])
        expected = torch.softmax(model(batch), dim=1).tolist()
    for probs, want in zip(result["probs"], expected, strict=True):
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert probs == pytest.approx(want, abs=1e-5)
    assert max(abs(a - b) for a, b in zip(*result["probs"], strict=True)) > 0.01


@pytest.mark.parametrize("batch", [1, 3])
def test_model_onnx_matches_torch(exported: ExportResult, model: nn.Module, batch: int) -> None:
    assert exported.onnx is not None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(exported.onnx), options, providers=["CPUExecutionProvider"])
    x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
    with torch.inference_mode():
        expected = model(x).numpy()
    (logits,) = session.run(["output1"], {"input1": x.numpy()})
    assert logits.shape == (batch, len(CLASSES))
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-4)


def test_reexport_replaces_the_model_whole(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    first = write(outputs, tiny_model(seed=1))
    uuid_first = yaml.safe_load((first.mlflow_model_dir / "MLmodel").read_text())["model_uuid"]
    (outputs / ".mlflow-model.staging-deadbeef").mkdir()  # left by an export killed midway
    (outputs / ".mlflow-model.staging-deadbeef" / "MLmodel").write_text("half")

    second_model = tiny_model(seed=2)
    second = write(outputs, second_model, epoch=9)

    assert yaml.safe_load((second.mlflow_model_dir / "MLmodel").read_text())["model_uuid"] != uuid_first
    checkpoint = torch.load(second.model_pt, weights_only=True)
    assert checkpoint["epoch"] == 9
    assert torch.equal(checkpoint["model_state"]["fc.weight"], second_model.state_dict()["fc.weight"])
    assert sorted(p.name for p in outputs.iterdir()) == ["labels.json", "mlflow-model"]


def test_a_crash_midway_leaves_the_previous_model_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = tmp_path / "outputs"
    first = write(outputs, tiny_model(seed=1))
    before = {p.relative_to(outputs): p.read_bytes() for p in outputs.rglob("*") if p.is_file()}

    def crash(_requirements: list[str]) -> dict[str, Any]:
        raise RuntimeError("killed while writing conda.yaml")

    monkeypatch.setattr(export_module, "_conda_env", crash)
    with pytest.raises(RuntimeError, match="killed while writing"):
        write(outputs, tiny_model(seed=2), epoch=9)

    after = {p.relative_to(outputs): p.read_bytes() for p in outputs.rglob("*") if p.is_file()}
    assert after == before
    assert torch.load(first.model_pt, weights_only=True)["epoch"] == 7
    assert sorted(p.name for p in outputs.iterdir()) == ["labels.json", "mlflow-model"]


def test_onnx_failure_keeps_the_mlflow_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(*_args: object, **_kwargs: object) -> Path:
        raise RuntimeError("operator not supported")

    monkeypatch.setattr(export_module, "export_onnx", unsupported)
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "model.onnx").write_bytes(b"an earlier epoch's export")
    result = write(tmp_path / "outputs", tiny_model(), onnx=True)

    assert result.onnx is None
    assert result.onnx_error == "RuntimeError: operator not supported"
    assert (result.mlflow_model_dir / "MLmodel").is_file()
    assert not (tmp_path / "outputs" / "model.onnx").exists()  # stale weights are not left behind


def test_multilabel_is_recorded_for_the_scorer(tmp_path: Path) -> None:
    result = write(
        tmp_path / "outputs",
        tiny_model(),
        task="image_classification_multilabel",
        metrics={"iou": 0.4, "accuracy": 0.2},
    )
    checkpoint = torch.load(result.model_pt, weights_only=True)
    assert checkpoint["specs"]["model_specs"]["multilabel"] is True
    assert checkpoint["score"] == 0.4  # the multi-label primary metric, iou
    mlmodel = yaml.safe_load((result.mlflow_model_dir / "MLmodel").read_text())
    assert mlmodel["metadata"]["finetuning_task"] == "image_classification_multilabel"


def test_inconsistent_requests_are_refused(tmp_path: Path) -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="classification models, not image_object_detection"):
        write(tmp_path / "a", model, task="image_object_detection")
    with pytest.raises(ValueError, match="3 outputs but 2 class names"):
        write(tmp_path / "b", model, classes=["a", "b"])
    with pytest.raises(ValueError, match="repeated: a"):
        write(tmp_path / "c", model, classes=["a", "b", "a"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
