"""Trial outputs and checkpoints in an object store: a local staging folder kept in sync with a URI.

Why staging + sync instead of writing through fsspec: every writer of the trial (checkpoint.py's
atomic, fsync'd, linked checkpoints; export.py's folder swap; reporting.py's appended metrics.jsonl)
relies on POSIX files, renames and links, which object stores do not have. So a trial whose output
is a URI (`kubevision train --output s3://bucket/ns/job/trials/t7`) works in a local folder exactly
as it would on a shared volume, and this module copies that folder to the URI at fixed points:

- before training (every node's first process, `open_output(..., pull=True)`): the remote resume state
  (checkpoints/last.pt, best.pt, finished.json, metrics.jsonl, summary.json) is downloaded, so a
  trial restarted on another node resumes from the object store;
- after every checkpoint save (global rank 0, `push_checkpoint`): metrics.jsonl, best.pt, new
  `epoch_<n>.pt` copies, then last.pt (the commit point: a resumed trial starts from it);
- at the end (global rank 0, `push_all`): labels.json, model.onnx, mlflow-model/** (MLmodel last:
  a folder with an MLmodel is a complete model), the checkpoint files, summary.json, then
  checkpoints/finished.json (the "trial done" mark) last.

The staging folder is `$KUBEVISION_STAGING/<last URI segment>-<hash of the URI>` (default: under
the system temp folder), so a trial restarted on the same node finds it again; it must be node-local
(an emptyDir or hostPath on a cluster). It is kept after the trial: when an upload finally fails, the
outputs are still there, and the error names the folder.

Which copy wins at start. `.kubevision-sync.json` in the staging folder records, per file, the local
file's (size, mtime, inode) and the remote object's fsspec `ukey` when they were last known equal.
The decision is taken on checkpoints/last.pt, for the whole resume state at once (`choose_source`):
the staging copy is kept when it is the same as or ahead of the remote one (the remote object is as
we left it: a checkpoint saved but not uploaded before a crash or a failed upload is not lost), and
otherwise the remote state replaces it (another node went further, or the remote was deleted to
start over). Pushes use the same record: unchanged files are not uploaded again, and a remote file
is deleted only when it was ours and the local file is gone (a stale model.onnx, finished.json after
a resume); objects kubevision never wrote are never deleted.

Atomic per object. On object stores (s3, gs, az: `FSSPEC_PACKAGES`) one put is atomic already: a
multipart or resumable upload becomes visible only when it completes, so readers see the old object
or the new one; a temporary key plus a move would be a second full copy there. Elsewhere (file://,
fsspec's in-memory filesystem) the file goes to a hidden temporary key beside the target and is
moved over it (a rename on a local filesystem).

Failures. Each transfer is tried `attempts` times with doubling back-off; errors that retrying cannot
fix (permission denied, no such bucket, a path through a file) fail at once. The final failure is a
`KubevisionError` naming the URI and the staging folder. A missing backend package (s3fs, gcsfs,
adlfs) and an unwritable destination (a probe object written and deleted) fail before training.

Uploads run in the training process, between epochs: the next epoch waits for the checkpoint upload
(simple and consistent; a background uploader would overlap them). A `file://` URI is handled like an
object store (staging + copy), which is what makes it a faithful local stand-in in tests; a plain
path is written directly.

`fetch_model` serves incremental training (`--checkpoint s3://.../mlflow-model`): it downloads only
the model.pt that the loader reads into `$KUBEVISION_CACHE/models`, keyed by the URI and the
object's ukey (a re-exported model at the same URI is downloaded again).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import re
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeVar

from kubevision.api.errors import KubevisionError, Problem
from kubevision.data.atomic import atomic_write_text, write_atomically
from kubevision.data.images import FSSPEC_PACKAGES, cache_dir, url_scheme

__all__ = [
    "RESUME_FILES",
    "STAGING_ENV",
    "SUPPORTED_SCHEMES",
    "RemoteOutput",
    "SyncRecord",
    "TrialOutput",
    "check_location",
    "choose_source",
    "fetch_model",
    "file_signature",
    "is_uri",
    "open_output",
    "staging_dir",
]

_logger = logging.getLogger(__name__)

T = TypeVar("T")

STAGING_ENV = "KUBEVISION_STAGING"
"""Folder for the staging copies of URI outputs (node-local; default: the system temp folder)."""

SUPPORTED_SCHEMES: tuple[str, ...] = ("file", *FSSPEC_PACKAGES)
"""URI schemes the trainer reads checkpoints from and writes outputs to."""

RESUME_FILES: tuple[str, ...] = (
    "checkpoints/last.pt",
    "checkpoints/best.pt",
    "checkpoints/finished.json",
    "metrics.jsonl",
    "summary.json",
)
"""What a restarted trial needs: the resume state, the best weights the export uses, the records so far."""

_LAST = "checkpoints/last.pt"
_FINISHED = "checkpoints/finished.json"
_MODEL_DIR = "mlflow-model"
_MLMODEL = f"{_MODEL_DIR}/MLmodel"
_EPOCH_COPY = re.compile(r"^checkpoints/epoch_(\d+)\.pt$")
_RECORD_FILE = ".kubevision-sync.json"
_PERMANENT = (PermissionError, FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError)
"""Errors that another try cannot fix: fail at once instead of after the back-off."""


def is_uri(location: str | None) -> bool:
    """True for `scheme://...` (file:// included); False for plain paths, Windows drive letters, None."""
    return bool(location) and "://" in str(location) and url_scheme(str(location)) != ""


def check_location(uri: str, *, what: str, field: str) -> None:
    """Fail early, without I/O, when `uri` cannot be used: unknown scheme, missing fsspec backend.

    `what` names the use in messages ("outputs", "checkpoints"); `field` is the option or config key.
    """
    scheme = url_scheme(uri)
    parts = urllib.parse.urlsplit(uri)
    if scheme == "pvc":
        raise KubevisionError(
            f"cannot use {uri} here: pvc:// locations are mounted by the operator",
            [Problem("inside a trial pod, use the mounted path (/mnt/kubevision/...) instead", field=field)],
        )
    if scheme not in SUPPORTED_SCHEMES:
        raise KubevisionError(
            f"cannot use {uri}: unsupported scheme {scheme}:// for {what}",
            [Problem(f"use a local path or one of {', '.join(s + '://' for s in SUPPORTED_SCHEMES)}", field=field)],
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise KubevisionError(
                f"cannot use {uri}: file:// URLs must name a local path",
                [Problem("use file:///absolute/path (no host)", field=field)],
            )
        return
    if not parts.netloc:
        raise KubevisionError(
            f"cannot use {uri}: no bucket or container", [Problem(f"expected {scheme}://bucket/prefix", field=field)]
        )
    for package in ("fsspec", FSSPEC_PACKAGES[scheme]):
        if importlib.util.find_spec(package) is None:
            raise KubevisionError(
                f"{scheme}:// {what} need the {package} package, which is not installed here "
                f"(pip install {package} into the trainer's environment or image)",
                [Problem(f"{uri}: cannot be opened without {package}", field=field)],
            )


def _open_fs(uri: str, *, what: str, field: str) -> tuple[Any, str]:
    """The fsspec filesystem and path of a checked URI."""
    check_location(uri, what=what, field=field)
    import fsspec.core

    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except ImportError as err:  # a backend whose own dependencies are missing
        raise KubevisionError(f"cannot open {uri}: {err}") from None
    except Exception as err:  # backends validate credentials/options in their constructors
        raise KubevisionError(f"cannot open {uri}: {type(err).__name__}: {err}") from None
    return fs, str(path).rstrip("/")


def staging_dir(uri: str) -> Path:
    """The node-local folder where a trial with output `uri` works: stable for a URI, distinct between URIs."""
    root = os.environ.get(STAGING_ENV)
    base = Path(root).expanduser() if root else Path(tempfile.gettempdir()) / "kubevision-staging"
    uri = uri.rstrip("/")
    digest = hashlib.sha256(uri.encode("utf-8")).hexdigest()[:16]
    tail = re.sub(r"[^A-Za-z0-9_.-]+", "_", uri.rsplit("/", 1)[-1])[:60].strip(".") or "output"
    return base / f"{tail}-{digest}"


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """(size, mtime in ns, inode) of a local file; None when there is none. Atomic rewrites change the inode."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino) if path.is_file() else None


@dataclass(frozen=True)
class SyncRecord:
    """The local file and the remote object of one name when they were last known to hold the same bytes."""

    local: tuple[int, int, int]
    remote: str


def choose_source(
    local: tuple[int, int, int] | None, remote: str | None, record: SyncRecord | None
) -> Literal["local", "remote"]:
    """Which resume state a starting trial uses, decided on checkpoints/last.pt (see the module docstring).

    `local` is the staging file's signature, `remote` the object's ukey (None: absent), `record` what
    the last sync saw. The staging copy wins when it exists and the remote is as we left it (same or
    ahead: work saved but never uploaded), or when nothing was ever uploaded from it and the remote
    has none; otherwise the remote wins (another node went further, or it was deleted to start over).
    """
    if local is None:
        return "remote"
    if record is None:
        return "local" if remote is None else "remote"
    return "local" if remote == record.remote else "remote"


def _retry(action: Callable[[], T], *, attempts: int, backoff_s: float, what: str) -> T:
    """`action()`, tried `attempts` times with doubling waits; the last error is raised as is."""
    delay = backoff_s
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except (KubevisionError, *_PERMANENT):
            raise
        except Exception as err:  # every fsspec backend raises its own transient error types
            if attempt == attempts:
                raise
            _logger.warning("%s failed (%s: %s); retrying in %.1f s", what, type(err).__name__, err, delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def _reason(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@dataclass
class RemoteOutput:
    """The object-store side of a trial's outputs: `root` on `fs` mirrors the staging folder `local_dir`.

    `direct_put` is True on object stores, where one put is atomic (see the module docstring).
    """

    uri: str
    fs: Any
    root: str
    local_dir: Path
    direct_put: bool
    attempts: int = 4
    backoff_s: float = 1.0
    records: dict[str, SyncRecord] = field(default_factory=dict)

    @classmethod
    def open(cls, uri: str, local_dir: Path | None = None) -> RemoteOutput:
        """Open `uri` (checked) with its staging folder; the sync record of an earlier run is read back."""
        uri = uri.rstrip("/")
        fs, root = _open_fs(uri, what="outputs", field="output")
        remote = cls(uri=uri, fs=fs, root=root, local_dir=Path(local_dir or staging_dir(uri)),
                     direct_put=url_scheme(uri) in FSSPEC_PACKAGES)
        remote.records = remote._load_records()
        return remote

    # -- names and records -------------------------------------------------------------------------

    def key(self, name: str) -> str:
        """The fs path of a name relative to the output folder (`checkpoints/last.pt`)."""
        return f"{self.root}/{name}"

    def url(self, name: str) -> str:
        """The URI a user sees for a name."""
        return f"{self.uri}/{name}"

    def _load_records(self) -> dict[str, SyncRecord]:
        try:
            raw = json.loads((self.local_dir / _RECORD_FILE).read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(raw, dict) or raw.get("uri") != self.uri or not isinstance(raw.get("files"), dict):
            return {}
        records: dict[str, SyncRecord] = {}
        for name, value in raw["files"].items():
            with contextlib.suppress(KeyError, TypeError, ValueError):
                size, mtime, inode = (int(x) for x in value["local"])
                records[str(name)] = SyncRecord((size, mtime, inode), str(value["remote"]))
        return records

    def _save_records(self) -> None:
        files = {name: {"local": list(r.local), "remote": r.remote} for name, r in sorted(self.records.items())}
        self.local_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.local_dir / _RECORD_FILE, json.dumps({"uri": self.uri, "files": files}, indent=1))

    def remote_key(self, name: str) -> str | None:
        """The remote object's ukey (changes whenever the object does); None when it does not exist."""

        def ukey() -> str | None:
            try:
                return str(self.fs.ukey(self.key(name)))
            except FileNotFoundError:
                return None

        try:
            return _retry(ukey, attempts=self.attempts, backoff_s=self.backoff_s, what=f"looking up {self.url(name)}")
        except Exception as err:
            raise self._failure(f"cannot look up {self.url(name)}", err) from None

    def _failure(self, headline: str, err: BaseException) -> KubevisionError:
        return KubevisionError(
            f"{headline} ({_reason(err)})",
            [Problem(f"the trial's outputs are kept in the staging folder {self.local_dir}: rerun the trial on "
                     f"this node to retry the upload, or copy that folder to {self.uri}", field="output")],
        )

    # -- before training ---------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Write and delete a probe object, so an unwritable destination fails before any training."""
        probe = self.key(f".kubevision-write-probe-{uuid.uuid4().hex[:12]}")

        def write() -> None:
            if not self.direct_put:
                self.fs.makedirs(self.root, exist_ok=True)
            self.fs.pipe_file(probe, b"kubevision")
            self.fs.rm_file(probe)

        try:
            _retry(write, attempts=self.attempts, backoff_s=self.backoff_s, what=f"writing a probe to {self.uri}")
        except Exception as err:
            with contextlib.suppress(Exception):
                self.fs.rm_file(probe)
            raise KubevisionError(
                f"cannot write to the output location {self.uri}: {_reason(err)}",
                [Problem("the trial needs to create, overwrite and delete objects there "
                         "(check the URI, the bucket and the credentials)", field="output")],
            ) from None

    def pull(self) -> Literal["local", "remote"]:
        """Make the staging folder's resume state the newest of the staging and remote copies.

        Returns which one the trial resumes from (or starts fresh with, when neither has a checkpoint).
        """
        try:
            self.local_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise KubevisionError(
                f"cannot create the staging folder {self.local_dir} for {self.uri}: {err.strerror or err}",
                [Problem(f"set {STAGING_ENV} to a writable node-local folder", field=STAGING_ENV)],
            ) from None
        last = self.local_dir / _LAST
        source = choose_source(file_signature(last), self.remote_key(_LAST), self.records.get(_LAST))
        if source == "local":
            if last.is_file():
                _logger.info("resuming from the staging copy in %s (same as or ahead of %s)", self.local_dir, self.uri)
            return source
        before = file_signature(last)
        for name in RESUME_FILES:
            self._pull_one(name)
        if file_signature(last) != before:  # another history: the older local fallbacks do not belong to it
            for stale in [self.local_dir / "checkpoints" / "previous.pt",
                          *(self.local_dir / "checkpoints").glob("epoch_*.pt")]:
                stale.unlink(missing_ok=True)
                self.records.pop(stale.relative_to(self.local_dir).as_posix(), None)
        self._save_records()
        return source

    def _pull_one(self, name: str) -> None:
        local = self.local_dir / name
        remote = self.remote_key(name)
        record = self.records.get(name)
        if remote is None:
            local.unlink(missing_ok=True)
            self.records.pop(name, None)
            return
        if record is not None and record.remote == remote and record.local == file_signature(local):
            return  # the staging copy is this very object

        def download() -> None:
            def copy(out: Any) -> None:
                with self.fs.open(self.key(name), "rb") as src:
                    while chunk := src.read(1 << 22):
                        out.write(chunk)

            write_atomically(local, copy)

        try:
            _retry(download, attempts=self.attempts, backoff_s=self.backoff_s, what=f"downloading {self.url(name)}")
        except Exception as err:
            raise KubevisionError(
                f"cannot download {self.url(name)} to resume the trial ({_reason(err)})",
                [Problem(f"staging folder: {self.local_dir}", field="output")],
            ) from None
        signature = file_signature(local)
        if signature is not None:
            self.records[name] = SyncRecord(signature, remote)
        _logger.info("downloaded %s", self.url(name))

    # -- during and after training -----------------------------------------------------------------

    def checkpoint_names(self) -> list[str]:
        """What a checkpoint save changes, in upload order (last.pt, the commit point, after the rest)."""
        return ["metrics.jsonl", "checkpoints/best.pt", *self._epoch_copies(), _LAST, _FINISHED]

    def all_names(self) -> list[str]:
        """Every output, in upload order: the model before the records, finished.json last."""
        checkpoint = [n for n in self.checkpoint_names() if n != _FINISHED]
        return ["labels.json", "model.onnx", *self._model_files(), *checkpoint, "summary.json", _FINISHED]

    def _known(self, prefix: str) -> set[str]:
        """Names under `prefix` that exist locally or were synced before (to delete them remotely if gone)."""
        folder = self.local_dir / prefix
        local = {p.relative_to(self.local_dir).as_posix() for p in folder.rglob("*") if p.is_file()} \
            if folder.is_dir() else set()
        return local | {n for n in self.records if n.startswith(f"{prefix}/")}

    def _epoch_copies(self) -> list[str]:
        names = [n for n in self._known("checkpoints") if _EPOCH_COPY.match(n)]
        return sorted(names, key=lambda n: int(_EPOCH_COPY.match(n).group(1)))  # type: ignore[union-attr]

    def _model_files(self) -> list[str]:
        return sorted(self._known(_MODEL_DIR), key=lambda n: (n == _MLMODEL, n))

    def push(self, names: Iterable[str]) -> list[str]:
        """Bring the remote copies of `names` up to date (see the module docstring); returns what changed."""
        changed: list[str] = []
        for name in names:
            local = self.local_dir / name
            record = self.records.get(name)
            signature = file_signature(local)
            if signature is not None:
                if record is not None and record.local == signature:
                    continue
                self._upload(local, name)
                remote = self.remote_key(name)
                if remote is not None:
                    self.records[name] = SyncRecord(signature, remote)
            elif record is not None:
                if self.remote_key(name) == record.remote:
                    self._delete(name)
                del self.records[name]
            else:
                continue
            changed.append(name)
            self._save_records()
        return changed

    def _upload(self, local: Path, name: str) -> None:
        key = self.key(name)

        def put() -> None:
            if self.direct_put:
                self.fs.put_file(str(local), key)
                return
            parent, _, base = key.rpartition("/")
            tmp = f"{parent}/.{base}.{uuid.uuid4().hex[:12]}.tmp"
            self.fs.makedirs(parent, exist_ok=True)
            try:
                self.fs.put_file(str(local), tmp)
                self.fs.mv(tmp, key)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.fs.rm_file(tmp)
                raise

        try:
            _retry(put, attempts=self.attempts, backoff_s=self.backoff_s, what=f"uploading {self.url(name)}")
        except Exception as err:
            tries = "" if isinstance(err, _PERMANENT) else f" after {self.attempts} tries"
            raise self._failure(f"cannot upload {name} to {self.url(name)}{tries}", err) from None

    def _delete(self, name: str) -> None:
        def rm() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.key(name))

        try:
            _retry(rm, attempts=self.attempts, backoff_s=self.backoff_s, what=f"deleting {self.url(name)}")
        except Exception as err:
            raise self._failure(f"cannot delete the stale {self.url(name)}", err) from None


@dataclass
class TrialOutput:
    """Where a trial writes (`local_dir`) and, for a URI output, the object store it is synced to.

    For a local output every sync call is a no-op, so the train loop calls them unconditionally.
    """

    local_dir: Path
    remote: RemoteOutput | None = None

    @property
    def is_remote(self) -> bool:
        return self.remote is not None

    def location(self, path: Path) -> str:
        """How to tell a user where `path` (inside `local_dir`) ends up: its URI for a remote output."""
        if self.remote is None:
            return str(path)
        return self.remote.url(Path(path).relative_to(self.local_dir).as_posix())

    def push_checkpoint(self) -> None:
        """After a checkpoint save (global rank 0 only)."""
        if self.remote is not None:
            self.remote.push(self.remote.checkpoint_names())

    def push_all(self) -> None:
        """At the end of the trial, and when a finished trial is started again (global rank 0 only)."""
        if self.remote is not None:
            changed = self.remote.push(self.remote.all_names())
            if changed:
                _logger.info("uploaded %d files to %s", len(changed), self.remote.uri)


def open_output(location: str, *, writer: bool, pull: bool) -> TrialOutput:
    """The trial's output: a local folder as is, or a URI with its staging folder prepared.

    `writer` (global rank 0) proves the destination writable; `pull` (the first process of each
    node) downloads the remote resume state into that node's staging folder. Other processes only
    learn the staging path, and must wait (a barrier) until their node's `pull` is done.
    """
    if not is_uri(location):
        return TrialOutput(Path(location))
    remote = RemoteOutput.open(location)
    if writer:
        remote.check_writable()
    if pull:
        remote.pull()
        _logger.info("outputs go to %s; working copy in %s", remote.uri, remote.local_dir)
    return TrialOutput(remote.local_dir, remote)


def _model_candidates(path: str) -> tuple[str, ...]:
    return (f"{path}/artifacts/model.pt", f"{path}/{_MODEL_DIR}/artifacts/model.pt")


def fetch_model(uri: str, *, cache: Path | None = None, attempts: int = 4, backoff_s: float = 1.0) -> Path:
    """The local copy of an earlier model for incremental training: a model.pt, an mlflow-model folder
    or a trial's output folder at `uri`. Only model.pt is downloaded (the loader reads nothing else)."""
    fs, path = _open_fs(uri, what="checkpoints", field="checkpoint")

    def locate() -> tuple[str, str]:
        if fs.isfile(path):
            return path, str(fs.ukey(path))
        if fs.isdir(path):
            for candidate in _model_candidates(path):
                if fs.isfile(candidate):
                    return candidate, str(fs.ukey(candidate))
            raise KubevisionError(f"checkpoint {uri}: no model.pt found (expected an mlflow-model folder or model.pt)")
        raise KubevisionError(f"checkpoint {uri}: file not found")

    try:
        source, version = _retry(locate, attempts=attempts, backoff_s=backoff_s, what=f"looking up {uri}")
    except KubevisionError:
        raise
    except Exception as err:
        raise KubevisionError(f"cannot read checkpoint {uri}: {_reason(err)}") from None
    digest = hashlib.sha256(f"{uri}\n{source}\n{version}".encode()).hexdigest()[:32]
    target = (cache or cache_dir().parent / "models") / digest / PurePosixPath(source).name
    if target.is_file():
        _logger.info("checkpoint %s: using the cached copy %s", uri, target)
        return target

    def download() -> None:
        def copy(out: Any) -> None:
            with fs.open(source, "rb") as src:
                while chunk := src.read(1 << 22):
                    out.write(chunk)

        write_atomically(target, copy)

    try:
        _retry(download, attempts=attempts, backoff_s=backoff_s, what=f"downloading {uri}")
    except Exception as err:
        raise KubevisionError(f"cannot download checkpoint {uri}: {_reason(err)}") from None
    _logger.info("checkpoint %s: downloaded to %s", uri, target)
    return target

