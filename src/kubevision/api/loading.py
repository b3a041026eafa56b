"""Load a manifest (YAML file or dict) into an AutoMLImageJob or InferenceEndpoint.

Why a loader and not `Model.model_validate(yaml.safe_load(...))`: every way a file can be wrong
(unreadable, not YAML, two documents, a list instead of a mapping, the wrong kind, a hundred
field errors) must end as one `KubevisionError` listing each problem with file, line and field,
never as a traceback. `parse_manifest` does the same for CRs that come from the API server or an
admission review, where there is no file and no line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kubevision.api.base import GROUP_VERSION
from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.models import AutoMLImageJob, InferenceEndpoint
from kubevision.api.problems import problems_from_validation_error
from kubevision.api.spelling import did_you_mean
from kubevision.api.values import show
from kubevision.api.yaml_lines import Lines, line_of, parse_yaml

__all__ = ["KINDS", "Resource", "load_job", "load_manifest", "parse_manifest"]

Resource = AutoMLImageJob | InferenceEndpoint

KINDS: dict[str, type[AutoMLImageJob] | type[InferenceEndpoint]] = {
    "AutoMLImageJob": AutoMLImageJob,
    "InferenceEndpoint": InferenceEndpoint,
}


def load_manifest(path: str | os.PathLike[str]) -> Resource:
    """Read and validate one manifest file; KubevisionError with every problem otherwise."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KubevisionError(f"{source}: no such file", [Problem("file not found", file=source)]) from None
    except IsADirectoryError:
        raise KubevisionError(
            f"{source} is a folder", [Problem("expected a YAML file", file=source)]
        ) from None
    except UnicodeDecodeError as err:
        raise KubevisionError(
            f"{source} is not UTF-8 text", [Problem(f"byte {err.start} cannot be decoded", file=source)]
        ) from None
    except OSError as err:
        raise KubevisionError(
            f"cannot read {source}", [Problem(err.strerror or str(err), file=source)]
        ) from None
    document = parse_yaml(text, source)
    return _validate(document.data, source, document.lines)


def load_job(path: str | os.PathLike[str]) -> AutoMLImageJob:
    """Like `load_manifest`, but the file must hold an AutoMLImageJob."""
    resource = load_manifest(path)
    if not isinstance(resource, AutoMLImageJob):
        raise KubevisionError(
            f"{path} holds an {resource.kind}, not an AutoMLImageJob",
            [Problem(f"got {resource.kind}; expected AutoMLImageJob", file=str(path), field="kind")],
        )
    return resource


def parse_manifest(obj: Mapping[str, Any], *, source: str | None = None) -> Resource:
    """Validate a manifest already parsed (API server object, admission request); no line numbers."""
    return _validate(obj, source, None)


def _validate(data: Any, source: str | None, lines: Lines | None) -> Resource:
    name = source or "the manifest"
    top = line_of(lines, ()) if lines is not None else None
    if not isinstance(data, Mapping):
        what = "a list" if isinstance(data, list) else f"{show(data)}"
        raise KubevisionError(
            f"{name} is not a manifest",
            [
                Problem(
                    f"got {what}; expected a mapping with apiVersion, kind, metadata and spec",
                    file=source,
                    line=top,
                )
            ],
        )
    problems = _kind_problems(data, source, lines)
    if problems:
        raise KubevisionError(f"{name} is not a kubevision manifest", problems)
    kind = str(data["kind"])
    model = KINDS[kind]
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = problems_from_validation_error(err, model, source=source, lines=lines)
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        raise KubevisionError(f"{name} is not a valid {kind} ({count})", problems) from None


def _kind_problems(data: Mapping[str, Any], source: str | None, lines: Lines | None) -> list[Problem]:
    """apiVersion and kind decide which model applies, so they are checked before anything else."""
    problems: list[Problem] = []

    def add(key: str, message: str) -> None:
        line = line_of(lines, (key,)) if lines is not None else None
        problems.append(Problem(message, file=source, line=line, field=key))

    kinds = ", ".join(KINDS)
    kind = data.get("kind")
    if kind is None:
        add("kind", f"required field 'kind' is missing; expected one of {kinds}")
    elif not isinstance(kind, str) or kind not in KINDS:
        hint = did_you_mean(kind, KINDS) if isinstance(kind, str) else ""
        add("kind", f"unknown kind {show(kind)}; expected one of {kinds}{hint}")
    api_version = data.get("apiVersion")
    if api_version is None:
        add("apiVersion", f"required field 'apiVersion' is missing; expected {GROUP_VERSION}")
    elif api_version != GROUP_VERSION:
        add("apiVersion", f"got {show(api_version)}; expected {GROUP_VERSION}")
    return problems
