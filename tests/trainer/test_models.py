"""The model registry, offline construction and the intersection loader."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from kubevision.api.errors import KubevisionError
from kubevision.api.tasks import CLASSIFICATION_MODELS
from kubevision.trainer.models import (
    CLASSIFIERS,
    build_classifier,
    extract_state_dict,
    load_intersecting,
    model_family,
    model_spec,
)

BATCH = torch.randn(2, 3, 32, 32)
SMALL = ["mobilenetv2", "resnet18", "resnest50", "seresnext", "vits16r224"]
BIG = ["resnet34", "resnet50", "resnet101", "resnet152", "resnest101", "vitb16r224", "vitl16r224"]


def test_registry_covers_exactly_the_api_models_in_order() -> None:
    assert tuple(CLASSIFIERS) == CLASSIFICATION_MODELS
    assert {name: spec.timm_name for name, spec in CLASSIFIERS.items()} == {
        "mobilenetv2": "mobilenetv2_100",
        "resnet18": "resnet18",
        "resnet34": "resnet34",
        "resnet50": "resnet50",
        "resnet101": "resnet101",
        "resnet152": "resnet152",
        "resnest50": "resnest50d",
        "resnest101": "resnest101e",
        "seresnext": "seresnext50_32x4d",
        "vits16r224": "vit_small_patch16_224",
        "vitb16r224": "vit_base_patch16_224",
        "vitl16r224": "vit_large_patch16_224",
    }
    assert all(timm.is_model(spec.timm_name) for spec in CLASSIFIERS.values())


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("mobilenetv2", "mobilenetv2"),
        ("resnet152", "resnet"),
        ("resnest101", "resnest"),
        ("seresnext", "seresnext"),
        ("vitl16r224", "vit"),
    ],
)
def test_model_family(name: str, family: str) -> None:
    assert model_family(name) == family


def test_unknown_model_lists_the_valid_names() -> None:
    with pytest.raises(KubevisionError) as err:
        model_spec("resnet200")
    message = str(err.value)
    assert "resnet200" in message
    assert all(name in message for name in CLASSIFICATION_MODELS)
    assert err.value.problems[0].field == "modelName"


@pytest.mark.parametrize("name", SMALL)
def test_small_models_build_offline_and_classify(name: str, no_network: list[object]) -> None:
    model = build_classifier(name, 3, image_size=32)
    model.eval()
    with torch.no_grad():
        logits = model(BATCH)
    assert logits.shape == (2, 3)
    assert no_network == []


@pytest.mark.parametrize("name", BIG)
def test_big_models_build_on_the_meta_device_with_the_requested_head(name: str) -> None:
    with torch.device("meta"):
        model = build_classifier(name, 3)
    assert isinstance(model, timm.models.VisionTransformer if name.startswith("vit") else nn.Module)
    head = model.get_classifier()  # type: ignore[operator]
    assert isinstance(head, nn.Linear) and head.out_features == 3
    if name == "vitl16r224":
        assert len(model.blocks) == 24  # type: ignore[arg-type]


def test_vit_is_built_for_the_training_crop() -> None:
    with torch.device("meta"):
        model = build_classifier("vitb16r224", 3, image_size=64)
        default = build_classifier("vitb16r224", 3)
    assert model.pos_embed.shape == (1, 1 + 4 * 4, 768)
    assert default.pos_embed.shape == (1, 1 + 14 * 14, 768)


def test_random_init_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="kubevision.trainer.models"), torch.device("meta"):
        build_classifier("resnet50", 3)
    lines = [r for r in caplog.records if r.name == "kubevision.trainer.models"]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO and "random initialisation" in lines[0].getMessage()


def test_hub_access_is_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with torch.device("meta"):
        build_classifier("resnet18", 3)
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_the_network_guard_itself_works(no_network: list[object]) -> None:
    with pytest.raises(AssertionError, match="network access"):
        socket.create_connection(("192.0.2.1", 443), timeout=0.1)
    assert no_network == [("192.0.2.1", 443)]


# ---- pretrained weights ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet18_five_classes() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return timm.create_model("resnet18", pretrained=False, num_classes=5).state_dict()


def _same_backbone(model: nn.Module, source: dict[str, torch.Tensor]) -> bool:
    own = model.state_dict()
    return all(torch.equal(own[k], v) for k, v in source.items() if not k.startswith("fc."))


@pytest.mark.parametrize(
    "layout",
    ["plain", "file-uri", "azure-checkpoint", "ddp-prefix", "safetensors"],
)
def test_pretrained_weights_load_all_but_the_head(
    layout: str,
    tmp_path: Path,
    resnet18_five_classes: dict[str, torch.Tensor],
    caplog: pytest.LogCaptureFixture,
    no_network: list[object],
) -> None:
    state = resnet18_five_classes
    path = tmp_path / ("w.safetensors" if layout == "safetensors" else "w.pth")
    if layout == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif layout == "azure-checkpoint":
        torch.save({"epoch": 3, "model_name": "resnet18", "model_state": state, "optimizer_state": {}}, path)
    elif layout == "ddp-prefix":
        torch.save({f"module.{k}": v for k, v in state.items()}, path)
    else:
        torch.save(state, path)
    location = path.as_uri() if layout == "file-uri" else str(path)

    with caplog.at_level(logging.INFO, logger="kubevision.trainer.models"):
        model = build_classifier("resnet18", 3, pretrained_weights=location)

    assert _same_backbone(model, state)
    assert not torch.equal(model.state_dict()["fc.weight"][:3], state["fc.weight"][:3].to(torch.float32))
    assert model.get_classifier().out_features == 3  # type: ignore[operator]
    summary = " ".join(r.getMessage() for r in caplog.records)
    assert f"loaded {len(state) - 2} of {len(state)} model tensors" in summary
    assert f"skipped 2 of its {len(state)}" in summary and "fc.weight" in summary
    assert "random initialisation" not in summary
    assert no_network == []


def test_load_intersecting_reports_each_tensor() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    source = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 5)).state_dict()
    source["extra.weight"] = torch.zeros(1)
    del source["0.bias"]

    report = load_intersecting(model, source)

    assert report.loaded == ("0.weight",)
    assert report.shape_mismatch == ("1.weight", "1.bias")
    assert report.unexpected == ("extra.weight",)
    assert report.missing == ("0.bias", "1.weight", "1.bias")
    assert report.skipped == 3
    assert torch.equal(model.state_dict()["0.weight"], source["0.weight"])
    assert report.summary("ckpt").startswith("loaded 1 of 4 model tensors from ckpt; skipped 3 of its 4")


def test_empty_intersection_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"features.0.0.weight": torch.zeros(32, 3, 3, 3)}, path)
    with pytest.raises(KubevisionError, match="another architecture") as err:
        build_classifier("resnet18", 3, pretrained_weights=str(path))
    assert "features.0.0.weight" in str(err.value) and "conv1.weight" in str(err.value)


@pytest.mark.parametrize(
    "location",
    ["https://example.com/resnet18.pth", "s3://bucket/resnet18.pth", "azureml://datastores/x/resnet18.pth"],
)
def test_remote_weights_must_be_downloaded_first(location: str, no_network: list[object]) -> None:
    with pytest.raises(KubevisionError, match="local file") as err:
        build_classifier("resnet18", 3, pretrained_weights=location)
    assert "download" in str(err.value)
    assert err.value.problems[0].field == "pretrainedWeights"
    assert no_network == []


def test_missing_and_unreadable_weights_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(KubevisionError, match="not found"):
        build_classifier("resnet18", 3, pretrained_weights=str(tmp_path / "nope.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(KubevisionError, match="Cannot read"):
        build_classifier("resnet18", 3, pretrained_weights=str(garbage))


def test_extract_state_dict_refuses_tensorless_files() -> None:
    with pytest.raises(KubevisionError, match="no tensors"):
        extract_state_dict({"epoch": 3, "model_name": "resnet18"})
    with pytest.raises(KubevisionError, match="no state dict"):
        extract_state_dict([1, 2, 3])


def test_vit_position_embeddings_are_resampled_to_the_crop(tmp_path: Path) -> None:
    dim = 384
    pos_embed = torch.randn(1, 1 + 14 * 14, dim)  # pretrained at 224: 14x14 patches
    patch = torch.randn(dim, 3, 16, 16)
    path = tmp_path / "vit.pth"
    torch.save(
        {"pos_embed": pos_embed, "cls_token": torch.randn(1, 1, dim), "patch_embed.proj.weight": patch}, path
    )

    model = build_classifier("vits16r224", 3, pretrained_weights=str(path), image_size=32)

    loaded = model.state_dict()
    assert loaded["pos_embed"].shape == (1, 1 + 2 * 2, dim)
    torch.testing.assert_close(loaded["pos_embed"][:, :1], pos_embed[:, :1])  # class-token slot kept
    assert torch.equal(loaded["patch_embed.proj.weight"], patch)
    model.eval()
    with torch.no_grad():
        assert model(BATCH).shape == (2, 3)
