"""Parse the Azure AutoML-for-images JSONL schema, one line at a time, collecting every problem.

Why collect instead of stopping at the first error: a labelling export with a systematic mistake
(pixel coordinates instead of fractions, a polygon written flat) is wrong on hundreds of lines, and
the user wants to see the pattern and the places at once (`file:line: field: message`), not fix one
line per run. The parser is also lenient where the schema is (reference 2.1/2.2: numbers or numeric
strings, `"400px"` sizes, `isCrowd` as bool/0/1/"0"/"1") and strict about the label type of the task,
because a label of the wrong type trains nothing.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubevision.api.errors import Problem
from kubevision.api.tasks import Task
from kubevision.data.records import BoxLabel, ImageRecord, Label, PolygonLabel

__all__ = [
    "EXPECTED_KIND",
    "JsonlResult",
    "ParsedLine",
    "label_kind",
    "mixed_kinds_problem",
    "parse_jsonl",
    "parse_line",
    "python_encoding",
]

EXPECTED_KIND: dict[Task, str] = {
    Task.IMAGE_CLASSIFICATION: "string",
    Task.IMAGE_CLASSIFICATION_MULTILABEL: "list of strings",
    Task.IMAGE_OBJECT_DETECTION: "list of box objects",
    Task.IMAGE_INSTANCE_SEGMENTATION: "list of polygon objects",
}
"""The `label_kind` each task needs (an empty list also fits the three list tasks)."""

_EXPECTED_TEXT: dict[Task, str] = {
    Task.IMAGE_CLASSIFICATION: "a class name string",
    Task.IMAGE_CLASSIFICATION_MULTILABEL: "a list of class name strings",
    Task.IMAGE_OBJECT_DETECTION: "a list of box objects {label, topX, topY, bottomX, bottomY}",
    Task.IMAGE_INSTANCE_SEGMENTATION: "a list of polygon objects {label, polygon}",
}

Report = Callable[[str, str], None]
"""`report(message, field)`: record a problem on the line being parsed."""

_BOX_KEYS = ("topX", "topY", "bottomX", "bottomY")

# MLTable `encoding` names (and Python's own names) -> Python codecs. UTF-8 is read as utf-8-sig so a
# byte-order mark left by a Windows editor is not a JSON error on line 1.
_ENCODINGS = {
    "utf8": "utf-8-sig",
    "utf-8": "utf-8-sig",
    "utf8bom": "utf-8-sig",
    "iso88591": "iso-8859-1",
    "latin1": "latin-1",
    "ascii": "ascii",
    "utf16": "utf-16",
    "utf32": "utf-32",
    "windows1252": "cp1252",
}
_LINE_WISE = {"utf-8", "iso8859-1", "latin-1", "ascii", "cp1252", "utf-8-sig"}


def python_encoding(name: str) -> str | None:
    """The Python codec for an MLTable encoding name, or None when it is not one we know."""
    key = name.strip().lower()
    if key in _ENCODINGS:
        return _ENCODINGS[key]
    try:
        return codecs.lookup(key).name
    except LookupError:
        return None


@dataclass
class ParsedLine:
    """The outcome of one non-blank line: a record, or the problems that prevented one.

    `image_url` is kept even when the label is bad, so `data check` can still check the image;
    `kind` is the label's `label_kind` (None when the line has no label), for the mixed-type check.
    """

    source: str
    line: int
    image_url: str | None = None
    record: ImageRecord | None = None
    problems: list[Problem] = field(default_factory=list)
    kind: str | None = None


@dataclass
class JsonlResult:
    """All lines of one file; `problems` are about the file as a whole (unreadable, undecodable)."""

    source: str
    lines: list[ParsedLine] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def parse_jsonl(
    path: str | Path, *, task: Task | str, target_column: str = "label", encoding: str = "utf8"
) -> JsonlResult:
    """Parse every non-blank line of a JSONL file (line numbers are the file's, 1-based)."""
    source = str(path)
    task = Task(task)
    result = JsonlResult(source=source)
    codec = python_encoding(encoding)
    if codec is None:
        result.problems.append(Problem(f"unknown text encoding {encoding!r}", file=source))
        return result
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        result.problems.append(Problem(f"cannot read the file: {err.strerror or err}", file=source))
        return result
    for number, text in _text_lines(raw, codec, source, result.problems):
        if isinstance(text, Problem):
            result.lines.append(ParsedLine(source, number, problems=[text]))
        elif text.strip():
            result.lines.append(parse_line(text, task=task, target_column=target_column,
                                           source=source, line=number))
    return result


def _text_lines(
    raw: bytes, codec: str, source: str, problems: list[Problem]
) -> list[tuple[int, str | Problem]]:
    if codec in _LINE_WISE:
        out: list[tuple[int, str | Problem]] = []
        for i, chunk in enumerate(raw.split(b"\n"), start=1):
            try:
                out.append((i, chunk.decode(codec)))
            except UnicodeDecodeError as err:
                out.append((i, Problem(
                    f"not valid {codec} text (byte 0x{chunk[err.start]:02x} at column {err.start + 1}); "
                    "save the file as UTF-8 or set the MLTable encoding", file=source, line=i)))
        return out
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as err:
        problems.append(Problem(f"not valid {codec} text at byte {err.start}", file=source))
        return []
    return list(enumerate(text.split("\n"), start=1))


def parse_line(
    text: str, *, task: Task | str, target_column: str = "label", source: str = "<jsonl>", line: int = 1
) -> ParsedLine:
    """Parse and validate one JSONL line for `task`."""
    task = Task(task)
    parsed = ParsedLine(source, line)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        parsed.problems.append(Problem(f"not valid JSON: {err.msg} (column {err.colno})",
                                       file=source, line=line))
        return parsed
    except RecursionError:
        parsed.problems.append(Problem("not valid JSON: nested too deeply", file=source, line=line))
        return parsed
    if not isinstance(obj, dict):
        parsed.problems.append(Problem(
            f"expected a JSON object {{\"image_url\": ..., \"{target_column}\": ...}}, "
            f"found {_describe(obj)}",
            file=source, line=line))
        return parsed
    problems: list[Problem] = []

    def report(message: str, where: str) -> None:
        problems.append(Problem(message, file=source, line=line, field=where))

    image_url = _image_url(obj, report)
    parsed.image_url = image_url
    width, height, fmt = _image_details(obj.get("image_details"), report)
    label: Label | None = None
    if target_column not in obj:
        hint = ""
        if target_column != "label" and "label" in obj:
            hint = "; the line has 'label': is the target column 'label'?"
        report(f"missing (the label column){hint}", target_column)
    else:
        value = obj[target_column]
        parsed.kind = label_kind(value)
        label = _parse_label(value, task, target_column, report)
    parsed.problems = problems
    if not problems and image_url is not None and label is not None:
        parsed.record = ImageRecord(image_url=image_url, line=line, source=source, label=label,
                                    width=width, height=height, format=fmt)
    return parsed


def label_kind(value: Any) -> str:
    """A short name for the JSON type of a label, e.g. "string" or "list of box objects"."""
    if isinstance(value, list):
        if not value:
            return "empty list"
        kinds = {_item_kind(item) for item in value}
        return f"list of {kinds.pop()}" if len(kinds) == 1 else "list of mixed items"
    return _scalar_kind(value)


def _scalar_kind(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return "object" if isinstance(value, dict) else "list"


def _item_kind(item: Any) -> str:
    if isinstance(item, str):
        return "strings"
    if isinstance(item, dict):
        if "polygon" in item:
            return "polygon objects"
        if any(key in item for key in _BOX_KEYS):
            return "box objects"
        return "objects"
    if isinstance(item, list):
        return "lists"
    return f"{_scalar_kind(item)}s"


def mixed_kinds_problem(lines: list[ParsedLine], target_column: str = "label") -> Problem | None:
    """One problem naming the first line of each label type when lines disagree on the type."""
    first: dict[str, ParsedLine] = {}
    for parsed in lines:
        if parsed.kind is not None and parsed.kind != "empty list":
            first.setdefault(parsed.kind, parsed)
    if len(first) < 2:
        return None
    found = ", ".join(f"{kind} (first at {p.source}:{p.line})" for kind, p in first.items())
    return Problem(f"More than one type found for the class field: {found}; every line's label must "
                   "have the same type, the one of the task", field=target_column)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {json.dumps(shown)}"
    if isinstance(value, list):
        kind = label_kind(value)
        return "an empty list" if kind == "empty list" else f"a {kind}"
    return "an object"


def _image_url(obj: dict[str, Any], report: Report) -> str | None:
    if "image_url" not in obj:
        report("missing (the image location, e.g. \"images/1.jpg\")", "image_url")
        return None
    url = obj["image_url"]
    if not isinstance(url, str):
        report(f"expected a string, found {_describe(url)}", "image_url")
        return None
    if not url.strip():
        report("is empty", "image_url")
        return None
    return url


_SIZE = re.compile(r"\s*(\d+)\s*(?:px)?\s*", re.IGNORECASE)


def _image_details(details: Any, report: Report) -> tuple[int | None, int | None, str | None]:
    if details is None:
        return None, None, None
    if not isinstance(details, dict):
        report(f"expected an object {{format, width, height}}, found {_describe(details)}", "image_details")
        return None, None, None
    sizes: list[int | None] = []
    for key in ("width", "height"):
        value = details.get(key)
        size = None if value is None else _pixels(value)
        if value is not None and size is None:
            report(f"expected a positive integer or a string like \"400px\", found {_describe(value)}",
                   f"image_details.{key}")
        sizes.append(size)
    fmt = details.get("format")
    if fmt is not None and not isinstance(fmt, str):
        report(f"expected a string like \"jpg\", found {_describe(fmt)}", "image_details.format")
        fmt = None
    return sizes[0], sizes[1], fmt.strip().lower().lstrip(".") if fmt else None


def _pixels(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and value > 0 else None
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        if match and int(match.group(1)) > 0:
            return int(match.group(1))
    return None


def _number(value: Any) -> float | None:
    """A finite number from a JSON number or a numeric string (doc samples quote coordinates)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _wrong_label(task: Task, value: Any) -> str:
    kind = label_kind(value)
    others = [t for t, expected in EXPECTED_KIND.items() if expected == kind and t != task]
    hint = f" (is the task {others[0]}?)" if others else ""
    return f"expected {_EXPECTED_TEXT[task]} for {task}, found {_describe(value)}{hint}"


def _parse_label(value: Any, task: Task, column: str, report: Report) -> Label | None:
    if task == Task.IMAGE_CLASSIFICATION:
        if not isinstance(value, str):
            report(_wrong_label(task, value), column)
            return None
        return value if _class_name(value, column, report) else None
    kind = label_kind(value)
    if not isinstance(value, list) or (kind in EXPECTED_KIND.values() and kind != EXPECTED_KIND[task]):
        report(_wrong_label(task, value), column)  # the whole label has another task's type: say it once
        return None
    if task == Task.IMAGE_CLASSIFICATION_MULTILABEL:
        names = [item for i, item in enumerate(value) if _class_name(item, f"{column}[{i}]", report)]
        return tuple(dict.fromkeys(names)) if len(names) == len(value) else None
    if task == Task.IMAGE_OBJECT_DETECTION:
        boxes = [_parse_box(item, f"{column}[{i}]", report) for i, item in enumerate(value)]
        valid_boxes = tuple(box for box in boxes if box is not None)
        return valid_boxes if len(valid_boxes) == len(boxes) else None
    polygons = [_parse_polygon(item, f"{column}[{i}]", report) for i, item in enumerate(value)]
    valid_polygons = tuple(polygon for polygon in polygons if polygon is not None)
    return valid_polygons if len(valid_polygons) == len(polygons) else None


def _class_name(value: Any, where: str, report: Report) -> bool:
    if not isinstance(value, str):
        report(f"expected a class name string, found {_describe(value)}", where)
        return False
    if not value.strip():
        report("class name is empty", where)
        return False
    return True


def _is_crowd(item: dict[str, Any], where: str, report: Report) -> bool | None:
    value = item.get("isCrowd", False)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false"):
        return value.strip().lower() in ("1", "true")
    report(f"expected true/false or 0/1, found {_describe(value)}", f"{where}.isCrowd")
    return None


def _coordinate(value: Any, where: str, report: Report) -> float | None:
    number = _number(value)
    if number is None:
        report(f"expected a number in [0, 1], found {_describe(value)}", where)
        return None
    if not 0.0 <= number <= 1.0:
        hint = ("; coordinates are fractions of the image width/height, this looks like pixels"
                if number > 1.5 else "")
        report(f"{number:g} is outside [0, 1]{hint}", where)
        return None
    return number


def _parse_box(item: Any, where: str, report: Report) -> BoxLabel | None:
    if not isinstance(item, dict):
        report(f"expected a box object {{label, topX, topY, bottomX, bottomY}}, found {_describe(item)}",
               where)
        return None
    if "polygon" in item and not any(key in item for key in _BOX_KEYS):
        report("expected a box object {label, topX, topY, bottomX, bottomY}, found a polygon object "
               "(is the task image_instance_segmentation?)", where)
        return None
    ok = _class_name(item.get("label"), f"{where}.label", report)
    coords: dict[str, float | None] = {}
    for key in _BOX_KEYS:
        if key not in item:
            report("missing (a box needs label, topX, topY, bottomX, bottomY)", f"{where}.{key}")
            coords[key] = None
        else:
            coords[key] = _coordinate(item[key], f"{where}.{key}", report)
    crowd = _is_crowd(item, where, report)
    tx, ty, bx, by = (coords[key] for key in _BOX_KEYS)
    if tx is None or ty is None or bx is None or by is None or crowd is None or not ok:
        return None
    if tx >= bx or ty >= by:
        if tx >= bx:
            axis = f"topX {tx:g} must be less than bottomX {bx:g}"
        else:
            axis = f"topY {ty:g} must be less than bottomY {by:g}"
        report(f"empty or inverted box: {axis}", where)
        return None
    return BoxLabel(label=item["label"], top_x=tx, top_y=ty, bottom_x=bx, bottom_y=by, is_crowd=crowd)


def _parse_polygon(item: Any, where: str, report: Report) -> PolygonLabel | None:
    if not isinstance(item, dict):
        report(f"expected a polygon object {{label, polygon}}, found {_describe(item)}", where)
        return None
    ok = _class_name(item.get("label"), f"{where}.label", report)
    crowd = _is_crowd(item, where, report)
    if "polygon" not in item:
        hint = (" (this is a box; is the task image_object_detection?)"
                if any(key in item for key in _BOX_KEYS) else "")
        report(f"missing (a list of segments [[x1, y1, x2, y2, ...]]){hint}", f"{where}.polygon")
        return None
    segments = _segments(item["polygon"], f"{where}.polygon", report)
    if segments is None or crowd is None or not ok:
        return None
    polygon = PolygonLabel(label=item["label"], polygon=segments, is_crowd=crowd)
    x0, y0, x1, y1 = polygon.bbox
    if x0 >= x1 or y0 >= y1:
        report("the polygon has no area (zero width or height)", f"{where}.polygon")
        return None
    return polygon


def _segments(value: Any, where: str, report: Report) -> list[list[float]] | None:
    if not isinstance(value, list) or not value:
        report(f"expected a list of segments [[x1, y1, x2, y2, ...]], found {_describe(value)}", where)
        return None
    if all(not isinstance(v, list) for v in value):
        report("expected a list of segments [[x1, y1, x2, y2, ...]], found a flat list of numbers; "
               "wrap it in another list", where)
        return None
    segments: list[list[float]] = []
    for j, segment in enumerate(value):
        at = f"{where}[{j}]"
        if not isinstance(segment, list):
            report(f"expected a list of numbers x1, y1, x2, y2, ..., found {_describe(segment)}", at)
            return None
        maybe = [_number(v) for v in segment]
        bad = next((k for k, n in enumerate(maybe) if n is None), None)
        if bad is not None:
            report(f"expected a number in [0, 1], found {_describe(segment[bad])}", f"{at}[{bad}]")
            return None
        numbers = [n for n in maybe if n is not None]
        if len(numbers) % 2:
            report(f"has {len(numbers)} numbers, an odd count; a segment is x, y pairs", at)
            return None
        if len(numbers) < 6:
            report(f"has {len(numbers) // 2} points; a polygon needs at least 3", at)
            return None
        outside = next((k for k, n in enumerate(numbers) if not 0.0 <= n <= 1.0), None)
        if outside is not None:
            hint = ("; coordinates are fractions of the image width/height, this looks like pixels"
                    if numbers[outside] > 1.5 else "")
            report(f"{numbers[outside]:g} is outside [0, 1]{hint}", f"{at}[{outside}]")
            return None
        segments.append(numbers)
    return segments
