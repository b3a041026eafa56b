"""Writing converted labels as Azure-schema JSONL, atomically, with portable image URLs.

Why relative URLs by default: a JSONL that names images relative to its own folder keeps working when
the folder is copied, mounted in a pod or zipped; absolute paths break on the next machine. With
`--base-url` the URL is that prefix plus the image's path under the images root, which is how Azure's
converters point at a registered `uri_folder` asset. Why atomic: a conversion that fails half way
must not leave a half-written file that a later job would read as a smaller dataset.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubevision.api.errors import KubevisionError, Problem
from kubevision.data.atomic import atomic_write_text
from kubevision.data.convert.imagefiles import ImageInfo

__all__ = ["ImageRecord", "Label", "atomic_write_text", "image_url", "record_json", "write_jsonl"]

# A multi-class label, a multi-label list, or a list of box / polygon objects.
Label = str | list[str] | list[dict[str, Any]]


@dataclass(frozen=True)
class ImageRecord:
    """One JSONL line before its URL is decided: the image on disk and its label."""

    image: ImageInfo
    label: Label


def image_url(image: Path, *, out: Path, images_root: Path, base_url: str | None) -> str:
    """The `image_url` of `image`: relative to `out`'s folder, or `base_url` + path under `images_root`."""
    if base_url:
        try:
            rel = image.absolute().relative_to(images_root.absolute())
        except ValueError:
            raise KubevisionError(
                "cannot build an image URL from --base-url",
                [Problem(f"image {image} is not inside the images folder {images_root}")],
            ) from None
        return f"{base_url.rstrip('/')}/{rel.as_posix()}"
    try:
        return Path(os.path.relpath(image.absolute(), out.absolute().parent)).as_posix()
    except ValueError:  # different drives on Windows: no relative path exists
        return image.absolute().as_posix()


def record_json(record: ImageRecord, url: str) -> str:
    """One compact JSON line in the Azure schema (reference 2.1)."""
    obj = {
        "image_url": url,
        "image_details": {
            "format": record.image.format,
            "width": record.image.width,
            "height": record.image.height,
        },
        "label": record.label,
    }
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def write_jsonl(records: Iterable[ImageRecord], out: Path, *, images_root: Path, base_url: str | None) -> int:
    """Write one line per record to `out` atomically; returns the number of lines."""
    lines = [
        record_json(r, image_url(r.image.path, out=out, images_root=images_root, base_url=base_url))
        for r in records
    ]
    atomic_write_text(out, "".join(line + "\n" for line in lines))
    return len(lines)
