"""The training and evaluation loops, on CPU, with small models and in-memory batches.

Most tests feed `Batch`es built in memory (the loops take any sized iterable of them), so what
they observe is the loop itself; one trains resnet18 on real PNGs through the real pipeline. Two
ranks are simulated with threads whose `gather_arrays` meets at a barrier, which is exactly the
contract of `DistributedContext.gather_arrays` (every rank gets the rank-ordered concatenation).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from kubevision.api.errors import KubevisionError
from kubevision.api.trial import RuntimeSettings, TrialConfig
from kubevision.trainer.data import BadImage, Batch, build_datasets, build_loaders
from kubevision.trainer.engine import (
    AmpSettings,
    ClipSettings,
    EvalOutput,
    NonFiniteLossError,
    amp_settings,
    clip_for_model,
    evaluate,
    train_one_epoch,
    use_channels_last,
)
from kubevision.trainer.models import build_classifier

CPU = torch.device("cpu")
NO_AMP = AmpSettings(False, torch.float32, False)
NO_CLIP = ClipSettings(None)


@dataclass
class Ctx:
    """One process: gathering is the identity."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = CPU

    def gather_arrays(self, array: Any, /) -> Any:
        return np.asarray(array)


@dataclass
class ThreadRanks:
    """`world_size` ranks as threads of this process; `gather_arrays` is a real all-gather between them."""

    world_size: int
    slots: list[Any] = field(default_factory=list)
    barrier: threading.Barrier | None = None

    def __post_init__(self) -> None:
        self.slots = [None] * self.world_size
        self.barrier = threading.Barrier(self.world_size)

    def rank(self, rank: int) -> RankCtx:
        return RankCtx(rank, self)


@dataclass
class RankCtx:
    rank: int
    group: ThreadRanks
    device: torch.device = CPU

    @property
    def world_size(self) -> int:
        return self.group.world_size

    def gather_arrays(self, array: Any, /) -> Any:
        barrier = self.group.barrier
        assert barrier is not None
        self.group.slots[self.rank] = np.asarray(array)
        barrier.wait()
        out = np.concatenate(self.group.slots)
        barrier.wait()
        return out


def linear(features: int = 12, classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(features, classes))


def batches(sizes: Sequence[int], *, classes: int = 3, seed: int = 0) -> list[Batch]:
    """Float batches of (N, 3, 2, 2) images (no normalisation step), indices running on."""
    generator = torch.Generator().manual_seed(seed)
    out, start = [], 0
    for n in sizes:
        images = torch.randn(n, 3, 2, 2, generator=generator)
        targets = torch.randint(0, classes, (n,), generator=generator)
        out.append(Batch(images, targets, torch.arange(start, start + n)))
        start += n
    return out


