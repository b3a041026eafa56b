"""`kubevision data check`: validate every line and every image of a dataset before training on it.

Why a full pass, images included: Azure AutoML for images reports a bad image or annotation as an
"internal error" or skips it silently, long after submit (reference 11). Here the user runs one
command and gets every problem with its place (`file:line: field: message`), plus the numbers that
decide whether training makes sense: images, classes and counts per class, image sizes. Images are
decoded (cheaply, see `images.inspect_image`) in a small thread pool — Pillow releases the GIL while
decoding — so a few hundred JPEGs take seconds.

Errors make the report fail (`ok` False, exit code 1); warnings are things a user may intend
(duplicate images, few images per class, `image_details` that disagree with the file).
"""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.tasks import Task, is_classification
from kubevision.data.images import ImageInfo, inspect_image, resolve_image, url_scheme
from kubevision.data.jsonl import ParsedLine, mixed_kinds_problem
from kubevision.data.reader import open_source, parse_source

__all__ = ["MIN_IMAGES", "MIN_PER_CLASS", "DataReport", "check_dataset"]

MIN_IMAGES = 10
"""Fewer valid images than this is an error (reference 2.4: "at least 10 images")."""

MIN_PER_CLASS = 10
"""Fewer images (or boxes) per class than this is a warning (reference 2.4: "10 to 15 per label")."""


@dataclass
class DataReport:
    """The outcome of `check_dataset`: problems, and the numbers a user checks before training."""

    source: str
    task: Task
    errors: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    lines: int = 0
    images: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)
    count_unit: str = "images"
    width_range: tuple[int, int] | None = None
    height_range: tuple[int, int] | None = None
    without_labels: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def render(self, max_errors: int = 50) -> str:
        """The text `kubevision data check` prints: summary, class table, warnings, errors, verdict."""
        out = [f"{self.source}: {self.task}"]
        invalid = len({(p.file, p.line) for p in self.errors if p.line is not None})
        out.append(f"  lines: {self.lines}" + (f" ({invalid} with errors)" if invalid else ""))
        out.append(f"  valid images: {self.images}")
        if self.width_range and self.height_range:
            (w0, w1), (h0, h1) = self.width_range, self.height_range
            out.append(f"  image size: width {w0}..{w1} px, height {h0}..{h1} px")
        if self.without_labels:
            out.append(f"  images without {self.count_unit}: {self.without_labels}")
        if self.class_counts:
            out.append(f"  classes: {len(self.class_counts)} ({self.count_unit} per class)")
            width = max(len(name) for name in self.class_counts)
            for name, count in sorted(self.class_counts.items()):
                out.append(f"    {name:<{width}}  {count:>7}")
        out.append(f"  checked in {self.seconds:.1f}s")
        out += _section("warnings", self.warnings, max_errors)
        out += _section("errors", [str(p) for p in self.errors], max_errors)
        out.append("result: OK" if self.ok else f"result: FAILED ({len(self.errors)} errors)")
        return "\n".join(out)


def _section(title: str, items: list[str], limit: int) -> list[str]:
    if not items:
        return []
    lines = [f"{title} ({len(items)}):"] + [f"  - {item}" for item in items[: max(limit, 0)]]
    if len(items) > limit:
        lines.append(f"  ... and {len(items) - limit} more (raise --max-errors to see them)")
    return lines


def check_dataset(
    path: str | Path, *, task: str, target_column: str = "label", max_workers: int | None = None
) -> DataReport:
    """Check every line and image of a JSONL file or MLTable folder for `task`."""
    started = time.perf_counter()
    try:
        task_ = Task(task)
    except ValueError:
        raise KubevisionError(f"unknown task {task!r}; one of {', '.join(Task)}") from None
    report = DataReport(source=str(path), task=task_)
    report.count_unit = ("images" if is_classification(task_) else
                         "boxes" if task_ == Task.IMAGE_OBJECT_DETECTION else "instances")
    try:
        source = open_source(path)
    except KubevisionError as err:
        report.errors = err.problems or [Problem(err.headline)]
        report.seconds = time.perf_counter() - started
        return report
    lines, file_problems = parse_source(source, task=task_, target_column=target_column)
    report.lines = len(lines)
    report.errors.extend(file_problems)
    line_problems = [p for parsed in lines for p in parsed.problems]
    mixed = mixed_kinds_problem(lines, target_column)
    if source.invalid_lines == "drop":
        note = "dropped (the MLTable says invalid_lines: drop): "
        report.warnings += [note + str(p) for p in ([mixed] if mixed else []) + line_problems]
    else:
        report.errors += ([mixed] if mixed else []) + line_problems
    infos = _check_images(lines, report, max_workers)
    # Whole-dataset problems first, then every line's problems (label and image) in file order.
    order = {str(file): i for i, file in enumerate(source.files)}
    located = sorted((p for p in report.errors if p.line is not None),
                     key=lambda p: (order.get(p.file or "", len(order)), p.line or 0))
    report.errors = [p for p in report.errors if p.line is None] + located
    _summarise(lines, infos, report)
    report.seconds = time.perf_counter() - started
    return report


