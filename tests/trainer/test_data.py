"""The classification input pipeline on real PNG/JPEG files written to tmp_path.

Images are tiny (16-24 px) solid colours with a little noise, so decoding and the presets run for
real but fast; crops are 16 px. Loaders with workers need AF_UNIX sockets (torch passes shared
memory between processes over them), which the trainer conftest's `no_network` refuses along with
every network connection: `unix_sockets` lets those, and only those, through.
"""

from __future__ import annotations

import _socket
import json
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from kubevision.api.errors import KubevisionError
from kubevision.api.trial import RuntimeSettings, TrialConfig
from kubevision.trainer.data import (
    BadImage,
    Batch,
    BatchCollator,
    DecodedImages,
    Normalization,
    build_datasets,
    build_loaders,
    check_bad_images,
    decode_image,
    prepare_images,
)

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "white": (250, 250, 250)}
SMALL = {"trainingCropSize": 16, "validationResizeSize": 20, "validationCropSize": 16,
         "trainingBatchSize": 8, "validationBatchSize": 8, "numberOfWorkers": 0, "modelName": "resnet18"}

CPU = torch.device("cpu")


@dataclass
class Ctx:
    rank: int = 0
    world_size: int = 1
    device: torch.device = CPU


def write_images(root: Path, labels: Sequence[str | list[str]], *, prefix: str = "img", seed: int = 0,
                 size: int = 20) -> list[dict[str, Any]]:
    """One PNG per label (a solid colour of the first class, plus noise); returns the JSONL rows."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, label in enumerate(labels):
        first = label if isinstance(label, str) else label[0]
        pixels = np.clip(np.array(COLOURS[first]) + rng.integers(-20, 20, (size, size + 4, 3)), 0, 255)
        name = f"images/{prefix}_{i:03d}.png"
        Image.fromarray(pixels.astype(np.uint8), mode="RGB").save(root / name)
        rows.append({"image_url": name, "label": label})
    return rows


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def config(root: Path, *, task: str = "image_classification", val: bool = False,
           val_size: float = 0.2, **params: Any) -> TrialConfig:
    return TrialConfig(task=task, training_data={"path": "train.jsonl"},
                       validation_data={"path": "val.jsonl"} if val else None, validation_data_size=val_size,
                       sampled=SMALL | params, output_dir=str(root / "out"), base_dir=str(root))


def three_classes(root: Path, per_class: int = 10) -> TrialConfig:
    labels = [c for c in ("red", "green", "blue") for _ in range(per_class)]
    write_jsonl(root / "train.jsonl", write_images(root, labels))
    return config(root)


def all_batches(loader: Any) -> list[Batch]:
    return list(loader)


@pytest.fixture
def unix_sockets(no_network: list[object], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Let DataLoader workers hand tensors over (AF_UNIX); other connections stay refused."""
    refuse = socket.socket.connect  # no_network's

    def connect(self: socket.socket, address: Any) -> None:
        if self.family == socket.AF_UNIX:
            return _socket.socket.connect(self, address)
        return refuse(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield


# ---- datasets -------------------------------------------------------------------------------------


def test_validation_data_labels_are_unioned_with_training_labels(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "train.jsonl", write_images(tmp_path, ["red"] * 4 + ["green"] * 3 + ["blue"] * 2))
    write_jsonl(tmp_path / "val.jsonl", write_images(tmp_path, ["red", "green", "white"], prefix="val"))
    bundle = build_datasets(config(tmp_path, val=True), config(tmp_path, val=True).hyperparameters(), seed=0)
    assert bundle.classes == ["blue", "green", "red", "white"]
    assert bundle.class_counts == [2, 3, 4, 0]
    assert not bundle.multilabel
    assert (len(bundle.train), len(bundle.val)) == (9, 3)
    # Targets index the union, in both datasets.
    assert bundle.val.targets.tolist() == [2, 1, 3]
    assert sorted(bundle.train.targets.tolist()) == [0, 0, 1, 1, 1, 2, 2, 2, 2]


def test_without_validation_data_a_seeded_stratified_split_is_held_out(tmp_path: Path) -> None:
    cfg = three_classes(tmp_path)  # 10 per class
    cfg = cfg.model_copy(update={"validation_data_size": 0.3})
    hp = cfg.hyperparameters()
    bundle = build_datasets(cfg, hp, seed=3)
    assert (len(bundle.train), len(bundle.val)) == (21, 9)
    assert bundle.class_counts == [7, 7, 7]  # blue, green, red: stratified exactly
    assert sorted(bundle.val.targets.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    urls = {r.image_url for r in bundle.val.records}
    assert urls.isdisjoint(r.image_url for r in bundle.train.records)
    again = build_datasets(cfg, hp, seed=3)
    assert {r.image_url for r in again.val.records} == urls
    other = build_datasets(cfg, hp, seed=4)
    assert {r.image_url for r in other.val.records} != urls


def test_multilabel_targets_are_multi_hot(tmp_path: Path) -> None:
    labels: list[str | list[str]] = [["red", "blue"], ["green"], ["red"], ["blue", "green", "red"], []] * 4
    labels = [lab if lab else ["white"] for lab in labels]
    write_jsonl(tmp_path / "train.jsonl", write_images(tmp_path, labels))
    cfg = config(tmp_path, task="image_classification_multilabel")
    bundle = build_datasets(cfg, cfg.hyperparameters(), seed=0)
    assert bundle.multilabel and bundle.classes == ["blue", "green", "red", "white"]
    by_url = {r.image_url: tuple(r.classes()) for r in bundle.train.records}
    for row, record in enumerate(bundle.train.records):
        expected = [1.0 if c in by_url[record.image_url] else 0.0 for c in bundle.classes]
        assert bundle.train.targets[row].tolist() == expected
    counts = bundle.train.targets.sum(0).tolist()
    assert bundle.class_counts == [int(c) for c in counts]
    loaders = build_loaders(bundle, cfg.hyperparameters(), Ctx(), runtime=RuntimeSettings(), seed=0)
    batch = next(iter(loaders.train))
    assert batch.targets.dtype == torch.float32 and batch.targets.shape == (8, 4)
    assert set(batch.targets.unique().tolist()) <= {0.0, 1.0}


# ---- images -------------------------------------------------------------------------------------


def test_batches_are_uint8_and_prepare_images_matches_the_eval_preset(tmp_path: Path) -> None:
    cfg = three_classes(tmp_path)
    bundle = build_datasets(cfg, cfg.hyperparameters(), seed=0)
    assert bundle.val.normalization is not None  # the fast path
    loaders = build_loaders(bundle, cfg.hyperparameters(), Ctx(), runtime=RuntimeSettings(), seed=0)
    batch = next(iter(loaders.val))
    assert batch.images.dtype == torch.uint8 and batch.images.shape == (batch.size, 16, 16, 3)
    prepared = prepare_images(batch, torch.device("cpu"))
    assert prepared.dtype == torch.float32 and prepared.shape == (batch.size, 3, 16, 16)
    for row, index in enumerate(batch.indices.tolist()):
        record = bundle.val.records[index]
        reference = bundle.val.preset(Image.open(tmp_path / record.image_url))
        assert torch.equal(prepared[row], reference)  # bit-identical to the whole preset
    last = prepare_images(batch, torch.device("cpu"), channels_last=True)
    assert last.is_contiguous(memory_format=torch.channels_last)


def test_decode_bounds_large_images_to_what_the_preset_can_use(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    Image.fromarray(np.full((900, 1200, 3), 128, dtype=np.uint8)).save(big, quality=90)
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((30, 40, 3), dtype=np.uint8)).save(small)
    assert decode_image(big, 256).size == (341, 256)
    assert decode_image(big, 2000).size == (1200, 900)
    assert decode_image(small, 16).size == (21, 16)
    assert decode_image(small, 256).size == (40, 30)
    gray = tmp_path / "gray.png"
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8), mode="L").save(gray)
    assert decode_image(gray, 16).mode == "RGB"


