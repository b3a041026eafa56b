"""The embedded runner's sweep: an Optuna study in a SQLite file that proposes and records trials.

Why Optuna only for storage and TPE: Azure's random and grid semantics (its ten distributions,
conditional sub-spaces, quantisation to multiples of q) are not Optuna's, so those suggestions are
computed by `kubevision.sweep.space` from a `random.Random` seeded with (study seed, trial number):
the same seed gives the same sequence, and a resumed run re-derives any trial's values. Optuna
contributes what it is good at: a transactional trial store that survives a crash (SQLite via
`RDBStorage`) and the TPE sampler for bayesian sweeps and AutoMode's local search.

Everything a trial is needs to be readable back from the study alone, so a resumed runner needs
nothing else: each trial carries the user attribute `kubevision.suggestion` (`params`: the Azure
values, camelCase, ready for `TrialConfig.sampled`; `source`; `subSpace`) and, once told,
`kubevision.outcome` (`state`, `value`). The study's `kubevision.study` attribute holds the job's
identity (`kubevision.sweep.identity`), the seed, and for AutoMode the portfolio (fixed at
creation, so a resume on other hardware keeps the batch sizes of the trials it repeats);
`kubevision.automodeSpace` holds, once the portfolio is used up, the local search space around the
best config (fixed once chosen, so TPE learns in one space).

The SQLite file runs in WAL mode with `synchronous=NORMAL`: every commit survives a crash of the
runner, and commits do not wait for the disk (a trial's ask costs a few commits; with the default
journal each was a disk flush). A power cut may lose the last commits; the runner then asks again
and, for random, grid and portfolio trials, gets the same number and values back. WAL needs a local
filesystem (not NFS), which the embedded runner's output folder is.

States: succeeded -> COMPLETE (FAIL when there is no value to rank), early_terminated -> PRUNED
with its value as the last intermediate value (TPE ranks pruned trials by it), failed and
timed_out -> FAIL. The study maximizes: every primary metric is "higher is better".

This is the only module of the package that imports optuna (the operator imports the package).
The runner calls ask/tell from one thread.
"""

from __future__ import annotations

import math
import random
import sqlite3
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState
from pydantic import TypeAdapter
from sqlalchemy.exc import SQLAlchemyError

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.models import AutoMLImageJob
from kubevision.api.search_space import (
    Choice,
    Distribution,
    LogUniform,
    QLogUniform,
    QUniform,
    RandInt,
    Uniform,
)
from kubevision.api.tasks import Task
from kubevision.sweep.automode import automode_search_space, portfolio
from kubevision.sweep.identity import identity_changes, spec_fingerprint, spec_identity
from kubevision.sweep.space import check_sweep, grid_point_at, grid_size, quantize, sample_sub_space, trainable_value

__all__ = ["STUDY_NAME", "Source", "Suggestion", "Sweep", "TrialRecord", "TrialStateName"]

optuna.logging.set_verbosity(optuna.logging.WARNING)

STUDY_NAME = "kubevision-sweep"
_VERSION = 1
_STUDY_ATTR = "kubevision.study"
_SPACE_ATTR = "kubevision.automodeSpace"
_SUGGESTION_ATTR = "kubevision.suggestion"
_OUTCOME_ATTR = "kubevision.outcome"
_SPACE_ADAPTER: TypeAdapter[dict[str, Distribution]] = TypeAdapter(dict[str, Distribution])

Source = Literal["individual", "random", "grid", "bayesian", "portfolio", "automode-tpe"]
TrialStateName = Literal["running", "succeeded", "failed", "early_terminated", "timed_out"]
_TOLD_STATES = ("succeeded", "failed", "early_terminated", "timed_out")
_RANKED_STATES = ("succeeded", "early_terminated")
_AUTOMODE_STARTUP_TRIALS = 3


