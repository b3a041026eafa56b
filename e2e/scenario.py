"""The e2e scenario itself: tiny real data, a 3-trial grid over learningRate, and what "right" means.

Why this search: three learning rates, one hopeless (1e-7: the weights barely move, accuracy stays
near chance, 0.1 for 10 classes) and two that learn, on 240 real digits at 16 px for 2 epochs
(about 20 s of CPU per trial). Grid sampling runs each value exactly once, so the bad value is
always tried; bandit early termination makes the trials call the operator's decision service with
the token from the job's Secret. The best trial is then whatever the trials' own outputs say
(metrics.jsonl, summary.json), not a number fixed in the test.

Both modes use `job_manifest`: the emulated one (the player runs the trials) and the real cluster
one (Katib and the training operator run them in the trainer image).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BAD_LEARNING_RATE",
    "DATA_DIR",
    "LEARNING_RATES",
    "TrialOutcome",
    "job_manifest",
    "read_trial",
    "write_tiny_digits",
]

BAD_LEARNING_RATE = 1.0e-7
LEARNING_RATES = (BAD_LEARNING_RATE, 0.05, 0.1)
DATA_DIR = "data/digits"
"""Where the data lies on the shared volume (a job's relative paths are relative to the volume)."""
TRAIN, VAL = "train240.jsonl", "val60.jsonl"
FIXED = {
    "modelName": "resnet18", "numberOfEpochs": 2, "trainingBatchSize": 16, "validationBatchSize": 64,
    "trainingCropSize": 16, "validationResizeSize": 16, "validationCropSize": 16, "numberOfWorkers": 0,
    "warmupCosineLrWarmupEpochs": 0, "randomSeed": 1, "evaluationFrequency": 1,
}
"""16 px crops of the 32 px digit PNGs, no loader workers: a trial is ~20 s of one CPU thread."""


def write_tiny_digits(volume: Path) -> Path:
    """scikit-learn's digits under <volume>/data/digits, plus the 240/60-image subsets the job reads."""
    from kubevision.data.datasets import write_digits

    out = volume / DATA_DIR
    write_digits(out)
    for name, source, count in ((TRAIN, "train.jsonl", 240), (VAL, "val.jsonl", 60)):
        lines = (out / source).read_text().splitlines()[:count]
        (out / name).write_text("\n".join(lines) + "\n")
    return out


def job_manifest(name: str, namespace: str, *, train: str = f"{DATA_DIR}/{TRAIN}",
                 val: str = f"{DATA_DIR}/{VAL}", **spec: Any) -> dict[str, Any]:
    """The scenario's AutoMLImageJob (relative data paths: on the shared volume in a cluster)."""
    body: dict[str, Any] = {
        "task": "image_classification",
        "trainingData": {"path": train},
        "validationData": {"path": val},
        "limits": {"maxTrials": len(LEARNING_RATES), "maxConcurrentTrials": len(LEARNING_RATES),
                   "timeoutMinutes": 60},
        "trainingParameters": dict(FIXED),
        "sweep": {"samplingAlgorithm": "grid",
                  "earlyTermination": {"type": "bandit", "evaluationInterval": 1, "delayEvaluation": 0,
                                       "slackFactor": 0.1}},
        "searchSpace": [{"learningRate": {"type": "choice", "values": list(LEARNING_RATES)}}],
        "resources": {"gpusPerNode": 0, "cpu": "1", "memory": "3Gi"},
    }
    body.update(spec)
    return {"apiVersion": "kubevision.io/v1alpha1", "kind": "AutoMLImageJob",
            "metadata": {"name": name, "namespace": namespace}, "spec": body}


@dataclass(frozen=True)
class TrialOutcome:
    """A trial as its own output folder tells it."""

    name: str
    best_accuracy: float
    """The highest accuracy in metrics.jsonl (the trainer exports that epoch's weights)."""
    status: str
    """summary.json status: completed, early_terminated, early_stopped, ..."""
    learning_rate: float
    summary: Mapping[str, Any]


def read_trial(name: str, folder: Path, metric: str = "accuracy") -> TrialOutcome:
    """Read a trial's metrics.jsonl and summary.json (the ground truth the operator must agree with)."""
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    summary = json.loads((folder / "summary.json").read_text())
    values = [float(r["metrics"][metric]) for r in records if metric in r.get("metrics", {})]
    return TrialOutcome(name, max(values), str(summary["status"]),
                        float(summary["hyperparameters"]["learningRate"]), summary)