def test_normalization_is_the_preset_arithmetic() -> None:
    norm = Normalization((0.5, 0.25, 0.0), (0.5, 0.25, 1.0))
    images = torch.tensor([[[[255, 0, 51]]]], dtype=torch.uint8)  # (1, 1, 1, 3)
    out = norm(images)
    assert out.shape == (1, 3, 1, 1)
    torch.testing.assert_close(out.flatten(), torch.tensor([1.0, -1.0, 0.2]))
    batch = torch.randint(0, 256, (2, 5, 4, 3), dtype=torch.uint8)
    plain, last = norm(batch), norm(batch, channels_last=True)
    assert plain.is_contiguous() and last.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(plain, last)


# ---- bad images ---------------------------------------------------------------------------------


def test_a_corrupt_image_mid_training_is_skipped_and_counted(tmp_path: Path) -> None:
    cfg = three_classes(tmp_path)
    hp = cfg.hyperparameters()
    bundle = build_datasets(cfg, hp, seed=0)
    loaders = build_loaders(bundle, hp, Ctx(), runtime=RuntimeSettings(), seed=0)
    first = all_batches(loaders.train)
    assert sum(b.size for b in first) == len(bundle.train) and sum(b.bad_count for b in first) == 0

    victim = bundle.train.records[5]
    (tmp_path / victim.image_url).write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    loaders.train_sampler.set_epoch(1)
    second = all_batches(loaders.train)
    bad = [b for batch in second for b in batch.bad]
    assert [b.index for b in bad] == [5]
    assert victim.image_url in bad[0].message and "train.jsonl" in bad[0].message
    assert sum(b.size for b in second) == len(bundle.train) - 1
    assert 5 not in torch.cat([b.indices for b in second]).tolist()
    check_bad_images(1, len(bundle.train), 0.05)  # 1 of 24: within 5%