@dataclass(frozen=True)
class Suggestion:
    """One trial to run: its number, the values to train with, where they came from."""

    number: int
    params: dict[str, Any]
    """camelCase hyperparameters with Azure-transformed values, ready for TrialConfig.sampled."""
    sub_space: int | None
    """Index of the searchSpace sub-space sampled (None for AutoMode and single trials)."""
    source: str
    """individual, random, grid, bayesian, portfolio or automode-tpe."""


@dataclass(frozen=True)
class TrialRecord:
    """A trial of the study as the runner reports it."""

    number: int
    params: dict[str, Any]
    state: str
    """running, succeeded, failed, early_terminated or timed_out."""
    value: float | None
    source: str


def _suggestion_record(suggestion: Suggestion) -> dict[str, Any]:
    return {"params": suggestion.params, "source": suggestion.source, "subSpace": suggestion.sub_space}


def _optuna_distribution(dist: Distribution) -> BaseDistribution:
    """The Optuna distribution TPE samples for an Azure one (q-variants are quantised afterwards)."""
    if isinstance(dist, Choice):
        return CategoricalDistribution(list(dist.values))
    if isinstance(dist, RandInt):
        return IntDistribution(0, dist.upper - 1)
    if isinstance(dist, Uniform | QUniform):
        return FloatDistribution(dist.min_value, dist.max_value)
    if isinstance(dist, LogUniform | QLogUniform):
        return FloatDistribution(math.exp(dist.min_value), math.exp(dist.max_value), log=True)
    raise KubevisionError(f"bayesian sampling cannot sample {dist.type} distributions")


def _azure_value(name: str, dist: Distribution, value: Any) -> Any:
    """The Azure value of what TPE sampled: quantised for q-variants, rounded for integer hyperparameters."""
    if isinstance(dist, QUniform | QLogUniform):
        value = quantize(float(value), dist.q)
    return trainable_value(name, value)[0]


def _connector(path: Path) -> Callable[[], sqlite3.Connection]:
    """SQLite connections in WAL mode with synchronous=NORMAL (see the module docstring)."""

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    return connect


