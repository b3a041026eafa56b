"""The resumable training state under `outputs/checkpoints/`: written so that a preempted trial never loses it.

Why this much care for a `torch.save`: trials run on preemptible nodes and a PyTorchJob pod can be
killed at any instant, including in the middle of writing a checkpoint. A half-written `last.pt`
that replaced a good one would turn a preemption into a lost trial. So:

- Writes are atomic: the state goes to a temporary file in the same folder, is flushed and fsync'd,
  and only then renamed over `last.pt` (`os.replace`); the folder is fsync'd after the rename. A
  file is never written in place, so a reader sees either the old or the new state, never a mix.
- The state before it is kept as `previous.pt` (a hard link where the filesystem allows, so keeping
  it costs no write, only the disk space of one more checkpoint). If `last.pt` turns out unreadable
  (a filesystem without atomic rename, a storage fault), resuming falls back to `previous.pt`, then
  to the newest `epoch_<n>.pt`, with a warning, and only fails, saying how to start over, when none
  is readable.
- `epoch_<n>.pt` (the `checkpointFrequency` copies) are links to the same bytes as `last.pt`.
- A failed write (disk full, permission) raises `KubevisionError` naming the path and the OS reason
  and leaves the previous checkpoint untouched; the temporary file is removed.
- The file holds only tensors and plain Python values, so it loads with `torch.load(weights_only=True)`
  (no code runs when a checkpoint is read). `save_training_state` converts the usual strays (numpy
  arrays and scalars, enums, paths) and rejects anything else when saving, with the key path in the
  message: a state that cannot be loaded must fail at the first save, not at resume after a preemption.

Files in `checkpoints/`: `last.pt` (resume state), `previous.pt` (the one before), `epoch_<n>.pt`,
`best.pt` (the best epoch's model weights, which the export uses: reference 7 exports the best
epoch, not the last) and `finished.json` (`mark_finished`: the trial ended, a restart must not
train it again; a small file instead of rewriting a multi-gigabyte last.pt). `atomic_write_text`
gives summary.json and friends the same never-half-written guarantee.

This is the trainer's own resume state; the exported `model.pt` (reference 9.2) is export.py's.
The state dict (keys chosen by the train loop): model, optimizer, scheduler, scaler, epoch,
best_score, best_epoch, early_stopping, rng, config, classes, status. It is loaded onto the CPU;
`optimizer.load_state_dict` moves its tensors to the parameters' device.

RNG state (`capture_rng_state`): Python's `random`, numpy's global generator, torch's CPU generator
and, when CUDA is in use, the current CUDA device's generator (only the current one: reading all
devices would create a CUDA context on every GPU of the node from every rank).
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import random
import re
import shutil
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path, PurePath
from typing import Any, BinaryIO

import numpy as np
import torch

from kubevision.api.errors import KubevisionError, Problem
from kubevision.data.atomic import atomic_write_text as _atomic_write_text

__all__ = [
    "CHECKPOINT_DIR",
    "atomic_write_text",
    "capture_rng_state",
    "check_writable",
    "checkpoint_dir",
    "load_best_weights",
    "load_training_state",
    "mark_finished",
    "restore_rng_state",
    "save_best_weights",
    "save_training_state",
]

_logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
_LAST = "last.pt"
_PREVIOUS = "previous.pt"
_BEST = "best.pt"
_FINISHED = "finished.json"
_EPOCH = re.compile(r"^epoch_(\d+)\.pt$")
_TMP_SUFFIX = ".tmp"


def checkpoint_dir(out_dir: Path) -> Path:
    """Where the training state of an output folder lives."""
    return Path(out_dir) / CHECKPOINT_DIR


def _plain(value: Any, where: str) -> Any:
    """`value` with numpy/enum/path leaves converted; the same object when nothing needed converting."""
    if isinstance(value, torch.Tensor | torch.device | torch.dtype | torch.Size):
        return value
    if isinstance(value, enum.Enum):
        return _plain(value.value, where)
    if isinstance(value, np.generic):  # before float: np.float64 is a float but pickles as numpy
        return value.item()
    if value is None or isinstance(value, bool | int | float | str | bytes | complex):
        return value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value))
    if isinstance(value, Mapping):
        items = [(_plain(k, f"{where} key {k!r}"), _plain(v, f"{where}[{k!r}]")) for k, v in value.items()]
        if type(value) in (dict, OrderedDict) and all(
            k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, value.items(), strict=True)
        ):
            return value
        return OrderedDict(items) if isinstance(value, OrderedDict) else dict(items)
    if isinstance(value, list | tuple | set):
        converted = [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if type(value) in (list, tuple, set) and all(a is b for a, b in zip(converted, value, strict=True)):
            return value
        return type(value)(converted) if type(value) in (list, tuple, set) else list(converted)
    raise TypeError(
        f"{where}: a {type(value).__module__}.{type(value).__qualname__} cannot be stored in a training "
        "checkpoint (it must load with weights_only=True); store tensors, numbers, strings, lists or dicts"
    )


def _fsync_dir(path: Path) -> None:
    """Persist a rename: fsync the folder (not supported everywhere; best effort there)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _replace_with_link(source: Path, target: Path) -> bool:
    """Make `target` name the same file as `source`, atomically; False where hard links are not supported."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}{_TMP_SUFFIX}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        return False
    os.replace(tmp, target)
    return True


def _remove_stale_temporaries(folder: Path) -> None:
    """Temporary files left by a writer that was killed mid-write (they can be as large as a checkpoint)."""
    for leftover in folder.glob(f".*{_TMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            leftover.unlink()


def _os_error_in(err: BaseException) -> OSError | None:
    """The first OSError among `err`'s causes and contexts, if any."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _write_atomically(path: Path, write: Callable[[BinaryIO], object], *, keep_previous: Path | None = None) -> None:
    """`write` into a temporary file beside `path`, fsync, then rename over `path` (OSError on failure).

    With `keep_previous`, the file `path` named before becomes `keep_previous`. The temporary file is
    removed on failure; `path` is then untouched.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}{_TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            try:
                write(f)
            except RuntimeError as err:
                # torch.save's zip writer turns a failed write (disk full) into a RuntimeError while
                # closing; the OSError that says why is in the chain.
                cause = _os_error_in(err)
                if cause is None:
                    raise
                raise cause from err
            f.flush()
            os.fsync(f.fileno())
        if keep_previous is not None and path.exists() and not _replace_with_link(path, keep_previous):
            os.replace(path, keep_previous)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    _fsync_dir(path.parent)


def save_training_state(out_dir: Path, state: Mapping[str, Any], *, epoch_copy: bool = False) -> Path:
    """Write `state` to `out_dir/checkpoints/last.pt` atomically; returns that path.

    The file it replaces is kept as `previous.pt`. `epoch_copy` also keeps this state as
    `epoch_<state["epoch"]>.pt` (the train loop asks every `checkpointFrequency` epochs). Saving
    means the trial is running again, so a `mark_finished` mark is removed. Only the main process
    (rank 0) may call this.
    """
    safe = _plain(state, "state")
    folder = checkpoint_dir(out_dir)
    last = folder / _LAST
    target = last
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(folder)
        _write_atomically(last, lambda f: torch.save(safe, f), keep_previous=folder / _PREVIOUS)
        (folder / _FINISHED).unlink(missing_ok=True)
        if epoch_copy:
            target = folder / f"epoch_{int(state['epoch'])}.pt"
            if not _replace_with_link(last, target):
                with open(last, "rb") as source:
                    _write_atomically(target, lambda f: shutil.copyfileobj(source, f))
        _fsync_dir(folder)
    except OSError as err:
        raise KubevisionError(f"cannot write checkpoint to {target}: {err.strerror or err}") from err
    return last


def save_best_weights(out_dir: Path, model_state: Mapping[str, Any]) -> Path:
    """Write the best epoch's model `state_dict` to `out_dir/checkpoints/best.pt` atomically; returns the path.

    Kept apart from `last.pt` because the exported model uses the best weights, not the last
    (reference 7), and the best epoch may be long before a resume point.
    """
    safe = _plain(model_state, "model state")
    folder = checkpoint_dir(out_dir)
    path = folder / _BEST
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, lambda f: torch.save(safe, f))
    except OSError as err:
        raise KubevisionError(f"cannot write checkpoint to {path}: {err.strerror or err}") from err
    return path


def load_best_weights(out_dir: Path) -> dict[str, Any] | None:
    """The weights `save_best_weights` wrote (on the CPU), None when there are none.

    An unreadable best.pt is an error rather than a silent fallback to the last weights, which
    would export a model that does not match the reported best metrics.
    """
    path = checkpoint_dir(out_dir) / _BEST
    if not path.is_file():
        return None
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to read means "not usable"; the reason goes to the user
        reason = f"{type(err).__name__}: {err}".splitlines()[0]
        raise KubevisionError(
            f"the best-epoch weights {path} are unreadable ({reason}); delete the file to export the last "
            "epoch's weights instead, or start the trial over in a new output folder"
        ) from None
    if not isinstance(weights, dict):
        raise KubevisionError(f"{path} does not hold model weights (a {type(weights).__name__})")
    return weights


def mark_finished(out_dir: Path, status: str) -> None:
    """Record that the trial ended (`completed`, `early_stopped` ...) so a restart does not train it again.

    A small file beside the checkpoints rather than a rewrite of last.pt (which can be gigabytes);
    `load_training_state` reports it as the state's `status`.
    """
    path = checkpoint_dir(out_dir) / _FINISHED
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, lambda f: f.write(json.dumps({"status": status}).encode()))
    except OSError as err:
        raise KubevisionError(f"cannot write {path}: {err.strerror or err}") from err


def _finished_status(folder: Path) -> str | None:
    try:
        status = json.loads((folder / _FINISHED).read_text())["status"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(status)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small text file (summary.json ...) so readers never see half of it."""
    path = Path(path)
    try:
        _atomic_write_text(path, text)
    except OSError as err:
        raise KubevisionError(f"cannot write {path}: {err.strerror or err}") from err