def test_check_bad_images_fails_above_the_limit() -> None:
    check_bad_images(0, 0, 0.0)
    check_bad_images(5, 100, 0.05)
    with pytest.raises(KubevisionError, match=r"6 of 100 images \(6\.0%\).*5\.0% runtime\.maxBadImageFraction"):
        check_bad_images(6, 100, 0.05)
    with pytest.raises(KubevisionError):
        check_bad_images(1, 10, 0.0)


def test_an_all_bad_batch_is_empty_with_the_right_shape() -> None:
    collate = BatchCollator((16, 16, 3), (), torch.int64, torch.uint8, None)
    batch = collate([BadImage(3, "x"), BadImage(4, "y")])
    assert batch.size == 0 and batch.bad_count == 2
    assert batch.images.shape == (0, 16, 16, 3) and batch.targets.shape == (0,)
    mixed = collate([BadImage(3, "x"), (torch.zeros(16, 16, 3, dtype=torch.uint8), torch.tensor(2), 7)])
    assert mixed.size == 1 and mixed.indices.tolist() == [7] and mixed.targets.tolist() == [2]


def test_the_cache_finds_unreadable_images_before_training(tmp_path: Path) -> None:
    cfg = three_classes(tmp_path)
    hp = cfg.hyperparameters()
    bundle = build_datasets(cfg, hp, seed=0)
    for record in bundle.train.records[:2]:
        (tmp_path / record.image_url).write_bytes(b"garbage")
    with pytest.raises(KubevisionError, match=r"2 of 24 images"):
        build_loaders(bundle, hp, Ctx(), runtime=RuntimeSettings(cache_images=True), seed=0)
    loaders = build_loaders(bundle, hp, Ctx(), runtime=RuntimeSettings(cache_images=True,
                                                                       max_bad_image_fraction=0.1), seed=0)
    assert bundle.train.cache is not None and bundle.train.cache.cached == 22
    assert [b.index for b in bundle.train.cache.failed] == [0, 1]
    batches = all_batches(loaders.train)
    assert sum(b.size for b in batches) == 22 and sum(b.bad_count for b in batches) == 2


# ---- the cache ------------------------------------------------------------------------------------


def test_cached_and_uncached_loaders_give_identical_batches(tmp_path: Path) -> None:
    cfg = three_classes(tmp_path)
    hp = cfg.hyperparameters()
    plain = build_datasets(cfg, hp, seed=0)
    cached = build_datasets(cfg, hp, seed=0)
    a = build_loaders(plain, hp, Ctx(), runtime=RuntimeSettings(), seed=11)
    b = build_loaders(cached, hp, Ctx(), runtime=RuntimeSettings(cache_images=True), seed=11)
    assert plain.train.cache is None
    assert cached.train.cache is not None and cached.train.cache.cached == 24
    assert cached.train.cache.pixels.numel() == 24 * 20 * 24 * 3
    assert cached.val.cache is not None and cached.val.cache.cached == 6
    for x, y in zip(all_batches(a.train), all_batches(b.train), strict=True):
        assert torch.equal(x.indices, y.indices) and torch.equal(x.images, y.images)


def test_a_cache_over_budget_keeps_what_fits(tmp_path: Path) -> None:
    cfg = three_classes(tmp_path, per_class=2)
    bundle = build_datasets(cfg, cfg.hyperparameters(), seed=0)
    one = 20 * 24 * 3
    cache = DecodedImages.build(bundle.train.records, bundle.train.min_side, budget=2 * one + 10, threads=2)
    assert cache.cached == 2 and cache.pixels.numel() == 2 * one
    assert cache.get(0) is not None and cache.get(2) is None
    image = cache.get(1)
    assert image is not None
    expected = decode_image(tmp_path / bundle.train.records[1].image_url, bundle.train.min_side)
    assert np.array_equal(np.asarray(image), np.asarray(expected))


