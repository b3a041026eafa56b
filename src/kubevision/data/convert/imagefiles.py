"""Finding and probing the image files that labels refer to.

Why every converter opens every image header: `image_details` (format, width, height) must be true,
boxes are normalized by the size, and a JSONL whose lines point at missing or unreadable files is the
most common way a training job fails late. Pillow reads only the header here, so this is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

__all__ = ["IMAGE_EXTENSIONS", "ImageInfo", "find_image", "is_image_file", "probe_image"]

# The formats Azure AutoML for images accepts in image_details.format (reference 2.1).
IMAGE_EXTENSIONS: tuple[str, ...] = ("jpg", "jpeg", "png", "jpe", "jfif", "bmp", "tif", "tiff")


@dataclass(frozen=True)
class ImageInfo:
    """What `image_details` says about an image file."""

    path: Path
    width: int
    height: int
    format: str  # the lower-case file extension without the dot, as Azure's converters write it


def is_image_file(path: Path) -> bool:
    """True for a visible file with one of the accepted image extensions."""
    return path.is_file() and not path.name.startswith(".") and \
        path.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS


def probe_image(path: Path) -> ImageInfo | str:
    """Read size and format from the header; a string says why the file cannot be used."""
    if not path.is_file():
        return "image file not found"
    try:
        with Image.open(path) as image:
            width, height = image.size
            pil_format = (image.format or "").lower()
    except (UnidentifiedImageError, OSError) as err:
        return f"not an image Pillow can read ({err})"
    ext = path.suffix.lower().lstrip(".")
    fmt = ext if ext in IMAGE_EXTENSIONS else {"jpeg": "jpg"}.get(pil_format, pil_format)
    if width <= 0 or height <= 0:
        return f"image has no pixels ({width}x{height})"
    return ImageInfo(path=path, width=width, height=height, format=fmt)


def find_image(folder: Path, name: str, *, stem: str | None = None) -> Path | None:
    """The image `name` in `folder`, else a file with the same stem and an image extension.

    Annotation files do not always name the image exactly: VOC `<filename>` sometimes lacks the
    extension or has a different case of it, so the stem of `name` (then `stem`, the annotation
    file's own stem) is tried with every accepted extension, lower and upper case.
    """
    exact = folder / name
    if exact.is_file():
        return exact
    stems = [Path(name).stem if Path(name).suffix.lower().lstrip(".") in IMAGE_EXTENSIONS else name]
    if stem and stem not in stems:
        stems.append(stem)
    for candidate_stem in stems:
        for ext in IMAGE_EXTENSIONS:
            for variant in (ext, ext.upper()):
                candidate = folder / f"{candidate_stem}.{variant}"
                if candidate.is_file():
                    return candidate
    return None
