"""A built dataset packed small, to carry to a GPU machine: the same labels, images at the training size.

    python -m datasets pack data/rf --out packed/rf [--max-side 416] [--quality 80]

Training and evaluation letterbox every image to the model's input (416 px), so an image stored with its
longer side at that size carries every pixel the model sees; the rest is bytes to move. Each image of a
built dataset (``python -m datasets build``) is resized (area interpolation, never enlarged) and re-encoded
as JPEG (what every reader here takes); the label files (normalised YOLO boxes, independent of the pixel
size) are copied unchanged; ``data.yaml`` points at the new folder. The file stems stay the same, so results are comparable image by image.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from datasets.errors import SourceError
from datasets.yolo import IMAGE_SUFFIXES


@dataclass(frozen=True)
class PackStats:
    images: int
    bytes_before: int
    bytes_after: int
    resized: int

    def as_dict(self) -> dict[str, int | float]:
        return {
            "images": self.images,
            "resized": self.resized,
            "mib_before": round(self.bytes_before / 2**20, 1),
            "mib_after": round(self.bytes_after / 2**20, 1),
            "ratio": round(self.bytes_after / self.bytes_before, 3) if self.bytes_before else 0.0,
        }


def _splits(src: Path) -> dict[str, str]:
    """The split folders of a built dataset, from its data.yaml (``train: images/train``...)."""
    meta_path = src / "data.yaml"
    if not meta_path.is_file():
        raise SourceError(f"{src}: no data.yaml: not a built dataset (python -m datasets build)")
    meta = yaml.safe_load(meta_path.read_text()) or {}
    splits = {k: str(meta[k]) for k in ("train", "val", "test") if isinstance(meta.get(k), str)}
    if not splits:
        raise SourceError(f"{meta_path}: names no train/val image folder")
    for key, folder in splits.items():
        if Path(folder).is_absolute() or ".." in Path(folder).parts or not (src / folder).is_dir():
            raise SourceError(f"{meta_path}: {key}: {folder!r} is not a folder inside {src}")
    return splits


def pack_image(path: Path, out: Path, max_side: int, quality: int) -> tuple[int, bool]:
    """Write ``path`` resized to at most ``max_side`` and re-encoded; returns (bytes written, resized)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"{path}: not a readable image")
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    resized = scale < 1.0
    if resized:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise SourceError(f"{path}: could not encode as JPEG")
    out.write_bytes(np.asarray(data).tobytes())
    return out.stat().st_size, resized


def pack_dataset(src: Path, out: Path, max_side: int = 416, quality: int = 80) -> PackStats:
    """Pack the built dataset ``src`` into ``out`` (which must not exist yet or be empty)."""
    if not 1 <= quality <= 100 or max_side < 32:
        raise ValueError("quality must be 1..100 and max_side at least 32")
    splits = _splits(src)
    if out.exists() and any(out.iterdir()):
        raise SourceError(f"{out}: exists and is not empty")
    if out.resolve() == src.resolve():
        raise SourceError("--out must differ from the source")
    try:
        stats = _pack(src, out, splits, max_side, quality)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # nothing half-packed is left to be mistaken for a dataset
        raise
    meta = yaml.safe_load((src / "data.yaml").read_text())
    meta["path"] = str(out.resolve())  # our readers take the folders relative to the dataset itself
    (out / "data.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    packed = {"source": str(src), "max_side": max_side, "quality": quality, **stats.as_dict()}
    (out / "packed.json").write_text(json.dumps(packed, indent=2) + "\n")
    return stats


def _pack(src: Path, out: Path, splits: dict[str, str], max_side: int, quality: int) -> PackStats:
    images = before = after = resized = 0
    for folder in splits.values():
        labels_in = src / folder.replace("images", "labels", 1)
        (out / folder).mkdir(parents=True, exist_ok=True)
        labels_out = out / folder.replace("images", "labels", 1)
        labels_out.mkdir(parents=True, exist_ok=True)
        for path in sorted((src / folder).iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            target = out / folder / f"{path.stem}.jpg"
            if target.exists():
                raise SourceError(f"{path}: another image of {folder} has the stem {path.stem!r}")
            written, shrunk = pack_image(path, target, max_side, quality)
            images += 1
            before += path.stat().st_size
            after += written
            resized += shrunk
            label = labels_in / f"{path.stem}.txt"
            if label.is_file():
                shutil.copyfile(label, labels_out / label.name)
    return PackStats(images, before, after, resized)
