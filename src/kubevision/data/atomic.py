"""Write a file so that readers see the old content or the new, never half of either.

Why one helper: JSONL files from converters, downloaded images, exported models, summaries and
prediction files are all read by another process (a trial, a server, a runner) that may start while
the writer is still busy or after it was killed. Writing to a temporary file beside the target,
fsyncing it and renaming it over the target is the POSIX way to make that safe; doing it in one
place keeps every writer honest about fsync and cleanup. (Training checkpoints add a kept previous
copy on top; see kubevision.trainer.checkpoint.)
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO

__all__ = ["atomic_write_bytes", "atomic_write_text", "write_atomically", "write_text_atomically"]

# Readable by other users (a model server often runs as another user); mkstemp alone gives 0600.
FILE_MODE = 0o644


def write_atomically(path: Path, write: Callable[[BinaryIO], object], *, mode: int = FILE_MODE) -> None:
    """Call `write(file)` on a temporary file beside `path`, fsync it, then rename it over `path`.

    On any failure (including KeyboardInterrupt) the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomically(path: Path, emit: Callable[[IO[str]], object]) -> None:
    """Like `write_atomically` for a writer of UTF-8 text with '\\n' line ends."""

    def write(handle: BinaryIO) -> None:
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="\n", write_through=True)
        emit(text)
        text.flush()
        text.detach()  # leave the binary handle open for write_atomically's fsync

    write_atomically(path, write)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    write_atomically(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))
