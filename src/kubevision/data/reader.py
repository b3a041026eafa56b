"""`read_dataset`: a JSONL file or an MLTable folder in, validated records out.

Why a separate step from `data check`: training must start fast and fail early, so this reads and
validates every line (cheap) but does not open images (expensive; the trainer decodes them anyway,
and `kubevision data check` does the full image pass on request). Either all lines are valid, or the
user gets one error listing the first problems with `file:line: field:` — unless the MLTable says
`invalid_lines: drop`, in which case bad lines are dropped and kept in `Dataset.dropped` so the
runner can say how many were skipped and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.tasks import Task
from kubevision.data.jsonl import ParsedLine, mixed_kinds_problem, parse_jsonl
from kubevision.data.mltable import MLTABLE_FILE, read_mltable
from kubevision.data.records import ImageRecord

__all__ = ["MAX_PROBLEMS", "DataSource", "Dataset", "open_source", "parse_source", "read_dataset"]

MAX_PROBLEMS = 20
"""How many problems an error from `read_dataset` lists (`data check` shows them all)."""


@dataclass
class Dataset:
    """The valid records of a dataset and its classes (sorted, the order of model outputs)."""

    records: list[ImageRecord]
    classes: list[str]
    source: str
    dropped: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class DataSource:
    """Where the lines of a dataset are: one JSONL file, or the files an MLTable names."""

    path: Path
    files: tuple[Path, ...]
    encoding: str = "utf8"
    invalid_lines: str = "error"
    mltable: Path | None = None


def open_source(path: str | Path) -> DataSource:
    """Locate the JSONL file(s) behind `path` (a JSONL file, an MLTable folder or MLTable file).

    Raises `KubevisionError` when the path, the MLTable or a JSONL file it names does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise KubevisionError(f"{path}: does not exist (resolved to {path.resolve()})")
    if path.is_dir() or path.name == MLTABLE_FILE:
        if path.is_dir() and not (path / MLTABLE_FILE).is_file():
            jsonl = sorted(p.name for p in path.glob("*.jsonl"))
            hint = f"; point at the JSONL file instead ({', '.join(jsonl[:3])})" if jsonl else ""
            raise KubevisionError(f"{path}: is a folder without an MLTable file{hint}")
        spec = read_mltable(path)
        missing = [Problem(f"references {f}, which does not exist", file=str(spec.path), field="paths")
                   for f in spec.files if not f.is_file()]
        if missing:
            raise KubevisionError("the MLTable names JSONL files that do not exist", missing)
        return DataSource(path=path, files=spec.files, encoding=spec.encoding,
                          invalid_lines=spec.invalid_lines, mltable=spec.path)
    return DataSource(path=path, files=(path,))


def parse_source(
    source: DataSource, *, task: Task | str, target_column: str = "label"
) -> tuple[list[ParsedLine], list[Problem]]:
    """Every parsed line of every file, and problems with whole files (unreadable, undecodable)."""
    lines: list[ParsedLine] = []
    problems: list[Problem] = []
    for file in source.files:
        result = parse_jsonl(file, task=task, target_column=target_column, encoding=source.encoding)
        lines.extend(result.lines)
        problems.extend(result.problems)
    return lines, problems


def read_dataset(
    path: str | Path, task: str, *, target_column: str = "label", invalid_lines: str | None = None
) -> Dataset:
    """Read and validate every line of a JSONL file or MLTable folder for `task`.

    `invalid_lines` ("error" or "drop") overrides the MLTable's setting; for a plain JSONL file the
    default is "error". Images are not opened here (see `kubevision.data.check`).
    """
    try:
        task = Task(task)
    except ValueError:
        raise KubevisionError(f"unknown task {task!r}; one of {', '.join(Task)}") from None
    source = open_source(path)
    mode = invalid_lines or source.invalid_lines
    if mode not in ("error", "drop"):
        raise KubevisionError(f"invalid_lines must be 'error' or 'drop', not {mode!r}")
    lines, problems = parse_source(source, task=task, target_column=target_column)
    mixed = mixed_kinds_problem(lines, target_column)
    if mixed is not None and mode == "error":
        problems.append(mixed)
    line_problems = [p for parsed in lines for p in parsed.problems]
    if problems or (line_problems and mode == "error"):
        everything = problems + line_problems
        shown = everything[:MAX_PROBLEMS]
        more = f" (first {MAX_PROBLEMS} shown)" if len(everything) > MAX_PROBLEMS else ""
        raise KubevisionError(
            f"{path}: {len(everything)} problem(s) in the data for {task}{more}; run "
            f"`kubevision data check {path} --task {task}` for the full report", shown)
    records = [parsed.record for parsed in lines if parsed.record is not None]
    if not records:
        raise KubevisionError(f"{path}: no labelled images (every line is blank or invalid)",
                              line_problems[:MAX_PROBLEMS])
    classes = sorted({name for record in records for name in record.classes()})
    return Dataset(records=records, classes=classes, source=str(path), dropped=line_problems)
