"""Instance masks (binary arrays, COCO RLE) to polygons, the only segmentation format Azure reads.

Why polygons, and why this recipe: Azure AutoML for images takes instance segmentation labels only as
polygons, so COCO RLE annotations and VOC instance PNGs must be traced. The recipe is Azure's
masktools: pad the mask by one pixel so shapes touching the border give closed contours, trace the
0.5 iso-line with scikit-image, and simplify each contour with Ramer-Douglas-Peucker at a growing
tolerance until it has at most `max_points` vertices. Contours around holes are dropped: Azure's
polygon format has no holes (segments are filled and united), so a hole contour would only add
points. pycocotools and scikit-image are optional (`kubevision[convert]`) and imported on first use.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kubevision.api.errors import KubevisionError

__all__ = ["mask_to_polygons", "rdp", "rle_to_mask"]

# RDP tolerance in pixels: the first pass only removes collinear points (exact contour); when a contour
# still has more than max_points vertices the tolerance starts here and grows by the factor each round.
_FIRST_EPSILON = 0.25
_EPSILON_GROWTH = 1.5
_MAX_ROUNDS = 40


def _require(module: str) -> ModuleType:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise KubevisionError(
            f"converting masks needs the optional package {module.split('.')[0]}: "
            "install kubevision[convert] (pip install 'kubevision[convert]')"
        ) from None


def rle_to_mask(rle: Mapping[str, Any], height: int, width: int) -> NDArray[np.uint8]:
    """Decode a COCO RLE (uncompressed counts list or compressed string) to a (height, width) 0/1 mask."""
    mask_utils = _require("pycocotools.mask")
    counts = rle.get("counts")
    size = rle.get("size", [height, width])
    if not (isinstance(size, list | tuple) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise KubevisionError(f"RLE size must be [height, width], got {size!r}")
    if list(size) != [height, width]:
        raise KubevisionError(f"RLE size {list(size)} differs from the image size [{height}, {width}]")
    with warnings.catch_warnings():
        # pycocotools' Cython code triggers numpy 2's "__array__ ... copy keyword" DeprecationWarning
        # on every decode; it is not the user's concern and not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        return _decode(mask_utils, counts, height, width)


def _decode(mask_utils: ModuleType, counts: Any, height: int, width: int) -> NDArray[np.uint8]:
    if isinstance(counts, list):
        if not all(isinstance(v, int) and v >= 0 for v in counts) or sum(counts) != height * width:
            raise KubevisionError(
                f"uncompressed RLE counts must be non-negative integers summing to height*width "
                f"({height * width})"
            )
        encoded = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    elif isinstance(counts, str | bytes) and counts:
        encoded = {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}
    else:
        raise KubevisionError("RLE counts must be a list of integers or a non-empty compressed string")
    try:
        mask = mask_utils.decode(encoded)
    except Exception as err:  # pycocotools raises bare exceptions for corrupt strings
        raise KubevisionError(f"cannot decode RLE: {err}") from None
    array = np.asarray(mask, dtype=np.uint8).reshape(height, width)
    if array.size and array.max() > 1:  # a truncated string decodes to garbage instead of failing
        raise KubevisionError("cannot decode RLE: the counts string is corrupt")
    return array


def mask_to_polygons(mask: NDArray[Any], max_points: int = 100) -> list[list[float]]:
    """Outer contours of a binary mask as flat `[x1, y1, x2, y2, ...]` lists in pixel coordinates.

    Coordinates are pixel edges (pixel i spans [i, i+1]), so a mask filling the image gives
    `[0, 0] .. [width, height]` and the caller normalizes by dividing by width and height. Segments
    with fewer than 3 points after simplification are dropped; an empty mask gives `[]`.
    """
    if mask.ndim != 2:
        raise KubevisionError(f"a mask must be a 2-D array, got shape {mask.shape}")
    if max_points < 3:
        raise KubevisionError("max_points must be at least 3")
    measure = _require("skimage.measure")
    height, width = mask.shape
    binary = np.pad((mask > 0).astype(np.float64), 1)
    polygons: list[list[float]] = []
    for contour in measure.find_contours(binary, 0.5):
        # (row, col) in the padded index frame -> (x, y) in pixel-edge coordinates of the original.
        points = np.stack([contour[:, 1] - 0.5, contour[:, 0] - 0.5], axis=1)
        if _signed_area(points) <= 0:  # a hole (scikit-image orients outer contours positively)
            continue
        simplified = _simplify_closed(points, max_points)
        if len(simplified) < 3:
            continue
        simplified[:, 0] = np.clip(simplified[:, 0], 0, width)
        simplified[:, 1] = np.clip(simplified[:, 1], 0, height)
        polygons.append([float(v) for v in simplified.reshape(-1)])
    return polygons


def _signed_area(points: NDArray[np.float64]) -> float:
    x, y = points[:, 0], points[:, 1]
    return float(0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _simplify_closed(points: NDArray[np.float64], max_points: int) -> NDArray[np.float64]:
    """RDP on a closed contour (first point repeated last) at growing tolerance; returns open ring."""
    if len(points) > 1 and np.array_equal(points[0], points[-1]):
        ring = points
    else:
        ring = np.vstack([points, points[:1]])
    simplified = rdp(ring, 0.0)[:-1]
    epsilon = _FIRST_EPSILON
    rounds = 0
    while len(simplified) > max_points and rounds < _MAX_ROUNDS:
        simplified = rdp(ring, epsilon)[:-1]
        epsilon *= _EPSILON_GROWTH
        rounds += 1
    return simplified


def rdp(points: NDArray[np.float64], epsilon: float) -> NDArray[np.float64]:
    """Ramer-Douglas-Peucker: keep the points of a polyline farther than `epsilon` from the chords.

    Iterative (no recursion limit on long contours); the distances of each span are computed in one
    vectorized step. When a span's end points coincide (a closed ring), distance to that point is used.
    """
    n = len(points)
    if n < 3:
        return points.copy()
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        start, end = stack.pop()
        if end - start < 2:
            continue
        inner = points[start + 1:end]
        origin = points[start]
        chord = points[end] - origin
        rel = inner - origin
        length = float(np.hypot(chord[0], chord[1]))
        if length == 0.0:
            dist = np.hypot(rel[:, 0], rel[:, 1])
        else:
            dist = np.abs(chord[0] * rel[:, 1] - chord[1] * rel[:, 0]) / length
        i = int(np.argmax(dist))
        if dist[i] > epsilon:
            split = start + 1 + i
            keep[split] = True
            stack.append((start, split))
            stack.append((split, end))
    return points[keep]
