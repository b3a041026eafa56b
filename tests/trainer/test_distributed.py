"""Process-group setup and collectives: a real two-process torchrun (gloo on CPU) plus the one-process path.

The two-process test starts `python -m torch.distributed.run --standalone --nproc_per_node 2` on a
small worker script that calls every helper and checks the results on each rank; it talks over the
loopback interface inside the child processes (the in-process no-network guard does not reach them).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from kubevision.api.errors import KubevisionError
from kubevision.trainer.distributed import DistributedContext, init_distributed, shutdown

_WORKER = """
import os
import numpy as np
import torch
from kubevision.trainer.distributed import init_distributed, shutdown

ctx = init_distributed("cpu")
r = ctx.rank
assert (ctx.world_size, ctx.backend, ctx.device.type, ctx.is_main) == (2, "gloo", "cpu", r == 0), ctx
assert ctx.local_rank == r

assert ctx.all_reduce_sum(1.5 + r) == 4.0                     # 1.5 + 2.5
t = torch.tensor([1.0, 2.0]) * (r + 1)
summed = ctx.all_reduce_sum(t)
assert summed.tolist() == [3.0, 6.0] and t.tolist() == [r + 1.0, 2.0 * (r + 1)]  # input untouched

# Uneven rows: rank 0 has 3, rank 1 has 1; result in rank order on both ranks.
probs = np.arange(3 * 2, dtype=np.float32).reshape(3, 2) if r == 0 else np.full((1, 2), -1.0, np.float32)
got = ctx.gather_arrays(probs)
assert got.dtype == np.float32 and got.tolist() == [[0, 1], [2, 3], [4, 5], [-1, -1]], got
labels = np.array([True, False]) if r == 0 else np.array([], dtype=bool)
assert ctx.gather_arrays(labels).tolist() == [True, False]
# A rank with nothing to send may not know the row shape; it still gets everything.
rows = np.empty((0,), dtype=np.float64) if r == 0 else np.ones((2, 3), dtype=np.int64)
got = ctx.gather_arrays(rows)
assert got.shape == (2, 3) and got.dtype == np.int64, (got.shape, got.dtype)
names = ctx.gather_arrays(np.array([f"r{r}a", f"r{r}b"], dtype=object))
assert names.tolist() == ["r0a", "r0b", "r1a", "r1b"]

decision = ctx.broadcast_object({"stop": True, "why": "rank0"} if r == 0 else None)
assert decision == {"stop": True, "why": "rank0"}
ctx.barrier()
shutdown(ctx)
shutdown(ctx)  # twice is fine
print(f"rank {r} ok", flush=True)
"""


def test_two_process_collectives_under_torchrun(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(_WORKER))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "rank 0 ok" in done.stdout and "rank 1 ok" in done.stdout


@pytest.fixture
def single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("single_process")
def test_one_process_has_no_group_and_trivial_collectives() -> None:
    ctx = init_distributed("cpu")
    assert ctx == DistributedContext(0, 1, 0, torch.device("cpu"), None)
    assert ctx.is_main and not ctx.is_distributed
    assert ctx.all_reduce_sum(2.5) == 2.5
    t = torch.ones(2)
    assert ctx.all_reduce_sum(t).tolist() == [1.0, 1.0]
    arr = np.arange(4).reshape(2, 2)
    assert np.array_equal(ctx.gather_arrays(arr), arr)
    assert ctx.broadcast_object("x") == "x"
    with pytest.raises(ValueError, match="at least one dimension"):
        ctx.gather_arrays(np.float64(1.0))  # type: ignore[arg-type]
    ctx.barrier()
    shutdown(ctx)
    assert not torch.distributed.is_initialized()


@pytest.mark.usefixtures("single_process")
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_asking_for_cuda_without_cuda_is_a_user_error() -> None:
    with pytest.raises(KubevisionError, match="no CUDA device") as err:
        init_distributed("cuda")
    assert err.value.problems[0].field == "runtime.device"
    assert init_distributed("auto").device == torch.device("cpu")


@pytest.mark.usefixtures("single_process")
@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORLD_SIZE": "two"}, "invalid"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "need 0 <= RANK < WORLD_SIZE"),
        ({"WORLD_SIZE": "2", "RANK": "1"}, "MASTER_ADDR and MASTER_PORT not set"),
    ],
    ids=["not-an-int", "rank-out-of-range", "no-master"],
)
def test_a_broken_launch_environment_is_a_user_error(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(KubevisionError, match=message):
        init_distributed("cpu")
    assert not torch.distributed.is_initialized()