def write_colours(root: Path, per_class: int) -> TrialConfig:
    """Red, green and blue 24 px PNGs with noise, a train.jsonl, and a trial config with 32 px crops."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    lines = []
    for label, colour in (("red", (220, 30, 30)), ("green", (30, 200, 40)), ("blue", (30, 40, 220))):
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.integers(-20, 20, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode="RGB").save(root / "images" / f"{label}_{i}.png")
            lines.append(f'{{"image_url": "images/{label}_{i}.png", "label": "{label}"}}\n')
    (root / "train.jsonl").write_text("".join(lines))
    sampled = {"modelName": "resnet18", "trainingCropSize": 32, "validationResizeSize": 32, "validationCropSize": 32,
               "trainingBatchSize": 8, "validationBatchSize": 8, "numberOfWorkers": 0}
    return TrialConfig(task="image_classification", training_data={"path": "train.jsonl"}, sampled=sampled,
                       output_dir=str(root / "out"), base_dir=str(root))


Row = tuple[torch.Tensor, torch.Tensor, int]


class Rows(Dataset[Row]):
    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Row:
        return self.rows[index]


def run(model: nn.Module, loader: Any, optimizer: torch.optim.Optimizer, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"ctx": Ctx(), "amp": NO_AMP, "scaler": None, "grad_accumulation": 1,
                               "clip": NO_CLIP, "epoch": 1, "channels_last": False}
    scheduler = kwargs.pop("scheduler", None)
    loss_fn = kwargs.pop("loss_fn", nn.CrossEntropyLoss())
    return train_one_epoch(model, loader, optimizer, scheduler, loss_fn, **(options | kwargs))


# ---- settings -------------------------------------------------------------------------------------


def test_amp_is_off_on_cpu_whatever_the_mode() -> None:
    for mode in ("auto", "off", "bf16", "fp16"):
        assert amp_settings(CPU, mode) == AmpSettings(False, torch.float32, False)
    with pytest.raises(KubevisionError, match=r"runtime\.amp"):
        amp_settings(CPU, "fp8")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_amp_on_cuda_prefers_bf16() -> None:
    cuda = torch.device("cuda")
    auto = amp_settings(cuda, "auto")
    assert auto.enabled
    assert auto.dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    assert amp_settings(cuda, "fp16") == AmpSettings(True, torch.float16, True)
    assert not amp_settings(cuda, "off").enabled


def test_clipping_and_memory_format_follow_the_model_family() -> None:
    assert clip_for_model("vitb16r224") == ClipSettings("norm", 1.0)
    assert clip_for_model("resnet50") == ClipSettings("value", 5.0)
    assert clip_for_model("mobilenetv2") == ClipSettings("value", 5.0)
    assert not use_channels_last(CPU, "resnet18")
    assert use_channels_last(torch.device("cuda"), "resnet18")
    assert not use_channels_last(torch.device("cuda"), "vits16r224")
    with pytest.raises(KubevisionError, match="Unknown classification model"):
        clip_for_model("resnet19")


# ---- training -----------------------------------------------------------------------------------


def test_grad_accumulation_steps_the_optimizer_and_scheduler_once_per_group() -> None:
    model = linear()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    steps: list[int] = []
    optimizer.register_step_post_hook(lambda opt, args, kwargs: steps.append(1))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    stats = run(model, batches([4] * 10), optimizer, scheduler=scheduler, grad_accumulation=3)
    assert len(steps) == 4 == stats.steps  # groups of 3, 3, 3 and the epoch's last 1
    assert scheduler.last_epoch == 4
    assert stats.lr == pytest.approx(0.1 / 5)
    assert stats.images == 40 and stats.bad_images == 0


def test_an_accumulated_step_equals_one_step_on_the_whole_group() -> None:
    data = batches([4, 4, 2])
    whole = Batch(torch.cat([b.images for b in data[:2]]), torch.cat([b.targets for b in data[:2]]),
                  torch.arange(8))
    accumulated, single = linear(), linear()
    run(accumulated, data[:2], torch.optim.SGD(accumulated.parameters(), lr=0.5), grad_accumulation=2)
    run(single, [whole], torch.optim.SGD(single.parameters(), lr=0.5))
    for a, b in zip(accumulated.parameters(), single.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    # A short last group is a mean over its own batches, not scaled down by the nominal group size.
    short, alone = linear(), linear()
    run(short, data[2:], torch.optim.SGD(short.parameters(), lr=0.5), grad_accumulation=4)
    run(alone, data[2:], torch.optim.SGD(alone.parameters(), lr=0.5))
    for a, b in zip(short.parameters(), alone.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_clipping_by_value_and_by_norm_is_applied_before_the_step() -> None:
    def huge(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits, targets) * 1e4

    for clip, check in ((ClipSettings("value", 5.0), "value"), (ClipSettings("norm", 1.0), "norm"),
                        (NO_CLIP, "none")):
        model = linear()
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        seen: list[torch.Tensor] = []

        def record(opt: torch.optim.Optimizer, args: Any, kwargs: Any, seen: list[torch.Tensor] = seen) -> None:
            seen.append(torch.cat([p.grad.flatten() for group in opt.param_groups for p in group["params"]]))

        optimizer.register_step_pre_hook(record)
        run(model, batches([8]), optimizer, loss_fn=huge, clip=clip)
        grads = seen[0]
        if check == "value":
            assert grads.abs().max().item() == pytest.approx(5.0)
        elif check == "norm":
            assert grads.norm().item() == pytest.approx(1.0, rel=1e-4)
        else:
            assert grads.abs().max().item() > 100


def test_loss_is_the_mean_over_images_and_bad_images_are_counted() -> None:
    values = iter([2.0, 5.0, 7.0])

    def fixed(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logits.sum() * 0 + next(values)

    data = batches([4, 2])
    empty = Batch(torch.empty(0, 3, 2, 2), torch.empty(0, dtype=torch.int64), torch.empty(0, dtype=torch.int64),
                  (BadImage(6, "a"), BadImage(7, "b")))
    partial = Batch(data[1].images, data[1].targets, data[1].indices, (BadImage(9, "c"),))
    model = linear()
    stats = run(model, [data[0], empty, partial], torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=fixed)
    assert stats.loss == pytest.approx((4 * 2.0 + 2 * 5.0) / 6)  # the empty batch adds nothing
    assert (stats.images, stats.bad_images, stats.steps) == (6, 3, 3)
    assert next(values) == 7.0  # the empty batch did not call loss_fn
    assert stats.seconds > 0


def test_a_non_finite_loss_names_the_epoch_and_batch() -> None:
    values = iter([1.0, 1.5, math.nan, 1.0])

    def diverging(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logits.sum() * 0 + next(values)

    model = linear()
    with pytest.raises(NonFiniteLossError, match="loss became NaN at epoch 5, batch 3; lower learningRate") as err:
        run(model, batches([2, 2, 2, 2]), torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=diverging, epoch=5)
    assert isinstance(err.value, KubevisionError) and (err.value.epoch, err.value.batch) == (5, 3)
    values = iter([1.0, math.inf])
    with pytest.raises(NonFiniteLossError, match="infinite at epoch 1, batch 2"):
        run(model, batches([2, 2]), torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=diverging)


def test_training_through_the_real_pipeline_lowers_the_loss(tmp_path: Path) -> None:
    cfg = write_colours(tmp_path, per_class=12)
    hp = cfg.hyperparameters()
    bundle = build_datasets(cfg, hp, seed=0)
    loaders = build_loaders(bundle, hp, Ctx(), runtime=RuntimeSettings(), seed=0)
    torch.manual_seed(0)
    model = build_classifier("resnet18", len(bundle.classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for epoch in range(4):
        loaders.train_sampler.set_epoch(epoch)
        stats = run(model, loaders.train, optimizer, clip=clip_for_model("resnet18"), epoch=epoch + 1)
        assert stats.images == len(bundle.train) and stats.steps == math.ceil(len(bundle.train) / 8)
        losses.append(stats.loss)
    assert losses[-1] < 0.5 * losses[0], losses
    out = evaluate(model, loaders.val, nn.CrossEntropyLoss(), ctx=Ctx(), amp=NO_AMP, multilabel=False)
    assert (out.probs.argmax(1) == out.targets).mean() >= 0.8


# ---- evaluation ---------------------------------------------------------------------------------


def test_evaluate_returns_probabilities_per_image_in_dataset_order() -> None:
    model = linear()
    data = batches([4, 3])
    shuffled = [Batch(b.images.flip(0), b.targets.flip(0), b.indices.flip(0)) for b in reversed(data)]
    out = evaluate(model, shuffled, nn.CrossEntropyLoss(), ctx=Ctx(), amp=NO_AMP, multilabel=False)
    assert out.probs.shape == (7, 3) and out.probs.dtype == np.float64
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, rtol=1e-6)
    assert out.indices.tolist() == list(range(7))
    images, targets = torch.cat([b.images for b in data]), torch.cat([b.targets for b in data])
    assert out.targets.tolist() == targets.tolist()
    with torch.no_grad():
        logits = model(images)
    np.testing.assert_allclose(out.probs, torch.softmax(logits, 1).numpy(), rtol=1e-5)
    assert out.loss == pytest.approx(nn.functional.cross_entropy(logits, targets).item(), rel=1e-5)
    assert out.bad_images == 0 and not model.training


def test_evaluate_multilabel_uses_sigmoids() -> None:
    model = linear(classes=4)
    generator = torch.Generator().manual_seed(1)
    targets = (torch.rand(5, 4, generator=generator) > 0.5).float()
    batch = Batch(torch.randn(5, 3, 2, 2, generator=generator), targets, torch.arange(5), (BadImage(5, "x"),))
    out = evaluate(model, [batch], nn.BCEWithLogitsLoss(), ctx=Ctx(), amp=NO_AMP, multilabel=True)
    with torch.no_grad():
        expected = torch.sigmoid(model(batch.images))
    np.testing.assert_allclose(out.probs, expected.numpy(), rtol=1e-5)
    assert not np.allclose(out.probs.sum(axis=1), 1.0)
    assert out.targets.dtype == np.float32 and out.targets.shape == (5, 4)
    assert out.bad_images == 1


def test_evaluate_over_ranks_drops_the_sampler_padding() -> None:
    """5 images on 2 ranks: DistributedSampler gives each 3, repeating one; metrics see 5 rows."""
    model = linear()
    data = batches([5])[0]
    dataset = Rows([(data.images[i], data.targets[i], i) for i in range(5)])

    def collate(samples: list[Row]) -> Batch:
        return Batch(torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples]),
                     torch.tensor([s[2] for s in samples]))

    group = ThreadRanks(2)
    results: dict[int, EvalOutput] = {}

    def rank(r: int) -> None:
        sampler: DistributedSampler[int] = DistributedSampler(dataset, num_replicas=2, rank=r, shuffle=False)
        loader: DataLoader[Row] = DataLoader(dataset, batch_size=2, sampler=sampler, collate_fn=collate)
        results[r] = evaluate(model, loader, nn.CrossEntropyLoss(), ctx=group.rank(r), amp=NO_AMP, multilabel=False)

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    single = evaluate(model, [data], nn.CrossEntropyLoss(), ctx=Ctx(), amp=NO_AMP, multilabel=False)
    for r in (0, 1):
        assert results[r].indices.tolist() == [0, 1, 2, 3, 4]
        np.testing.assert_allclose(results[r].probs, single.probs, rtol=1e-6)
        assert results[r].loss == pytest.approx(single.loss)


def test_train_loss_is_gathered_over_ranks() -> None:
    group = ThreadRanks(2)
    stats: dict[int, Any] = {}
    data = {0: batches([4], seed=0), 1: batches([2], seed=1)}

    def fixed(value: float) -> Any:
        return lambda logits, targets: logits.sum() * 0 + value

    def rank(r: int) -> None:
        model = linear()
        stats[r] = run(model, data[r], torch.optim.SGD(model.parameters(), lr=0.1), ctx=group.rank(r),
                       loss_fn=fixed(1.0 if r == 0 else 4.0))

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for r in (0, 1):
        assert stats[r].images == 6
        assert stats[r].loss == pytest.approx((4 * 1.0 + 2 * 4.0) / 6)
