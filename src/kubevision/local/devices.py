"""Which GPUs and how many CPU threads each concurrently running trial gets.

Why partition instead of sharing: two trials on one GPU compete for its memory (AutoMode sizes
batches for a whole GPU) and one of them dies out of memory at a random moment; two trials that
each start one OpenMP thread per core oversubscribe the CPU and both run slower than one at a
time. So every slot (one concurrently running trial) owns its GPUs (`CUDA_VISIBLE_DEVICES`) and
`cores // (slots * processes per trial)` threads (`OMP_NUM_THREADS`, at least 1). An
`OMP_NUM_THREADS` already set in the runner's environment is passed through unchanged: whoever
set it knows the machine better.

A trial uses `gpusPerNode * nodeCountPerTrial` GPUs of this one machine (embedded mode has one
node), i.e. that many torchrun processes. With fewer GPUs visible than asked for, a trial takes
what there is; with none, trials train on the CPU with one process each, and the plan says so.
Concurrency is capped by how many disjoint GPU sets the machine has (a note says so).

GPUs are counted in a short subprocess (`torch.cuda`), so the runner itself never creates a CUDA
context that would hold memory on GPU 0 for the whole sweep; the count honours an existing
`CUDA_VISIBLE_DEVICES`, whose entries are then handed out (not the physical indices).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["GpuInfo", "Slot", "SlotPlan", "cpu_count", "detect_gpus", "plan_slots"]


@dataclass(frozen=True)
class GpuInfo:
    """One visible GPU: the id to put in CUDA_VISIBLE_DEVICES and its memory."""

    id: str
    memory_bytes: int


@dataclass(frozen=True)
class Slot:
    """What one concurrently running trial gets."""

    index: int
    gpus: tuple[str, ...]
    """CUDA_VISIBLE_DEVICES entries; empty = CPU."""
    threads: int
    """OMP_NUM_THREADS per process."""

    @property
    def nproc(self) -> int:
        """torchrun processes: one per GPU, one on the CPU."""
        return max(1, len(self.gpus))

    @property
    def device(self) -> str:
        return "cuda" if self.gpus else "cpu"


@dataclass(frozen=True)
class SlotPlan:
    """The slots of a run and the notes to show the user about how they were chosen."""

    slots: tuple[Slot, ...]
    notes: tuple[str, ...]
    device_memory_bytes: int | None
    """Memory of the smallest GPU handed out (AutoMode sizes batches by it); None on CPU."""

    @property
    def concurrency(self) -> int:
        return len(self.slots)

    def describe(self) -> str:
        first = self.slots[0]
        if first.gpus:
            per = f"{len(first.gpus)} GPU{'s' if len(first.gpus) > 1 else ''} per trial"
        else:
            per = f"CPU, {first.threads} thread{'s' if first.threads > 1 else ''} per trial"
        return f"{self.concurrency} trial{'s' if self.concurrency > 1 else ''} at a time on {per}"


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, as in a container's cpuset), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def plan_slots(
    *, concurrency: int, gpus_per_trial: int, gpus: Sequence[GpuInfo], cores: int
) -> SlotPlan:
    """Partition `gpus` and `cores` between up to `concurrency` trials (pure)."""
    notes: list[str] = []
    concurrency = max(1, concurrency)
    use: list[GpuInfo] = []
    per_trial = 0
    if gpus_per_trial > 0 and not gpus:
        notes.append(f"no GPU found: trials train on the CPU (the job asks for {gpus_per_trial} GPU per trial)")
    elif gpus_per_trial > 0:
        per_trial = min(gpus_per_trial, len(gpus))
        if per_trial < gpus_per_trial:
            notes.append(f"the job asks for {gpus_per_trial} GPUs per trial; this machine has {len(gpus)}: "
                         f"each trial uses {per_trial}")
        fit = len(gpus) // per_trial
        if fit < concurrency:
            notes.append(f"{concurrency} concurrent trials asked for, but {len(gpus)} GPUs hold {fit} "
                         f"trial{'s' if fit > 1 else ''} of {per_trial} GPU{'s' if per_trial > 1 else ''}: "
                         f"running {fit} at a time")
            concurrency = fit
        use = list(gpus[: concurrency * per_trial])
    processes = concurrency * max(1, per_trial)
    threads = max(1, cores // processes)
    slots = tuple(
        Slot(index=i, gpus=tuple(g.id for g in use[i * per_trial:(i + 1) * per_trial]), threads=threads)
        for i in range(concurrency)
    )
    memory = min((g.memory_bytes for g in use), default=None)
    return SlotPlan(slots=slots, notes=tuple(notes), device_memory_bytes=memory)


_PROBE = (
    "import json, torch\n"
    "n = torch.cuda.device_count() if torch.cuda.is_available() else 0\n"
    "print(json.dumps([torch.cuda.get_device_properties(i).total_memory for i in range(n)]))\n"
)


def detect_gpus(env: Mapping[str, str] | None = None, *, python: str = sys.executable) -> list[GpuInfo]:
    """The GPUs a trial could use, probed in a subprocess; [] when there are none or torch cannot tell."""
    env = dict(os.environ if env is None else env)
    try:
        done = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=120)
        memories = [int(m) for m in json.loads(done.stdout.strip().splitlines()[-1])] if done.returncode == 0 else []
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return []
    visible = env.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else []
    if len(ids) < len(memories):
        ids = [str(i) for i in range(len(memories))]
    return [GpuInfo(id=ids[i], memory_bytes=m) for i, m in enumerate(memories)]
