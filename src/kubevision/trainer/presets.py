"""Classification image transforms (reference 4.7) and the settings.json that records their sizes.

Why callable classes (the torchvision references' shape): the trial builds one train and one eval
preset from the resolved sizes, the dataset calls them per image, and serving rebuilds the same eval
preset from settings.json (reference 9.3), so a model is always scored the way it was validated.
`settings_json` is the only place that turns hyperparameters into those sizes; the presets' `from_settings`
read them back.

Normalisation is ImageNet's mean/std for every model, ViTs included (timm's ViT weights use 0.5/0.5):
Azure does this (reference 4.2) and its ONNX contract (`enable_onnx_normalization`, reference 9.8)
bakes exactly these constants in, so clients of an exported model must not need to know the model.

Azure ignores validation/training sizes other than 256/224/224 for `seresnext` (reference 3.1): its
SE-ResNeXt had a fixed 7x7 average pool. timm's pools globally, so kubevision honours the sizes for
every model. The ViT rule (validation crop == training crop) is validated in kubevision.api.

Departure from Azure for multi-label (`label_preserving`): Azure trains both classification tasks
with a random resized crop, which keeps as little as 8% of the image. For one label per image that
is a strong, well-tested regulariser; for several labels per image it silently removes labelled
objects from the crop while the loss still demands them. Measured on 2x2 digit mosaics (resnet18
from scratch, 16 px, 1,200 images, AdamW 2e-3): iou stayed below 0.2 for 6 epochs with Azure's crop
(0.08-1), reached 0.49 after 9 epochs with a milder 0.8-1 crop, and 0.50 after 5 epochs with no
crop at all. Multi-label training therefore resizes the shorter side to the crop size and takes a
random square window along the longer side (the whole image when it is square): every object stays
in view, flips and colour jitter remain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from PIL import Image
from torchvision.transforms import v2

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.tasks import Task, is_classification

__all__ = [
    "COLOR_JITTER",
    "DEFAULT_TRAIN_CROP_SIZE",
    "DEFAULT_VALID_CROP_SIZE",
    "DEFAULT_VALID_RESIZE_SIZE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ClassificationPresetEval",
    "ClassificationPresetTrain",
    "settings_json",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

DEFAULT_TRAIN_CROP_SIZE = 224
DEFAULT_VALID_RESIZE_SIZE = 256
DEFAULT_VALID_CROP_SIZE = 224

COLOR_JITTER: Mapping[str, float] = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.05}
"""Azure names the four jitters but not their strengths. 0.4 for brightness, contrast and saturation
is timm's `--color-jitter 0.4`, the ImageNet recipe these backbones were pretrained with, so
fine-tuning sees photometric changes the features already tolerate. Hue stays at +-0.05 (+-18 degrees):
colour is often the class itself (ripe vs unripe, a red vs a green part), and timm leaves hue at 0."""

# Hyperparameter name (camelCase, as in trainingParameters) -> settings.json key (Azure runtime name).
_SIZE_PARAMS: tuple[tuple[str, str, int], ...] = (
    ("validationResizeSize", "valid_resize_size", DEFAULT_VALID_RESIZE_SIZE),
    ("validationCropSize", "valid_crop_size", DEFAULT_VALID_CROP_SIZE),
    ("trainingCropSize", "train_crop_size", DEFAULT_TRAIN_CROP_SIZE),
)


def settings_json(task: Task | str, resolved_params: Mapping[str, object]) -> dict[str, int]:
    """The settings.json of a classification model: `valid_resize_size`, `valid_crop_size`,
    `train_crop_size` (reference 9.1/9.3).

    `resolved_params` are the trial's hyperparameters under their API names (camelCase:
    `validationResizeSize`, `validationCropSize`, `trainingCropSize`); absent ones take Azure's
    defaults 256/224/224, other keys are ignored.
    """
    if not is_classification(task):
        raise ValueError(f"settings_json covers classification tasks, not {task}")
    settings: dict[str, int] = {}
    for param, key, default in _SIZE_PARAMS:
        value = resolved_params.get(param, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{param} must be an int after resolution, got {value!r}")
        settings[key] = value
    _check_sizes(
        train_crop_size=settings["train_crop_size"],
        resize_size=settings["valid_resize_size"],
        crop_size=settings["valid_crop_size"],
    )
    return settings


def _check_sizes(
    *, train_crop_size: int | None = None, resize_size: int | None = None, crop_size: int | None = None
) -> None:
    problems = []
    named = (
        ("trainingCropSize", train_crop_size),
        ("validationResizeSize", resize_size),
        ("validationCropSize", crop_size),
    )
    for field, value in named:
        if value is not None and value < 1:
            problems.append(Problem(f"must be a positive number of pixels, got {value}", field=field))
    if resize_size is not None and crop_size is not None and 0 < resize_size < crop_size:
        problems.append(
            Problem(
                f"validation images are resized to {resize_size} pixels (shorter side), smaller than "
                f"the {crop_size}-pixel centre crop, which would pad them with black borders; "
                f"use validationResizeSize >= validationCropSize",
                field="validationResizeSize",
            )
        )
    if problems:
        raise KubevisionError("Invalid classification image sizes", problems)


def _to_rgb(image: Image.Image) -> Image.Image:
    # Grayscale, palette, RGBA and CMYK images all occur in real datasets; the models take 3 channels.
    return image if image.mode == "RGB" else image.convert("RGB")


class ClassificationPresetTrain:
    """Random resized crop to `crop_size` (label-preserving crop for multi-label), horizontal flip,
    colour jitter, ImageNet normalisation.

    Call it on a PIL image; it returns a float32 tensor of shape (3, crop_size, crop_size).
    """

    def __init__(
        self,
        crop_size: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        *,
        hflip_prob: float = 0.5,
        brightness: float = COLOR_JITTER["brightness"],
        contrast: float = COLOR_JITTER["contrast"],
        saturation: float = COLOR_JITTER["saturation"],
        hue: float = COLOR_JITTER["hue"],
        label_preserving: bool = False,
    ) -> None:
        _check_sizes(train_crop_size=crop_size)
        self.crop_size = crop_size
        self.label_preserving = label_preserving
        steps: list[v2.Transform] = (
            [v2.Resize(crop_size, antialias=True), v2.RandomCrop(crop_size)] if label_preserving
            else [v2.RandomResizedCrop(crop_size, antialias=True)]
        )
        if hflip_prob > 0:
            steps.append(v2.RandomHorizontalFlip(hflip_prob))
        if brightness or contrast or saturation or hue:
            steps.append(
                v2.ColorJitter(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue)
            )
        steps += _to_normalized_tensor(mean, std)
        self.transforms = v2.Compose(steps)

    @classmethod
    def from_settings(cls, settings: Mapping[str, int], *, multilabel: bool = False) -> ClassificationPresetTrain:
        """The train preset for the sizes of `settings_json(...)` (label-preserving for multi-label)."""
        return cls(settings["train_crop_size"], label_preserving=multilabel)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        out: torch.Tensor = self.transforms(_to_rgb(image))
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transforms})"


class ClassificationPresetEval:
    """Resize the shorter side to `resize_size`, centre crop `crop_size`, ImageNet normalisation.

    Deterministic: validation, test-time scoring and serving all use it.
    """

    def __init__(
        self,
        resize_size: int,
        crop_size: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        _check_sizes(resize_size=resize_size, crop_size=crop_size)
        self.resize_size = resize_size
        self.crop_size = crop_size
        self.transforms = v2.Compose(
            [
                v2.Resize(resize_size, antialias=True),
                v2.CenterCrop(crop_size),
                *_to_normalized_tensor(mean, std),
            ]
        )

    @classmethod
    def from_settings(cls, settings: Mapping[str, int]) -> ClassificationPresetEval:
        """The eval preset a model's settings.json asks for (also after a user edited it)."""
        return cls(settings["valid_resize_size"], settings["valid_crop_size"])

    def __call__(self, image: Image.Image) -> torch.Tensor:
        out: torch.Tensor = self.transforms(_to_rgb(image))
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transforms})"


def _to_normalized_tensor(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    # ToPureTensor: plain tensors collate, trace and export without tv_tensors subclasses.
    return [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
        v2.ToPureTensor(),
    ]
