"""Suggestions ("did you mean ...?") for misspelt keys and values.

Why: the most common mistake in a hand-written job is a key in the wrong case or spelling
(`learningrate`, `learning_rate`, `lr_scheduler`, `maxTrial`). Naming the intended key turns a
head-scratching "unknown field" into a one-second fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

__all__ = ["closest", "did_you_mean"]


def _squash(word: str) -> str:
    return word.replace("_", "").replace("-", "").lower()


def closest(word: str, candidates: Iterable[str], aliases: Mapping[str, str] | None = None) -> str | None:
    """The candidate the user most likely meant, or None if nothing is close.

    Tries, in order: the same word ignoring case and `_`/`-` (`learning_rate` -> `learningRate`),
    a known alias (Azure SDK or runtime names such as `lr_scheduler` -> `learningRateScheduler`),
    the only candidate the word abbreviates (`max` -> `maxValue`), then a fuzzy match.
    """
    pool = [c for c in candidates if c != word]
    if not pool:
        return None
    squashed = {_squash(c): c for c in pool}
    if _squash(word) in squashed:
        return squashed[_squash(word)]
    if aliases and aliases.get(word) in pool:
        return aliases[word]
    prefixed = [c for c in pool if len(word) >= 3 and c.lower().startswith(word.lower())]
    if len(prefixed) == 1:
        return prefixed[0]
    match = difflib.get_close_matches(word.lower(), [c.lower() for c in pool], n=1, cutoff=0.6)
    if match:
        return next(c for c in pool if c.lower() == match[0])
    return None


def did_you_mean(word: str, candidates: Iterable[str], aliases: Mapping[str, str] | None = None) -> str:
    """`"; did you mean 'x'?"` or an empty string."""
    guess = closest(word, candidates, aliases)
    return f"; did you mean '{guess}'?" if guess else ""
