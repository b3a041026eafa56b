"""What the user sees while a run works: a live rich table on a terminal, one plain line per event otherwise.

Why two renderers: on a terminal people want one screen that updates (trials running, done,
failed, stopped, best so far, elapsed, estimated time left); in CI logs, `| tee` and tests a
redrawn screen is noise, and a line per event (trial started, epoch reported, trial ended) is
what can be read and grepped afterwards. The runner builds a `Snapshot` each tick and reports
events; the renderer decides what to draw. No renderer ever prints `name=value` pairs of metrics:
trial logs are for Katib's collector, this output is for people.

The estimate of the time left (`estimate_remaining`) assumes trials still to run take as long as
the finished ones did on average, shares the work among the concurrent slots, and never exceeds
the time the job's timeout leaves; it is None until a first trial has finished.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Protocol

from kubevision.local.leaderboard import format_duration, format_params
from kubevision.local.outcomes import TrialOutcome

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = [
    "PlainProgress",
    "Progress",
    "RichProgress",
    "RunningTrial",
    "Snapshot",
    "estimate_remaining",
    "make_progress",
]


@dataclass(frozen=True)
class RunningTrial:
    number: int
    params: dict[str, object]
    epoch: int
    epochs_planned: int | None
    value: float | None
    elapsed_s: float
    stopping: bool = False


@dataclass(frozen=True)
class Snapshot:
    job: str
    metric: str
    planned: int
    concurrency: int
    elapsed_s: float
    eta_s: float | None
    running: Sequence[RunningTrial] = ()
    finished: Sequence[TrialOutcome] = ()
    best: TrialOutcome | None = None
    note: str = ""

    def count(self, *states: str) -> int:
        return sum(1 for o in self.finished if o.state in states)


def estimate_remaining(
    *, durations: Sequence[float], running_elapsed: Sequence[float], to_start: int, concurrency: int,
    time_left: float | None,
) -> float | None:
    """Seconds until the run ends (see the module docstring); None while there is no finished trial."""
    if not running_elapsed and to_start <= 0:
        return 0.0
    if not durations:
        return None
    average = sum(durations) / len(durations)
    work = sum(max(average - e, 0.0) for e in running_elapsed) + max(0, to_start) * average
    eta = work / max(1, concurrency)
    return min(eta, max(0.0, time_left)) if time_left is not None else eta


class Progress(Protocol):
    def event(self, text: str) -> None: ...
    def update(self, snapshot: Snapshot) -> None: ...
    def close(self) -> None: ...


@dataclass
class PlainProgress:
    """One line per event, prefixed with the run's elapsed time."""

    stream: IO[str] = field(default_factory=lambda: sys.stdout)
    started: float = field(default_factory=time.monotonic)

    def event(self, text: str) -> None:
        stamp = format_clock(time.monotonic() - self.started)
        for line in text.splitlines() or [""]:
            self.stream.write(f"[{stamp}] {line}\n")
        self.stream.flush()

    def update(self, snapshot: Snapshot) -> None:
        return None

    def close(self) -> None:
        self.stream.flush()


def format_clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class RichProgress:
    """A live table (rich) redrawn a few times a second; events print above it."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=stream or sys.stdout)
        self._live = Live(console=self.console, refresh_per_second=4, transient=False)
        self._live.start()
        self.started = time.monotonic()

    def event(self, text: str) -> None:
        from rich.text import Text

        self.console.print(Text(f"[{format_clock(time.monotonic() - self.started)}] {text}"))

    def update(self, snapshot: Snapshot) -> None:
        self._live.update(render(snapshot))

    def close(self) -> None:
        self._live.stop()


def render(snapshot: Snapshot) -> RenderableType:
    """The rich renderable of a snapshot: a header line and one row per running and finished trial."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    s = snapshot
    stopped = s.count("early_terminated", "timed_out", "interrupted")
    eta = format_duration(s.eta_s) if s.eta_s is not None else "?"
    best = (f"{s.metric} {s.best.value:.4f} (trial {s.best.number})"
            if s.best is not None and s.best.value is not None else "-")
    header = Text.assemble(
        (f"{s.job}", "bold"),
        f"  running {len(s.running)}  done {s.count('succeeded')}  failed {s.count('failed')}  stopped {stopped}"
        f"  of {s.planned}  |  best {best}  |  elapsed {format_duration(s.elapsed_s)}  left ~{eta}",
    )
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("trial", "state", s.metric, "epochs", "time", "parameters"):
        table.add_column(column, no_wrap=column != "parameters", overflow="ellipsis")
    for r in s.running:
        epochs = f"{r.epoch}/{r.epochs_planned}" if r.epochs_planned else str(r.epoch)
        table.add_row(str(r.number), "stopping" if r.stopping else "running",
                      "" if r.value is None else f"{r.value:.4f}", epochs, format_duration(r.elapsed_s),
                      format_params(dict(r.params)))
    recent = sorted(s.finished, key=lambda o: o.number)[-12:]
    for o in recent:
        epochs = f"{o.epochs_run}/{o.epochs_planned}" if o.epochs_run is not None else ""
        table.add_row(str(o.number), o.state, "" if o.value is None else f"{o.value:.4f}", epochs,
                      format_duration(o.duration_s), format_params(o.params))
    parts: list[RenderableType] = [header, table]
    if s.note:
        parts.append(Text(s.note, style="yellow"))
    return Group(*parts)


def make_progress(stream: IO[str] | None = None, *, live: bool | None = None) -> Progress:
    """RichProgress when `stream` (stdout) is a terminal (or `live`), else PlainProgress."""
    out = stream or sys.stdout
    if live is None:
        live = bool(getattr(out, "isatty", lambda: False)())
    return RichProgress(out) if live else PlainProgress(out)
