"""Pascal VOC XML (boxes, optionally instance-mask PNGs) to Azure JSONL records.

Why these rules: they follow Azure's `VOCJSONLConverter` (reference 10.1) so results match it:
`<name>` is the label, `<difficult>` becomes `isCrowd`, and box corners are divided by the image size
as written, `xmin / width`, although VOC pixel coordinates are 1-based; shifting by one pixel would
make our JSONL differ from Azure's for the same data for a sub-pixel gain. Boxes reaching outside the
image are clipped to [0, 1] and counted; a zero-area box inside the image (annotation tools record a
click without a drag that way) is widened to one pixel and counted, so no labelled object is lost; a
box wholly outside the image is dropped and listed in the summary, never silently. With `--masks`, each XML
has a PNG `<xml stem>.png` whose pixel values are instance ids (0 background, 255 VOC's "void" border):
instance masks in increasing pixel value are matched to the XML's objects in order and traced into
polygons, which makes the task instance segmentation. Images are looked up in `--images`, by default
the `JPEGImages` folder next to the annotations folder (VOC), else an `images` folder there (Azure's
odFridgeObjects zips), by `<filename>`, falling back to its stem (or the XML's) with any image
extension because some tools write the name without one.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from kubevision.api.errors import KubevisionError, Problem
from kubevision.api.tasks import Task
from kubevision.data.convert.geometry import Box, box_label, clip_polygon, polygon_label
from kubevision.data.convert.imagefiles import ImageInfo, find_image, probe_image
from kubevision.data.convert.jsonl_writer import ImageRecord
from kubevision.data.convert.masks import mask_to_polygons
from kubevision.data.convert.summary import Collector

__all__ = ["read_voc"]

_VOID = 255  # VOC's "void" label around object borders in segmentation PNGs


def read_voc(source: Path, *, images: Path | None, masks: Path | None, task: Task | None,
             log: Collector) -> tuple[list[ImageRecord], Task, Path]:
    """Read a VOC Annotations folder (or one XML); returns the records, the task and the images root."""
    xml_files = _xml_files(source)
    annotations_dir = source if source.is_dir() else source.parent
    images_root = images if images is not None else _default_images(annotations_dir)
    if not images_root.is_dir():
        raise KubevisionError("images folder not found", [Problem(
            "pass --images (default: the JPEGImages or images folder next to the annotations folder)",
            file=str(images_root))])
    if masks is not None and not masks.is_dir():
        raise KubevisionError("masks folder not found", [Problem("--masks must be a folder of PNG files",
                                                                 file=str(masks))])
    wanted = Task.IMAGE_INSTANCE_SEGMENTATION if masks is not None else Task.IMAGE_OBJECT_DETECTION
    if task is not None and task != wanted:
        hint = " (pass --masks for instance segmentation)" if masks is None else ""
        raise KubevisionError(f"Pascal VOC {'with' if masks else 'without'} --masks converts to {wanted}, "
                              f"not {task}{hint}")

    records: list[ImageRecord] = []
    for xml_file in xml_files:
        record = _read_one(xml_file, images_root, masks, log)
        if record is not None:
            records.append(record)
    log.raise_if_problems(f"{source}: invalid Pascal VOC annotations")
    return records, wanted, images_root


def _default_images(annotations_dir: Path) -> Path:
    """VOC's sibling JPEGImages/, else images/ (the layout of Azure's odFridgeObjects zips)."""
    voc = annotations_dir.parent / "JPEGImages"
    fridge = annotations_dir.parent / "images"
    return fridge if not voc.is_dir() and fridge.is_dir() else voc


def _xml_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise KubevisionError("Pascal VOC source not found", [Problem(
            "pass the Annotations folder or one XML file", file=str(source))])
    files = sorted(p for p in source.iterdir() if p.suffix.lower() == ".xml" and p.is_file())
    if not files:
        raise KubevisionError("no Pascal VOC annotations found", [Problem("no .xml files in this folder",
                                                                           file=str(source))])
    return files


def _read_one(xml_file: Path, images_root: Path, masks: Path | None, log: Collector) -> ImageRecord | None:
    file = str(xml_file)
    try:
        root = ET.parse(xml_file).getroot()
    except ET.ParseError as err:
        log.problem(f"not well-formed XML ({err})", file=file, line=err.position[0])
        return None
    filename = (root.findtext("filename") or "").strip()
    image_path = find_image(images_root, filename or xml_file.stem, stem=xml_file.stem)
    if image_path is None:
        log.problem(f"image '{filename or xml_file.stem}' not found in {images_root}", file=file,
                    field="filename")
        return None
    probed = probe_image(image_path)
    if isinstance(probed, str):
        log.problem(f"{probed}: {image_path}", file=file, field="filename")
        return None
    width, height = _size(root, probed, file, log)
    if width is None or height is None:
        return None
    info = ImageInfo(path=probed.path, width=width, height=height, format=probed.format)

    objects = root.findall("object")
    parsed: list[tuple[str, int, Box, str]] = []
    for index, obj in enumerate(objects):
        item = _object(obj, index, width, height, file, log)
        if item is not None:
            parsed.append(item)
    if len(parsed) != len(objects):
        return None  # problems already reported

    if masks is not None:
        return _with_masks(xml_file, masks, info, parsed, log)
    labels: list[dict[str, Any]] = []
    for index, (name, difficult, box, pixels) in enumerate(parsed):
        clipped, changed = box.clipped()
        if not clipped.has_area:
            if not box.touches_image:
                log.skip(f"{file}: object[{index}] ({name})", f"box lies outside the image ({pixels})")
                continue
            clipped = clipped.widened(1 / width, 1 / height)
            log.widened += 1
        log.clipped += int(changed)
        labels.append(box_label(name, clipped, is_crowd=difficult))
    return ImageRecord(image=info, label=labels)


def _size(root: ET.Element, probed: ImageInfo, file: str, log: Collector) -> tuple[int | None, int | None]:
    """The XML's size (what the boxes were drawn on), else the image's own when the XML has none or 0."""
    try:
        width = int(float(root.findtext("size/width") or 0))
        height = int(float(root.findtext("size/height") or 0))
    except ValueError:
        log.problem("size/width and size/height must be numbers", file=file, field="size")
        return None, None
    if width <= 0 or height <= 0:
        return probed.width, probed.height
    if (width, height) != (probed.width, probed.height):
        log.problem(f"XML size {width}x{height} differs from the image file's "
                    f"{probed.width}x{probed.height}: {probed.path}", file=file, field="size")
        return None, None
    return width, height


def _object(obj: ET.Element, index: int, width: int, height: int, file: str,
            log: Collector) -> tuple[str, int, Box, str] | None:
    field = f"object[{index}]"
    name = (obj.findtext("name") or "").strip()
    if not name:
        log.problem("missing <name>", file=file, field=f"{field}.name")
        return None
    difficult_text = (obj.findtext("difficult") or "0").strip()
    if difficult_text not in ("0", "1"):
        log.problem(f"<difficult> must be 0 or 1, got {difficult_text!r}", file=file,
                    field=f"{field}.difficult")
        return None
    values: list[float] = []
    for key in ("xmin", "ymin", "xmax", "ymax"):
        text = obj.findtext(f"bndbox/{key}")
        try:
            values.append(float((text or "").strip()))
        except ValueError:
            log.problem(f"<{key}> must be a number, got {text!r}", file=file, field=f"{field}.bndbox.{key}")
            return None
    xmin, ymin, xmax, ymax = values
    pixels = f"xmin={xmin:g} ymin={ymin:g} xmax={xmax:g} ymax={ymax:g}"
    if xmax < xmin or ymax < ymin:
        log.problem(f"box corners are reversed: {pixels}", file=file, field=f"{field}.bndbox")
        return None
    return name, int(difficult_text), Box(xmin / width, ymin / height, xmax / width, ymax / height), pixels


def _with_masks(xml_file: Path, masks: Path, info: ImageInfo, parsed: list[tuple[str, int, Box, str]],
                log: Collector) -> ImageRecord | None:
    file = str(xml_file)
    mask_file = masks / f"{xml_file.stem}.png"
    instance_ids = _instance_image(mask_file, info, file, log)
    if instance_ids is None:
        return None
    values = [int(v) for v in np.unique(instance_ids) if v not in (0, _VOID)]
    if len(values) != len(parsed):
        log.problem(f"{mask_file.name} has {len(values)} instances (pixel values {values[:10]}) but the "
                    f"XML has {len(parsed)} objects", file=file)
        return None
    labels: list[dict[str, Any]] = []
    for index, ((name, difficult, _box, _pixels), value) in enumerate(zip(parsed, values, strict=True)):
        pixel_polygons = mask_to_polygons(instance_ids == value)
        if not pixel_polygons:
            log.skip(f"{file}: object[{index}] ({name})",
                     f"instance {value} in {mask_file.name} traces to no polygon with 3 or more points")
            continue
        normalized = [[v / (info.width if i % 2 == 0 else info.height) for i, v in enumerate(segment)]
                      for segment in pixel_polygons]
        polygon, changed = clip_polygon(normalized)
        log.clipped += int(changed)
        labels.append(polygon_label(name, polygon, is_crowd=difficult))
    return ImageRecord(image=info, label=labels)


def _instance_image(mask_file: Path, info: ImageInfo, file: str, log: Collector) -> NDArray[Any] | None:
    if not mask_file.is_file():
        log.problem(f"instance mask {mask_file} not found", file=file)
        return None
    try:
        with Image.open(mask_file) as image:
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError) as err:
        log.problem(f"cannot read instance mask {mask_file}: {err}", file=file)
        return None
    if array.ndim == 3:
        if not all(np.array_equal(array[..., 0], array[..., c]) for c in range(1, min(array.shape[2], 3))):
            log.problem(f"{mask_file.name} is a colour image; instance masks must be single-channel "
                        "(palette or grayscale PNG whose pixel values are instance ids)", file=file)
            return None
        array = array[..., 0]
    if array.shape != (info.height, info.width):
        log.problem(f"{mask_file.name} is {array.shape[1]}x{array.shape[0]} but the image is "
                    f"{info.width}x{info.height}", file=file)
        return None
    return array
