"""The pyfunc scorer on a real exported resnet18: numbers equal the torch model's, every input shape
clients send decodes to the same answer, and bad input names the row.

In-process (the MLflow round trip in a fresh process is in test_export.py): `_load_pyfunc` is called
exactly as MLflow calls it, with `<model>/artifacts`. Models are random-init with the class head scaled
up so that different images get clearly different probabilities and a preprocessing mistake shows.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from kubevision.api.errors import KubevisionError
from kubevision.trainer import pyfunc
from kubevision.trainer.export import write_model_artifacts
from kubevision.trainer.models import build_classifier
from kubevision.trainer.presets import ClassificationPresetEval
from kubevision.trainer.pyfunc import ImageClassifierPyfunc, _load_pyfunc

CLASSES = ["cat", "dog", "eel"]
HP = {"modelName": "resnet18", "trainingCropSize": 32, "validationCropSize": 32, "validationResizeSize": 40}


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = build_classifier("resnet18", len(CLASSES), image_size=32)
    with torch.no_grad():
        model.get_classifier().weight.mul_(30)  # type: ignore[operator]
    return model.eval()


def image_bytes(seed: int, size: tuple[int, int] = (48, 40), fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    pixels[: size[1] // 2] //= seed + 1  # structure, so images differ beyond noise
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, fmt)
    return buffer.getvalue()


def torch_probs(model: nn.Module, data: bytes, *, multilabel: bool, resize: int = 40, crop: int = 32) -> list[float]:
    preset = ClassificationPresetEval(resize, crop)
    with torch.inference_mode():
        logits = model(preset(Image.open(io.BytesIO(data)))[None])
    probs = torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)
    return [float(p) for p in probs[0]]


def export(tmp_path: Path, model: nn.Module, task: str = "image_classification") -> Path:
    result = write_model_artifacts(
        tmp_path / "outputs",
        model=model,
        model_name="resnet18",
        task=task,
        classes=CLASSES,
        hp=HP,
        metrics={"accuracy": 0.5, "iou": 0.5},
        epoch=1,
        onnx=False,
    )
    return result.mlflow_model_dir / "artifacts"


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return tiny_model()


@pytest.fixture(scope="module")
def artifacts(model: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(tmp_path_factory.mktemp("multiclass"), model)


@pytest.fixture(scope="module")
def scorer(artifacts: Path) -> ImageClassifierPyfunc:
    return _load_pyfunc(str(artifacts))


def test_multiclass_probs_are_the_torch_models_softmax(scorer: ImageClassifierPyfunc, model: nn.Module) -> None:
    images = [image_bytes(1), image_bytes(2, size=(80, 50)), image_bytes(3, fmt="JPEG")]
    frame = scorer.predict(pd.DataFrame({"image": [base64.encodebytes(b).decode() for b in images]}))

    assert list(frame.columns) == ["probs", "labels"]
    assert len(frame) == 3
    for row, data in zip(frame.itertuples(), images, strict=True):
        assert row.labels == CLASSES
        assert sum(row.probs) == pytest.approx(1.0, abs=1e-5)
        assert row.probs == pytest.approx(torch_probs(model, data, multilabel=False), abs=1e-5)
    # The head is scaled up: distinct images give distinct answers, so the comparison above has teeth.
    assert max(abs(a - b) for a, b in zip(frame.probs[0], frame.probs[1], strict=True)) > 0.01


def test_multilabel_probs_are_independent_sigmoids(tmp_path: Path) -> None:
    model = tiny_model(seed=1)
    scorer = _load_pyfunc(str(export(tmp_path, model, task="image_classification_multilabel")))
    data = image_bytes(4)

    frame = scorer.predict(pd.DataFrame({"image": [base64.b64encode(data).decode()]}))

    assert scorer.multilabel
    assert frame.labels[0] == CLASSES
    assert frame.probs[0] == pytest.approx(torch_probs(model, data, multilabel=True), abs=1e-5)
    assert sum(frame.probs[0]) != pytest.approx(1.0, abs=1e-3)


def test_every_input_shape_decodes_to_the_same_answer(scorer: ImageClassifierPyfunc) -> None:
    data = image_bytes(5)
    plain = base64.b64encode(data).decode()
    expected = scorer.predict(pd.DataFrame({"image": [plain]})).probs[0]
    xai_request = json.dumps({"image_base64": plain, "model_explainability": True, "xai_parameters": {"n_steps": 3}})
    urlsafe_unpadded = base64.urlsafe_b64encode(data).decode().rstrip("=")
    inputs: list[object] = [
        pd.DataFrame({"image": [base64.encodebytes(data).decode()]}),  # newlines every 76 characters
        pd.DataFrame({"image": [data]}),  # raw file bytes
        pd.DataFrame({"image": [xai_request]}),  # Azure's explainability item: XAI keys ignored here
        pd.DataFrame({"image": [urlsafe_unpadded]}),
        [plain],
        [[plain]],  # MLflow "split" orientation rows
        {"image": [plain]},
        {"image": plain},
        {"image_base64": plain},
        pd.Series([plain]),
        plain,
    ]
    for model_input in inputs:
        frame = scorer.predict(model_input, params={"ignored": True})
        assert len(frame) == 1, type(model_input)
        assert frame.probs[0] == pytest.approx(expected, abs=1e-6), type(model_input)


def test_batching_does_not_change_results(artifacts: Path) -> None:
    images = [base64.b64encode(image_bytes(seed)).decode() for seed in range(5)]
    one_at_a_time = _load_pyfunc(str(artifacts), {"batch_size": 1, "device": "cpu"})
    batched = _load_pyfunc(str(artifacts), {"batch_size": 4})

    a = one_at_a_time.predict(pd.DataFrame({"image": images}))
    b = batched.predict(pd.DataFrame({"image": images}))

    assert one_at_a_time.batch_size == 1 and one_at_a_time.device == torch.device("cpu")
    for left, right in zip(a.probs, b.probs, strict=True):
        assert left == pytest.approx(right, abs=1e-5)


def test_bad_rows_are_all_named(scorer: ImageClassifierPyfunc) -> None:
    good = base64.b64encode(image_bytes(6)).decode()
    not_an_image = base64.b64encode(b"just some text, not pixels").decode()
    with pytest.raises(KubevisionError) as caught:
        scorer.predict(pd.DataFrame({"image": [good, "%%% not base64 %%%", not_an_image, "{broken json", ""]}))

    fields = [problem.field for problem in caught.value.problems]
    assert fields == ["image[1]", "image[2]", "image[3]", "image[4]"]
    text = str(caught.value)
    assert "cannot score 4 of 5 input images" in text
    assert "image[1]: not valid base64" in text
    assert "image[2]: not an image" in text
    assert "image[3]: starts with '{' but is not valid JSON" in text
    assert "image[4]: empty string" in text


def test_truncated_image_is_a_bad_row_not_a_crash(scorer: ImageClassifierPyfunc) -> None:
    truncated = image_bytes(7, fmt="JPEG")[:200]
    with pytest.raises(KubevisionError, match=r"image\[0\]: image cannot be decoded"):
        scorer.predict([base64.b64encode(truncated).decode()])


def test_input_without_an_image_column_is_refused(scorer: ImageClassifierPyfunc) -> None:
    with pytest.raises(KubevisionError, match="no 'image' column") as caught:
        scorer.predict(pd.DataFrame({"picture": ["abc"]}))
    assert "columns found: picture" in str(caught.value)
    with pytest.raises(KubevisionError, match="unsupported model input"):
        scorer.predict(42)


def test_empty_input_gives_an_empty_frame(scorer: ImageClassifierPyfunc) -> None:
    frame = scorer.predict(pd.DataFrame({"image": []}))
    assert list(frame.columns) == ["probs", "labels"]
    assert len(frame) == 0


def test_edited_settings_json_changes_preprocessing(tmp_path: Path, model: nn.Module) -> None:
    artifacts = export(tmp_path, model)
    (artifacts / "settings.json").write_text(json.dumps({"valid_resize_size": 64, "valid_crop_size": 56}))
    data = image_bytes(8, size=(90, 70))

    scorer = _load_pyfunc(str(artifacts))
    probs = scorer.predict([base64.b64encode(data).decode()]).probs[0]

    assert (scorer.preset.resize_size, scorer.preset.crop_size) == (64, 56)
    assert probs == pytest.approx(torch_probs(model, data, multilabel=False, resize=64, crop=56), abs=1e-5)
    assert probs != pytest.approx(torch_probs(model, data, multilabel=False), abs=1e-4)


def test_invalid_settings_and_model_files_are_user_errors(tmp_path: Path, model: nn.Module) -> None:
    artifacts = export(tmp_path, model)
    (artifacts / "settings.json").write_text('{"valid_resize_size": "big", "valid_crop_size": 32}')
    with pytest.raises(KubevisionError, match="invalid inference settings") as caught:
        _load_pyfunc(str(artifacts))
    assert caught.value.problems[0].field == "valid_resize_size"

    (artifacts / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(KubevisionError, match="cannot read model checkpoint"):
        _load_pyfunc(str(artifacts))

    torch.save({"model_state": model.state_dict()}, artifacts / "model.pt")
    with pytest.raises(KubevisionError, match="not a kubevision model checkpoint"):
        _load_pyfunc(str(artifacts))

    with pytest.raises(KubevisionError, match="unknown model_config keys"):
        _load_pyfunc(str(artifacts), {"gpu": True})


def test_weights_of_another_shape_are_refused(tmp_path: Path, model: nn.Module) -> None:
    artifacts = export(tmp_path, model)
    checkpoint = torch.load(artifacts / "model.pt", weights_only=True)
    checkpoint["model_state"]["fc.weight"] = torch.zeros(3, 7)
    torch.save(checkpoint, artifacts / "model.pt")
    with pytest.raises(KubevisionError, match="do not fit a resnet18 with 3 classes"):
        _load_pyfunc(str(artifacts))


def test_loader_module_is_this_module() -> None:
    assert pyfunc.__name__ == pyfunc.LOADER_MODULE
