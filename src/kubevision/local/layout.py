"""Where everything of an embedded run lives inside its output folder.

Why one module for the names: the runner writes these paths, `--resume` reads them back, and the
tests, the README and whoever serves `best/` name them. One frozen dataclass keeps them from
drifting apart. The layout:

    <run>/run.json                 the run's own record: job, phase, counts, best trial (also the
                                   marker that says "this folder is a kubevision run of job X")
    <run>/sweep.db                 the Optuna study (SQLite): every trial asked and told
    <run>/early-termination.json   the decision service's histories (so --resume keeps them)
    <run>/trials/<n>/              trial n: trial.json (its config), trial.log (stdout+stderr of
                                   the torchrun subprocess), outcome.json (the runner's record) and
                                   the trainer's outputs (metrics.jsonl, summary.json,
                                   mlflow-model/, checkpoints/)
    <run>/best/                    a copy of the best trial's mlflow-model/ (a copy, not a link,
                                   so the folder can be moved or archived on its own)
    <run>/leaderboard.csv, leaderboard.md, report.html
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunLayout"]


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run's output folder."""

    root: Path

    @property
    def marker(self) -> Path:
        return self.root / "run.json"

    @property
    def study(self) -> Path:
        return self.root / "sweep.db"

    @property
    def decisions(self) -> Path:
        return self.root / "early-termination.json"

    @property
    def trials(self) -> Path:
        return self.root / "trials"

    @property
    def best(self) -> Path:
        return self.root / "best"

    @property
    def leaderboard_csv(self) -> Path:
        return self.root / "leaderboard.csv"

    @property
    def leaderboard_md(self) -> Path:
        return self.root / "leaderboard.md"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    def trial_dir(self, number: int) -> Path:
        return self.trials / str(number)

    def trial_config(self, number: int) -> Path:
        return self.trial_dir(number) / "trial.json"

    def trial_log(self, number: int) -> Path:
        return self.trial_dir(number) / "trial.log"

    def trial_outcome(self, number: int) -> Path:
        return self.trial_dir(number) / "outcome.json"

    def trial_numbers(self) -> list[int]:
        """Numbers of the trial folders on disk, ascending."""
        if not self.trials.is_dir():
            return []
        return sorted(int(p.name) for p in self.trials.iterdir() if p.is_dir() and p.name.isdigit())
