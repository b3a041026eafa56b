"""Sweep efficiency on digits: AutoMode vs random search, and early termination on vs off.

Three real `kubevision run`s (`kubevision.local.runner.run_job`, trials as torchrun subprocesses)
on the same data with the same total epoch budget (`--trials` trials x `--epochs` epochs each,
fixed in trainingParameters so that every mode spends the same trial-epochs unless early
termination saves some):

- **AutoMode**: no searchSpace, no sweep: the portfolio's first configs (kubevision.sweep.automode);
- **random**: a random sweep over modelName (resnet18, mobilenetv2), learningRate (loguniform
  1e-3..1e-1) and optimizer (sgd, adam), seeded;
- **random + bandit**: the same sweep, same seed (so the same configs), with bandit early
  termination (slackFactor 0.2, evaluationInterval 1, delayEvaluation 1).

Every trial trains with `randomSeed: 1` (deterministic on the CPU), so a config trains the same way in
both random runs and the difference between them is the policy alone. Per-trial metrics are printed
for the two random runs.

For each it reports the best accuracy, the wall time, and the trial-epochs actually trained; for
early termination also the trial-epochs saved and the best accuracy lost against the same sweep
without it. Prints a table (Markdown, ready for bench/README.md) and exits 0.

    python bench/sweep_efficiency.py                        # 4 trials x 3 epochs, 2 at a time
    python bench/sweep_efficiency.py --trials 6 --epochs 4 --train 1000

Data: scikit-learn's digits (`write_digits`) in a temporary folder, the first `--train` training and
`--val` validation images, trained at 16 px (the digits are 8x8 at heart) on the CPU.
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubevision.data.datasets import write_digits
from kubevision.local.progress import PlainProgress
from kubevision.local.runner import RunOptions, RunResult, run_job

FIXED = {"trainingCropSize": 16, "validationResizeSize": 16, "validationCropSize": 16, "numberOfWorkers": 0,
         "trainingBatchSize": 32, "validationBatchSize": 128, "warmupCosineLrWarmupEpochs": 0, "randomSeed": 1}
SPACE = [{
    "modelName": {"type": "choice", "values": ["resnet18", "mobilenetv2"]},
    "learningRate": {"type": "loguniform", "minValue": -6.9, "maxValue": -2.3},
    "optimizer": {"type": "choice", "values": ["sgd", "adam"]},
}]
BANDIT = {"type": "bandit", "slackFactor": 0.2, "evaluationInterval": 1, "delayEvaluation": 1}


@dataclass(frozen=True)
class Measured:
    name: str
    best: float | None
    seconds: float
    trial_epochs: int
    planned_epochs: int
    states: str


def _subset(src: Path, dst: Path, n: int) -> Path:
    dst.write_text("\n".join(src.read_text().splitlines()[:n]) + "\n")
    return dst


def _job(folder: Path, name: str, data: Path, args: argparse.Namespace, *, automode: bool, bandit: bool) -> Path:
    spec: dict[str, Any] = {
        "task": "image_classification",
        "trainingData": {"path": str(data / "bench-train.jsonl")},
        "validationData": {"path": str(data / "bench-val.jsonl")},
        "limits": {"maxTrials": args.trials, "maxConcurrentTrials": args.concurrent},
        "trainingParameters": {**FIXED, "numberOfEpochs": args.epochs},
        "resources": {"gpusPerNode": 0},
    }
    if not automode:
        spec["searchSpace"] = SPACE
        spec["sweep"] = {"samplingAlgorithm": "random", **({"earlyTermination": BANDIT} if bandit else {})}
    job = {"apiVersion": "kubevision.io/v1alpha1", "kind": "AutoMLImageJob", "metadata": {"name": name},
           "spec": spec}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def _measure(name: str, job: Path, out: Path, seed: int, log: io.StringIO) -> Measured:
    started = time.monotonic()
    result: RunResult = run_job(RunOptions(job_file=job, output=out, seed=seed), progress=PlainProgress(log))
    seconds = time.monotonic() - started
    epochs = sum(o.epochs_run or 0 for o in result.outcomes)
    planned = sum(o.epochs_planned or 0 for o in result.outcomes)
    counts: dict[str, int] = {}
    for o in result.outcomes:
        counts[o.state] = counts.get(o.state, 0) + 1
    best = result.best.value if result.best is not None else None
    print(f"  {name}: best {best}, {seconds:.0f} s, {epochs}/{planned} trial-epochs", file=sys.stderr)
    for o in result.outcomes:
        value = "-" if o.value is None else f"{o.value:.4f}"
        print(f"    trial {o.number} {o.state} {value} after {o.epochs_run}/{o.epochs_planned} epochs: "
              f"{', '.join(f'{k}={v}' for k, v in o.params.items())}", file=sys.stderr)
    return Measured(name, best, seconds, epochs, planned, ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--train", type=int, default=600, help="training images (of 1,438)")
    parser.add_argument("--val", type=int, default=200, help="validation images (of 359)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep the runs in this folder (default: a temporary one)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    with tempfile.TemporaryDirectory(prefix="kubevision-bench-") as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        data = root / "digits"
        write_digits(data)
        _subset(data / "train.jsonl", data / "bench-train.jsonl", args.train)
        _subset(data / "val.jsonl", data / "bench-val.jsonl", args.val)
        log = io.StringIO()
        print(f"{args.trials} trials x {args.epochs} epochs, {args.concurrent} at a time, "
              f"{args.train}/{args.val} images at 16 px", file=sys.stderr)
        runs = [
            ("AutoMode", True, False),
            ("random", False, False),
            ("random + bandit", False, True),
        ]
        results = []
        for name, automode, bandit in runs:
            slug = name.replace(" + ", "-").lower()
            job = _job(root, slug, data, args, automode=automode, bandit=bandit)
            results.append(_measure(name, job, root / "runs" / slug, args.seed, log))

    def show(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    stamp = datetime.date.today().isoformat()
    print(f"\n{stamp}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; {args.trials} trials x {args.epochs} epochs, "
          f"{args.concurrent} at a time, digits {args.train} train / {args.val} val at 16 px, seed {args.seed}\n")
    print("| run | best accuracy | wall time | trial-epochs trained | trials |")
    print("|---|---:|---:|---:|---|")
    for m in results:
        print(f"| {m.name} | {show(m.best)} | {m.seconds:.0f} s | {m.trial_epochs} of {m.planned_epochs} | "
              f"{m.states} |")
    off, on = results[1], results[2]
    saved = off.trial_epochs - on.trial_epochs
    lost = (off.best - on.best) if off.best is not None and on.best is not None else None
    print(f"\nearly termination (bandit) vs none, same configs: {saved} trial-epochs saved "
          f"({saved / max(1, off.trial_epochs):.0%}), {off.seconds - on.seconds:.0f} s saved, best accuracy lost "
          f"{show(lost)}")
    auto, rand = results[0], results[1]
    if auto.best is not None and rand.best is not None:
        print(f"AutoMode vs random: best accuracy {auto.best - rand.best:+.4f}, wall time "
              f"{auto.seconds - rand.seconds:+.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
