"""The resumable training state under `outputs/checkpoints/`: written so that a preempted trial never loses it.

Why this much care for a `torch.save`: trials run on preemptible nodes and a PyTorchJob pod can be
killed at any instant, including in the middle of writing a checkpoint. A half-written `last.pt`
that replaced a good one would turn a preemption into a lost trial. So:

- Writes are atomic: the state goes to a temporary file in the same folder, is flushed and fsync'd,
  and only then renamed over `last.pt` (`os.replace`); the folder is fsync'd after the rename. A
  file is never written in place, so a reader sees either the old or the new state, never a mix.
- The state before it is kept as `previous.pt` (a hard link where the filesystem allows, so keeping
  it costs no write). If `last.pt` turns out unreadable (a filesystem without atomic rename, a
  storage fault), resuming falls back to `previous.pt`, then to the newest `epoch_<n>.pt`, with a
  warning, and only fails, saying how to start over, when none is readable.
- `epoch_<n>.pt` (the `checkpointFrequency` copies) are links to the same bytes as `last.pt`.
- A failed write (disk full, permission) raises `KubevisionError` naming the path and the OS reason
  and leaves the previous checkpoint untouched; the temporary file is removed.
- The file holds only tensors and plain Python values, so it loads with `torch.load(weights_only=True)`
  (no code runs when a checkpoint is read). `save_training_state` converts the usual strays (numpy
  arrays and scalars, enums, paths) and rejects anything else when saving, with the key path in the
  message: a state that cannot be loaded must fail at the first save, not at resume after a preemption.

This is the trainer's own resume state; the exported `model.pt` (reference 9.2) is export.py's.
The state dict (keys chosen by the train loop): model, optimizer, scheduler, scaler, epoch,
best_score, best_epoch, early_stopping, rng, config, classes. It is loaded onto the CPU;
`optimizer.load_state_dict` moves its tensors to the parameters' device.

RNG state (`capture_rng_state`): Python's `random`, numpy's global generator, torch's CPU generator
and, when CUDA is in use, the current CUDA device's generator (only the current one: reading all
devices would create a CUDA context on every GPU of the node from every rank).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import random
import re
import shutil
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch

from kubevision.api.errors import KubevisionError, Problem

__all__ = [
    "CHECKPOINT_DIR",
    "capture_rng_state",
    "check_writable",
    "checkpoint_dir",
    "load_training_state",
    "restore_rng_state",
    "save_training_state",
]

_logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
_LAST = "last.pt"
_PREVIOUS = "previous.pt"
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


def save_training_state(out_dir: Path, state: Mapping[str, Any], *, keep_epoch: bool = False) -> Path:
    """Write `state` to `out_dir/checkpoints/last.pt` atomically; returns that path.

    The file it replaces is kept as `previous.pt`. `keep_epoch` also keeps this state as
    `epoch_<state["epoch"]>.pt` (the train loop asks every `checkpointFrequency` epochs). Only the
    main process (rank 0) may call this.
    """
    safe = _plain(state, "state")
    folder = checkpoint_dir(out_dir)
    last = folder / _LAST
    target = last
    tmp = folder / f".{_LAST}.{os.getpid()}{_TMP_SUFFIX}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(folder)
        try:
            with open(tmp, "wb") as f:
                torch.save(safe, f)
                f.flush()
                os.fsync(f.fileno())
            if last.exists() and not _replace_with_link(last, folder / _PREVIOUS):
                os.replace(last, folder / _PREVIOUS)
            os.replace(tmp, last)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        if keep_epoch:
            target = folder / f"epoch_{int(state['epoch'])}.pt"
            if not _replace_with_link(last, target):
                copy = target.with_name(f".{target.name}.{os.getpid()}{_TMP_SUFFIX}")
                try:
                    shutil.copyfile(last, copy)
                    with open(copy, "rb+") as f:
                        os.fsync(f.fileno())
                    os.replace(copy, target)
                finally:
                    with contextlib.suppress(OSError):
                        copy.unlink()
        _fsync_dir(folder)
    except OSError as err:
        raise KubevisionError(f"cannot write checkpoint to {target}: {err.strerror or err}") from err
    return last


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
    if torch.cuda.is_available() and torch.cuda.is_initialized():
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
