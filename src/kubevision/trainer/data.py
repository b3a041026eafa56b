"""The classification input pipeline: records -> decoded, augmented uint8 batches, fast and fault-tolerant.

Why it is built this way (each choice was measured or is forced by a failure users hit):

- **uint8 until the device.** The presets end in `ToImage, ToDtype(float32), Normalize`. Run in a
  worker per image, that float tail is over a third of the worker's CPU (1.6 of 4.4 ms per 224 px
  image on the 2-core bench machine) and quadruples every byte that crosses the worker -> main
  process -> pinned memory -> GPU path (a batch of 78 is 47 MB as float32: it does not fit
  Kubernetes' default 64 MB /dev/shm twice). So the dataset runs only the preset's PIL steps in the
  worker and ships `uint8 (N, H, W, 3)`;
  `prepare_images` converts and normalises on the device with the preset's own mean/std and
  arithmetic (bit-identical output), in the memory format the model wants, in one pass: free on a
  GPU, ~1 ms per 224 px image on a 2-core CPU. If a preset ever stops ending in that tail, the whole
  preset runs in the worker and batches are float: slower, never wrong.
- **Bounded decode.** A RandomResizedCrop (scale >= 0.08, ratio >= 3/4) never uses fewer than
  `sqrt(0.08 * 3/4) = 0.245` of the shorter side, so pixels beyond `crop / 0.245` on the shorter side
  only get averaged away. Images are decoded no larger than that (JPEG DCT draft scaling, then one
  antialiased resize), validation images no larger than `validationResizeSize`. A 12 MP photo then
  costs a fraction of its full decode and of its memory; small images are untouched. Serving decodes
  at full size; validation and serving pixels can differ by a grey level, which no metric sees.
- **The decoded-image cache** (`runtime.cacheImages`) is one flat uint8 tensor of every bounded,
  decoded image, filled by the main process with a thread pool (Pillow releases the GIL while
  decoding) *before* the DataLoader starts its workers. Forked workers share its pages copy-on-write
  and never write them (a tensor's data is not touched by reference counting, unlike a list of
  Python objects, whose pages every worker slowly copies); with a spawn context torch moves it to
  shared memory instead of pickling a copy per worker. A per-worker cache (the obvious
  `functools.lru_cache` in `__getitem__`) would hold every image once per worker and only pay off
  after each worker has seen each image. Budget: half the memory available to this container
  (cgroup limit included), split over the node's ranks; images beyond it are decoded on the fly.
  It decodes the whole dataset once, so unreadable images are known before the first step and too
  many of them fail the trial before any training.
- **Bad images are skipped, not fatal** (Azure's `ignore_data_errors`). A record that cannot be
  resolved or decoded becomes a `BadImage`; the collate function drops it and the batch carries it.
  The trainer fails the trial only when the fraction exceeds `runtime.maxBadImageFraction`
  (`check_bad_images`).
- **Determinism that survives workers and restarts.** The sampler hands every sample its own
  augmentation seed, drawn from (`seed`, epoch); the dataset seeds torch's CPU generator with it. The
  augmented pixels are then a function of (seed, epoch, index) only: identical for 0 or 8 workers,
  in any worker scheduling, and after resuming at epoch k. The sampler is a `DistributedSampler`
  for one process too, so single- and multi-process runs share one code path and one `set_epoch`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate, get_worker_info
from torchvision.transforms import v2

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.models import DataInput
from kubevision.api.tasks import Task
from kubevision.api.trial import RuntimeSettings, TrialConfig
from kubevision.data import read_dataset, resolve_image
from kubevision.data.records import ImageRecord
from kubevision.data.split import split_train_val
from kubevision.trainer.presets import ClassificationPresetEval, ClassificationPresetTrain, settings_json

__all__ = [
    "BadImage",
    "Batch",
    "BatchCollator",
    "DataBundle",
    "DecodedImages",
    "ImageDataset",
    "Loaders",
    "Normalization",
    "Sample",
    "SeededSampler",
    "build_datasets",
    "build_loaders",
    "cache_budget_bytes",
    "check_bad_images",
    "decode_image",
    "prepare_images",
]

_logger = logging.getLogger(__name__)

CACHE_MEMORY_FRACTION = 0.5
"""Share of the memory available to this container that the decoded-image caches of one node may use."""


class RankInfo(Protocol):
    """What the input pipeline needs of `kubevision.trainer.distributed.DistributedContext`."""

    @property
    def rank(self) -> int: ...

    @property
    def world_size(self) -> int: ...

    @property
    def device(self) -> torch.device: ...


# ---- samples and batches ------------------------------------------------------------------------


@dataclass(frozen=True)
class BadImage:
    """An image that could not be read: its dataset index and what went wrong (names the file)."""

    index: int
    message: str


Sample = tuple[torch.Tensor, torch.Tensor, int] | BadImage
"""What `ImageDataset[i]` returns: (image, target, index), or a `BadImage` marker."""


@dataclass(frozen=True)
class Normalization:
    """The float tail of a preset, applied to a uint8 batch on the device (see the module docstring)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, images: torch.Tensor, *, channels_last: bool = False) -> torch.Tensor:
        """uint8 (N, H, W, C) -> normalised float32 (N, C, H, W), in the memory format asked for.

        The layout change rides on the dtype conversion (one pass over the batch; a separate
        `.contiguous()` afterwards doubled the CPU cost), and the arithmetic is the preset's exactly
        (ToDtype(scale=True) multiplies by 1/255, Normalize subtracts and divides), so the result is
        bit-identical to running the whole preset per image.
        """
        mean, std = _stats(self.mean, self.std, images.device)
        layout = torch.channels_last if channels_last else torch.contiguous_format
        out = images.permute(0, 3, 1, 2).to(torch.float32, memory_format=layout)
        return out.mul_(1.0 / 255.0).sub_(mean).div_(std)


