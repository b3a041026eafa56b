"""Data layer: read, check, split and export labelled image data. Imports only kubevision.api.

Why a package of its own: every backend (local runner, operator, trainer) and the CLI need the same
answer to "what does this JSONL/MLTable say, and is it usable", and none of them may drag in torch to
get it. The public names below are the contract the other layers code against:

- `read_dataset(path, task)` -> `Dataset` (validated `ImageRecord`s and sorted classes),
- `resolve_image(record_or_url, base_dir)` -> local `Path` (downloads and caches remote images),
- `check_job_data_paths(job, base_dir=..., job_file=...)` for `kubevision validate`,
- `kubevision.data.check.check_dataset`, `kubevision.data.split.split_train_val`,
  `kubevision.data.export_coco.jsonl_to_coco` (imported from their modules).
"""

from kubevision.data.images import resolve_image
from kubevision.data.jobdata import check_job_data_paths
from kubevision.data.reader import Dataset, read_dataset
from kubevision.data.records import BoxLabel, ImageRecord, PolygonLabel

__all__ = [
    "BoxLabel",
    "Dataset",
    "ImageRecord",
    "PolygonLabel",
    "check_job_data_paths",
    "read_dataset",
    "resolve_image",
]
