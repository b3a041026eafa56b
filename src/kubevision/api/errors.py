"""The one error type a user ever sees.

Why a type of our own: the first contact with kubevision is usually a mistake in a YAML or a JSONL
file, and the top complaint about the product we reproduce is an opaque "internal error" long after
submit. Every layer (api, data, trainer, runner, operator) raises `KubevisionError` for anything the
user can fix; it carries a list of `Problem`s, each naming the place (file, line, field) and saying
what was found and what is allowed. The CLI prints them and exits 1; it never prints a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["KubevisionError", "Problem"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input.

    `file` and `line` are optional because some input has no file (a CR from the API server) and
    some problems are about a whole file. `field` is the dotted path in camelCase as the user wrote
    it (`spec.limits.maxTrials`, `label[2].topX`).
    """

    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.field:
            where = f"{where}: {self.field}" if where else self.field
        return f"{where}: {self.message}" if where else self.message


class KubevisionError(Exception):
    """An error in the user's input or environment that the user can fix.

    `str(err)` is the full human message: a headline plus one line per problem.
    """

    def __init__(self, headline: str, problems: Iterable[Problem] = ()) -> None:
        self.headline = headline
        self.problems: list[Problem] = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        if not self.problems:
            return self.headline
        lines = [self.headline] + [f"  - {p}" for p in self.problems]
        return "\n".join(lines)