@lru_cache(maxsize=16)
def _stats(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1, len(mean), 1, 1)
    return (torch.tensor(mean, dtype=torch.float32, device=device).view(shape),
            torch.tensor(std, dtype=torch.float32, device=device).view(shape))


@dataclass(frozen=True)
class Batch:
    """One mini-batch of good images plus the bad ones that were dropped from it.

    `images` is uint8 `(N, H, W, 3)` when `normalization` is set (the fast path), else normalised
    float32 `(N, 3, H, W)`; `prepare_images` turns either into the model's input. `targets` are class
    indices (int64, `(N,)`) or multi-hot vectors (float32, `(N, C)`); `indices` are the dataset
    indices of the images, which lets evaluation drop the duplicates a DistributedSampler pads with.
    N may be 0 when every image of the batch was bad.
    """

    images: torch.Tensor
    targets: torch.Tensor
    indices: torch.Tensor
    bad: tuple[BadImage, ...] = ()
    normalization: Normalization | None = None

    @property
    def size(self) -> int:
        """Good images in the batch."""
        return int(self.indices.shape[0])

    @property
    def bad_count(self) -> int:
        return len(self.bad)

    def pin_memory(self) -> Batch:
        """Called by the DataLoader's pinning thread (pin_memory=True)."""
        return Batch(self.images.pin_memory(), self.targets.pin_memory(), self.indices.pin_memory(),
                     self.bad, self.normalization)


def prepare_images(batch: Batch, device: torch.device, *, channels_last: bool = False) -> torch.Tensor:
    """The model input of `batch` on `device`: float32 `(N, 3, H, W)`, channels-last if asked."""
    images = batch.images.to(device, non_blocking=True)
    if batch.normalization is not None:
        return batch.normalization(images, channels_last=channels_last)
    return images.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class BatchCollator:
    """`collate_fn`: drops `BadImage`s, stacks the rest, and keeps the dropped ones on the batch.

    Stacking goes through `default_collate`, which in a worker writes straight into shared memory
    (no extra copy on the way to the main process). An all-bad batch becomes an empty batch of the
    right shape, so every rank of a DDP job still runs its forward and backward for that step.
    """

    def __init__(self, image_shape: tuple[int, ...], target_shape: tuple[int, ...], target_dtype: torch.dtype,
                 image_dtype: torch.dtype, normalization: Normalization | None) -> None:
        self.image_shape = image_shape
        self.target_shape = target_shape
        self.target_dtype = target_dtype
        self.image_dtype = image_dtype
        self.normalization = normalization

    def __call__(self, samples: Sequence[Sample]) -> Batch:
        good = [s for s in samples if not isinstance(s, BadImage)]
        bad = tuple(s for s in samples if isinstance(s, BadImage))
        if good:
            images, targets, indices = default_collate(good)
        else:
            images = torch.empty((0, *self.image_shape), dtype=self.image_dtype)
            targets = torch.empty((0, *self.target_shape), dtype=self.target_dtype)
            indices = torch.empty(0, dtype=torch.int64)
        return Batch(images, targets, indices, bad, self.normalization)


