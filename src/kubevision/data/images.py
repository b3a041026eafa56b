"""Turn an `image_url` into a local file, and prove that the file is an image.

Why one place for this: Azure's JSONL points at images through datastore URIs, and its users lose
hours to images that fail to download or decode deep inside a training run (reference 11). kubevision
accepts the locations a user actually has — paths relative to the JSONL file, absolute paths,
`file://`, `http(s)://`, and object stores through fsspec — resolves them the same way for
`data check`, the trainer and the converters, and says exactly what to do for the ones it cannot read
(`azureml://`, an object store whose fsspec backend is not installed).

Remote images are downloaded once into a cache keyed by a hash of the URL (`$KUBEVISION_CACHE/images`,
default `~/.cache/kubevision/images`). Downloads land in a temporary file that is renamed into place,
so concurrent trials on one node never read a half-written image.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image, UnidentifiedImageError

from kubevision.api.errors import KubevisionError
from kubevision.data.atomic import write_atomically
from kubevision.data.records import ImageRecord

__all__ = [
    "AZUREML_HINT",
    "FSSPEC_PACKAGES",
    "SUPPORTED_SCHEMES",
    "ImageInfo",
    "cache_dir",
    "file_url_path",
    "inspect_image",
    "is_remote",
    "resolve_image",
    "url_scheme",
]

FSSPEC_PACKAGES: dict[str, str] = {
    "s3": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
}
"""Object-store schemes read through fsspec, and the package that implements each."""

SUPPORTED_SCHEMES: tuple[str, ...] = ("file", "http", "https", *FSSPEC_PACKAGES)

AZUREML_HINT = (
    "kubevision cannot read Azure ML datastore URIs (azureml://). Download the data asset "
    "(e.g. `az ml data download --name <asset> --version <version> --download-path ./data`) and "
    "rewrite image_url relative to the JSONL file (e.g. `images/1.jpg`), or point it at an "
    "http(s)://, s3://, gs:// or az:// copy"
)

DOWNLOAD_TIMEOUT_S = 60.0


def url_scheme(url: str) -> str:
    """The lower-case scheme of `url`, or "" for a plain path (a Windows drive letter is a path)."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    return "" if len(scheme) <= 1 else scheme


def is_remote(url: str) -> bool:
    """True when the image has to be downloaded (http(s) or an object store)."""
    return url_scheme(url) not in ("", "file")


