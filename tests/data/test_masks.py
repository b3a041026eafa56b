"""Mask -> polygon tracing and RLE decoding (kubevision.data.convert.masks)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from kubevision.api.errors import KubevisionError
from kubevision.data.convert.masks import mask_to_polygons, rdp, rle_to_mask


def _raster(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Fill polygons given in pixel-edge coordinates back into a mask (pycocotools uses the same frame)."""
    with warnings.catch_warnings():  # pycocotools vs numpy 2 DeprecationWarning
        warnings.simplefilter("ignore", DeprecationWarning)
        rles = mask_utils.frPyObjects(polygons, height, width)
        return np.asarray(mask_utils.decode(mask_utils.merge(rles)), dtype=bool)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def _disk(size: int, radius: float, cx: float, cy: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    disk: np.ndarray = (xx - cx) ** 2 + (yy - cy) ** 2 < radius**2
    return disk


def test_full_mask_spans_exactly_the_image() -> None:
    polygons = mask_to_polygons(np.ones((4, 6), dtype=np.uint8))
    assert len(polygons) == 1
    xs, ys = polygons[0][0::2], polygons[0][1::2]
    assert (min(xs), max(xs), min(ys), max(ys)) == (0.0, 6.0, 0.0, 4.0)


def test_rectangle_extent_is_its_pixel_edges() -> None:
    mask = np.zeros((20, 30), dtype=bool)
    mask[5:15, 8:20] = True
    (polygon,) = mask_to_polygons(mask)
    xs, ys = polygon[0::2], polygon[1::2]
    assert (min(xs), max(xs), min(ys), max(ys)) == (8.0, 20.0, 5.0, 15.0)
    assert _iou(_raster([polygon], 20, 30), mask) > 0.95


def test_disk_round_trips_and_respects_max_points() -> None:
    mask = _disk(200, 70, 100, 90)
    (fine,) = mask_to_polygons(mask)
    assert 3 <= len(fine) // 2 <= 100
    assert _iou(_raster([fine], 200, 200), mask) > 0.97
    (coarse,) = mask_to_polygons(mask, max_points=8)
    assert 3 <= len(coarse) // 2 <= 8
    assert _iou(_raster([coarse], 200, 200), mask) > 0.8


def test_two_blobs_give_two_segments_and_holes_are_dropped() -> None:
    mask = np.zeros((40, 80), dtype=bool)
    mask[5:35, 5:35] = True
    mask[15:25, 15:25] = False  # a hole
    mask[10:30, 50:70] = True  # a second blob
    polygons = mask_to_polygons(mask)
    assert len(polygons) == 2
    lefts = sorted(min(p[0::2]) for p in polygons)
    assert lefts == [5.0, 50.0]


def test_shape_touching_the_border_is_closed_and_inside_the_image() -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[0:4, 6:10] = True
    (polygon,) = mask_to_polygons(mask)
    assert min(polygon[0::2]) == 6.0 and max(polygon[0::2]) == 10.0
    assert min(polygon[1::2]) == 0.0 and max(polygon[1::2]) == 4.0


def test_empty_mask_gives_no_polygon() -> None:
    assert mask_to_polygons(np.zeros((5, 5))) == []


def test_mask_must_be_two_dimensional() -> None:
    with pytest.raises(KubevisionError, match="2-D"):
        mask_to_polygons(np.zeros((2, 3, 4)))


def test_rdp_keeps_far_points_and_drops_near_ones() -> None:
    line = np.array([[0, 0], [1, 0.1], [2, -0.1], [3, 0.2], [4, 0.1], [5, 0], [6, 3], [7, 6]], dtype=float)
    assert rdp(line, 0.5).tolist() == [[0, 0], [5, 0], [7, 6]]
    # At a small tolerance only the points on a chord ((4, 0.1) and (6, 3)) go.
    assert rdp(line, 0.05).tolist() == [[0, 0], [1, 0.1], [2, -0.1], [3, 0.2], [5, 0], [7, 6]]
    collinear = np.array([[0, 0], [1, 1], [2, 2], [3, 3]], dtype=float)
    assert rdp(collinear, 0.0).tolist() == [[0, 0], [3, 3]]


def test_rle_compressed_and_uncompressed_decode_to_the_mask() -> None:
    mask = _disk(30, 8, 12, 15).astype(np.uint8)
    compressed = mask_utils.encode(np.asfortranarray(mask))
    as_text = {"size": compressed["size"], "counts": compressed["counts"].decode("ascii")}
    assert np.array_equal(rle_to_mask(as_text, 30, 30), mask)
    flat = mask.flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0, *counts]
    assert np.array_equal(rle_to_mask({"size": [30, 30], "counts": counts}, 30, 30), mask)


def test_bad_rle_is_a_user_error() -> None:
    with pytest.raises(KubevisionError, match="summing to height"):
        rle_to_mask({"size": [4, 4], "counts": [3, 2]}, 4, 4)
    with pytest.raises(KubevisionError, match="differs from the image size"):
        rle_to_mask({"size": [5, 4], "counts": [20]}, 4, 4)
    with pytest.raises(KubevisionError, match="counts must be"):
        rle_to_mask({"size": [4, 4], "counts": 12}, 4, 4)
    with pytest.raises(KubevisionError, match="counts must be"):
        rle_to_mask({"size": [4, 4], "counts": ""}, 4, 4)
    with pytest.raises(KubevisionError, match="cannot decode RLE"):
        rle_to_mask({"size": [4, 4], "counts": "!!!"}, 4, 4)


def test_missing_optional_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "skimage.measure", None)
    with pytest.raises(KubevisionError, match=r"kubevision\[convert\]"):
        mask_to_polygons(np.ones((3, 3)))