def check_bad_images(bad: int, seen: int, limit: float) -> None:
    """Raise `KubevisionError` when more than `limit` (a fraction) of the `seen` images were bad."""
    if seen <= 0 or bad <= 0 or bad / seen <= limit:
        return
    raise KubevisionError(
        f"{bad} of {seen} images ({bad / seen:.1%}) could not be read or decoded, more than the "
        f"{limit:.1%} runtime.maxBadImageFraction allows; run `kubevision data check` on the data to list "
        "them, fix or remove them, or raise runtime.maxBadImageFraction")


# ---- decoding -----------------------------------------------------------------------------------


def _bounded_size(width: int, height: int, min_side: int) -> tuple[int, int]:
    """The size an image is decoded to: shorter side at most `min_side`, aspect ratio kept."""
    short = min(width, height)
    if short <= min_side:
        return width, height
    scale = min_side / short
    if width <= height:
        return min_side, max(min_side, round(height * scale))
    return max(min_side, round(width * scale)), min_side


def _open(path: Path, min_side: int) -> Image.Image:
    """Open `path` with JPEG draft scaling set up so that the shorter side stays >= `min_side`."""
    image = Image.open(path)
    width, height = image.size
    if image.format == "JPEG" and min(width, height) > min_side:
        scale = min_side / min(width, height)
        image.draft(image.mode, (math.ceil(width * scale), math.ceil(height * scale)))
    return image


def decode_image(path: Path, min_side: int) -> Image.Image:
    """Decode `path` as RGB, no larger than needed for a shorter side of `min_side` (module docstring)."""
    with _open(path, min_side) as image:
        rgb = image.convert("RGB")
    size = _bounded_size(rgb.width, rgb.height, min_side)
    if size != rgb.size:
        rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    return rgb


def _planned_size(path: Path, min_side: int) -> tuple[int, int]:
    """`decode_image(path, min_side).size`, from the header only."""
    with _open(path, min_side) as image:
        return _bounded_size(image.width, image.height, min_side)


def _describe(record: ImageRecord, err: Exception) -> str:
    detail = str(err) or type(err).__name__
    return f"{record.source}:{record.line}: image {record.image_url} cannot be used: {detail}"


@dataclass
class DecodedImages:
    """Bounded, decoded RGB images of a dataset in one flat uint8 tensor (the decoded-image cache).

    `offsets[i]` is where image i starts in `pixels` (-1: not cached, decode on the fly); `sizes[i]`
    is its (width, height). `failed` holds (index, message) of images that could not be read.
    """

    pixels: torch.Tensor
    offsets: npt.NDArray[np.int64]
    sizes: npt.NDArray[np.int64]
    failed: list[BadImage] = field(default_factory=list)

    @property
    def cached(self) -> int:
        return int((self.offsets >= 0).sum())

    def get(self, index: int) -> Image.Image | None:
        offset = int(self.offsets[index])
        if offset < 0:
            return None
        width, height = (int(v) for v in self.sizes[index])
        flat = self.pixels[offset:offset + width * height * 3]
        return Image.fromarray(flat.numpy().reshape(height, width, 3), mode="RGB")  # copies the pixels

    @classmethod
    def build(cls, records: Sequence[ImageRecord], min_side: int, budget: int, threads: int) -> DecodedImages:
        """Decode `records` (in order, until `budget` bytes are used) with `threads` threads."""

        def header(index: int) -> tuple[int, int] | BadImage:
            record = records[index]
            try:
                return _planned_size(resolve_image(record), min_side)
            except Exception as err:  # Pillow raises many types for corrupt files; KubevisionError for missing
                return BadImage(index, _describe(record, err))

        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            headers = list(pool.map(header, range(len(records))))
            offsets = np.full(len(records), -1, dtype=np.int64)
            sizes = np.zeros((len(records), 2), dtype=np.int64)
            failed = [h for h in headers if isinstance(h, BadImage)]
            total = 0
            for index, planned in enumerate(headers):
                if isinstance(planned, BadImage):
                    continue
                nbytes = planned[0] * planned[1] * 3
                if total + nbytes > budget:
                    break
                offsets[index], sizes[index] = total, planned
                total += nbytes
            pixels = torch.empty(total, dtype=torch.uint8)
            view = pixels.numpy()

            def fill(index: int) -> BadImage | None:
                record = records[index]
                try:
                    image = decode_image(resolve_image(record), min_side)
                except Exception as err:
                    return BadImage(index, _describe(record, err))
                if image.size != tuple(sizes[index]):  # a header that lied; decode it on the fly instead
                    offsets[index] = -1
                    return None
                start = int(offsets[index])
                view[start:start + image.width * image.height * 3] = np.asarray(image).reshape(-1)
                return None

            cached = [int(i) for i in np.flatnonzero(offsets >= 0)]
            for result in pool.map(fill, cached):
                if result is not None:
                    offsets[result.index] = -1
                    failed.append(result)
        return cls(pixels, offsets, sizes, sorted(failed, key=lambda b: b.index))


