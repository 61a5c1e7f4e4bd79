"""RDD2022 in its published Pascal-VOC layout: ``<Country>/train/{images,annotations/xmls}``."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from datasets.errors import LabelFormatError, SourceError
from datasets.records import Box, Sample
from datasets.splits import block_split

_FRAME_NUMBER = re.compile(r"(\d+)$")


def find_voc_roots(source: Path) -> list[Path]:
    """Every folder under ``source`` (itself included) that holds ``annotations/xmls``."""
    if (source / "annotations" / "xmls").is_dir():
        return [source]
    roots = sorted(p.parent.parent for p in source.rglob("xmls") if p.parent.name == "annotations")
    return [r for r in roots if (r / "images").is_dir()]


def parse_voc(xml_path: Path) -> tuple[int, int, list[Box]]:
    """Read one VOC XML file: image size and boxes (normalised). Raises LabelFormatError."""
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        raise LabelFormatError(xml_path, f"malformed XML: {exc.msg}", line) from exc
    size = root.find("size")
    try:
        width = int(float(size.findtext("width", "")))  # type: ignore[union-attr]
        height = int(float(size.findtext("height", "")))  # type: ignore[union-attr]
    except (AttributeError, ValueError) as exc:
        raise LabelFormatError(xml_path, "missing or invalid <size><width>/<height>") from exc
    if width <= 0 or height <= 0:
        raise LabelFormatError(xml_path, f"image size must be positive, got {width}x{height}")
    boxes: list[Box] = []
    for index, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip()
        bnd = obj.find("bndbox")
        try:
            coords = [float(bnd.findtext(t, "")) for t in ("xmin", "ymin", "xmax", "ymax")]  # type: ignore[union-attr]
        except (AttributeError, ValueError) as exc:
            raise LabelFormatError(
                xml_path, f"object {index} ({name or 'no name'}): missing or invalid <bndbox>"
            ) from exc
        x1, y1, x2, y2 = coords
        try:
            boxes.append(Box(name, x1 / width, y1 / height, x2 / width, y2 / height))
        except ValueError as exc:
            raise LabelFormatError(xml_path, f"object {index} ({name}): {exc}") from exc
    return width, height, boxes


def frame_number(stem: str) -> int:
    """The trailing frame number of an RDD file name (``China_MotorBike_000123`` -> 123)."""
    match = _FRAME_NUMBER.search(stem)
    if not match:
        raise SourceError(f"expected a file name ending in a frame number, got {stem!r}")
    return int(match.group(1))


def read_voc_root(root: Path, val_start: int | None, val_fraction: float) -> Iterator[Sample]:
    """Samples of one VOC folder, split into contiguous blocks of frame numbers."""
    xmls = sorted((root / "annotations" / "xmls").glob("*.xml"), key=lambda p: frame_number(p.stem))
    if not xmls:
        raise SourceError(f"{root}: annotations/xmls holds no .xml file")
    numbers = [frame_number(p.stem) for p in xmls]
    splits = block_split(numbers, val_start=val_start, val_fraction=val_fraction)
    # RDD2022 country folders are "<Country>/train"; the country makes the key unique.
    prefix = root.parent.name if root.name in {"train", "test"} else root.name
    for xml_path, split in zip(xmls, splits, strict=True):
        image = _image_for(root / "images", xml_path.stem)
        if image is None:
            raise LabelFormatError(xml_path, "no image with this name in images/")
        width, height, boxes = parse_voc(xml_path)
        stem = xml_path.stem if xml_path.stem.startswith(prefix) else f"{prefix}_{xml_path.stem}"
        yield Sample(image, f"rdd_{stem}", split, width, height, boxes)


def _image_for(folder: Path, stem: str) -> Path | None:
    for ext in (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"):
        candidate = folder / f"{stem}{ext}"
        if candidate.exists():
            return candidate
    return None