class Sweep:
    """Proposes trials (`ask`) and records their outcome (`tell`) in a SQLite-backed Optuna study."""

    def __init__(self, job: AutoMLImageJob, storage: optuna.storages.RDBStorage, study: optuna.Study) -> None:
        """Use `Sweep.open`."""
        self.job = job
        self._storage = storage
        self._study = study
        self._study_id = storage.get_study_id_from_name(STUDY_NAME)
        attrs = study.user_attrs[_STUDY_ATTR]
        self.seed: int = int(attrs["seed"])
        self.mode: str = str(attrs["mode"])
        self.max_trials: int = job.spec.limits.max_trials
        sweep = job.spec.effective_sweep
        self.algorithm: str | None = sweep.sampling_algorithm if sweep is not None else None
        self.portfolio: list[dict[str, Any]] = list(attrs.get("portfolio") or [])
        self._spaces = list(job.spec.search_space or [])
        self._fixed = job.spec.training_parameters.model_dump(by_alias=True, exclude_none=True, mode="json")
        # Trials in the study. Counted here rather than queried: Optuna counts by loading every
        # trial, and the runner is the study's only writer.
        self._n_trials = len(study.get_trials(deepcopy=False))

    # ---- opening ----------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        job: AutoMLImageJob,
        storage: str | Path,
        *,
        seed: int | None = None,
        device_memory_bytes: int | None = None,
    ) -> Sweep:
        """Create the study in the SQLite file `storage`, or re-open it for the same job.

        A re-opened study must have been created for a job with the same identity (see
        `kubevision.sweep.identity`) and, when `seed` is given, the same seed; otherwise a
        KubevisionError names what changed. Without a seed a new study draws one (and records it).
        `device_memory_bytes` (per GPU; None = CPU) sizes AutoMode's batches at creation only.
        """
        check_sweep(job)
        path = Path(storage).expanduser().resolve()
        rdb: optuna.storages.RDBStorage | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            rdb = optuna.storages.RDBStorage(f"sqlite:///{path}", engine_kwargs={"creator": _connector(path)})
            existing = {s.study_name for s in rdb.get_all_studies()}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                if STUDY_NAME in existing:
                    study = optuna.load_study(study_name=STUDY_NAME, storage=rdb)
                    cls._check_same_job(study, job, seed, path)
                else:
                    study = optuna.create_study(storage=rdb, study_name=STUDY_NAME, direction="maximize")
                    cls._record_job(study, job, seed, device_memory_bytes)
            sweep = cls(job, rdb, study)
            sweep._study.sampler = sweep._sampler()
            return sweep
        except (OSError, SQLAlchemyError, optuna.exceptions.OptunaError) as err:
            if rdb is not None:
                rdb.engine.dispose()
            raise KubevisionError(f"cannot open the sweep storage {path}: {err}") from None
        except BaseException:
            if rdb is not None:
                rdb.engine.dispose()
            raise

    @staticmethod
    def _record_job(study: optuna.Study, job: AutoMLImageJob, seed: int | None, memory: int | None) -> None:
        if seed is None:
            seed = random.SystemRandom().randrange(2**31)
        spec = job.spec
        record: dict[str, Any] = {
            "version": _VERSION,
            "fingerprint": spec_fingerprint(job),
            "identity": spec_identity(job),
            "job": job.metadata.name,
            "seed": int(seed),
            "mode": "single" if spec.limits.max_trials == 1 else spec.mode,
        }
        if spec.is_automode:
            fixed = spec.training_parameters.model_dump(by_alias=True, exclude_none=True, mode="json")
            record["portfolio"] = portfolio(
                spec.task, spec.limits.max_trials, device_memory_bytes=memory, fixed=fixed
            )
        study.set_user_attr(_STUDY_ATTR, record)

    @staticmethod
    def _check_same_job(study: optuna.Study, job: AutoMLImageJob, seed: int | None, path: Path) -> None:
        attrs = study.user_attrs.get(_STUDY_ATTR)
        if not isinstance(attrs, dict) or attrs.get("version") != _VERSION:
            found = attrs.get("version") if isinstance(attrs, dict) else None
            raise KubevisionError(
                f"{path} holds a sweep written by another kubevision version "
                f"({found!r}, expected {_VERSION}); start in a new output folder"
            )
        if attrs.get("fingerprint") != spec_fingerprint(job):
            changes = identity_changes(attrs.get("identity") or {}, spec_identity(job))
            raise KubevisionError(
                f"cannot resume: the job changed since its sweep started in {path}; a resumed sweep must "
                "keep the task, data, trainingParameters, searchSpace, sweep, checkpoint and "
                "limits.maxTrials (restore them, or run in a new output folder)",
                [Problem(line) for line in changes or ["the job's identity changed"]],
            )
        if seed is not None and int(attrs["seed"]) != seed:
            raise KubevisionError(
                f"cannot resume with seed {seed}: the sweep in {path} was started with seed "
                f"{attrs['seed']} (omit the seed to keep it)"
            )

    def _sampler(self) -> optuna.samplers.BaseSampler:
        n = self._n_trials
        # A different seed per opening: a resumed TPE must not replay the first opening's draws.
        seed = (self.seed * 1_000_003 + n) % 2**32
        if self.mode == "automode":
            startup = _AUTOMODE_STARTUP_TRIALS
        elif self.algorithm == "bayesian":
            startup = min(10, max(3, self.max_trials // 5))
        else:
            return optuna.samplers.RandomSampler(seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)

    def close(self) -> None:
        """Release the database connections (the study stays on disk)."""
        self._storage.remove_session()
        self._storage.engine.dispose()

    def __enter__(self) -> Sweep:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- asking -----------------------------------------------------------------------------------

    def ask(self) -> Suggestion | None:
        """The next trial to run, recorded as running; None when the sweep has no trials left."""
        n = self._n_trials
        if n >= self.max_trials:
            return None
        if self.mode == "sweep" and self.algorithm == "grid" and n >= self._grid_total():
            return None
        derived = self._derived(n)
        if derived is not None:
            return self._create(derived)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            suggestion = self._ask_tpe()
        self._record(suggestion)
        self._n_trials = suggestion.number + 1
        return suggestion

    def _derived(self, number: int) -> Suggestion | None:
        """The suggestion of trial `number` when it follows from the number alone (all but TPE's)."""
        if self.mode == "single":
            return Suggestion(number, self._individual_params(), None, "individual")
        if self.mode == "automode":
            if number < len(self.portfolio):
                return Suggestion(number, dict(self.portfolio[number]), None, "portfolio")
            return None
        if self.algorithm == "grid":
            index, params = self._grid(number)
            return Suggestion(number, params, index, "grid")
        if self.algorithm == "random":
            index, params = self._random(number)
            return Suggestion(number, params, index, "random")
        return None

    def _create(self, suggestion: Suggestion) -> Suggestion:
        """Create the running trial with its suggestion in one transaction (nothing half-written)."""
        template = FrozenTrial(
            number=suggestion.number,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=datetime.now(),
            datetime_complete=None,
            params={},
            distributions={},
            user_attrs={_SUGGESTION_ATTR: _suggestion_record(suggestion)},
            system_attrs={},
            intermediate_values={},
            trial_id=0,
        )
        trial_id = self._storage.create_new_trial(self._study_id, template_trial=template)
        number = self._storage.get_trial_number_from_id(trial_id)
        self._n_trials = number + 1
        if number != suggestion.number:  # another writer created a trial in between: follow the real number
            derived = self._derived(number)
            suggestion = derived if derived is not None else suggestion
            self._record(suggestion)
        return suggestion

    def _ask_tpe(self) -> Suggestion:
        if self.mode == "automode":
            center, space = self._automode_space()
            trial = self._study.ask({k: _optuna_distribution(d) for k, d in space.items()})
            return Suggestion(trial.number, self._automode_params(center, space, trial.params), None, "automode-tpe")
        space = self._spaces[0]
        trial = self._study.ask({k: _optuna_distribution(d) for k, d in space.items()})
        return Suggestion(trial.number, self._bayesian_params(trial.params), 0, "bayesian")

    def _record(self, suggestion: Suggestion) -> None:
        record = _suggestion_record(suggestion)
        self._storage.set_trial_user_attr(self._trial_id(suggestion.number), _SUGGESTION_ATTR, record)

    def _individual_params(self) -> dict[str, Any]:
        model = self.job.spec.training_parameters.model_name
        return {"modelName": model} if model else {}

    def _random(self, number: int) -> tuple[int, dict[str, Any]]:
        rng = random.Random(f"kubevision:{self.seed}:{number}")
        index = rng.randrange(len(self._spaces))
        return index, sample_sub_space(self._spaces[index], rng)

    def _grid_total(self) -> int:
        return sum(grid_size(sub) for sub in self._spaces)

    def _grid(self, number: int) -> tuple[int, dict[str, Any]]:
        index = number
        for i, sub in enumerate(self._spaces):
            size = grid_size(sub)
            if index < size:
                point = grid_point_at(sub, index)
                return i, {name: trainable_value(name, value)[0] for name, value in point.items()}
            index -= size
        raise KubevisionError(f"grid trial {number} is past the end of the grid ({self._grid_total()} points)")

    def _bayesian_params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        space = self._spaces[0]
        return {name: _azure_value(name, dist, values[name]) for name, dist in space.items() if name in values}

    def _automode_space(self) -> tuple[dict[str, Any], dict[str, Distribution]]:
        """The (center, space) of AutoMode's local search: chosen at its first trial, then kept."""
        stored = self._study.user_attrs.get(_SPACE_ATTR)
        if stored is not None:
            return dict(stored["center"]), _SPACE_ADAPTER.validate_python(stored["space"])
        best = self.best()
        center = dict(best.params) if best is not None else dict(self.portfolio[0] if self.portfolio else {})
        space = automode_search_space(Task(self.job.spec.task), center, fixed=self._fixed)
        dumped = {k: d.model_dump(by_alias=True, mode="json") for k, d in space.items()}
        self._study.set_user_attr(_SPACE_ATTR, {"center": center, "space": dumped})
        return center, space

    @staticmethod
    def _automode_params(
        center: Mapping[str, Any], space: Mapping[str, Distribution], values: Mapping[str, Any]
    ) -> dict[str, Any]:
        params = dict(center)
        for name, dist in space.items():
            if name in values:
                params[name] = _azure_value(name, dist, values[name])
        return params

    # ---- telling and reading ----------------------------------------------------------------------

    def _trial_id(self, number: int) -> int:
        try:
            return self._storage.get_trial_id_from_study_id_trial_number(self._study_id, number)
        except KeyError:
            raise ValueError(f"there is no trial {number} in this sweep") from None

    def tell(self, number: int, value: float | None, state: str) -> None:
        """Record the outcome of trial `number`: state succeeded, failed, early_terminated or timed_out."""
        if state not in _TOLD_STATES:
            raise ValueError(f"state must be one of {', '.join(_TOLD_STATES)}, got {state!r}")
        trial_id = self._trial_id(number)
        frozen = self._storage.get_trial(trial_id)
        if frozen.state.is_finished():
            told = (frozen.user_attrs.get(_OUTCOME_ATTR) or {}).get("state")
            raise ValueError(f"trial {number} was already told ({told})")
        if value is not None and not math.isfinite(value):
            value = None
        self._storage.set_trial_user_attr(trial_id, _OUTCOME_ATTR, {"state": state, "value": value})
        if state == "succeeded" and value is not None:
            self._study.tell(number, value, state=TrialState.COMPLETE)
        elif state == "early_terminated":
            if value is not None:
                self._storage.set_trial_intermediate_value(trial_id, 0, value)
            self._study.tell(number, state=TrialState.PRUNED)
        else:
            self._study.tell(number, state=TrialState.FAIL)

    def _suggestion(self, frozen: FrozenTrial) -> Suggestion:
        record = frozen.user_attrs.get(_SUGGESTION_ATTR)
        if isinstance(record, dict):
            return Suggestion(frozen.number, dict(record["params"]), record.get("subSpace"), str(record["source"]))
        return self._rebuild(frozen)

    def _rebuild(self, frozen: FrozenTrial) -> Suggestion:
        """A trial whose suggestion was never written (the runner died inside `ask`): derive it again."""
        suggestion = self._derived(frozen.number)
        if suggestion is None and self.mode == "automode":
            center, space = self._automode_space()
            params = self._automode_params(center, space, frozen.params)
            suggestion = Suggestion(frozen.number, params, None, "automode-tpe")
        elif suggestion is None:
            suggestion = Suggestion(frozen.number, self._bayesian_params(frozen.params), 0, "bayesian")
        if not frozen.state.is_finished():
            self._record(suggestion)
        return suggestion

    def trials(self) -> list[TrialRecord]:
        """Every trial asked so far, in number order."""
        out = []
        for frozen in self._study.get_trials(deepcopy=False):
            suggestion = self._suggestion(frozen)
            outcome = frozen.user_attrs.get(_OUTCOME_ATTR) or {}
            running = frozen.state in (TrialState.RUNNING, TrialState.WAITING)
            state = "running" if running else str(outcome.get("state") or "failed")
            value = outcome.get("value")
            out.append(
                TrialRecord(
                    number=frozen.number,
                    params=suggestion.params,
                    state=state,
                    value=None if value is None else float(value),
                    source=suggestion.source,
                )
            )
        return out

    def pending(self) -> list[Suggestion]:
        """Trials asked but never told (the runner died): re-run them with the same number and params."""
        return [
            self._suggestion(frozen)
            for frozen in self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
        ]

    def best(self) -> TrialRecord | None:
        """The succeeded or early-terminated trial with the highest value (the lowest number on ties)."""
        ranked = [t for t in self.trials() if t.state in _RANKED_STATES and t.value is not None]
        if not ranked:
            return None
        return max(ranked, key=lambda t: (t.value, -t.number))
