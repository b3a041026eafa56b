"""`layersToFreeze`: Azure's layer lists (reference 3.2) translated to timm's module names.

Why a translation table: Azure counts layers of its own (torchvision / pretrainedmodels based)
networks, kubevision builds timm's. `layersToFreeze: N` must freeze the same part of the network
in both, so each Azure entry maps to the timm parameter-name prefixes that hold the same weights.
Freezing sets `requires_grad = False` and nothing else, as Azure does: batch-norm running
statistics of frozen layers keep updating in train mode. (The optimizer may be given all
parameters; torch optimizers skip parameters whose `.grad` stays None.)

The table, Azure entry -> timm prefixes (a prefix ending in "." names a module, one without names a
parameter):

- resnet (resnet18..152): ("conv1.", "bn1.") -> the same; "layer1." .. "layer4." -> the same
  (timm's ResNet keeps torchvision's names). 5 entries.
- seresnext: Azure's "layer0." (pretrainedmodels' stem: conv1, bn1, relu, pool) -> "conv1.", "bn1.";
  "layer1." .. "layer4." -> the same. 5 entries.
- resnest (not in Azure's list; it is a ResNet variant, so it gets the ResNet list): the deep stem
  "conv1." (a Sequential of three convolutions) and "bn1."; "layer1." .. "layer4.". 5 entries.
- mobilenetv2: Azure's "features.0." .. "features.18." (torchvision) -> timm, one to one:
  features.0 = "conv_stem." + "bn1."; features.1 .. 17 = the 17 inverted-residual blocks in order,
  "blocks.0.0.", "blocks.1.0.", "blocks.1.1.", "blocks.2.0." .. "blocks.2.2.", "blocks.3.0." ..
  "blocks.3.3.", "blocks.4.0." .. "blocks.4.2.", "blocks.5.0." .. "blocks.5.2.", "blocks.6.0.";
  features.18 (the last 1x1 convolution) = "conv_head." + "bn2.". 19 entries, each holding exactly
  the parameters of its torchvision counterpart (the tests compare the counts).
- vit: Azure's "patch_embed" -> "patch_embed." plus the "cls_token" and "pos_embed" parameters
  (they belong to the input embedding; freezing the patch projection while the position embedding
  trains would be a half-frozen embedding); "blocks.0." .. "blocks.{depth-1}.". vits16r224 and
  vitb16r224 have 12 blocks (13 entries, Azure's list); vitl16r224 has 24 (25 entries).
"""

from __future__ import annotations

from torch import nn

from kubevision.api.errors import KubevisionError, Problem
from kubevision.trainer.models import model_spec

__all__ = ["freeze_layers", "layer_groups"]

LayerGroup = tuple[str, ...]

_RESNET_LIKE: tuple[LayerGroup, ...] = (
    ("conv1.", "bn1."),
    ("layer1.",),
    ("layer2.",),
    ("layer3.",),
    ("layer4.",),
)

# Blocks per timm stage of mobilenetv2_100 (torchvision's inverted-residual settings n = 1,2,3,4,3,3,1).
_MOBILENETV2_STAGE_DEPTHS = (1, 2, 3, 4, 3, 3, 1)
_MOBILENETV2: tuple[LayerGroup, ...] = (
    ("conv_stem.", "bn1."),
    *(
        (f"blocks.{stage}.{block}.",)
        for stage, depth in enumerate(_MOBILENETV2_STAGE_DEPTHS)
        for block in range(depth)
    ),
    ("conv_head.", "bn2."),
)

_VIT_DEPTH = {"vits16r224": 12, "vitb16r224": 12, "vitl16r224": 24}


def _vit(depth: int) -> tuple[LayerGroup, ...]:
    return (("patch_embed.", "cls_token", "pos_embed"), *((f"blocks.{i}.",) for i in range(depth)))


def layer_groups(model_name: str) -> tuple[LayerGroup, ...]:
    """The freezable layers of a model, input first; `layersToFreeze: N` freezes the first N.

    Needs no model instance, so validation can check N against `len(layer_groups(name))`.
    """
    spec = model_spec(model_name)
    if spec.family == "vit":
        return _vit(_VIT_DEPTH[spec.name])
    if spec.family == "mobilenetv2":
        return _MOBILENETV2
    return _RESNET_LIKE


def _matches(name: str, prefix: str) -> bool:
    if prefix.endswith("."):
        return name.startswith(prefix)
    return name == prefix or name.startswith(prefix + ".")


def freeze_layers(model: nn.Module, model_name: str, n: int) -> list[str]:
    """Stop gradients for the first `n` layer groups of `model`; return the frozen prefixes.

    `n` larger than the number of groups is the user's to fix (`KubevisionError` with the maximum).
    A prefix that matches no parameter means timm renamed a module: that is our bug (RuntimeError),
    never silently "frozen nothing".
    """
    groups = layer_groups(model_name)
    if not 0 <= n <= len(groups):
        raise KubevisionError(
            f"layersToFreeze is {n}, but {model_name} has {len(groups)} freezable layers",
            [Problem(f"use a value from 0 to {len(groups)}", field="layersToFreeze")],
        )
    prefixes = [prefix for group in groups[:n] for prefix in group]
    params = list(model.named_parameters())
    for prefix in prefixes:
        matched = [p for name, p in params if _matches(name, prefix)]
        if not matched:
            raise RuntimeError(f"layer prefix {prefix!r} of {model_name} matches no parameter of the model")
        for param in matched:
            param.requires_grad_(False)
    return prefixes