def cache_dir() -> Path:
    """Where downloaded images are kept: `$KUBEVISION_CACHE/images` or `~/.cache/kubevision/images`."""
    root = os.environ.get("KUBEVISION_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "kubevision"
    return base / "images"


def resolve_image(
    record_or_url: ImageRecord | str,
    base_dir: str | Path | None = None,
    *,
    cache: Path | None = None,
) -> Path:
    """The local path of an image, downloading and caching a remote one.

    A relative path is relative to `base_dir`, which defaults to the folder of the record's JSONL
    file (or the working directory for a bare URL string). Raises `KubevisionError` with a message
    that names the image when the file is missing, the download fails or the scheme is unsupported.
    """
    if isinstance(record_or_url, ImageRecord):
        url = record_or_url.image_url
        if base_dir is None:
            base_dir = Path(record_or_url.source).parent
    else:
        url = record_or_url
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if not url.strip():
        raise KubevisionError("image_url is empty")
    scheme = url_scheme(url)
    if scheme == "":
        return _local(Path(url), base, url)
    if scheme == "file":
        return _local(file_url_path(url), base, url)
    if scheme == "azureml":
        raise KubevisionError(f"cannot read {url}: {AZUREML_HINT}")
    if scheme not in SUPPORTED_SCHEMES:
        raise KubevisionError(
            f"cannot read {url}: unsupported scheme {scheme}://; use a path relative to the JSONL file "
            f"or one of {', '.join(s + '://' for s in SUPPORTED_SCHEMES)}"
        )
    target = (cache or cache_dir()) / _cache_name(url)
    if not target.is_file():
        _download(url, scheme, target)
    return target


def _local(path: Path, base: Path, url: str) -> Path:
    full = path if path.is_absolute() else base / path
    full = Path(os.path.abspath(full))
    if not full.is_file():
        where = "" if path.is_absolute() else f" (image_url {url!r} is relative to {os.path.abspath(base)})"
        raise KubevisionError(f"image file not found: {full}{where}")
    return full


def file_url_path(url: str) -> Path:
    """The local path of a `file:///...` URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise KubevisionError(f"cannot read {url}: file:// URLs must name a local file (file:///path)")
    return Path(urllib.request.url2pathname(parts.path))


def _cache_name(url: str) -> str:
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]
    suffix = Path(urllib.parse.urlsplit(url).path).suffix.lower()
    if not (1 < len(suffix) <= 6 and suffix[1:].isalnum()):
        suffix = ""
    return digest + suffix


def _download(url: str, scheme: str, target: Path) -> None:
    if scheme in ("http", "https"):
        write_atomically(target, lambda out: _fetch_http(url, out))
    else:
        write_atomically(target, lambda out: _fetch_fsspec(url, scheme, out))


def _fetch_http(url: str, out: IO[bytes]) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "kubevision"})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except urllib.error.HTTPError as err:
        raise KubevisionError(f"cannot download {url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise KubevisionError(f"cannot download {url}: {reason}") from None


def _fetch_fsspec(url: str, scheme: str, out: IO[bytes]) -> None:
    package = FSSPEC_PACKAGES[scheme]
    try:
        import fsspec
    except ImportError:
        raise KubevisionError(
            f"cannot read {url}: {scheme}:// images need the fsspec and {package} packages "
            f"(pip install fsspec {package})"
        ) from None
    try:
        with fsspec.open(url, "rb") as src:
            while chunk := src.read(1 << 20):
                out.write(chunk)
    except ImportError:
        raise KubevisionError(
            f"cannot read {url}: {scheme}:// images need the {package} package (pip install {package})"
        ) from None
    except FileNotFoundError:
        raise KubevisionError(f"cannot download {url}: no such object") from None
    except Exception as err:  # every fsspec backend raises its own error types
        raise KubevisionError(f"cannot download {url}: {type(err).__name__}: {err}") from None


@dataclass(frozen=True)
class ImageInfo:
    """What decoding an image told us."""

    path: Path
    width: int
    height: int
    format: str | None


def inspect_image(path: Path) -> ImageInfo:
    """Open, verify and decode an image; raise `KubevisionError` saying why when it cannot be used.

    `verify()` checks the container (PNG chunk checksums, for example) but for JPEG it reads
    nothing, so the pixels are decoded too; JPEGs are decoded in draft mode at 1/8 scale, which
    still walks every entropy-coded block (a truncated or corrupt file fails) at a fraction of
    the cost, so checking hundreds of images takes seconds.
    """
    try:
        with Image.open(path) as img:
            width, height = img.size
            fmt = img.format
            img.verify()
        with Image.open(path) as img:
            if img.format == "JPEG":
                img.draft(img.mode, (max(1, width // 8), max(1, height // 8)))
            img.load()
    except FileNotFoundError:
        raise KubevisionError(f"image file not found: {path}") from None
    except UnidentifiedImageError:
        raise KubevisionError(f"not an image file Pillow can read: {path}") from None
    except Image.DecompressionBombError as err:
        raise KubevisionError(f"image is too large to decode safely: {path} ({err})") from None
    except Exception as err:  # Pillow raises many types for corrupt data
        detail = str(err) or type(err).__name__
        raise KubevisionError(f"image cannot be decoded: {path} ({detail})") from None
    if width <= 0 or height <= 0:
        raise KubevisionError(f"image has no pixels: {path} ({width}x{height})")
    return ImageInfo(path=path, width=width, height=height, format=fmt.lower() if fmt else None)
