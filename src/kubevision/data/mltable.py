"""Read the MLTable file that Azure ML image jobs use to point at their JSONL.

Why support it at all: every Azure sample and every existing Azure AutoML-for-images project keeps
its data as `<folder>/{MLTable, annotations.jsonl}` (reference 2.3); a user moving to kubevision should
be able to point `trainingData.path` at that folder unchanged. Only the subset that image jobs use is
implemented — `paths` (file / pattern / folder), `read_json_lines` (encoding, invalid_lines,
include_path_column) and `convert_column_types` of `image_url` to `stream_info` — and anything else
is a clear error rather than silently ignored, because a transformation we skipped would change the
data the user thinks they train on. "Not able to find MLTable file" style failures after submit were
a top Azure complaint (reference 11); here they are reported with the resolved path before anything runs.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubevision.api.errors import KubevisionError, Problem
from kubevision.data.images import AZUREML_HINT, file_url_path, url_scheme
from kubevision.data.jsonl import python_encoding

__all__ = ["MLTABLE_FILE", "MLTableSpec", "read_mltable"]

MLTABLE_FILE = "MLTable"

TRANSFORMATIONS = ("read_json_lines", "convert_column_types")
_READ_OPTIONS = ("encoding", "invalid_lines", "include_path_column", "path_column", "partition_size")
_COLUMN_TYPES = ("stream_info", "string", "int", "float", "boolean", "datetime")


@dataclass(frozen=True)
class MLTableSpec:
    """What an MLTable file says: the JSONL files (resolved, in order) and how to read them.

    `files` may name files that do not exist; callers decide whether that is an error, so that
    `validate` can report it against the job file and `data check` against the MLTable.
    """

    path: Path
    files: tuple[Path, ...]
    encoding: str = "utf8"
    invalid_lines: str = "error"
    include_path_column: bool = False


def read_mltable(path: str | Path) -> MLTableSpec:
    """Parse `<folder>/MLTable` (or the MLTable file itself); raise `KubevisionError` listing problems."""
    path = Path(path)
    file = path / MLTABLE_FILE if path.is_dir() else path
    where = str(file)
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KubevisionError(f"{where}: MLTable file not found") from None
    except OSError as err:
        raise KubevisionError(f"{where}: cannot read the MLTable file: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(err, "problem", None) or str(err)
        raise KubevisionError("invalid MLTable file", [Problem(f"not valid YAML: {reason}", where, line)]) \
            from None
    problems: list[Problem] = []
    if not isinstance(doc, dict):
        problems.append(Problem("expected a mapping with `paths:` and `transformations:`", where))
        raise KubevisionError("invalid MLTable file", problems)
    files = _paths(doc.get("paths"), file.parent, where, problems)
    options = _transformations(doc.get("transformations"), where, problems)
    if problems:
        raise KubevisionError("invalid MLTable file", problems)
    return MLTableSpec(path=file, files=tuple(files), **options)


def _paths(value: Any, folder: Path, where: str, problems: list[Problem]) -> list[Path]:
    if not isinstance(value, list) or not value:
        problems.append(Problem("expected a non-empty list such as `- file: ./train.jsonl`", where,
                                field="paths"))
        return []
    files: list[Path] = []
    for i, entry in enumerate(value):
        at = f"paths[{i}]"
        keys = [k for k in ("file", "pattern", "folder") if isinstance(entry, dict) and k in entry]
        if len(keys) != 1 or not isinstance(entry[keys[0]], str):
            problems.append(Problem("expected one of `file: <path>`, `pattern: <glob>` or `folder: <path>`",
                                    where, field=at))
            continue
        kind, text = keys[0], entry[keys[0]]
        scheme = url_scheme(text)
        if scheme == "azureml":
            problems.append(Problem(f"{text} is an Azure ML datastore URI; {AZUREML_HINT}", where,
                                    field=f"{at}.{kind}"))
            continue
        if scheme not in ("", "file"):
            problems.append(Problem(f"{text}: MLTable paths must be local files (download the JSONL "
                                    "and point at it relative to the MLTable file)", where,
                                    field=f"{at}.{kind}"))
            continue
        try:
            local = file_url_path(text) if scheme == "file" else Path(text)
        except KubevisionError as err:
            problems.append(Problem(err.headline, where, field=f"{at}.{kind}"))
            continue
        full = local if local.is_absolute() else folder / local
        if kind == "file":
            files.append(full)
        elif kind == "pattern":
            matches = sorted(Path(p) for p in glob.glob(str(full), recursive=True))
            if not matches:
                problems.append(Problem(f"pattern {text!r} matches no file (resolved to {full})", where,
                                        field=f"{at}.pattern"))
            files.extend(matches)
        else:
            found = sorted(full.glob("*.jsonl")) if full.is_dir() else []
            if not found:
                problems.append(Problem(f"folder {text!r} holds no .jsonl file (resolved to {full})", where,
                                        field=f"{at}.folder"))
            files.extend(found)
    return files


def _transformations(value: Any, where: str, problems: list[Problem]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if value is None:
        return options
    if not isinstance(value, list):
        problems.append(Problem("expected a list of transformations", where, field="transformations"))
        return options
    for i, step in enumerate(value):
        at = f"transformations[{i}]"
        if isinstance(step, str):
            step = {step: None}
        if not isinstance(step, dict) or len(step) != 1:
            problems.append(Problem("expected one transformation per list item, e.g. "
                                    "`- read_json_lines: ...`", where, field=at))
            continue
        name, args = next(iter(step.items()))
        if name == "read_json_lines":
            options.update(_read_json_lines(args, where, f"{at}.read_json_lines", problems))
        elif name == "convert_column_types":
            _convert_column_types(args, where, f"{at}.convert_column_types", problems)
        else:
            problems.append(Problem(f"unknown transformation {name!r}; kubevision reads image MLTables with "
                                    f"{' and '.join(TRANSFORMATIONS)} only", where, field=at))
    return options


def _read_json_lines(args: Any, where: str, at: str, problems: list[Problem]) -> dict[str, Any]:
    if args is None:
        return {}
    if not isinstance(args, dict):
        problems.append(Problem("expected a mapping of options", where, field=at))
        return {}
    out: dict[str, Any] = {}
    for key in args:
        if key not in _READ_OPTIONS:
            problems.append(Problem(f"unknown option; allowed: {', '.join(_READ_OPTIONS)}", where,
                                    field=f"{at}.{key}"))
    encoding = args.get("encoding", "utf8")
    if not isinstance(encoding, str) or python_encoding(encoding) is None:
        problems.append(Problem(f"unknown encoding {encoding!r} (e.g. utf8, utf16, latin1, ascii)", where,
                                field=f"{at}.encoding"))
    else:
        out["encoding"] = encoding
    invalid = args.get("invalid_lines", "error")
    if invalid not in ("error", "drop"):
        problems.append(Problem(f"expected error or drop, found {invalid!r}", where,
                                field=f"{at}.invalid_lines"))
    else:
        out["invalid_lines"] = invalid
    include = args.get("include_path_column", False)
    if not isinstance(include, bool):
        problems.append(Problem(f"expected true or false, found {include!r}", where,
                                field=f"{at}.include_path_column"))
    else:
        out["include_path_column"] = include
    return out


def _convert_column_types(args: Any, where: str, at: str, problems: list[Problem]) -> None:
    if not isinstance(args, list):
        problems.append(Problem("expected a list of `{columns, column_type}`", where, field=at))
        return
    for j, conversion in enumerate(args):
        here = f"{at}[{j}]"
        if not isinstance(conversion, dict) or "columns" not in conversion or "column_type" not in conversion:
            problems.append(Problem("expected `columns: <name>` and `column_type: <type>`", where,
                                    field=here))
            continue
        columns = conversion["columns"]
        columns = [columns] if isinstance(columns, str) else columns
        column_type = conversion["column_type"]
        type_name = next(iter(column_type)) if isinstance(column_type, dict) and column_type else column_type
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            problems.append(Problem("expected a column name or a list of names", where,
                                    field=f"{here}.columns"))
            continue
        if type_name not in _COLUMN_TYPES:
            problems.append(Problem(f"unknown column_type {type_name!r}; allowed: {', '.join(_COLUMN_TYPES)}",
                                    where, field=f"{here}.column_type"))
        elif "image_url" in columns and type_name != "stream_info":
            problems.append(Problem(f"image_url must be converted to stream_info, not {type_name}", where,
                                    field=f"{here}.column_type"))