# ---- loaders --------------------------------------------------------------------------------------


def test_a_batch_larger_than_the_training_set_is_an_error_before_any_work(tmp_path: Path) -> None:
    labels = [c for c in ("red", "green") for _ in range(25)]
    write_jsonl(tmp_path / "train.jsonl", write_images(tmp_path, labels))
    cfg = config(tmp_path, trainingBatchSize=64)
    bundle = build_datasets(cfg, cfg.hyperparameters(), seed=0)
    with pytest.raises(KubevisionError, match="trainingBatchSize 64 is larger than the 40 training images of "
                                              "this process; lower it"):
        build_loaders(bundle, cfg.hyperparameters(), Ctx(), runtime=RuntimeSettings(cache_images=True), seed=0)
    assert bundle.train.cache is None  # nothing was decoded
    hp = cfg.hyperparameters() | {"trainingBatchSize": 32}
    build_loaders(bundle, hp, Ctx(), runtime=RuntimeSettings(), seed=0)
    with pytest.raises(KubevisionError, match=r"larger than the 20 training images of this process \(40 over 2"):
        build_loaders(bundle, hp, Ctx(rank=1, world_size=2), runtime=RuntimeSettings(), seed=0)


def test_two_loaders_with_a_seed_give_identical_batches_whatever_the_workers(
    tmp_path: Path, unix_sockets: None
) -> None:
    cfg = three_classes(tmp_path)
    hp = cfg.hyperparameters()
    bundle = build_datasets(cfg, hp, seed=0)
    inline = build_loaders(bundle, hp, Ctx(), runtime=RuntimeSettings(), seed=5)
    workers = build_loaders(bundle, hp | {"numberOfWorkers": 2}, Ctx(), runtime=RuntimeSettings(), seed=5)
    assert (inline.train.num_workers, workers.train.num_workers) == (0, 2)
    assert workers.train.persistent_workers
    torch.manual_seed(123)  # the training RNG must not matter, nor be touched
    state = torch.get_rng_state()
    x, y = next(iter(inline.train)), next(iter(workers.train))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(x.indices, y.indices) and torch.equal(x.images, y.images)
    other = next(iter(build_loaders(bundle, hp, Ctx(), runtime=RuntimeSettings(), seed=6).train))
    assert not torch.equal(other.indices, x.indices)
    # A new epoch reshuffles and re-augments; going back to an epoch reproduces it (resume).
    inline.train_sampler.set_epoch(1)
    epoch1 = next(iter(inline.train))
    assert not torch.equal(epoch1.indices, x.indices)
    inline.train_sampler.set_epoch(0)
    assert torch.equal(next(iter(inline.train)).images, x.images)


def test_ranks_share_the_epoch_without_overlap(tmp_path: Path) -> None:
    cfg = three_classes(tmp_path)
    hp = cfg.hyperparameters()
    bundle = build_datasets(cfg, hp, seed=0)
    seen = []
    for rank in (0, 1, 2):
        loaders = build_loaders(bundle, hp, Ctx(rank=rank, world_size=3), runtime=RuntimeSettings(), seed=2)
        assert len(loaders.train_sampler) == 8
        seen.append(torch.cat([b.indices for b in loaders.train]).tolist())
    assert sorted(i for part in seen for i in part) == list(range(24))


def test_a_last_training_batch_of_one_image_is_dropped(tmp_path: Path) -> None:
    cfg = three_classes(tmp_path, per_class=3)  # 9 images
    hp = cfg.hyperparameters() | {"trainingBatchSize": 4, "validationBatchSize": 4}
    bundle = build_datasets(cfg.model_copy(update={"validation_data_size": 0.1}), hp, seed=0)
    assert len(bundle.train) == 8
    assert [b.size for b in build_loaders(bundle, hp, Ctx(), runtime=RuntimeSettings(), seed=0).train] == [4, 4]
    hp7 = hp | {"trainingBatchSize": 7}
    assert [b.size for b in build_loaders(bundle, hp7, Ctx(), runtime=RuntimeSettings(), seed=0).train] == [7]
    hp3 = hp | {"trainingBatchSize": 3}
    assert [b.size for b in build_loaders(bundle, hp3, Ctx(), runtime=RuntimeSettings(), seed=0).train] == [3, 3, 2]
