"""ONNX export against onnxruntime: Azure's names and dynamic batch, parity with torch, baked-in normalisation.

resnet18 without normalisation is exported (and checked the same way) by `write_model_artifacts` in
test_export.py; here mobilenetv2, with `normalize=True`, so the two exports cover both backbones and
both input conventions. Each export costs several seconds of CPU, hence one per file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from kubevision.trainer.models import build_classifier
from kubevision.trainer.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx
from kubevision.trainer.presets import IMAGENET_MEAN, IMAGENET_STD

CROP = 32


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def mobilenet() -> nn.Module:
    torch.manual_seed(0)
    model = build_classifier("mobilenetv2", 4, image_size=CROP)
    with torch.no_grad():
        model.get_classifier().weight.mul_(10)  # type: ignore[operator]
    return model.train()  # the exporter must not care, nor change it


@pytest.fixture(scope="module")
def normalized_onnx(mobilenet: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(mobilenet, tmp_path_factory.mktemp("onnx") / "model.onnx", crop_size=CROP, normalize=True)


def test_graph_has_azure_names_and_a_dynamic_batch(normalized_onnx: Path) -> None:
    graph = onnx.load(str(normalized_onnx)).graph
    onnx.checker.check_model(str(normalized_onnx))
    assert [i.name for i in graph.input] == [INPUT_NAME] == ["input1"]
    assert [o.name for o in graph.output] == [OUTPUT_NAME] == ["output1"]
    in_dims = graph.input[0].type.tensor_type.shape.dim
    out_dims = graph.output[0].type.tensor_type.shape.dim
    assert in_dims[0].dim_param and not in_dims[0].dim_value  # symbolic batch
    assert [d.dim_value for d in in_dims[1:]] == [3, CROP, CROP]
    assert out_dims[0].dim_param == in_dims[0].dim_param
    assert out_dims[1].dim_value == 4
    assert normalized_onnx.stat().st_mode & 0o777 == 0o644
    assert not list(normalized_onnx.parent.glob(".*tmp"))


@pytest.mark.parametrize("batch", [1, 3])
def test_normalized_graph_matches_torch_on_normalized_input(
    normalized_onnx: Path, mobilenet: nn.Module, batch: int
) -> None:
    rgb = torch.rand(batch, 3, CROP, CROP, generator=torch.Generator().manual_seed(batch))
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    was_training = mobilenet.training
    mobilenet.eval()
    try:
        with torch.inference_mode():
            expected = mobilenet((rgb - mean) / std).numpy()
            unnormalized = mobilenet(rgb).numpy()
    finally:
        mobilenet.train(was_training)

    (logits,) = session(normalized_onnx).run([OUTPUT_NAME], {INPUT_NAME: rgb.numpy()})

    assert logits.shape == (batch, 4)
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-4)
    assert np.abs(logits - unnormalized).max() > 1e-2  # the normalisation is really in the graph


def test_export_leaves_the_callers_model_alone(normalized_onnx: Path, mobilenet: nn.Module) -> None:
    assert mobilenet.training  # exported from an eval-mode copy
    assert next(mobilenet.parameters()).device.type == "cpu"


def test_crop_size_must_be_positive(mobilenet: nn.Module, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="crop_size must be positive"):
        export_onnx(mobilenet, tmp_path / "m.onnx", crop_size=0)
    assert not (tmp_path / "m.onnx").exists()
