"""In-memory form of one labelled image: what every consumer of the data layer works with.

Why plain frozen dataclasses and not the raw JSON dicts: the JSONL schema (reference 2.1/2.2) lets
users write the same thing several ways (numbers or numeric strings, `isCrowd` as bool, 0/1 or "0"/"1",
`"400px"` widths). The reader normalises all of that once, here, so the trainer, the splitter and the
converters see one typed shape and never re-parse or re-validate.

Coordinates stay normalised to [0, 1] (the Azure convention); pixel coordinates are derived only
where a consumer needs them (COCO export, the trainer), with the real image size.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BoxLabel", "ImageRecord", "Label", "PolygonLabel"]


@dataclass(frozen=True)
class BoxLabel:
    """One object-detection box, corners normalised by image width (x) and height (y)."""

    label: str
    top_x: float
    top_y: float
    bottom_x: float
    bottom_y: float
    is_crowd: bool = False


@dataclass(frozen=True)
class PolygonLabel:
    """One instance-segmentation instance: one or more polygon segments of the same object.

    `polygon` is a list of segments, each `[x1, y1, x2, y2, ...]` normalised to [0, 1].
    """

    label: str
    polygon: list[list[float]]
    is_crowd: bool = False

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """`(top_x, top_y, bottom_x, bottom_y)` enclosing every segment, normalised like the polygon."""
        xs = [x for segment in self.polygon for x in segment[0::2]]
        ys = [y for segment in self.polygon for y in segment[1::2]]
        return (min(xs), min(ys), max(xs), max(ys))


Label = str | tuple[str, ...] | tuple[BoxLabel, ...] | tuple[PolygonLabel, ...]
"""The label of one image: a class (multi-class), classes (multi-label), boxes or polygons."""


@dataclass(frozen=True)
class ImageRecord:
    """One line of a JSONL file, validated.

    `source` is the JSONL file the line came from and `line` its 1-based line number, so anything
    that goes wrong later (an image that fails to decode during training) can still name the place.
    `width`/`height`/`format` come from the optional `image_details`; None when absent.
    """

    image_url: str
    line: int
    source: str
    label: Label
    width: int | None = None
    height: int | None = None
    format: str | None = None

    def label_names(self) -> tuple[str, ...]:
        """One class name per label: per image (classification) or per box/polygon, with repeats."""
        if isinstance(self.label, str):
            return (self.label,)
        names: list[str] = []
        for item in self.label:
            names.append(item if isinstance(item, str) else item.label)
        return tuple(names)

    def classes(self) -> tuple[str, ...]:
        """The distinct class names on this image, in the order they first appear."""
        return tuple(dict.fromkeys(self.label_names()))