def _image_key(parsed: ParsedLine, url: str) -> str:
    if url_scheme(url) == "":
        return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(parsed.source)), url))
    return url


def _check_images(
    lines: list[ParsedLine], report: DataReport, max_workers: int | None
) -> dict[str, ImageInfo]:
    """Resolve and decode each distinct image once; report failures on every line that uses it."""
    users: dict[str, list[ParsedLine]] = defaultdict(list)
    for parsed in lines:
        if parsed.image_url is not None:
            users[_image_key(parsed, parsed.image_url)].append(parsed)

    def check(key: str) -> ImageInfo | str:
        first = users[key][0]
        assert first.image_url is not None
        try:
            return inspect_image(resolve_image(first.image_url, Path(first.source).parent))
        except KubevisionError as err:
            return err.headline

    workers = max_workers or min(16, 2 * (os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kubevision-check") as pool:
        outcomes = dict(zip(users, pool.map(check, users), strict=True))
    infos: dict[str, ImageInfo] = {}
    for key, outcome in outcomes.items():
        if isinstance(outcome, str):
            report.errors += [Problem(outcome, file=p.source, line=p.line, field="image_url")
                              for p in users[key]]
        else:
            infos[key] = outcome
        if len(users[key]) > 1:
            places = ", ".join(f"{p.source}:{p.line}" for p in users[key][:5])
            more = f" and {len(users[key]) - 5} more" if len(users[key]) > 5 else ""
            report.warnings.append(f"image_url {users[key][0].image_url!r} appears on {len(users[key])} "
                                   f"lines ({places}{more}); each line counts as a separate image")
    return infos


def _summarise(lines: list[ParsedLine], infos: dict[str, ImageInfo], report: DataReport) -> None:
    counts: Counter[str] = Counter()
    for parsed in lines:
        record = parsed.record
        if record is None:
            continue
        info = infos.get(_image_key(parsed, record.image_url))
        if info is None:
            continue
        report.images += 1
        names = record.classes() if is_classification(report.task) else record.label_names()
        counts.update(names)
        if not names:
            report.without_labels += 1
        said = (record.width or info.width, record.height or info.height)
        if said != (info.width, info.height):
            report.warnings.append(
                f"{record.source}:{record.line}: image_details: says {said[0]}x{said[1]} but the image is "
                f"{info.width}x{info.height}; kubevision uses the real size")
    report.class_counts = dict(counts)
    if infos:
        widths = [i.width for i in infos.values()]
        heights = [i.height for i in infos.values()]
        report.width_range = (min(widths), max(widths))
        report.height_range = (min(heights), max(heights))
    if report.images < MIN_IMAGES:
        report.errors.append(Problem(
            f"only {report.images} valid image(s); AutoML needs at least {MIN_IMAGES} images to train",
            file=report.source))
    few = sorted((name, n) for name, n in counts.items() if n < MIN_PER_CLASS)
    if few:
        listed = ", ".join(f"{name} ({n})" for name, n in few[:10])
        more = f" and {len(few) - 10} more" if len(few) > 10 else ""
        report.warnings.append(f"{len(few)} class(es) have fewer than {MIN_PER_CLASS} {report.count_unit}: "
                               f"{listed}{more}; aim for at least 10-15 per class")
    if report.task == Task.IMAGE_CLASSIFICATION and len(counts) == 1:
        report.warnings.append(
            f"only one class ({next(iter(counts))}); multi-class training needs two or more")
