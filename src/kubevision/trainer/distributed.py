"""Data-parallel plumbing: which process am I, on which device, and the few collectives the trial needs.

Why a context object instead of calling `torch.distributed` where needed: the same trial program runs
as one process on a laptop CPU, as `torchrun --nproc_per_node N` in the local runner, and as a
multi-node PyTorchJob. Every collective must then be a no-op in the single-process case, and the
NCCL/gloo differences (NCCL only moves CUDA tensors and wants the current device set first) must be
handled once. `DistributedContext` carries that decision; the train loop calls its helpers without
asking whether it is distributed.

Environment (set by torchrun and by the PyTorchJob launcher): `RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
`MASTER_ADDR`, `MASTER_PORT`. Without them, or with `WORLD_SIZE=1`, there is no process group.
Backend: NCCL when the device is CUDA (each process takes `cuda:<LOCAL_RANK>`), gloo on CPU.
Device preference `auto` picks CUDA when available; an explicit `cuda` without CUDA is a
`KubevisionError` (the user asked for a GPU the node does not have; silently training on CPU would
take days), and so is a `LOCAL_RANK` beyond the visible GPUs (more processes per node than GPUs).

Collectives, all returning the same value on every rank:
- `all_reduce_sum` for loss sums and counts;
- `gather_arrays` concatenates per-rank numpy arrays in rank order. Lengths may differ (the last
  validation batch is split unevenly), so lengths and dtypes are exchanged first and the data is
  padded for the fixed-size `all_gather`; a rank with no rows may send an array of any shape;
- `broadcast_object` sends rank 0's decision (stop early? resume state?) to everyone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, overload

import numpy as np
import numpy.typing as npt
import torch
import torch.distributed as dist

from kubevision.api.errors import KubevisionError, Problem

__all__ = ["DistributedContext", "init_distributed", "shutdown"]

T = TypeVar("T")

_TRANSPORT_DTYPES = frozenset(
    np.dtype(d) for d in (np.uint8, np.int8, np.int16, np.int32, np.int64, np.float16, np.float32, np.float64)
)
"""numpy dtypes that travel as tensors in `gather_arrays`; bool goes as uint8, anything else as pickles."""

PROCESS_GROUP_TIMEOUT = timedelta(minutes=30)
"""How long a collective waits for the slowest rank. Validation on rank 0 (metrics over the whole set)
and checkpoint writes happen between collectives, so this is generous; a dead peer still ends the job."""


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the trial: rank, world size, device, backend (None: one process)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None

    @property
    def is_main(self) -> bool:
        """Rank 0 does all result I/O: metrics, checkpoints, exports."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.backend is not None and self.world_size > 1

    @overload
    def all_reduce_sum(self, x: float) -> float: ...

    @overload
    def all_reduce_sum(self, x: torch.Tensor) -> torch.Tensor: ...

    def all_reduce_sum(self, x: float | torch.Tensor) -> float | torch.Tensor:
        """The sum of `x` over all ranks (the input is not modified; a tensor comes back on its device)."""
        if isinstance(x, torch.Tensor):
            if not self.is_distributed:
                return x.detach().clone()
            t = x.detach().to(self.device, copy=True)
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            return t.to(x.device)
        if not self.is_distributed:
            return float(x)
        t = torch.tensor([float(x)], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item())

    def gather_arrays(self, arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """All ranks' arrays concatenated along axis 0 in rank order, on every rank."""
        arr = np.asarray(arr)
        if arr.ndim == 0:
            raise ValueError("gather_arrays needs arrays with at least one dimension (rows to concatenate)")
        if not self.is_distributed:
            return arr.copy()
        metas: list[Any] = [None] * self.world_size
        dist.all_gather_object(metas, (tuple(arr.shape), arr.dtype.str))
        shapes = [tuple(shape) for shape, _ in metas]
        dtypes = [np.dtype(code) for _, code in metas]
        filled = [i for i, shape in enumerate(shapes) if shape[0] > 0]
        trailing = {shapes[i][1:] for i in filled} or {shapes[0][1:]}
        if len(trailing) > 1:
            raise ValueError(f"gather_arrays: ranks sent rows of different shapes {sorted(trailing)}")
        row_shape = trailing.pop()
        dtype = np.result_type(*[dtypes[i] for i in filled]) if filled else dtypes[0]
        lengths = [shapes[i][0] if i in filled else 0 for i in range(self.world_size)]
        local = arr.reshape((lengths[self.rank], *row_shape)).astype(dtype, copy=False)
        transport = np.dtype(np.uint8) if dtype == np.bool_ else dtype
        if transport not in _TRANSPORT_DTYPES:
            parts: list[Any] = [None] * self.world_size
            dist.all_gather_object(parts, local)
            return np.concatenate([np.asarray(p, dtype=dtype).reshape((-1, *row_shape)) for p in parts])
        longest = max(lengths)
        padded = np.zeros((longest, *row_shape), dtype=transport)
        padded[: lengths[self.rank]] = local
        tensor = torch.from_numpy(padded).to(self.device)
        gathered = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(gathered, tensor)
        rows = [g[:n].cpu().numpy() for g, n in zip(gathered, lengths, strict=True)]
        return np.concatenate(rows).astype(dtype, copy=False)

    def broadcast_object(self, obj: T) -> T:
        """Rank 0's `obj` on every rank (any picklable object; other ranks' argument is ignored)."""
        if not self.is_distributed:
            return obj
        box: list[Any] = [obj]
        dist.broadcast_object_list(box, src=0)
        result: T = box[0]
        return result

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if not self.is_distributed:
            return
        if self.backend == "nccl":
            dist.barrier(device_ids=[self.local_rank])
        else:
            dist.barrier()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise KubevisionError(
            "the distributed launch environment is invalid",
            [Problem(f"got {raw!r}; expected an integer (set by torchrun)", field=name)],
        ) from None


def _device(device_pref: str, local_rank: int) -> torch.device:
    if device_pref not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device_pref must be auto, cpu or cuda, got {device_pref!r}")
    cuda = torch.cuda.is_available()
    if device_pref == "cuda" and not cuda:
        raise KubevisionError(
            "runtime.device is 'cuda' but no CUDA device is available on this node",
            [Problem("use device 'auto' or 'cpu', or schedule the trial on a GPU node", field="runtime.device")],
        )
    if device_pref == "cpu" or not cuda:
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise KubevisionError(
            f"process LOCAL_RANK={local_rank} has no GPU: only {count} visible on this node",
            [Problem("start at most one process per GPU (nproc_per_node <= gpusPerNode)", field="LOCAL_RANK")],
        )
    return torch.device("cuda", local_rank)


def init_distributed(device_pref: str = "auto") -> DistributedContext:
    """Join the process group torchrun describes in the environment (none for a single process)."""
    rank = _env_int("RANK", 0)
    world_size = _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise KubevisionError(
            "the distributed launch environment is invalid",
            [Problem(f"RANK={rank}, WORLD_SIZE={world_size}, LOCAL_RANK={local_rank}: need 0 <= RANK < WORLD_SIZE")],
        )
    device = _device(device_pref, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size == 1:
        return DistributedContext(rank, 1, local_rank, device, None)
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise KubevisionError(
            f"WORLD_SIZE={world_size} but {' and '.join(missing)} not set: launch the trial with torchrun",
            [Problem("set by torchrun / the PyTorchJob launcher", field=name) for name in missing],
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend,
            init_method="env://",
            rank=rank,
            world_size=world_size,
            timeout=PROCESS_GROUP_TIMEOUT,
            device_id=device if device.type == "cuda" else None,
        )
    return DistributedContext(rank, world_size, local_rank, device, backend)


def shutdown(ctx: DistributedContext) -> None:
    """Leave the process group (safe to call twice, and for a single process)."""
    if ctx.backend is not None and dist.is_initialized():
        dist.destroy_process_group()