# ---- the dataset ------------------------------------------------------------------------------------


def _split_preset(
    preset: ClassificationPresetTrain | ClassificationPresetEval,
) -> tuple[Callable[[Image.Image], Image.Image] | None, Normalization | None]:
    """The PIL part of a preset and its normalisation, or (None, None) if it does not end as expected."""
    steps = list(preset.transforms.transforms)
    tail = steps[-4:]
    if len(steps) < 4 or [type(s) for s in tail] != [v2.ToImage, v2.ToDtype, v2.Normalize, v2.ToPureTensor]:
        return None, None
    to_dtype, normalize = tail[1], tail[2]
    if to_dtype.dtype not in (torch.float32, {torch.Tensor: torch.float32}) or not to_dtype.scale:
        return None, None
    head = v2.Compose(steps[:-4])
    return head, Normalization(tuple(float(m) for m in normalize.mean), tuple(float(s) for s in normalize.std))


def _detail_side(preset: ClassificationPresetTrain | ClassificationPresetEval) -> int:
    """The shorter side beyond which decoding more pixels cannot change what the preset produces."""
    if isinstance(preset, ClassificationPresetEval):
        return preset.resize_size
    for step in preset.transforms.transforms:
        if isinstance(step, v2.RandomResizedCrop):
            smallest = math.sqrt(min(step.scale) * min(min(step.ratio), 1 / max(step.ratio)))
            return math.ceil(preset.crop_size / smallest)
    return preset.crop_size


