"""Box and polygon arithmetic shared by the detection and segmentation converters.

Why one place: every source format has its own coordinate convention (COCO xywh pixels, VOC corners,
YOLO normalized centres), but they all end as Azure's normalized corners or normalized polygons, with
the same rules: coordinates outside the image are clipped to [0, 1] and counted, a zero-area box inside
the image (a click without a drag) is widened to one pixel and counted, and a box wholly outside the
image is dropped and reported by the caller, never silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DECIMALS",
    "Box",
    "box_label",
    "box_to_polygon",
    "clip_polygon",
    "polygon_bbox",
    "polygon_label",
]

# Normalized coordinates are rounded to 6 decimals: 0.01 px on a 10,000 px image, and short lines.
DECIMALS = 6


@dataclass(frozen=True)
class Box:
    """Normalized corners (x0, y0) top-left, (x1, y1) bottom-right."""

    x0: float
    y0: float
    x1: float
    y1: float

    def clipped(self) -> tuple[Box, bool]:
        """The box clipped to [0, 1] and whether anything changed."""
        c = Box(*(min(max(v, 0.0), 1.0) for v in (self.x0, self.y0, self.x1, self.y1)))
        return c, c != self

    @property
    def has_area(self) -> bool:
        return self.x1 > self.x0 and self.y1 > self.y0

    @property
    def touches_image(self) -> bool:
        """Whether any point of the box (even a zero-area one) lies inside the image."""
        return self.x0 <= 1.0 and self.x1 >= 0.0 and self.y0 <= 1.0 and self.y1 >= 0.0

    def widened(self, min_width: float, min_height: float) -> Box:
        """The box grown around its centre to at least the given size, kept inside [0, 1].

        Why: annotation tools record a click without a drag as a zero-area box (BCCD has two). The
        object is there, so dropping it would lose a label; a one-pixel box keeps it trainable and
        countable. Callers pass one pixel in normalized units and report how many they widened.
        """
        def grow(lo: float, hi: float, size: float) -> tuple[float, float]:
            if hi - lo >= size:
                return lo, hi
            centre = (lo + hi) / 2
            lo = min(max(centre - size / 2, 0.0), 1.0 - size)
            return lo, lo + size

        x0, x1 = grow(self.x0, self.x1, min_width)
        y0, y1 = grow(self.y0, self.y1, min_height)
        return Box(x0, y0, x1, y1)


def box_label(name: str, box: Box, *, is_crowd: int) -> dict[str, Any]:
    """An object-detection label in the Azure schema."""
    return {
        "label": name,
        "topX": round(box.x0, DECIMALS),
        "topY": round(box.y0, DECIMALS),
        "bottomX": round(box.x1, DECIMALS),
        "bottomY": round(box.y1, DECIMALS),
        "isCrowd": is_crowd,
    }


def polygon_label(name: str, polygon: list[list[float]], *, is_crowd: int) -> dict[str, Any]:
    """An instance-segmentation label in the Azure schema (normalized segments)."""
    return {
        "label": name,
        "isCrowd": is_crowd,
        "polygon": [[round(v, DECIMALS) for v in segment] for segment in polygon],
    }


def clip_polygon(polygon: Sequence[Sequence[float]]) -> tuple[list[list[float]], bool]:
    """Every coordinate clipped to [0, 1], and whether any changed."""
    out = [[min(max(float(v), 0.0), 1.0) for v in segment] for segment in polygon]
    changed = any(a != b for seg_a, seg_b in zip(out, polygon, strict=True)
                  for a, b in zip(seg_a, seg_b, strict=True))
    return out, changed


def polygon_bbox(polygon: Sequence[Sequence[float]]) -> Box:
    """The smallest box around all segments (used when a polygon must become a box)."""
    xs = [float(v) for segment in polygon for v in segment[0::2]]
    ys = [float(v) for segment in polygon for v in segment[1::2]]
    return Box(min(xs), min(ys), max(xs), max(ys))


def box_to_polygon(box: Box) -> list[list[float]]:
    """A box as a one-segment rectangle polygon (used when a box must join a segmentation set)."""
    return [[box.x0, box.y0, box.x1, box.y0, box.x1, box.y1, box.x0, box.y1]]
