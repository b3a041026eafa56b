"""Read one YAML document and remember the line of every key and list item.

Why: pydantic reports an error at a path (`spec.searchSpace[0].learningRate.minValue`), but a
person fixes a file by line. Composing the YAML into nodes first keeps each node's position, so
any error path can be mapped back to the line where that key (or its nearest parent) was written.

Two more things plain `yaml.safe_load` gets wrong for job files are handled here:
- `1e-4` is a *string* in YAML 1.1 (a float needs a dot); job files are full of learning rates
  written that way, so exponent floats are resolved as floats, as YAML 1.2 and JSON do;
- a duplicated key silently keeps the last value; it is reported instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from kubevision.api.errors import KubevisionError, Problem

__all__ = ["Lines", "YamlDocument", "line_of", "parse_yaml"]

Lines = dict[tuple[str | int, ...], int]


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-4` / `5E3` as floats."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


@dataclass
class YamlDocument:
    """The parsed data and the 1-based line of each key path."""

    data: Any
    lines: Lines = field(default_factory=dict)


def parse_yaml(text: str, source: str) -> YamlDocument:
    """Parse exactly one YAML document; KubevisionError (with line and column) on anything else."""
    loader = _Loader(text)
    try:
        if not loader.check_node():
            raise KubevisionError(
                f"{source} is empty", [Problem("expected a YAML mapping (a manifest)", file=source)]
            )
        node = loader.get_node()
        assert node is not None  # check_node() said a document follows
        if loader.check_node():
            second = loader.get_node()
            line = second.start_mark.line + 1 if second is not None else None
            raise KubevisionError(
                f"{source} holds more than one YAML document",
                [Problem("put one resource per file (found a second document)", file=source, line=line)],
            )
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        column = f" (column {mark.column + 1})" if mark is not None else ""
        what = ": ".join(x for x in (err.context, err.problem) if x) or "invalid YAML"
        raise KubevisionError(
            f"{source} is not valid YAML", [Problem(f"{what}{column}", file=source, line=line)]
        ) from None
    except yaml.YAMLError as err:
        raise KubevisionError(f"{source} is not valid YAML", [Problem(str(err), file=source)]) from None
    finally:
        loader.dispose()
    lines: Lines = {(): node.start_mark.line + 1}
    duplicates: list[Problem] = []
    _walk(node, (), lines, duplicates, source)
    if duplicates:
        raise KubevisionError(f"{source} has duplicate keys", duplicates)
    return YamlDocument(data, lines)


def _walk(
    node: yaml.Node, path: tuple[str | int, ...], lines: Lines, duplicates: list[Problem], source: str
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen and key != "<<":
                duplicates.append(
                    Problem(
                        f"duplicate key '{key}' (YAML would silently keep only the last one)",
                        file=source,
                        line=key_node.start_mark.line + 1,
                        field=_dotted((*path, key)),
                    )
                )
            seen.add(key)
            lines.setdefault((*path, key), key_node.start_mark.line + 1)
            _walk(value_node, (*path, key), lines, duplicates, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _walk(item, (*path, i), lines, duplicates, source)


def _dotted(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))


def line_of(lines: Lines, path: tuple[str | int, ...]) -> int | None:
    """Line of `path`, or of its nearest ancestor written in the file (missing keys point at the parent)."""
    for end in range(len(path), -1, -1):
        line = lines.get(tuple(path[:end]))
        if line is not None:
            return line
    return None