class ImageDataset(Dataset[Sample]):
    """Labelled images -> (uint8 HWC tensor after the preset's PIL steps, target, index), or `BadImage`.

    A key is a dataset index, or (index, augmentation seed) as `SeededSampler` yields them.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        classes: Sequence[str],
        *,
        multilabel: bool,
        preset: ClassificationPresetTrain | ClassificationPresetEval,
    ) -> None:
        self.records = list(records)
        self.classes = list(classes)
        self.multilabel = multilabel
        self.preset = preset
        self.pil_transform, self.normalization = _split_preset(preset)
        self.min_side = _detail_side(preset)
        self.cache: DecodedImages | None = None
        index = {name: i for i, name in enumerate(self.classes)}
        if multilabel:
            targets = torch.zeros((len(self.records), len(self.classes)), dtype=torch.float32)
            for row, record in enumerate(self.records):
                for name in record.classes():
                    targets[row, index[name]] = 1.0
        else:
            targets = torch.tensor([index[r.classes()[0]] for r in self.records], dtype=torch.int64)
        self.targets = targets

    def __len__(self) -> int:
        return len(self.records)

    @property
    def crop_size(self) -> int:
        return self.preset.crop_size

    def collator(self) -> BatchCollator:
        """The collate function for batches of this dataset."""
        crop = self.crop_size
        fast = self.normalization is not None
        return BatchCollator(
            image_shape=(crop, crop, 3) if fast else (3, crop, crop),
            target_shape=tuple(self.targets.shape[1:]),
            target_dtype=self.targets.dtype,
            image_dtype=torch.uint8 if fast else torch.float32,
            normalization=self.normalization,
        )

    def class_counts(self) -> list[int]:
        """Images per class (multi-class) or positives per class (multi-label), in class order."""
        if self.multilabel:
            return [int(v) for v in self.targets.sum(dim=0).tolist()]
        return [int(v) for v in torch.bincount(self.targets, minlength=len(self.classes)).tolist()]

    def __getitem__(self, key: int | tuple[int, int]) -> Sample:
        index, seed = key if isinstance(key, tuple) else (key, None)
        record = self.records[index]
        image = self.cache.get(index) if self.cache is not None else None
        if image is None:
            try:
                image = decode_image(resolve_image(record), self.min_side)
            except Exception as err:  # Pillow raises many types for corrupt data; KubevisionError for missing
                return BadImage(index, _describe(record, err))
        if seed is None:
            pixels = self._transform(image)
        elif get_worker_info() is not None:
            torch.default_generator.manual_seed(seed)  # a worker's CPU RNG serves only this dataset
            pixels = self._transform(image)
        else:
            with torch.random.fork_rng(devices=[]):  # in the main process: leave the training RNG alone
                torch.default_generator.manual_seed(seed)
                pixels = self._transform(image)
        return pixels, self.targets[index], index

    def _transform(self, image: Image.Image) -> torch.Tensor:
        if self.pil_transform is None:
            return self.preset(image)
        out = self.pil_transform(image)
        return torch.from_numpy(np.array(out, dtype=np.uint8, copy=True))


# ---- datasets of a trial --------------------------------------------------------------------------


@dataclass(frozen=True)
class DataBundle:
    """The train and validation datasets of a trial and what the loss and the report need to know."""

    train: ImageDataset
    val: ImageDataset
    classes: list[str]
    class_counts: list[int]
    """Training images per class (multi-label: positive labels per class), in `classes` order."""
    multilabel: bool


def _location(config: TrialConfig, data: DataInput) -> str | Path:
    if data.path is not None:
        return config.resolve_path(data.path)
    if data.uri is not None:
        return data.uri
    raise KubevisionError("a data input needs a path or a uri")


def build_datasets(config: TrialConfig, hp: Mapping[str, Any], *, seed: int) -> DataBundle:
    """Read the trial's data and build its datasets (no image is opened here).

    Without validation data, `validationDataSize` of the training data is held out with a split
    stratified by class (by the rarest class for multi-label) and seeded with `seed`: pass the same
    seed on every rank, and across the trials of a job, so they all validate on the same images.
    Classes are the sorted union of the training and validation labels (reference 2.4).
    """
    task = Task(config.task)
    if task not in (Task.IMAGE_CLASSIFICATION, Task.IMAGE_CLASSIFICATION_MULTILABEL):
        raise KubevisionError(f"the classification input pipeline cannot train {task}")
    multilabel = task == Task.IMAGE_CLASSIFICATION_MULTILABEL
    train = read_dataset(_location(config, config.training_data), task, target_column=config.target_column_name)
    if config.validation_data is not None:
        val = read_dataset(_location(config, config.validation_data), task, target_column=config.target_column_name)
        train_records, val_records = train.records, val.records
        classes = sorted(set(train.classes) | set(val.classes))
        only_val = sorted(set(val.classes) - set(train.classes))
        if only_val:
            _logger.warning("classes only in the validation data (the model cannot learn them): %s",
                            ", ".join(only_val))
    else:
        train_records, val_records = split_train_val(
            train.records, validation_size=config.validation_data_size, seed=seed, stratify=True)
        classes = list(train.classes)
    settings = settings_json(task, hp)
    train_set = ImageDataset(train_records, classes, multilabel=multilabel,
                             preset=ClassificationPresetTrain.from_settings(settings, multilabel=multilabel))
    val_set = ImageDataset(val_records, classes, multilabel=multilabel,
                           preset=ClassificationPresetEval.from_settings(settings))
    return DataBundle(train_set, val_set, classes, train_set.class_counts(), multilabel)


# ---- loaders ------------------------------------------------------------------------------------


class SeededSampler(DistributedSampler[int]):
    """A DistributedSampler (for one process too) that gives every sample its augmentation seed.

    Yields `(index, seed)`; the seeds of an epoch are drawn from (seed, epoch) for the whole padded
    epoch, so they are the same on every rank and do not depend on worker count or scheduling.
    """

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        seeds = torch.randint(0, 2**62, (self.total_size,), generator=generator).tolist()
        mine = seeds[self.rank:self.total_size:self.num_replicas]
        # DataLoader passes sampler items to the dataset unchanged; ImageDataset takes (index, seed).
        return iter(zip(indices, mine, strict=True))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Loaders:
    """The loaders of a trial. Call `train_sampler.set_epoch(epoch)` before each training epoch."""

    train: DataLoader[Sample]
    val: DataLoader[Sample]
    train_sampler: SeededSampler


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _local_world_size() -> int:
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def cache_budget_bytes() -> int:
    """Bytes this process may use for decoded images: a share of the memory available to its container.

    Available = MemAvailable, lowered to the cgroup's limit minus its usage inside a container (a pod's
    limit is far below the node's memory, and exceeding it is an OOM kill, not an error message).
    """
    available: int | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        available = None
    if available is None:
        available = 2 * 1024**3
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:
            available = min(available, max(0, limit - usage))
    return int(available * CACHE_MEMORY_FRACTION / _local_world_size())


def _cache(dataset: ImageDataset, budget: int, threads: int, what: str) -> int:
    """Fill `dataset.cache`; returns the bytes used."""
    cache = DecodedImages.build(dataset.records, dataset.min_side, budget, threads)
    dataset.cache = cache
    used = int(cache.pixels.numel())
    _logger.info("decoded-image cache: %d of %d %s images in memory (%.1f MB)%s", cache.cached,
                 len(dataset), what, used / 1e6,
                 "" if cache.cached + len(cache.failed) == len(dataset) else "; the rest are decoded each epoch")
    return used


def build_loaders(
    bundle: DataBundle, hp: Mapping[str, Any], ctx: RankInfo, *, runtime: RuntimeSettings, seed: int
) -> Loaders:
    """The train and validation loaders of this process.

    Checks the batch size against this rank's share of the training set first (an error before any
    work), then, with `runtime.cache_images`, decodes the data into the cache (and fails the trial
    there if more than `runtime.max_bad_image_fraction` of the images are unreadable). Workers:
    `numberOfWorkers`, at most this node's CPUs divided by its ranks; 0 loads in the main process.
    """
    batch_size = int(hp["trainingBatchSize"])
    val_batch_size = int(hp["validationBatchSize"])
    per_rank = math.ceil(len(bundle.train) / ctx.world_size)
    if batch_size > per_rank:
        spread = f" ({len(bundle.train)} over {ctx.world_size} processes)" if ctx.world_size > 1 else ""
        raise KubevisionError(
            f"trainingBatchSize {batch_size} is larger than the {per_rank} training images of this process"
            f"{spread}; lower it",
            [Problem(f"at most {per_rank}", field="trainingParameters.trainingBatchSize")])
    requested = int(hp.get("numberOfWorkers", 0))
    cpus = max(1, _cpu_count() // _local_world_size())
    workers = min(requested, cpus)

    if runtime.cache_images:
        budget = cache_budget_bytes()
        used = _cache(bundle.train, budget, cpus, "training")
        _cache(bundle.val, max(0, budget - used), cpus, "validation")
        train_cache = bundle.train.cache
        assert train_cache is not None
        failed = len(train_cache.failed)
        if failed:
            _logger.warning("%d training images cannot be used; the first: %s", failed, train_cache.failed[0].message)
        check_bad_images(failed, len(bundle.train), runtime.max_bad_image_fraction)

    train_sampler = SeededSampler(bundle.train, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed)
    val_sampler: DistributedSampler[int] = DistributedSampler(
        bundle.val, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=False)
    # A last training batch of one image breaks batch norm wherever the feature map is 1x1; drop just that one.
    drop_last = len(train_sampler) % batch_size == 1
    common: dict[str, Any] = {
        "num_workers": workers,
        "pin_memory": ctx.device.type == "cuda",
        "persistent_workers": workers > 0,
    }
    if workers > 0:
        common["prefetch_factor"] = 2
    generator = torch.Generator().manual_seed(seed * 1_000_003 + ctx.rank)
    train = DataLoader(bundle.train, batch_size=batch_size, sampler=train_sampler, drop_last=drop_last,
                       collate_fn=bundle.train.collator(), generator=generator, **common)
    val = DataLoader(bundle.val, batch_size=val_batch_size, sampler=val_sampler, drop_last=False,
                     collate_fn=bundle.val.collator(), **common)
    return Loaders(train, val, train_sampler)
