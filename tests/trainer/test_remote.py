"""Trial outputs and checkpoints at a URI (`kubevision train --output file:///bucket/t1`), end to end.

Seams: the "object store" is fsspec's real `file://` filesystem on a temporary folder (a real fsspec
backend, local, so no network) for the trials, and fsspec's real `memory://` filesystem for the sync
rules. Trials are real: resnet18 on real scikit-learn digits, 16 px crops, one CPU thread, run in
this process through the real CLI (importing torch once saves ~10 s a trial), except the one that is
killed with SIGKILL, which must be its own process. The only stand-in is `FlakyMemoryFileSystem`, an
fsspec filesystem whose uploads fail with ConnectionError a set number of times: it plays a flaky
network, which a test cannot get otherwise. Trials here carry no randomSeed: a seeded trial turns on
torch's deterministic mode for the whole process.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import fsspec
import pytest
import yaml
from click.testing import CliRunner, Result
from fsspec.implementations.memory import MemoryFileSystem

from kubevision.api.errors import KubevisionError
from kubevision.cli import cli
from kubevision.data.datasets import write_digits
from kubevision.trainer.entry import config_from_cli
from kubevision.trainer.remote import (
    RemoteOutput,
    SyncRecord,
    choose_source,
    fetch_model,
    file_signature,
    is_uri,
    staging_dir,
)

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
LAYOUT = ("mlflow-model/MLmodel", "mlflow-model/artifacts/model.pt", "labels.json", "summary.json", "metrics.jsonl",
          "checkpoints/last.pt", "checkpoints/best.pt", "checkpoints/finished.json")


# -- trials ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real digits: 200 training and 100 validation images."""
    out = tmp_path_factory.mktemp("digits")
    write_digits(out)
    for name, n in (("train", 200), ("val", 100)):
        lines = (out / f"{name}.jsonl").read_text().splitlines()[:n]
        (out / f"{name}{n}.jsonl").write_text("\n".join(lines) + "\n")
    return out


def _job(folder: Path, data: Path, **params: object) -> Path:
    fixed = {"modelName": "resnet18", "numberOfEpochs": 2, "trainingBatchSize": 32, "validationBatchSize": 128,
             "trainingCropSize": 16, "validationResizeSize": 16, "validationCropSize": 16, "numberOfWorkers": 0,
             "learningRate": 0.05, "warmupCosineLrWarmupEpochs": 0, "earlyStopping": False}
    fixed.update(params)
    job = {"apiVersion": "kubevision.io/v1alpha1", "kind": "AutoMLImageJob", "metadata": {"name": "t"},
           "spec": {"task": "image_classification", "trainingData": {"path": str(data / "train200.jsonl")},
                    "validationData": {"path": str(data / "val100.jsonl")}, "trainingParameters": fixed}}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def _train(job: Path, *args: str, staging: Path, cache: Path | None = None) -> Result:
    """`kubevision train` through the real CLI, in this process."""
    env = {"KUBEVISION_STAGING": str(staging), "KUBEVISION_CACHE": str(cache or staging.parent / "cache")}
    return CliRunner().invoke(cli, ["train", "--job", str(job), "--no-onnx", *args], env=env)


def _epochs(metrics: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()]


@pytest.fixture(scope="module")
def finished(data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Result]:
    """One 2-epoch trial written to file://<bucket>/t1: (bucket, staging root, CLI result)."""
    root = tmp_path_factory.mktemp("finished")
    bucket, staging = root / "bucket", root / "staging"
    result = _train(_job(root, data), "--output", f"file://{bucket}/t1", staging=staging)
    return bucket, staging, result


def test_a_trial_with_a_uri_output_leaves_the_full_layout_in_the_bucket(finished: tuple[Path, Path, Result]) -> None:
    bucket, staging, result = finished
    assert result.exit_code == 0, result.output
    out = bucket / "t1"
    for name in LAYOUT:
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 2
    assert summary["model_dir"] == f"file://{bucket}/t1/mlflow-model"  # where the model is, not the staging copy
    assert _epochs(out / "metrics.jsonl") == [1, 2]
    # The staging copy is kept (and is where the trial worked), and nothing temporary is left in the bucket.
    (work,) = staging.iterdir()
    assert work.name == staging_dir(f"file://{bucket}/t1").name and work.name.startswith("t1-")
    assert (work / "checkpoints" / "last.pt").is_file()
    assert (work / "summary.json").read_bytes() == (out / "summary.json").read_bytes()
    assert (work / "mlflow-model" / "artifacts" / "model.pt").read_bytes() == \
        (out / "mlflow-model" / "artifacts" / "model.pt").read_bytes()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp") or "probe" in p.name]
    assert not (out / "checkpoints" / "previous.pt").exists()  # a local fallback only, never uploaded


