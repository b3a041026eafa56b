"""The trial program end to end on real data (scikit-learn digits), as the backends run it.

Real parts only: real torch training on the CPU, a real `torchrun` with gloo for two processes, a
real kill -9 and restart, and `mlflow.pyfunc` loading the exported model in a fresh process. The
thresholds are ones a broken trainer cannot reach: 10 balanced classes give 0.10 accuracy by chance.
Budget: 5 epochs of resnet18 from random init at 16 px with Azure's fixed augmentations (RandomResizedCrop
down to 8% of the image, flips, colour jitter) on one CPU thread reach about 0.80 accuracy (0.77 with
AdamW); the bar is 0.75, 7.5x chance. 0.85 needs about twice the epochs, more than this suite's budget.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kubevision.data.datasets import write_digits

TRAIN = [sys.executable, "-m", "kubevision.cli", "train"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits")
    write_digits(out)
    return out


@pytest.fixture(scope="module")
def mosaics(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mosaics")
    write_digits(out, multilabel=True)
    return out


def _subset(src: Path, dst: Path, n: int) -> Path:
    """The first n lines of a JSONL, written next to the images (image_url stays relative)."""
    lines = src.read_text().splitlines()[:n]
    dst.write_text("\n".join(lines) + "\n")
    return dst


def _job(tmp: Path, data: Path, *, task: str = "image_classification", train: str = "train.jsonl",
         val: str = "val.jsonl", **params: object) -> Path:
    # 16 px crops of the 32 px digit PNGs (the digits are 8x8 at heart): 4x cheaper than 32 px on the CPU.
    fixed = {"modelName": "resnet18", "numberOfEpochs": 3, "trainingBatchSize": 32, "validationBatchSize": 128,
             "trainingCropSize": 16, "validationResizeSize": 16, "validationCropSize": 16, "numberOfWorkers": 0,
             "learningRate": 0.05, "randomSeed": 1, "warmupCosineLrWarmupEpochs": 0}
    fixed.update(params)
    job = {"apiVersion": "kubevision.io/v1alpha1", "kind": "AutoMLImageJob", "metadata": {"name": "t"},
           "spec": {"task": task, "trainingData": {"path": str(data / train)},
                    "validationData": {"path": str(data / val)}, "trainingParameters": fixed}}
    path = tmp / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def _train(job: Path, out: Path, *sets: str, extra: list[str] | None = None, onnx: bool = False,
           timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`kubevision train` in a fresh process (ONNX export, ~15 s, only where a test looks at it)."""
    args = [*TRAIN, "--job", str(job), "--output", str(out), *([] if onnx else ["--no-onnx"])]
    for item in sets:
        args += ["--set", item]
    return subprocess.run(args + (extra or []), capture_output=True, text=True, env=ENV, timeout=timeout)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_digits_multiclass_learns_and_writes_the_full_layout(digits: Path, tmp_path: Path) -> None:
    out = tmp_path / "trial"
    result = _train(_job(tmp_path, digits, numberOfEpochs=5), out, onnx=True)
    assert result.returncode == 0, result.stderr[-3000:]
    katib = [line for line in result.stdout.splitlines() if " epoch=" in line]
    assert len(katib) == 5
    stamp, _, rest = katib[-1].partition(" ")
    assert stamp.endswith("Z") and "T" in stamp and rest.startswith("epoch=5 accuracy=")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 5
    assert summary["best_score"] >= 0.75, summary["metrics"]
    assert len(summary["confusion_matrix"]) == 10
    assert [r["epoch"] for r in _records(out)] == [1, 2, 3, 4, 5]
    for name in ("mlflow-model/MLmodel", "mlflow-model/artifacts/model.pt", "mlflow-model/artifacts/settings.json",
                 "labels.json", "model.onnx", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (out / name).is_file(), name
    assert json.loads((out / "labels.json").read_text()) == [str(i) for i in range(10)]

    # mlflow.pyfunc from a fresh process gives the Azure response, and it is right on real images.
    lines = [json.loads(x) for x in (digits / "val.jsonl").read_text().splitlines()[:20]]
    images = [base64.b64encode((digits / x["image_url"]).read_bytes()).decode() for x in lines]
    code = (
        "import json, sys, mlflow.pyfunc, pandas as pd\n"
        f"m = mlflow.pyfunc.load_model({str(out / 'mlflow-model')!r})\n"
        "rows = m.predict(pd.DataFrame({'image': json.load(sys.stdin)}))\n"
        "print(json.dumps([{'probs': list(map(float, p)), 'labels': list(l)} "
        "for p, l in zip(rows['probs'], rows['labels'])]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(images), capture_output=True, text=True,
                          env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    preds = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(abs(sum(p["probs"]) - 1) < 1e-4 and p["labels"] == [str(i) for i in range(10)] for p in preds)
    predicted = [p["labels"][max(range(10), key=p["probs"].__getitem__)] for p in preds]
    hits = sum(label == x["label"] for label, x in zip(predicted, lines, strict=True))
    assert hits >= 12  # of 20; chance is 2


def test_digits_multilabel_learns_with_sigmoid_outputs(mosaics: Path, tmp_path: Path) -> None:
    """Multi-label end to end: BCE, independent sigmoid probabilities, the iou metric family.

    The bar: predicting every label scores iou of about 0.35 on these mosaics (each digit is on about
    35% of them) and predicting none scores 0, so 0.45 needs the digits recognised. Measured: 0.517
    after 6 epochs (resnet18 from scratch, 16 px: each digit keeps its native 8x8 pixels). With
    Azure's 8%-area random crop the same run stayed below 0.2: see trainer/presets.py.
    """
    out = tmp_path / "trial"
    job = _job(tmp_path, mosaics, task="image_classification_multilabel", numberOfEpochs=6, optimizer="adamw",
               learningRate=0.002)
    result = _train(job, out)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["primary_metric"] == "iou"
    assert {"iou", "iou_macro", "iou_micro", "iou_weighted"} <= set(summary["metrics"])
    assert summary["best_score"] >= 0.45, summary["metrics"]
    losses = [r["metrics"]["log_loss"] for r in _records(out)]
    assert losses[-1] < losses[0], losses
    assert len(summary["confusion_matrix"]) == 10 and all(len(m) == 2 for m in summary["confusion_matrix"])


def test_two_process_torchrun_trains_one_model(digits: Path, tmp_path: Path) -> None:
    _subset(digits / "train.jsonl", digits / "train400.jsonl", 400)
    out = tmp_path / "trial"
    job = _job(tmp_path, digits, train="train400.jsonl", numberOfEpochs=2)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "kubevision.cli", "train", "--job", str(job), "--output", str(out), "--no-onnx"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    # Only global rank 0 reports and writes: one line per validation, one record each.
    assert len([line for line in result.stdout.splitlines() if " epoch=" in line]) == 2
    assert [r["epoch"] for r in _records(out)] == [1, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    # Validation is gathered from both ranks: the full 359-image validation set, no padding duplicates.
    assert sum(sum(row) for row in summary["confusion_matrix"]) == 359


def test_kill_9_then_restart_resumes_and_finishes_the_planned_epochs(digits: Path, tmp_path: Path) -> None:
    _subset(digits / "train.jsonl", digits / "train300.jsonl", 300)
    out = tmp_path / "trial"
    job = _job(tmp_path, digits, train="train300.jsonl", numberOfEpochs=5, earlyStopping=False)
    args = [*TRAIN, "--job", str(job), "--output", str(out), "--no-onnx"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.monotonic() + 300
    last = out / "checkpoints" / "last.pt"
    while time.monotonic() < deadline and not (last.is_file() and (out / "metrics.jsonl").is_file()
                                               and len(_records(out)) >= 2):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(_records(out))
    assert 2 <= done_before < 5, "the kill must land mid-run"
    result = _train(job, out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from" in result.stderr
    assert [r["epoch"] for r in _records(out)] == [1, 2, 3, 4, 5]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_run"] == 5 and summary["status"] == "completed"
    # A finished trial is not trained again.
    again = _train(job, out)
    assert again.returncode == 0 and "already finished" in again.stderr


def test_incremental_training_loads_matching_weights_and_rejects_another_model(digits: Path, tmp_path: Path) -> None:
    _subset(digits / "train.jsonl", digits / "train150.jsonl", 150)
    first = tmp_path / "first"
    job = _job(tmp_path, digits, train="train150.jsonl", numberOfEpochs=1)
    assert _train(job, first).returncode == 0
    second = tmp_path / "second"
    result = _train(job, second, extra=["--checkpoint", str(first / "mlflow-model")])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "incremental training: loaded" in result.stderr
    other = _train(job, tmp_path / "third", "modelName=mobilenetv2",
                   extra=["--checkpoint", str(first / "mlflow-model")])
    assert other.returncode == 1
    assert "resnet18 model but this trial trains mobilenetv2" in other.stderr
    assert "Traceback" not in other.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["modelName=resnet9000"], "resnet9000"),
        (["learningRate=5"], "learningRate"),
        (["learningRat=0.1"], "did you mean 'learningRate'"),
        (["trainingBatchSize=4096"], "larger than"),
    ],
    ids=["unknown-model", "out-of-range", "misspelt", "batch-larger-than-data"],
)
def test_bad_input_fails_fast_with_a_clear_message(digits: Path, tmp_path: Path, sets: list[str],
                                                    message: str) -> None:
    _subset(digits / "train.jsonl", digits / "train100.jsonl", 100)
    out = tmp_path / "trial"
    result = _train(_job(tmp_path, digits, train="train100.jsonl", numberOfEpochs=1), out, *sets)
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (out / "checkpoints").exists()


def test_output_dir_not_writable(digits: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = _train(_job(tmp_path, digits), blocker / "trial")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert str(blocker / "trial") in result.stderr


def test_a_corrupt_image_is_skipped_and_counted(digits: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    lines = [json.loads(x) for x in (digits / "train.jsonl").read_text().splitlines()[:200]]
    for x in lines:
        x["image_url"] = str(digits / x["image_url"])
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    lines.append({"image_url": str(data / "broken.png"), "label": "3"})
    (data / "train.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    val = [json.loads(x) for x in (digits / "val.jsonl").read_text().splitlines()[:100]]
    for x in val:
        x["image_url"] = str(digits / x["image_url"])
    (data / "val.jsonl").write_text("\n".join(json.dumps(x) for x in val) + "\n")
    out = tmp_path / "trial"
    result = _train(_job(tmp_path, data, numberOfEpochs=1), out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["bad_images"] == 1


def test_evaluation_and_checkpoint_frequency_reach_the_loop(digits: Path, tmp_path: Path) -> None:
    _subset(digits / "train.jsonl", digits / "train200.jsonl", 200)
    out = tmp_path / "trial"
    job = _job(tmp_path, digits, train="train200.jsonl", numberOfEpochs=3, evaluationFrequency=2,
               checkpointFrequency=2)
    result = _train(job, out)
    assert result.returncode == 0, result.stderr[-3000:]
    # Validation every 2nd epoch and always on the last one (reference 7).
    assert [r["epoch"] for r in _records(out)] == [2, 3]
    assert (out / "checkpoints" / "epoch_2.pt").is_file()
    assert not (out / "checkpoints" / "epoch_1.pt").exists() and not (out / "checkpoints" / "epoch_3.pt").exists()
