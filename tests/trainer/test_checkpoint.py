"""Training checkpoints on a real filesystem: atomic writes, fallbacks, weights_only loading, RNG state.

The write-failure test runs a child Python with a file-size limit (RLIMIT_FSIZE), so the kernel
itself refuses the write, as a full disk would; nothing is faked.
"""

from __future__ import annotations

import enum
import json
import logging
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from kubevision.api.errors import KubevisionError
from kubevision.trainer.checkpoint import (
    atomic_write_text,
    capture_rng_state,
    check_writable,
    load_best_weights,
    load_training_state,
    mark_finished,
    restore_rng_state,
    save_best_weights,
    save_training_state,
)


class Colour(enum.StrEnum):
    RED = "red"


def tiny() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))


def state_at(epoch: int, model: nn.Module | None = None) -> dict[str, Any]:
    model = model or tiny()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    model(torch.randn(4, 4)).sum().backward()
    optimizer.step()
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "best_score": 0.5,
        "best_epoch": epoch,
        "early_stopping": {"best_score": -float("inf"), "best_epoch": None, "no_progress": 0},
        "rng": capture_rng_state(),
        "config": {"learningRate": np.float64(0.01), "optimizer": "adamw", "advancedSettings": {"a": True}},
        "classes": ["cat", "dog"],
    }


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_round_trip_loads_with_weights_only(tmp_path: Path) -> None:
    model = tiny()
    state = state_at(3, model)
    state["extras"] = {"path": tmp_path / "x", "colour": Colour.RED, "array": np.arange(3), "count": np.int64(7)}
    path = save_training_state(tmp_path, state)
    assert path == tmp_path / "checkpoints" / "last.pt"
    raw = torch.load(path, weights_only=True)  # the strict loader: no code can run
    loaded = load_training_state(tmp_path)
    assert loaded is not None
    for got in (raw, loaded):
        assert got["epoch"] == 3 and got["classes"] == ["cat", "dog"]
        assert got["config"] == {"learningRate": 0.01, "optimizer": "adamw", "advancedSettings": {"a": True}}
        assert type(got["config"]["learningRate"]) is float
        assert got["extras"]["path"] == str(tmp_path / "x") and got["extras"]["colour"] == "red"
        assert torch.equal(got["extras"]["array"], torch.arange(3)) and got["extras"]["count"] == 7
    restored = tiny()
    restored.load_state_dict(loaded["model"])
    for a, b in zip(model.state_dict().values(), restored.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    optimizer = torch.optim.AdamW(restored.parameters(), lr=0.01)
    optimizer.load_state_dict(loaded["optimizer"])
    assert optimizer.state_dict()["state"][0]["step"] == 1
    assert files(tmp_path / "checkpoints") == {"last.pt"}


def test_no_checkpoint_means_a_fresh_start(tmp_path: Path) -> None:
    assert load_training_state(tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    assert load_training_state(tmp_path) is None


def test_the_replaced_state_is_kept_as_previous(tmp_path: Path) -> None:
    save_training_state(tmp_path, state_at(1))
    save_training_state(tmp_path, state_at(2))
    folder = tmp_path / "checkpoints"
    assert files(folder) == {"last.pt", "previous.pt"}
    assert torch.load(folder / "previous.pt", weights_only=True)["epoch"] == 1
    assert torch.load(folder / "last.pt", weights_only=True)["epoch"] == 2


def test_epoch_copies_keep_their_epoch(tmp_path: Path) -> None:
    save_training_state(tmp_path, state_at(2), epoch_copy=True)
    folder = tmp_path / "checkpoints"
    assert (folder / "epoch_2.pt").stat().st_ino == (folder / "last.pt").stat().st_ino  # a link, not a rewrite
    save_training_state(tmp_path, state_at(3))
    save_training_state(tmp_path, state_at(4), epoch_copy=True)
    assert files(folder) == {"last.pt", "previous.pt", "epoch_2.pt", "epoch_4.pt"}
    assert torch.load(folder / "epoch_2.pt", weights_only=True)["epoch"] == 2
    assert torch.load(folder / "epoch_4.pt", weights_only=True)["epoch"] == 4


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.unlink()  # a new file: the others may be links to the same bytes
    path.write_bytes(data[: len(data) // 2])


def test_a_corrupt_last_falls_back_to_previous_then_epoch_copies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "checkpoints"
    save_training_state(tmp_path, state_at(1), epoch_copy=True)
    save_training_state(tmp_path, state_at(2))
    save_training_state(tmp_path, state_at(3))
    truncate(folder / "last.pt")
    with caplog.at_level(logging.WARNING, logger="kubevision.trainer.checkpoint"):
        state = load_training_state(tmp_path)
    assert state is not None and state["epoch"] == 2
    assert "last.pt is unreadable" in caplog.text
    truncate(folder / "previous.pt")
    state = load_training_state(tmp_path)
    assert state is not None and state["epoch"] == 1


def test_nothing_readable_says_how_to_start_over(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    save_training_state(tmp_path, state_at(1))
    save_training_state(tmp_path, state_at(2))
    truncate(folder / "last.pt")
    (folder / "previous.pt").write_text("not a checkpoint")
    with pytest.raises(KubevisionError, match="no readable checkpoint") as err:
        load_training_state(tmp_path)
    assert f"delete {folder}" in str(err.value)
    assert {p.file for p in err.value.problems} == {str(folder / "last.pt"), str(folder / "previous.pt")}


def test_a_state_that_would_not_load_fails_at_save(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"state\['config'\]\['when'\]: a builtins.object"):
        save_training_state(tmp_path, {"epoch": 1, "config": {"when": object()}})
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


def test_leftovers_of_a_killed_writer_are_removed(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / ".last.pt.12345.tmp").write_bytes(b"\0" * 1000)
    save_training_state(tmp_path, state_at(1))
    assert files(folder) == {"last.pt"}


_FULL_DISK = """
import json, resource, signal, sys, torch
from pathlib import Path
from kubevision.api.errors import KubevisionError
from kubevision.trainer.checkpoint import load_training_state, save_training_state
out = Path(sys.argv[1])
save_training_state(out, {"epoch": 1, "weights": torch.zeros(10)})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the kernel then answers EFBIG instead of killing us
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
try:
    save_training_state(out, {"epoch": 2, "weights": torch.zeros(1_000_000)})
    message = None
except KubevisionError as err:
    message = str(err)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
state = load_training_state(out)
names = sorted(p.name for p in (out / "checkpoints").iterdir())
print(json.dumps({"message": message, "epoch": state["epoch"], "files": names}))
"""


def test_a_failed_write_names_the_path_and_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_FULL_DISK), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["message"] == f"cannot write checkpoint to {tmp_path / 'checkpoints' / 'last.pt'}: File too large"
    assert result["epoch"] == 1
    assert result["files"] == ["last.pt"]  # no temporary left, the good state untouched


def test_check_writable_creates_the_folder_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    check_writable(target)
    assert target.is_dir() and list(target.iterdir()) == []


def test_check_writable_names_the_path_and_the_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(KubevisionError, match=r"cannot write to the output folder .*/file/out: Not a directory"):
        check_writable(blocker / "out")
    with pytest.raises(KubevisionError, match="File exists"):
        check_writable(blocker)


def draws() -> tuple[float, float, list[float]]:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_rng_state_restores_every_generator_through_a_checkpoint(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in Python's generator
    np.random.standard_normal()
    save_training_state(tmp_path, {"epoch": 1, "rng": capture_rng_state()})
    expected = (*draws(), random.gauss(0, 1), float(np.random.standard_normal()))
    draws()
    loaded = load_training_state(tmp_path)
    assert loaded is not None
    restore_rng_state(loaded["rng"])
    assert (*draws(), random.gauss(0, 1), float(np.random.standard_normal())) == expected


def test_finished_trials_say_so_until_training_resumes(tmp_path: Path) -> None:
    save_training_state(tmp_path, {"epoch": 5, "status": "running"})
    mark_finished(tmp_path, "early_stopped")
    state = load_training_state(tmp_path)
    assert state is not None and state["status"] == "early_stopped"
    save_training_state(tmp_path, {"epoch": 6, "status": "running"})
    state = load_training_state(tmp_path)
    assert state is not None and state["status"] == "running"


def test_best_weights_round_trip(tmp_path: Path) -> None:
    assert load_best_weights(tmp_path) is None
    model = tiny()
    path = save_best_weights(tmp_path, model.state_dict())
    assert path == tmp_path / "checkpoints" / "best.pt"
    weights = load_best_weights(tmp_path)
    assert weights is not None
    restored = tiny()
    restored.load_state_dict(weights)
    assert torch.equal(restored.state_dict()["0.weight"], model.state_dict()["0.weight"])
    path.write_bytes(b"garbage")
    with pytest.raises(KubevisionError, match=r"best-epoch weights .* unreadable"):
        load_best_weights(tmp_path)


def test_atomic_write_text(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "summary.json"
    atomic_write_text(target, '{"a": 1}')
    atomic_write_text(target, '{"a": 2}')
    assert json.loads(target.read_text()) == {"a": 2}
    assert files(target.parent) == {"summary.json"}
