"""layersToFreeze: the Azure -> timm layer table, checked against the real modules."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from kubevision.api.errors import KubevisionError
from kubevision.api.tasks import CLASSIFICATION_MODELS
from kubevision.trainer.freezing import freeze_layers, layer_groups
from kubevision.trainer.models import build_classifier


def meta_model(name: str) -> nn.Module:
    with torch.device("meta"):
        return build_classifier(name, 3)


def _matches(name: str, prefix: str) -> bool:
    return (
        name.startswith(prefix) if prefix.endswith(".") else name == prefix or name.startswith(prefix + ".")
    )


def group_sizes(model: nn.Module, name: str) -> list[int]:
    params = list(model.named_parameters())
    return [
        sum(p.numel() for n, p in params if any(_matches(n, prefix) for prefix in group))
        for group in layer_groups(name)
    ]


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("resnet18", 5),
        ("resnet152", 5),
        ("seresnext", 5),
        ("resnest101", 5),
        ("mobilenetv2", 19),
        ("vits16r224", 13),
        ("vitb16r224", 13),
        ("vitl16r224", 25),
    ],
)
def test_number_of_freezable_layers(name: str, count: int) -> None:
    assert len(layer_groups(name)) == count


@pytest.mark.parametrize("name", CLASSIFICATION_MODELS)
def test_every_group_matches_parameters_and_groups_are_disjoint(name: str) -> None:
    model = meta_model(name)
    assert all(size > 0 for size in group_sizes(model, name))
    owners: dict[str, int] = {}
    for index, group in enumerate(layer_groups(name)):
        for param_name, _ in model.named_parameters():
            if any(_matches(param_name, prefix) for prefix in group):
                assert param_name not in owners, f"{param_name} in groups {owners[param_name]} and {index}"
                owners[param_name] = index
    # Everything but the head and the final norm belongs to some group.
    rest = {n for n, _ in model.named_parameters() if n not in owners}
    head = {
        "fc.weight",
        "fc.bias",
        "classifier.weight",
        "classifier.bias",
        "head.weight",
        "head.bias",
        "norm.weight",
        "norm.bias",
    }
    assert rest <= head, rest - head


def test_mobilenetv2_groups_are_torchvisions_features_one_to_one() -> None:
    with torch.device("meta"):
        reference = torchvision.models.mobilenet_v2(num_classes=3)
    expected = [sum(p.numel() for p in layer.parameters()) for layer in reference.features]
    assert group_sizes(meta_model("mobilenetv2"), "mobilenetv2") == expected


def test_resnet_groups_are_torchvisions_layers() -> None:
    with torch.device("meta"):
        reference = torchvision.models.resnet50(num_classes=3)
    stem = sum(p.numel() for m in (reference.conv1, reference.bn1) for p in m.parameters())
    layers = [sum(p.numel() for p in getattr(reference, f"layer{i}").parameters()) for i in range(1, 5)]
    assert group_sizes(meta_model("resnet50"), "resnet50") == [stem, *layers]


def test_vit_depth_matches_the_built_model() -> None:
    for name in ("vits16r224", "vitb16r224", "vitl16r224"):
        assert len(layer_groups(name)) == 1 + len(meta_model(name).blocks)  # type: ignore[arg-type]


def test_freezing_two_resnet_layers_stops_exactly_their_gradients() -> None:
    torch.manual_seed(0)
    model = build_classifier("resnet18", 3)

    frozen = freeze_layers(model, "resnet18", 2)

    assert frozen == ["conv1.", "bn1.", "layer1."]
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    for name, param in model.named_parameters():
        is_frozen = name.startswith(("conv1.", "bn1.", "layer1."))
        assert param.requires_grad is not is_frozen, name
        assert (param.grad is None) is is_frozen, name


def test_vit_first_layer_is_the_whole_input_embedding() -> None:
    model = meta_model("vits16r224")
    assert freeze_layers(model, "vits16r224", 2) == ["patch_embed.", "cls_token", "pos_embed", "blocks.0."]
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert {"cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight"} <= frozen
    assert not any(n.startswith(("blocks.1.", "blocks.10.", "blocks.11.")) for n in frozen)


def test_zero_freezes_nothing() -> None:
    model = meta_model("mobilenetv2")
    assert freeze_layers(model, "mobilenetv2", 0) == []
    assert all(p.requires_grad for p in model.parameters())


def test_freezing_every_layer_is_allowed() -> None:
    model = meta_model("mobilenetv2")
    freeze_layers(model, "mobilenetv2", 19)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"classifier.weight", "classifier.bias"}


@pytest.mark.parametrize("n", [6, -1])
def test_out_of_range_is_a_user_error_naming_the_maximum(n: int) -> None:
    with pytest.raises(KubevisionError) as err:
        freeze_layers(meta_model("seresnext"), "seresnext", n)
    assert "has 5 freezable layers" in str(err.value)
    assert "0 to 5" in str(err.value)
    assert err.value.problems[0].field == "layersToFreeze"


def test_a_renamed_module_is_our_bug_not_a_silent_no_op() -> None:
    model = nn.Sequential(nn.Linear(2, 2))  # has none of resnet's modules
    with pytest.raises(RuntimeError, match="conv1"):
        freeze_layers(model, "resnet18", 1)
