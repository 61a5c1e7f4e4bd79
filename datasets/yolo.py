"""YOLO label sets (boxes or polygons) with a ``data.yaml``, as Roboflow exports them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import yaml
from PIL import Image

from datasets.errors import LabelFormatError, SourceError
from datasets.records import Box, Sample

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
# Folder names of a split in the exports we read -> our split name.
SPLIT_DIRS = {"train": "train", "valid": "val", "val": "val"}


def is_yolo_source(source: Path) -> bool:
    """A folder with a ``data.yaml`` naming its classes and split folders with images/labels."""
    return (source / "data.yaml").is_file()


def read_names(source: Path) -> list[str]:
    """The class names of a YOLO set from its ``data.yaml`` (list or id -> name mapping)."""
    try:
        meta = yaml.safe_load((source / "data.yaml").read_text())
    except yaml.YAMLError as exc:
        raise LabelFormatError(source / "data.yaml", f"invalid YAML: {exc}") from exc
    names = meta.get("names") if isinstance(meta, dict) else None
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise SourceError(f"{source / 'data.yaml'}: expected a 'names' list or mapping")


def parse_yolo_line(line: str, names: list[str], path: Path, line_no: int) -> Box:
    """One line: ``class cx cy w h`` (box) or ``class x1 y1 x2 y2 ...`` (polygon, >= 3 points)."""
    parts = line.split()
    try:
        class_id = int(parts[0])
        values = [float(v) for v in parts[1:]]
    except (IndexError, ValueError) as exc:
        raise LabelFormatError(path, f"expected numbers, got {line.strip()!r}", line_no) from exc
    if not 0 <= class_id < len(names):
        raise LabelFormatError(path, f"class id {class_id} outside 0..{len(names) - 1} of data.yaml", line_no)
    name = names[class_id]
    try:
        if len(values) == 4:
            cx, cy, w, h = values
            return Box(name, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        if len(values) >= 6 and len(values) % 2 == 0:
            xs, ys = values[0::2], values[1::2]
            return Box(name, min(xs), min(ys), max(xs), max(ys))
    except ValueError as exc:
        raise LabelFormatError(path, str(exc), line_no) from exc
    raise LabelFormatError(
        path,
        f"expected 4 box values or an even number >= 6 of polygon values, got {len(values)}",
        line_no,
    )


def read_yolo_labels(path: Path, names: list[str]) -> list[Box]:
    """All boxes of one label file; a missing file means an image without damage."""
    if not path.exists():
        return []
    boxes = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            boxes.append(parse_yolo_line(line, names, path, line_no))
    return boxes


def read_yolo_source(source: Path, prefix: str = "yolo") -> Iterator[Sample]:
    """Samples of every split folder (train/valid/val) of a YOLO export."""
    names = read_names(source)
    found = False
    for dirname, split in SPLIT_DIRS.items():
        images_dir = source / dirname / "images"
        if not images_dir.is_dir():
            continue
        found = True
        for image in sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            label = source / dirname / "labels" / f"{image.stem}.txt"
            with Image.open(image) as im:
                width, height = im.size
            boxes = read_yolo_labels(label, names)
            yield Sample(image, f"{prefix}_{dirname}_{image.stem}", split, width, height, boxes)
    if not found:
        raise SourceError(f"{source}: data.yaml found but no train/valid/val images folder")
