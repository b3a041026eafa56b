"""The MLflow `python_function` loader of kubevision classification models, and the one scorer.

Why a loader module and not a pickled `PythonModel`: Azure's models carry `python_model.pkl`, a pickle
of a Python object that breaks when a class moves or a library changes version, and that executes
code when loaded. A kubevision model holds only data (`artifacts/model.pt` with tensors and
primitives, `settings.json`, `labels.json`) and its MLmodel names `loader_module:
kubevision.trainer.pyfunc`; MLflow then calls `_load_pyfunc(<model>/artifacts)` here. Any process with
kubevision installed can load it with `mlflow.pyfunc.load_model(dir)`; this module itself never
imports mlflow.

Why one scorer: the pyfunc (online requests), `kubevision predict` (batch files, `predict.py`) and the
serving layer must give identical numbers for an image, and the eval preset they use must be the one
the model was validated with. `ImageClassifierPyfunc` owns loading, preprocessing (the preset rebuilt
from settings.json, which users may edit, reference 9.3) and the batched forward pass; the others
only feed it images.

Response (reference 9.4): per image `probs` over all classes in class-id order (softmax for
multi-class, independent sigmoids for multi-label) and `labels`, all class names in the same order.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from kubevision.api.errors import KubevisionError, Problem
from kubevision.trainer.models import build_classifier, extract_state_dict, model_spec
from kubevision.trainer.presets import ClassificationPresetEval

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "LOADER_MODULE",
    "MODEL_FILE",
    "SETTINGS_FILE",
    "ImageClassifierPyfunc",
    "Scored",
    "decode_image_bytes",
    "load_checkpoint",
]

LOADER_MODULE = "kubevision.trainer.pyfunc"
"""What an MLmodel names as `loader_module` (this module): how a kubevision model is recognised."""
MODEL_FILE = "model.pt"
SETTINGS_FILE = "settings.json"
DEFAULT_BATCH_SIZE = 16
IMAGE_COLUMN = "image"

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scored:
    """The response for one image (reference 9.4), `as_dict()` is its JSON form."""

    probs: list[float]
    labels: list[str]

    def as_dict(self) -> dict[str, list[float] | list[str]]:
        return {"probs": self.probs, "labels": self.labels}


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a kubevision `model.pt` (reference 9.2) with `weights_only=True`: no code runs on load."""
    if not path.is_file():
        raise KubevisionError(f"model file not found: {path}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated file, a pickle with code in it, another format
        raise KubevisionError(
            f"cannot read model checkpoint {path}",
            [Problem(f"expected a kubevision/Azure AutoML model.pt (tensors and plain values only): {err}")],
        ) from err
    if not isinstance(raw, dict):
        raise KubevisionError(f"{path} is not a model checkpoint", [Problem(f"found a {type(raw).__name__}")])
    missing = [key for key in ("model_name", "number_of_classes", "specs", "model_state") if key not in raw]
    if missing or not isinstance(raw.get("specs"), dict):
        raise KubevisionError(
            f"{path} is not a kubevision model checkpoint",
            [Problem(f"missing keys: {', '.join(missing) or 'specs (must be a mapping)'}")],
        )
    return raw


class ImageClassifierPyfunc:
    """A classification model ready to score PIL images, base64 strings or MLflow DataFrames.

    `predict` is MLflow's pyfunc contract; `score_images` / `score_tensors` are what the batch
    predictor and the serving layer call. Construct it with `from_artifacts`.
    """

    def __init__(
        self,
        model: nn.Module,
        classes: Sequence[str],
        preset: ClassificationPresetEval,
        *,
        multilabel: bool,
        device: torch.device | str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.device = torch.device(device) if device is not None else _default_device()
        self.model = model.to(self.device).eval()
        self.classes = [str(name) for name in classes]
        self.preset = preset
        self.multilabel = multilabel
        self.batch_size = batch_size

    @classmethod
    def from_artifacts(
        cls,
        artifacts_dir: Path,
        *,
        device: torch.device | str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> ImageClassifierPyfunc:
        """Load `artifacts_dir/model.pt` and `artifacts_dir/settings.json` (the MLflow model's `data`)."""
        artifacts_dir = Path(artifacts_dir)
        checkpoint = load_checkpoint(artifacts_dir / MODEL_FILE)
        specs: Mapping[str, Any] = checkpoint["specs"]
        model_specs: Mapping[str, Any] = specs.get("model_specs") or {}
        model_name = str(checkpoint["model_name"])
        num_classes = int(checkpoint["number_of_classes"])
        classes = [str(name) for name in specs.get("classes") or []]
        if len(classes) != num_classes:
            raise KubevisionError(
                f"{artifacts_dir / MODEL_FILE} is inconsistent",
                [Problem(f"number_of_classes is {num_classes} but specs.classes names {len(classes)}")],
            )
        settings = _read_settings(artifacts_dir / SETTINGS_FILE, fallback=specs.get("model_settings"))
        preset = _eval_preset(settings, artifacts_dir / SETTINGS_FILE)
        image_size = model_specs.get("image_size")
        if model_spec(model_name).fixed_input_size and image_size is not None and preset.crop_size != image_size:
            raise KubevisionError(
                f"{model_name} was trained on {image_size}-pixel crops and cannot score {preset.crop_size}-pixel ones",
                [Problem(f"set valid_crop_size to {image_size}", file=str(artifacts_dir / SETTINGS_FILE))],
            )
        model = build_classifier(model_name, num_classes, image_size=int(image_size) if image_size else None)
        state = extract_state_dict(checkpoint, source=str(artifacts_dir / MODEL_FILE))
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise KubevisionError(
                f"the weights in {artifacts_dir / MODEL_FILE} do not fit a {model_name} with {num_classes} classes",
                [Problem(str(err).splitlines()[0])],
            ) from err
        multilabel = bool(model_specs.get("multilabel", False))
        return cls(model, classes, preset, multilabel=multilabel, device=device, batch_size=batch_size)

    # -- scoring -------------------------------------------------------------------------------------

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The eval preset: resize, centre crop, ImageNet normalisation -> (3, crop, crop)."""
        return self.preset(image)

    def score_tensors(self, batch: torch.Tensor) -> list[Scored]:
        """Probabilities for a preprocessed batch (N, 3, crop, crop), one `Scored` per row."""
        results: list[Scored] = []
        with torch.inference_mode():
            for start in range(0, batch.shape[0], self.batch_size):
                chunk = batch[start : start + self.batch_size].to(self.device, non_blocking=True)
                logits = self.model(chunk).float()
                probs = torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)
                for row in probs.cpu().tolist():
                    results.append(Scored(probs=[float(p) for p in row], labels=list(self.classes)))
        return results

    def score_images(self, images: Sequence[Image.Image]) -> list[Scored]:
        """Probabilities for decoded images, preprocessed and forwarded `batch_size` at a time."""
        results: list[Scored] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            results += self.score_tensors(torch.stack([self.preprocess(image) for image in chunk]))
        return results

    # -- MLflow pyfunc -------------------------------------------------------------------------------

    def predict(self, model_input: Any, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """MLflow's entry point: one row per input image with columns `probs` and `labels`.

        `model_input` is a DataFrame with an `image` column (what MLflow hands over after checking
        the signature), a list of items, or a dict `{"image": item or [items]}`. An item is a base64
        string of the image file (newlines allowed), the raw file bytes, or a JSON string / dict with
        `image_base64` (Azure's explainability request; its XAI keys are served by `kubevision
        serve` and ignored here). `params` is accepted for MLflow and unused.
        """
        import pandas as pd

        items = _input_items(model_input)
        images: list[Image.Image] = []
        problems: list[Problem] = []
        for index, item in enumerate(items):
            try:
                images.append(decode_image_bytes(_item_bytes(item)))
            except _BadItem as err:
                problems.append(Problem(str(err), field=f"{IMAGE_COLUMN}[{index}]"))
        if problems:
            raise KubevisionError(f"cannot score {len(problems)} of {len(items)} input images", problems)
        scored = self.score_images(images)
        return pd.DataFrame({"probs": [s.probs for s in scored], "labels": [s.labels for s in scored]})


def _load_pyfunc(data_path: str, model_config: Mapping[str, Any] | None = None) -> ImageClassifierPyfunc:
    """MLflow's loader-module hook: `data_path` is `<mlflow-model>/artifacts` (the MLmodel's `data`).

    `model_config` (from `mlflow.pyfunc.load_model(..., model_config=...)`) may set `device`
    ("cpu", "cuda", "cuda:1") and `batch_size`.
    """
    config = dict(model_config or {})
    unknown = sorted(set(config) - {"device", "batch_size"})
    if unknown:
        raise KubevisionError(
            "unknown model_config keys", [Problem(f"{', '.join(unknown)}; allowed: device, batch_size")]
        )
    device = config.get("device")
    batch_size = int(config.get("batch_size", DEFAULT_BATCH_SIZE))
    return ImageClassifierPyfunc.from_artifacts(Path(data_path), device=device, batch_size=batch_size)


# -- decoding --------------------------------------------------------------------------------------


class _BadItem(ValueError):
    """One input item that is not an image; the message says why."""


def decode_image_bytes(data: bytes) -> Image.Image:
    """Decode an image file's bytes fully (a truncated file fails here, not in the model).

    Raises `ValueError` saying why the bytes are not a usable image.
    """
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except UnidentifiedImageError:
        raise _BadItem("not an image Pillow can read") from None
    except Image.DecompressionBombError as err:
        raise _BadItem(f"image too large to decode safely ({err})") from None
    except Exception as err:  # Pillow raises many types for corrupt data
        raise _BadItem(f"image cannot be decoded ({str(err) or type(err).__name__})") from None
    if image.width <= 0 or image.height <= 0:
        raise _BadItem(f"image has no pixels ({image.width}x{image.height})")
    return image


def _input_items(model_input: Any) -> list[Any]:
    """The per-image items of every input shape MLflow and clients use."""
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        if IMAGE_COLUMN in model_input.columns:
            return list(model_input[IMAGE_COLUMN])
        raise KubevisionError(
            f"the input has no {IMAGE_COLUMN!r} column",
            [Problem(f"columns found: {', '.join(map(str, model_input.columns)) or 'none'}; send one column 'image'")],
        )
    if isinstance(model_input, pd.Series):
        return list(model_input)
    if isinstance(model_input, Mapping):
        if IMAGE_COLUMN in model_input:
            value = model_input[IMAGE_COLUMN]
            return list(value) if isinstance(value, list | tuple) else [value]
        if "image_base64" in model_input:
            return [model_input]
        raise KubevisionError(
            f"the input has no {IMAGE_COLUMN!r} key", [Problem(f"keys found: {', '.join(map(str, model_input))}")]
        )
    if isinstance(model_input, str | bytes | bytearray):
        return [model_input]
    if isinstance(model_input, Sequence) or hasattr(model_input, "tolist"):
        items = model_input.tolist() if hasattr(model_input, "tolist") else list(model_input)
        # MLflow's "split" orientation sends rows: [["b64"], ["b64"]].
        return [item[0] if isinstance(item, list | tuple) and len(item) == 1 else item for item in items]
    raise KubevisionError(
        "unsupported model input",
        [Problem(f"got {type(model_input).__name__}; send a DataFrame with an 'image' column or a list of base64")],
    )


def _item_bytes(item: Any) -> bytes:
    """The image file bytes of one item (base64 string, raw bytes, or an `image_base64` request)."""
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item)
    if isinstance(item, Mapping):
        return _request_bytes(item)
    if isinstance(item, str):
        text = item.strip()
        if text.startswith("{"):
            try:
                request = json.loads(text)
            except json.JSONDecodeError as err:
                raise _BadItem(f"starts with '{{' but is not valid JSON ({err.msg} at char {err.pos})") from None
            if not isinstance(request, Mapping):
                raise _BadItem("JSON item must be an object with 'image_base64'")
            return _request_bytes(request)
        return _b64decode(text)
    if item is None or (isinstance(item, float) and math.isnan(item)):
        raise _BadItem("no image (empty value)")
    raise _BadItem(f"expected a base64 string or image bytes, got {type(item).__name__}")


def _request_bytes(request: Mapping[str, Any]) -> bytes:
    value = request.get("image_base64", request.get(IMAGE_COLUMN))
    if not isinstance(value, str):
        raise _BadItem("JSON item has no 'image_base64' string")
    if request.get("model_explainability"):
        _logger.debug("model_explainability is served by `kubevision serve`; scoring without explanations")
    return _b64decode(value.strip())


def _b64decode(text: str) -> bytes:
    """Standard or URL-safe base64; whitespace (base64.encodebytes' newlines) and missing padding allowed."""
    compact = "".join(text.split())
    if not compact:
        raise _BadItem("empty string, expected a base64-encoded image")
    compact += "=" * (-len(compact) % 4)
    altchars = b"-_" if ("-" in compact or "_" in compact) else None
    try:
        return base64.b64decode(compact, altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as err:
        raise _BadItem(f"not valid base64 ({err})") from None


# -- settings --------------------------------------------------------------------------------------


def _read_settings(path: Path, *, fallback: object) -> dict[str, Any]:
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise KubevisionError(f"{path} is not valid JSON", [Problem(str(err), file=str(path))]) from err
        if not isinstance(loaded, dict):
            raise KubevisionError(f"{path} must hold a JSON object", [Problem('e.g. {"valid_crop_size": 224}')])
        return loaded
    if isinstance(fallback, Mapping):
        return dict(fallback)
    raise KubevisionError(f"inference settings not found: {path}")


def _eval_preset(settings: Mapping[str, Any], path: Path) -> ClassificationPresetEval:
    sizes: dict[str, int] = {}
    problems = []
    for key in ("valid_resize_size", "valid_crop_size"):
        value = settings.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(Problem(f"must be a whole number of pixels, got {value!r}", file=str(path), field=key))
        else:
            sizes[key] = value
    if problems:
        raise KubevisionError("invalid inference settings", problems)
    return ClassificationPresetEval.from_settings(sizes)


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
