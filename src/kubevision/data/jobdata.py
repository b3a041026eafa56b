"""`kubevision validate`'s data check: do the job's data locations resolve, before anything runs?

Why at validate time: the Azure failure users hit most is data that cannot be found ("Not able to find
MLTable file", StreamError(NotFound)) reported only after submit, from deep inside a run (reference 11).
A relative `trainingData.path` is resolved against the job file's folder (so a job and its data move
together), and a miss is reported against the job file and field with the absolute path it resolved
to. Only existence is checked here — the JSONL file, or the MLTable folder, its MLTable file and the
JSONL files it names; `kubevision data check` reads every line and image. Remote `uri`s are not
fetched (the trials may have credentials this machine lacks); only their scheme is checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kubevision.api.errors import KubevisionError, Problem
from kubevision.data.images import AZUREML_HINT, SUPPORTED_SCHEMES, file_url_path, url_scheme
from kubevision.data.reader import open_source

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kubevision.api.models import AutoMLImageJob, DataInput

__all__ = ["check_data_inputs", "check_job_data_paths"]


def check_job_data_paths(job: AutoMLImageJob, *, base_dir: Path, job_file: str) -> None:
    """Raise `KubevisionError` naming `job_file` and the field for every data location that is wrong."""
    inputs = (("spec.trainingData", job.spec.training_data), ("spec.validationData", job.spec.validation_data))
    check_data_inputs(inputs, base_dir=base_dir, file=job_file)


def check_data_inputs(inputs: Iterable[tuple[str, DataInput | None]], *, base_dir: Path, file: str) -> None:
    """The same check for any (field, data input) pairs: a job's spec, or a trial config's fields.

    The trial program runs it before importing torch, so a wrong path fails in a second, not after
    the ten seconds a training process needs to start.
    """
    problems: list[Problem] = []
    for field, data in inputs:
        if data is None:
            continue
        if data.path:
            problems += _check_path(data.path, Path(base_dir), file, f"{field}.path")
        if data.uri:
            problems += _check_uri(data.uri, Path(base_dir), file, f"{field}.uri")
    if problems:
        raise KubevisionError(f"{file}: data locations do not resolve", problems)


def _check_path(text: str, base_dir: Path, job_file: str, field: str) -> list[Problem]:
    scheme = url_scheme(text)
    if scheme == "azureml":
        return [Problem(f"{text} is an Azure ML data asset; {AZUREML_HINT}", file=job_file, field=field)]
    if scheme not in ("", "file"):
        uri_field = field.rsplit(".", 1)[0] + ".uri"
        return [Problem(f"{text} is a remote location; give it as {uri_field} (path is for local files)",
                        file=job_file, field=field)]
    return _check_local(text, base_dir, job_file, field)


def _check_local(text: str, base_dir: Path, job_file: str, field: str) -> list[Problem]:
    try:
        path = file_url_path(text) if url_scheme(text) == "file" else Path(text)
        full = (path if path.is_absolute() else base_dir / path).resolve()
    except KubevisionError as err:
        return [Problem(err.headline, file=job_file, field=field)]
    except OSError as err:
        return [Problem(f"{text} cannot be resolved: {err}", file=job_file, field=field)]
    if not full.exists():
        return [Problem(f"{text} does not exist (resolved to {full})", file=job_file, field=field)]
    try:
        open_source(full)
    except KubevisionError as err:
        details = [str(p) for p in err.problems] or [err.headline]
        return [Problem(f"{text}: {detail}", file=job_file, field=field) for detail in details]
    return []


def _check_uri(uri: str, base_dir: Path, job_file: str, field: str) -> list[Problem]:
    scheme = url_scheme(uri)
    if scheme == "azureml":
        return [Problem(f"{uri} is an Azure ML data asset; {AZUREML_HINT}", file=job_file, field=field)]
    if scheme == "":
        path_field = field.rsplit(".", 1)[0] + ".path"
        return [Problem(f"{uri!r} is not a URI; for a local JSONL file or MLTable folder use {path_field}",
                        file=job_file, field=field)]
    if scheme not in SUPPORTED_SCHEMES:
        return [Problem(f"unsupported scheme {scheme}://; use one of "
                        f"{', '.join(s + '://' for s in SUPPORTED_SCHEMES)}", file=job_file, field=field)]
    if scheme == "file":
        return _check_local(uri, base_dir, job_file, field)
    return []
