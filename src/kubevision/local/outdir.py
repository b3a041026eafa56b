"""Choosing, checking and claiming the output folder of an embedded run, before any trial starts.

Why so strict: a run writes hundreds of megabytes of checkpoints and models and, on `--resume`,
trusts what it finds (finished trials are not trained again). Writing into a folder that holds
something else would mix results or destroy files; resuming someone else's run would silently
skip trials. So the folder must be empty (or absent), or hold a previous run of the same job
(`run.json` names it) and then only with `--resume`; everything else is refused with what was
found and what to do.

Default folder: `runs/<metadata.name>` under the current directory, like `kubevision train --job`
(and git-ignored in this repository); `spec.output.uri`, when it is a local path, wins and is
relative to the job file like the data paths; `--output` wins over both. Remote output URIs are for
the cluster backend.

A write probe (create, write, fsync, delete) and a free-space check run before the first trial:
"disk full" and "permission denied" must be reported up front, not after an hour of training.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.models import AutoMLImageJob
from kubevision.data.atomic import atomic_write_text
from kubevision.local.layout import RunLayout

__all__ = [
    "MARKER_KIND",
    "MIN_FREE_BYTES",
    "OutputDecision",
    "check_space_and_writable",
    "decide_output_dir",
    "default_output_dir",
    "prepare_output_dir",
    "read_marker",
    "write_marker",
]

MARKER_KIND = "kubevision-run"
MIN_FREE_BYTES = 256 * 1024 * 1024
"""Refuse to start below this: one small CPU trial writes ~200 MiB (checkpoints, best weights, model)."""


@dataclass(frozen=True)
class OutputDecision:
    """What to do with the output folder."""

    resume: bool
    """True: continue the run found there; False: start a new run (the folder is empty)."""
    note: str | None = None


def default_output_dir(job: AutoMLImageJob, job_file: Path, cwd: Path) -> Path:
    """The output folder when `--output` is not given (see the module docstring)."""
    output = job.spec.output
    if output is None:
        return cwd / "runs" / job.metadata.name
    uri = output.uri
    if uri.startswith("file://"):
        uri = uri.removeprefix("file://")
    elif "://" in uri:
        raise KubevisionError(
            f"spec.output.uri is {uri}, a remote location; the embedded runner writes to a local folder",
            [Problem("give a local folder with --output DIR (remote outputs are for the cluster backend)",
                     file=str(job_file), field="spec.output.uri")],
        )
    path = Path(uri).expanduser()
    return path if path.is_absolute() else job_file.resolve().parent / path


def read_marker(layout: RunLayout) -> dict[str, Any] | None:
    """The run.json of a folder, or None when absent or not a kubevision run marker."""
    try:
        data = json.loads(layout.marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("kind") != MARKER_KIND:
        return None
    return data


def write_marker(layout: RunLayout, data: dict[str, Any]) -> None:
    """Write run.json atomically (`kind` and `updated` are filled in)."""
    record = {"kind": MARKER_KIND, **data, "updated": datetime.now(UTC).isoformat(timespec="seconds")}
    atomic_write_text(layout.marker, json.dumps(record, indent=2, default=str) + "\n")


def decide_output_dir(
    root: Path, entries: list[str], marker: dict[str, Any] | None, *, job_name: str, resume: bool
) -> OutputDecision:
    """Fresh run, resume, or a KubevisionError saying why not (pure: the caller lists the folder)."""
    if not entries:
        note = f"nothing to resume in {root}: starting a new run" if resume else None
        return OutputDecision(resume=False, note=note)
    if marker is None:
        shown = ", ".join(sorted(entries)[:5]) + (", ..." if len(entries) > 5 else "")
        raise KubevisionError(
            f"the output folder {root} is not empty and holds no kubevision run (found {shown})",
            [Problem("choose another folder with --output DIR, or empty this one", file=str(root))],
        )
    found = str(marker.get("job", "?"))
    if found != job_name:
        raise KubevisionError(
            f"the output folder {root} holds a run of job {found!r}, not of {job_name!r}",
            [Problem("choose another folder with --output DIR", file=str(root))],
        )
    if not resume:
        phase = marker.get("phase", "unknown")
        raise KubevisionError(
            f"the output folder {root} holds an earlier run of {job_name!r} (phase {phase})",
            [Problem("continue it with --resume (finished trials are kept), or start over in another folder "
                     "with --output DIR (or delete this one)", file=str(root))],
        )
    return OutputDecision(resume=True)


def check_space_and_writable(root: Path, *, min_free_bytes: int = MIN_FREE_BYTES) -> None:
    """Create `root`, prove a file can be written and fsync'd there, and that space is left."""
    probe = root / f".kubevision-write-probe-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as handle:
            handle.write(b"kubevision write probe\n" * 1024)
            handle.flush()
            os.fsync(handle.fileno())
        probe.unlink()
        free = shutil.disk_usage(root).free
    except OSError as err:
        with contextlib.suppress(OSError):
            probe.unlink()
        raise KubevisionError(
            f"cannot write to the output folder {root}: {err.strerror or err}",
            [Problem("choose a writable folder with --output DIR (no trial was started)", file=str(root))],
        ) from None
    if free < min_free_bytes:
        raise KubevisionError(
            f"only {free / 2**20:.0f} MiB free where the output folder {root} is; a trial writes "
            f"checkpoints and a model (at least {min_free_bytes / 2**20:.0f} MiB is required)",
            [Problem("free some space or choose another folder with --output DIR (no trial was started)",
                     file=str(root))],
        )


def prepare_output_dir(layout: RunLayout, *, job_name: str, resume: bool) -> OutputDecision:
    """Decide fresh vs resume for `layout.root`, then check that it is writable and has space."""
    root = layout.root
    if root.exists() and not root.is_dir():
        raise KubevisionError(
            f"the output folder {root} is a file", [Problem("choose a folder with --output DIR", file=str(root))]
        )
    try:
        entries = [p.name for p in root.iterdir()] if root.is_dir() else []
    except OSError as err:
        raise KubevisionError(f"cannot read the output folder {root}: {err.strerror or err}") from None
    decision = decide_output_dir(root, entries, read_marker(layout), job_name=job_name, resume=resume)
    check_space_and_writable(root)
    return decision
