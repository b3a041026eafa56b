"""Starting, stopping and killing one trial: a `torchrun` subprocess of the trial program.

Why torchrun even for one process: it is how the cluster runs a trial (a PyTorchJob sets the same
RANK / WORLD_SIZE / MASTER_* variables), so the embedded runner exercises the same start-up path,
and a GPU trial with N GPUs is just `--nproc-per-node N`. `--standalone` gives every trial its own
rendezvous on a free port, so concurrent trials never meet. The price is torchrun's own start-up
(it imports torch before starting the worker that imports it again): a few seconds per trial.

Stopping gracefully: the trial program turns SIGTERM into "finish this epoch, save, export the best
model so far, write summary.json, exit 0". torchrun, when it receives SIGTERM itself, forwards it
but SIGKILLs its workers 30 s later, which can cut the export short. So the runner sends SIGTERM to
the workers (torchrun's children, found in /proc) and lets torchrun see them exit normally; only
while no worker exists yet (start-up) does torchrun itself get the signal. After the grace period
the whole process group gets SIGKILL.

Each trial runs in its own session (`start_new_session`): a Ctrl-C in the terminal reaches only the
runner, which then stops the trials in order instead of every process at once. On Linux the trial
also gets `PR_SET_PDEATHSIG = SIGTERM`: if the runner is killed (kill -9, OOM killer), torchrun is
told to stop instead of training on as an orphan; and a resumed runner stops whatever still runs a
trial's config before running that trial again (`stop_leftovers`), so two trainers never share a
trial folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from kubevision.local.devices import Slot

__all__ = ["TrialProcess", "processes_using", "stop_leftovers", "trial_command", "trial_env", "worker_pids"]

_PR_SET_PDEATHSIG = 1


def trial_command(python: str, config_path: Path, nproc: int) -> list[str]:
    """The command line of one trial (reference: DESIGN.md "The trial program")."""
    return [
        python, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
        "-m", "kubevision.cli", "train", "--trial-config", str(config_path),
    ]


def trial_env(base: Mapping[str, str], slot: Slot) -> dict[str, str]:
    """The trial's environment: its GPUs (none = CPU), its threads, unbuffered output."""
    env = dict(base)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(slot.gpus)  # "" hides every GPU from a CPU trial
    if not base.get("OMP_NUM_THREADS"):
        env["OMP_NUM_THREADS"] = str(slot.threads)
        env.setdefault("MKL_NUM_THREADS", str(slot.threads))
    env["PYTHONUNBUFFERED"] = "1"  # trial.log shows progress as it happens
    return env


def worker_pids(pid: int) -> list[int]:
    """The child processes of `pid` (torchrun's workers), from /proc; [] where /proc is not available."""
    children: list[int] = []
    tasks = Path(f"/proc/{pid}/task")
    try:
        for task in tasks.iterdir():
            with contextlib.suppress(OSError, ValueError):
                children += [int(x) for x in (task / "children").read_text().split()]
    except OSError:
        return []
    return sorted(set(children))


def processes_using(path: Path) -> list[int]:
    """Processes whose command line names `path` (a trial.json): leftovers of an earlier runner.

    Linux only (/proc); elsewhere [] (there, a killed runner's trials are not told to stop either,
    see the module docstring, and must be stopped by hand before --resume).
    """
    needle = str(path).encode()
    found: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    own = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return sorted(found)


def stop_leftovers(path: Path, grace_s: float) -> list[int]:
    """SIGTERM the processes still running the trial config `path`, SIGKILL them after `grace_s`.

    A runner killed with -9 tells its trials to stop (PDEATHSIG), but a trial that is saving may take
    a while; two trainers must never write into one trial folder, so a resumed runner waits here.
    Returns the pids it found.
    """
    pids = processes_using(path)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pids and time.monotonic() < deadline:
        if not [p for p in pids if _alive(p)]:
            return pids
        time.sleep(0.2)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _death_signal_setter() -> Callable[[], None] | None:
    """A preexec_fn that asks Linux to SIGTERM the child when the runner dies; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # the runner died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return set_death_signal


class TrialProcess:
    """One running trial: its torchrun process, its log file, and when it was asked to stop."""

    def __init__(self, number: int, command: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        self.number = number
        self.command = list(command)
        self.env = dict(env)
        self.log_path = log_path
        self.started = 0.0
        self.stop_requested_at: float | None = None
        self.exit_code: int | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self, header: str) -> None:
        """Append `header` to the log and start the process with its output going to the log."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process's lifetime
        try:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            self._log.write(f"==== {stamp} {header}\n==== {' '.join(self.command)}\n".encode())
            self._log.flush()
            self._popen = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                env=self.env, start_new_session=True, preexec_fn=_death_signal_setter(), close_fds=True,
            )
        except BaseException:
            self._close_log()
            raise
        self.started = time.monotonic()

    def poll(self) -> int | None:
        """The exit code once the process ended (negative: killed by that signal), else None."""
        if self._popen is None or self.exit_code is not None:
            return self.exit_code
        code = self._popen.poll()
        if code is not None:
            self.exit_code = code
            self._close_log()
        return code

    def request_stop(self) -> None:
        """SIGTERM the workers (or torchrun while it has none yet); once."""
        if self.stop_requested_at is not None or self._popen is None or self.poll() is not None:
            return
        self.stop_requested_at = time.monotonic()
        targets = worker_pids(self._popen.pid) or [self._popen.pid]
        for pid in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the whole process group (torchrun and its workers)."""
        if self._popen is None or self.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int | None:
        if self._popen is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout)
        return self.poll()

    def elapsed(self, now: float | None = None) -> float:
        return ((now if now is not None else time.monotonic()) - self.started) if self.started else 0.0

    def _close_log(self) -> None:
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None
