"""What a conversion did, told to the user: written, counted, clipped, skipped, and why.

Why a collector shared by every reader: converting someone else's labels is where data is silently
lost (a box dropped here, a file ignored there) and nobody notices until a model is poor. Every reader
reports each thing it changes or leaves out through one `Collector`, and collects every input error
(rather than stopping at the first) so the user fixes a file in one pass. The `ConversionSummary`
printed by `kubevision convert` is built from it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kubevision.api.errors import KubevisionError, Problem

__all__ = ["MAX_LISTED", "Collector", "ConversionSummary", "Skipped"]

# How many skipped items / problems are spelled out one by one before "... and N more".
MAX_LISTED = 20


@dataclass(frozen=True)
class Skipped:
    """One thing left out of the output: `what` (a file, an annotation) and `why`."""

    what: str
    why: str

    def __str__(self) -> str:
        return f"{self.what}: {self.why}"


@dataclass
class Collector:
    """Gathers problems (fatal, raised together), skips, clip counts and notes while reading."""

    problems: list[Problem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    clipped: int = 0
    widened: int = 0
    notes: list[str] = field(default_factory=list)

    def problem(self, message: str, *, file: Path | str | None = None, line: int | None = None,
                field: str | None = None) -> None:
        self.problems.append(Problem(message, file=None if file is None else str(file), line=line,
                                     field=field))

    def skip(self, what: str, why: str) -> None:
        self.skipped.append(Skipped(what, why))

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def raise_if_problems(self, headline: str) -> None:
        """Raise one `KubevisionError` with every problem found so far (the first MAX_LISTED shown)."""
        if not self.problems:
            return
        shown = self.problems[:MAX_LISTED]
        if len(self.problems) > MAX_LISTED:
            shown = [*shown, Problem(f"... and {len(self.problems) - MAX_LISTED} more problems")]
        raise KubevisionError(f"{headline} ({len(self.problems)} problems):", shown)


@dataclass
class ConversionSummary:
    """The result of `convert()`; `str()` is what the CLI prints."""

    out: Path
    from_format: str
    to_format: str
    task: str
    images: int = 0
    images_without_labels: int = 0
    labels_per_class: Counter[str] = field(default_factory=Counter)
    images_per_class: Counter[str] = field(default_factory=Counter)
    clipped: int = 0
    widened: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> int:
        return sum(self.labels_per_class.values())

    def __str__(self) -> str:
        unit = _label_unit(self.task)
        lines = [
            f"wrote {self.out} ({self.from_format} -> {self.to_format}, task {self.task}): "
            f"{self.images} images, {self.labels} {unit}"
        ]
        if self.labels_per_class:
            width = max(len(name) for name in self.labels_per_class)
            lines.append(f"  {'class':<{width}}  {'images':>7}  {unit:>7}")
            for name in sorted(self.labels_per_class):
                lines.append(f"  {name:<{width}}  {self.images_per_class[name]:>7}  "
                             f"{self.labels_per_class[name]:>7}")
        if self.images_without_labels:
            lines.append(f"images with no labels (kept, empty label list): {self.images_without_labels}")
        if self.clipped:
            lines.append(f"clipped to the image bounds: {self.clipped} {unit}")
        if self.widened:
            lines.append(f"zero-area {unit} (a click without a drag) widened to 1 pixel: {self.widened}")
        lines.extend(f"note: {note}" for note in self.notes)
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}:")
            lines.extend(f"  - {item}" for item in self.skipped[:MAX_LISTED])
            if len(self.skipped) > MAX_LISTED:
                lines.append(f"  ... and {len(self.skipped) - MAX_LISTED} more")
        if self.to_format == "jsonl":
            lines.append(f"next: kubevision data check {self.out} --task {self.task}")
        return "\n".join(lines)


def _label_unit(task: str) -> str:
    if task == "image_object_detection":
        return "boxes"
    if task == "image_instance_segmentation":
        return "polygons"
    return "labels"
