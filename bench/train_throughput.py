"""Does the input pipeline keep the model busy? Trainer images/s end to end vs. the model's own limit.

For each model it measures, with the trainer's own code (`kubevision.trainer.engine.train_one_epoch`):

- compute bound: forward + backward + optimizer step on batches already in memory (no loading);
- loader alone: `build_loaders` batches per second with no model running;
- end to end: `build_datasets` + `build_loaders` + `train_one_epoch` on real PNG files with the real
  presets, `numberOfWorkers` at its default (capped to this machine's cores by `build_loaders`);
- ratio = end to end / compute bound (1.0: the pipeline costs nothing; the target is >= 0.85).

Warm-up batches are excluded: the clock starts when the loop asks for the batch after the warm-up.
Data: scikit-learn's digits written as PNGs (`kubevision.data.datasets.write_digits`, 32 px,
upscaled by the preset's RandomResizedCrop to `--image-size`) in a temporary folder; or `--data`
(a folder with train.jsonl, or a JSONL file); or `--voc` (a Pascal VOC folder such as BCCD's 640x480
JPEG photos, each labelled with its most frequent object class), where decoding really costs.
Prints a table and exits 0.

    python bench/train_throughput.py --models resnet18 mobilenetv2 --image-size 224 --batch-size 32 --steps 20
    python bench/train_throughput.py --voc ../shared/datasets/bccd/BCCD --models mobilenetv2 --cache
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import torch

from kubevision.api.trial import RuntimeSettings, TrialConfig
from kubevision.data.datasets import write_digits
from kubevision.trainer.data import Batch, build_datasets, build_loaders
from kubevision.trainer.engine import AmpSettings, ClipSettings, clip_for_model, train_one_epoch
from kubevision.trainer.models import build_classifier

CPU = torch.device("cpu")


@dataclass
class Ctx:
    """A single-process distributed context (the subset of DistributedContext the loops use)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = CPU

    def gather_arrays(self, array: Any, /) -> Any:
        return array


class Clocked:
    """The first `warmup + steps` batches of `source`; the clock starts when batch `warmup` is asked for."""

    def __init__(self, source: Any, warmup: int, steps: int) -> None:
        self.source, self.warmup, self.steps = source, warmup, steps
        self.started = 0.0

    def __len__(self) -> int:
        return self.warmup + self.steps

    def __iter__(self) -> Iterator[Batch]:
        iterator = iter(self.source)
        for i in range(self.warmup + self.steps):
            if i == self.warmup:
                self.started = time.perf_counter()
            try:
                yield next(iterator)
            except StopIteration:
                iterator = iter(self.source)
                yield next(iterator)


def _train(model: torch.nn.Module, source: Any, warmup: int, steps: int, batch: int, clip: ClipSettings) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, nesterov=True, weight_decay=1e-4)
    clocked = Clocked(source, warmup, steps)
    train_one_epoch(model, clocked, optimizer, None, torch.nn.CrossEntropyLoss(), ctx=Ctx(),
                    amp=AmpSettings(False, torch.float32, False), scaler=None, grad_accumulation=1, clip=clip,
                    epoch=1, channels_last=False)
    return steps * batch / (time.perf_counter() - clocked.started)


def _loader_only(loader: Any, warmup: int, steps: int, batch: int) -> float:
    clocked = Clocked(loader, warmup, steps)
    for _ in clocked:
        pass
    return steps * batch / (time.perf_counter() - clocked.started)


def _voc_jsonl(root: Path, out: Path) -> Path:
    """A classification JSONL over a Pascal VOC folder: each image labelled with its most frequent object."""
    lines = []
    for annotation in sorted((root / "Annotations").glob("*.xml")):
        names = [obj.findtext("name") or "" for obj in ElementTree.parse(annotation).iter("object")]
        image = root / "JPEGImages" / f"{annotation.stem}.jpg"
        if names and image.is_file():
            label = Counter(names).most_common(1)[0][0]
            lines.append(json.dumps({"image_url": str(image.resolve()), "label": label}) + "\n")
    out.write_text("".join(lines))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet18", "mobilenetv2"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before each measurement")
    parser.add_argument("--repeats", type=int, default=1,
                        help="alternate compute-bound and end-to-end measurements this many times; medians shown")
    parser.add_argument("--data", type=Path, help="folder with train.jsonl, or a JSONL file (default: digits)")
    parser.add_argument("--voc", type=Path, help="a Pascal VOC folder (Annotations/, JPEGImages/) to train on")
    parser.add_argument("--workers", type=int, help="numberOfWorkers (default: the trainer's default)")
    parser.add_argument("--cache", action="store_true", help="also measure with runtime.cacheImages")
    parser.add_argument("--threads", type=int, help="torch threads of the training process (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="kv-bench-") as tmp:
        if args.voc is not None:
            jsonl = _voc_jsonl(args.voc, Path(tmp) / "voc.jsonl")
        elif args.data is not None:
            jsonl = args.data / "train.jsonl" if args.data.is_dir() else args.data
        else:
            write_digits(Path(tmp) / "digits")
            jsonl = Path(tmp) / "digits" / "train.jsonl"
        rows = []
        for name in args.models:
            sampled: dict[str, Any] = {
                "modelName": name, "trainingBatchSize": args.batch_size, "validationBatchSize": args.batch_size,
                "trainingCropSize": args.image_size, "validationCropSize": args.image_size,
                "validationResizeSize": args.image_size, "randomSeed": 0}
            if args.workers is not None:
                sampled["numberOfWorkers"] = args.workers
            config = TrialConfig(task="image_classification", training_data={"path": str(jsonl)},
                                 output_dir=str(Path(tmp) / "out"), sampled=sampled)
            hp = config.hyperparameters()
            bundle = build_datasets(config, hp, seed=0)
            torch.manual_seed(0)
            model = build_classifier(name, len(bundle.classes))
            clip = clip_for_model(name)
            batch = args.batch_size
            premade = [Batch(torch.randn(batch, 3, args.image_size, args.image_size),
                             torch.randint(0, len(bundle.classes), (batch,)), torch.arange(batch))]
            for cache in ([False, True] if args.cache else [False]):
                loaders = build_loaders(bundle, hp, Ctx(), runtime=RuntimeSettings(cache_images=cache), seed=0)
                alone = _loader_only(loaders.train, args.warmup, args.steps, batch)
                compute, e2e = [], []
                for _ in range(args.repeats):
                    compute.append(_train(model, premade, args.warmup, args.steps, batch, clip))
                    e2e.append(_train(model, loaders.train, args.warmup, args.steps, batch, clip))
                rows.append((name, loaders.train.num_workers, cache, statistics.median(compute), alone,
                             statistics.median(e2e)))
                del loaders
                bundle.train.cache = bundle.val.cache = None

    print(f"{datetime.date.today().isoformat()}  {platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average before {load_before:.2f}")
    print(f"data {args.voc or args.data or 'digits (32 px PNG)'}; image {args.image_size} px, "
          f"batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up, "
          f"median of {args.repeats}")
    header = ("model", "workers", "cache", "compute-bound img/s", "loader alone img/s", "end-to-end img/s", "ratio")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, workers, cache, compute_rate, alone, e2e_rate in rows:
        print(f"| {name} | {workers} | {'on' if cache else 'off'} | {compute_rate:.1f} | {alone:.1f} "
              f"| {e2e_rate:.1f} | {e2e_rate / compute_rate:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