def _candidates(folder: Path) -> list[Path]:
    """Files to resume from, best first: last, previous, then epoch copies newest first."""
    epochs: list[tuple[int, Path]] = []
    if folder.is_dir():
        for path in folder.iterdir():
            match = _EPOCH.match(path.name)
            if match:
                epochs.append((int(match.group(1)), path))
    ordered = [folder / _LAST, folder / _PREVIOUS] + [p for _, p in sorted(epochs, reverse=True)]
    return [p for p in ordered if p.is_file()]


def load_training_state(out_dir: Path) -> dict[str, Any] | None:
    """The newest readable training state of `out_dir`, on the CPU; None when no checkpoint was written.

    An unreadable file is skipped with a warning (the next candidate is older); when every file is
    unreadable, `KubevisionError` says which and how to start the trial over.
    """
    folder = checkpoint_dir(out_dir)
    failures: list[Problem] = []
    for path in _candidates(folder):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # any failure to read means "not usable"; the reason goes to the user
            reason = f"{type(err).__name__}: {err}".splitlines()[0]
            _logger.warning("checkpoint %s is unreadable (%s); trying an older one", path, reason)
            failures.append(Problem(f"unreadable: {reason}", file=str(path)))
            continue
        if not isinstance(state, dict):
            failures.append(Problem(f"not a training state (a {type(state).__name__})", file=str(path)))
            continue
        if failures:
            _logger.warning("resuming from %s (epoch %s)", path, state.get("epoch"))
        finished = _finished_status(folder)
        if finished is not None:
            state["status"] = finished
        return state
    if not failures:
        return None
    raise KubevisionError(
        f"cannot resume the trial: no readable checkpoint in {folder}. To start this trial over, delete "
        f"{folder} (or use a new output folder)",
        failures,
    )


def check_writable(out_dir: Path) -> None:
    """Create `out_dir` and prove a file can be written there, before any training time is spent."""
    folder = Path(out_dir)
    probe = folder / f".kubevision-write-probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"kubevision")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as err:
        with contextlib.suppress(OSError):
            probe.unlink()
        raise KubevisionError(f"cannot write to the output folder {folder}: {err.strerror or err}") from err


def capture_rng_state() -> dict[str, Any]:
    """Every random generator the training uses, as tensors and plain values (weights_only-safe)."""
    version, internal, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Put back what `capture_rng_state` returned (the CUDA part only where CUDA is in use)."""
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(x) for x in py["state"]), py["gauss_next"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy() if isinstance(npy["keys"], torch.Tensor) else np.asarray(npy["keys"])
    np.random.set_state(
        (npy["kind"], keys.astype(np.uint32), int(npy["pos"]), int(npy["has_gauss"]), float(npy["cached_gaussian"]))
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())
