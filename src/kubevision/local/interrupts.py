"""Ctrl-C and SIGTERM for the runner: the first asks for a clean stop, the second for an immediate one.

Why not KeyboardInterrupt: an exception can surface anywhere (inside a SQLite commit, half way
through writing trial.json) and unwinds past the code that must stop the trials and record them.
A flag the scheduling loop checks every tick stops things in order: no new trials, SIGTERM to the
running ones (which save and export), wait, record, write the results, print how to resume. A
second Ctrl-C means "now": the trials are killed (they still resume from their last checkpoint).
The handlers are only installed from the main thread (Python's rule) and restored on exit.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

__all__ = ["StopRequests"]


class StopRequests:
    """Counts SIGINT/SIGTERM while active (`with StopRequests() as stops: ... stops.count`)."""

    def __init__(self) -> None:
        self.count = 0
        self.last_signal = ""
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        self.last_signal = signal.Signals(signum).name

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