def test_kill_9_then_restart_on_another_node_resumes_from_the_bucket(
    data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = tmp_path / "bucket"
    uri = f"file://{bucket}/t2"
    job = _job(tmp_path, data)
    env = {**ENV, "KUBEVISION_STAGING": str(tmp_path / "node-a")}
    args = [sys.executable, "-m", "kubevision.cli", "train", "--job", str(job), "--output", uri, "--no-onnx"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    last = bucket / "t2" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not last.is_file():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    _, stderr = proc.communicate()
    assert last.is_file(), stderr.decode()[-3000:]
    assert _epochs(bucket / "t2" / "metrics.jsonl") == [1], "the kill must land after epoch 1's upload"
    assert not (bucket / "t2" / "summary.json").exists()

    # Node B: an empty staging folder, so everything it resumes from comes from the bucket.
    caplog.set_level(logging.INFO)
    result = _train(job, "--output", uri, staging=tmp_path / "node-b")
    assert result.exit_code == 0, result.output
    assert f"downloaded {uri}/checkpoints/last.pt" in caplog.text
    assert "resuming from" in caplog.text and "at epoch 2 of 2" in caplog.text
    summary = json.loads((bucket / "t2" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 2 and summary["epochs_planned"] == 2
    assert _epochs(bucket / "t2" / "metrics.jsonl") == [1, 2]  # epoch 1 was not trained again
    assert (bucket / "t2" / "mlflow-model" / "MLmodel").is_file()

    # Started again (on node B), the finished trial is not trained again.
    caplog.clear()
    again = _train(job, "--output", uri, staging=tmp_path / "node-b")
    assert again.exit_code == 0 and "already finished" in caplog.text


def test_checkpoint_uri_starts_from_the_bucket_model(
    finished: tuple[Path, Path, Result], data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bucket, _, first = finished
    assert first.exit_code == 0, first.output
    caplog.set_level(logging.INFO)
    cache = tmp_path / "cache"
    job = _job(tmp_path, data, numberOfEpochs=1)
    result = _train(job, "--output", str(tmp_path / "second"), "--checkpoint", f"file://{bucket}/t1/mlflow-model",
                    staging=tmp_path / "staging", cache=cache)
    assert result.exit_code == 0, result.output
    assert "incremental training: loaded" in caplog.text
    (copy,) = (cache / "models").glob("*/model.pt")
    assert copy.read_bytes() == (bucket / "t1" / "mlflow-model" / "artifacts" / "model.pt").read_bytes()
    assert json.loads((tmp_path / "second" / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize(
    ("option", "uri", "message"),
    [
        pytest.param("--output", "s3://bucket/ns/job/trials/t1", "s3:// outputs need the s3fs package", id="no-s3fs"),
        pytest.param("--checkpoint", "gs://bucket/model", "gs:// checkpoints need the gcsfs package", id="no-gcsfs"),
        pytest.param("--output", "ftp://host/out", "unsupported scheme ftp://", id="unknown-scheme"),
        pytest.param("--output", "pvc://claim/out", "pvc:// locations are mounted by the operator", id="pvc"),
        pytest.param("--output", "s3:///no-bucket", "no bucket or container", id="no-bucket"),
    ],
)
def test_an_unusable_uri_fails_before_training(
    data: Path, tmp_path: Path, option: str, uri: str, message: str
) -> None:
    package = {"s3": "s3fs", "gs": "gcsfs"}.get(uri.partition(":")[0])
    if package and "package" in message and importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here")
    extra = [option, uri] if option == "--checkpoint" else []
    result = _train(_job(tmp_path, data), "--output", uri if option == "--output" else str(tmp_path / "out"), *extra,
                    staging=tmp_path / "staging")
    assert result.exit_code == 1, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert "epoch=" not in result.stdout
    assert not (tmp_path / "staging").exists() and not (tmp_path / "out").exists()


def test_an_unwritable_bucket_fails_before_training(data: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "bucket"
    blocker.write_text("a file where the bucket folder should be")  # root ignores chmod; this fails for root too
    uri = f"file://{blocker}/t1"
    result = _train(_job(tmp_path, data), "--output", uri, staging=tmp_path / "staging")
    assert result.exit_code == 1, result.output
    assert f"cannot write to the output location {uri}" in result.stderr and "Traceback" not in result.output
    assert "epoch=" not in result.stdout
    assert not list((tmp_path / "staging").rglob("*.pt"))


# -- sync rules on fsspec's memory filesystem ----------------------------------------------------------


@pytest.fixture
def memory_uri() -> Iterator[str]:
    """A fresh memory:// prefix (the memory filesystem is process-global), removed afterwards."""
    fs = fsspec.filesystem("memory")
    prefix = f"/bucket-{uuid.uuid4().hex[:8]}"
    yield f"memory://{prefix}/t1"
    if fs.exists(prefix):
        fs.rm(prefix, recursive=True)


def _remote(uri: str, staging: Path, fs: Any = None, **kwargs: Any) -> RemoteOutput:
    fs = fs or fsspec.filesystem("memory")
    remote = RemoteOutput(uri=uri, fs=fs, root=fs._strip_protocol(uri), local_dir=staging, direct_put=False,
                          backoff_s=0.01, **kwargs)
    remote.records = remote._load_records()
    return remote


def _write(folder: Path, name: str, data: bytes) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # a new inode, as the atomic writers of the trainer make


def _checkpoint(folder: Path, epoch: int) -> None:
    _write(folder, "checkpoints/last.pt", f"state after epoch {epoch}".encode())
    _write(folder, "checkpoints/best.pt", f"best weights at epoch {epoch}".encode())
    lines = "".join(json.dumps({"epoch": e}) + "\n" for e in range(1, epoch + 1))
    _write(folder, "metrics.jsonl", lines.encode())


def test_choose_source_keeps_unsent_work_and_follows_a_remote_that_moved() -> None:
    sig, newer = (10, 1, 7), (12, 2, 8)
    record = SyncRecord(sig, "ukey-1")
    assert choose_source(None, "ukey-1", record) == "remote"  # nothing here
    assert choose_source(sig, None, None) == "local"  # never uploaded (died before the first upload)
    assert choose_source(sig, "ukey-1", None) == "remote"  # no record: the object store is the truth
    assert choose_source(sig, "ukey-1", record) == "local"  # in sync
    assert choose_source(newer, "ukey-1", record) == "local"  # saved, upload failed or never ran: keep it
    assert choose_source(sig, "ukey-2", record) == "remote"  # another node went further
    assert choose_source(newer, None, record) == "remote"  # deleted remotely: start over


def test_push_uploads_changes_once_and_a_new_node_pulls_the_resume_state(memory_uri: str, tmp_path: Path) -> None:
    a = _remote(memory_uri, tmp_path / "a")
    _checkpoint(a.local_dir, 1)
    _write(a.local_dir, "checkpoints/previous.pt", b"the state before")
    assert a.push(a.checkpoint_names()) == ["metrics.jsonl", "checkpoints/best.pt", "checkpoints/last.pt"]
    assert a.push(a.checkpoint_names()) == []  # unchanged files are not uploaded again
    assert not a.fs.exists(a.key("checkpoints/previous.pt"))
    assert not [k for k in a.fs.find(a.root) if k.endswith(".tmp")]

    b = _remote(memory_uri, tmp_path / "b")
    assert b.pull() == "remote"
    for name in ("checkpoints/last.pt", "checkpoints/best.pt", "metrics.jsonl"):
        assert (b.local_dir / name).read_bytes() == (a.local_dir / name).read_bytes()
    assert not (b.local_dir / "summary.json").exists()
    # The record travels with the staging folder: a restart on node B is in sync and downloads nothing.
    before = file_signature(b.local_dir / "checkpoints/last.pt")
    assert _remote(memory_uri, tmp_path / "b").pull() == "local"
    assert file_signature(b.local_dir / "checkpoints/last.pt") == before


def test_a_checkpoint_saved_but_not_uploaded_survives_a_restart_on_the_same_node(
    memory_uri: str, tmp_path: Path
) -> None:
    a = _remote(memory_uri, tmp_path / "a")
    _checkpoint(a.local_dir, 1)
    a.push(a.checkpoint_names())
    _checkpoint(a.local_dir, 2)  # saved, then the pod died before the upload
    restarted = _remote(memory_uri, tmp_path / "a")
    assert restarted.pull() == "local"
    assert (restarted.local_dir / "checkpoints/last.pt").read_bytes() == b"state after epoch 2"
    assert restarted.push(restarted.checkpoint_names()) == ["metrics.jsonl", "checkpoints/best.pt",
                                                             "checkpoints/last.pt"]
    assert restarted.fs.cat_file(restarted.key("checkpoints/last.pt")) == b"state after epoch 2"


def test_a_remote_that_went_further_replaces_a_stale_staging_copy(memory_uri: str, tmp_path: Path) -> None:
    a = _remote(memory_uri, tmp_path / "a")
    _checkpoint(a.local_dir, 1)
    _write(a.local_dir, "checkpoints/previous.pt", b"older history")
    _write(a.local_dir, "checkpoints/epoch_1.pt", b"older history")
    a.push(a.checkpoint_names())
    b = _remote(memory_uri, tmp_path / "b")
    b.pull()
    _checkpoint(b.local_dir, 3)  # node B trains on
    b.push(b.checkpoint_names())

    back_on_a = _remote(memory_uri, tmp_path / "a")
    assert back_on_a.pull() == "remote"
    assert (back_on_a.local_dir / "checkpoints/last.pt").read_bytes() == b"state after epoch 3"
    assert _epochs(back_on_a.local_dir / "metrics.jsonl") == [1, 2, 3]
    # Fallbacks from the other history are gone; the remote epoch copy A uploaded is kept.
    assert not (back_on_a.local_dir / "checkpoints/previous.pt").exists()
    assert not (back_on_a.local_dir / "checkpoints/epoch_1.pt").exists()
    assert back_on_a.push(back_on_a.all_names()) == []
    assert back_on_a.fs.exists(back_on_a.key("checkpoints/epoch_1.pt"))


def test_a_remote_deleted_to_start_over_clears_the_staging_resume_state(memory_uri: str, tmp_path: Path) -> None:
    a = _remote(memory_uri, tmp_path / "a")
    _checkpoint(a.local_dir, 2)
    a.push(a.checkpoint_names())
    a.fs.rm(a.root, recursive=True)
    restarted = _remote(memory_uri, tmp_path / "a")
    assert restarted.pull() == "remote"
    assert not [p for p in restarted.local_dir.rglob("*") if p.suffix in (".pt", ".jsonl")]


def test_push_all_order_and_deletes_only_what_it_wrote(memory_uri: str, tmp_path: Path) -> None:
    a = _remote(memory_uri, tmp_path / "a")
    _checkpoint(a.local_dir, 2)
    for name in ("labels.json", "model.onnx", "summary.json", "checkpoints/finished.json",
                 "mlflow-model/MLmodel", "mlflow-model/artifacts/model.pt", "mlflow-model/conda.yaml"):
        _write(a.local_dir, name, name.encode())
    names = a.all_names()
    assert names.index("mlflow-model/MLmodel") == names.index("mlflow-model/conda.yaml") + 1
    assert names.index("checkpoints/last.pt") > names.index("checkpoints/best.pt") > names.index("metrics.jsonl")
    assert names[-2:] == ["summary.json", "checkpoints/finished.json"]
    assert set(a.push(names)) == {n for n in names if (a.local_dir / n).is_file()}

    a.fs.pipe_file(a.key("mlflow-model/notes.md"), b"written by a person")
    (a.local_dir / "model.onnx").unlink()  # a re-export whose ONNX step failed removes the stale file
    (a.local_dir / "checkpoints/finished.json").unlink()  # a resumed trial is running again
    assert a.push(a.all_names()) == ["model.onnx", "checkpoints/finished.json"]
    assert not a.fs.exists(a.key("model.onnx")) and not a.fs.exists(a.key("checkpoints/finished.json"))
    assert a.fs.cat_file(a.key("mlflow-model/notes.md")) == b"written by a person"


class FlakyMemoryFileSystem(MemoryFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """fsspec's memory filesystem behind a flaky network: the first `failures` uploads raise ConnectionError."""

    protocol = "flakymemory"
    failures: ClassVar[int] = 0
    calls: ClassVar[int] = 0

    def put_file(self, lpath: Any, rpath: Any, *args: Any, **kwargs: Any) -> None:
        type(self).calls += 1
        if type(self).calls <= type(self).failures:
            raise ConnectionError("connection reset by peer")
        super().put_file(lpath, rpath, *args, **kwargs)


def test_uploads_are_retried_and_a_final_failure_names_the_uri_and_the_staging_folder(
    memory_uri: str, tmp_path: Path
) -> None:
    flaky = FlakyMemoryFileSystem(skip_instance_cache=True)
    FlakyMemoryFileSystem.failures, FlakyMemoryFileSystem.calls = 2, 0
    a = _remote(memory_uri, tmp_path / "a", fs=flaky, attempts=3)
    _write(a.local_dir, "checkpoints/last.pt", b"state")
    assert a.push(["checkpoints/last.pt"]) == ["checkpoints/last.pt"]
    assert FlakyMemoryFileSystem.calls == 3 and flaky.cat_file(a.key("checkpoints/last.pt")) == b"state"

    FlakyMemoryFileSystem.failures, FlakyMemoryFileSystem.calls = 10, 0
    _write(a.local_dir, "checkpoints/last.pt", b"newer state")
    with pytest.raises(KubevisionError) as err:
        a.push(["checkpoints/last.pt"])
    assert FlakyMemoryFileSystem.calls == 3
    text = str(err.value)
    assert f"{memory_uri}/checkpoints/last.pt after 3 tries (ConnectionError" in text
    assert f"kept in the staging folder {a.local_dir}" in text
    assert (a.local_dir / "checkpoints/last.pt").read_bytes() == b"newer state"


def test_a_bucket_that_becomes_unwritable_fails_at_once_with_the_staging_path(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    remote = RemoteOutput.open(f"file://{bucket}/t1", tmp_path / "staging")
    remote.check_writable()
    assert bucket.is_dir() and not list(bucket.rglob("*probe*"))
    bucket.rename(tmp_path / "gone")
    bucket.write_text("now a file")  # a permanent error: no retries, no back-off
    _write(remote.local_dir, "metrics.jsonl", b"{}\n")
    started = time.monotonic()
    failure = r"cannot upload metrics\.jsonl to file://\S+ \((NotADirectory|FileExists)Error"
    with pytest.raises(KubevisionError, match=failure) as err:
        remote.push(["metrics.jsonl"])
    assert time.monotonic() - started < 1.0
    assert str(tmp_path / "staging") in str(err.value)


def test_fetch_model_downloads_model_pt_once_per_version(tmp_path: Path) -> None:
    model = tmp_path / "store" / "trial" / "mlflow-model"
    _write(model, "artifacts/model.pt", b"weights v1")
    cache = tmp_path / "cache"
    for uri in (f"file://{model}", f"file://{model.parent}", f"file://{model}/artifacts/model.pt"):
        got = fetch_model(uri, cache=cache)
        assert got.read_bytes() == b"weights v1" and got.is_relative_to(cache)
    first = fetch_model(f"file://{model}", cache=cache)
    assert fetch_model(f"file://{model}", cache=cache) == first  # cached
    _write(model, "artifacts/model.pt", b"weights v2")  # re-exported at the same URI
    second = fetch_model(f"file://{model}", cache=cache)
    assert second != first and second.read_bytes() == b"weights v2"

    with pytest.raises(KubevisionError, match="file not found"):
        fetch_model(f"file://{tmp_path}/missing", cache=cache)
    (tmp_path / "empty").mkdir()
    with pytest.raises(KubevisionError, match=r"no model\.pt found"):
        fetch_model(f"file://{tmp_path}/empty", cache=cache)


def test_staging_dir_is_stable_per_uri_and_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEVISION_STAGING", str(tmp_path))
    one = staging_dir("s3://bucket/ns/job/trials/t7")
    assert one == staging_dir("s3://bucket/ns/job/trials/t7") and one.parent == tmp_path
    assert one.name.startswith("t7-") and staging_dir("s3://bucket/ns/other/trials/t7") != one
    assert is_uri("s3://b/x") and is_uri("file:///x") and not is_uri("/data/out") and not is_uri("C:\\out")
    assert not is_uri("runs:1/out")


def test_the_cli_keeps_uris_as_written_and_makes_paths_absolute(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _job(tmp_path, data)
    uri = config_from_cli(trial_config=None, job_file=job, sets=(), output_dir="file:///bucket/ns/job/trials/t1",
                          checkpoint="file:///bucket/ns/old/mlflow-model", trial_name="t1")
    assert uri.output_dir == "file:///bucket/ns/job/trials/t1"  # not <cwd>/file:/bucket/...
    assert uri.checkpoint_model_uri == "file:///bucket/ns/old/mlflow-model"
    monkeypatch.chdir(tmp_path)
    local = config_from_cli(trial_config=None, job_file=job, sets=(), output_dir="runs/t1", checkpoint="old/model.pt",
                            trial_name="t1")
    assert local.output_dir == str(tmp_path / "runs" / "t1")
    assert local.checkpoint_model_uri == str(tmp_path / "old" / "model.pt")
