"""Build one YOLO dataset from several sources: map classes, split, link images, count."""

from __future__ import annotations

import json
import os
import shutil
import statistics
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tqdm import tqdm

from datasets.classes import canonical_name, class_names
from datasets.errors import SourceError
from datasets.records import Sample
from datasets.voc import find_voc_roots, read_voc_root
from datasets.yolo import is_yolo_source, read_yolo_source

SPLITS = ("train", "val")


@dataclass
class BuildStats:
    """What a build wrote, per split, and what it left out."""

    classes: tuple[str, ...]
    images: Counter[str] = field(default_factory=Counter)
    empty_images: Counter[str] = field(default_factory=Counter)
    boxes: dict[str, Counter[str]] = field(default_factory=lambda: {s: Counter() for s in SPLITS})
    dropped: Counter[str] = field(default_factory=Counter)  # known names left out (Repair)
    unknown: Counter[str] = field(default_factory=Counter)  # names we could not map
    widths: list[float] = field(default_factory=list)  # box widths in source pixels
    heights: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "classes": list(self.classes),
            "images": dict(self.images),
            "empty_images": dict(self.empty_images),
            "boxes": {s: dict(c) for s, c in self.boxes.items()},
            "dropped": dict(self.dropped),
            "unknown": dict(self.unknown),
            "box_px": _size_summary(self.widths, self.heights),
        }

    def table(self) -> str:
        """A plain-text table for people."""
        header = ["split", "images", "empty", *self.classes, "boxes"]
        rows = [header]
        for split in SPLITS:
            counts = self.boxes[split]
            rows.append(
                [split, str(self.images[split]), str(self.empty_images[split])]
                + [str(counts[c]) for c in self.classes]
                + [str(sum(counts.values()))]
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
        size = _size_summary(self.widths, self.heights)
        if size:
            lines.append(
                "box size px (median w x h; p10-p90 of sqrt(area)): "
                f"{size['median_w']:.0f} x {size['median_h']:.0f}; "
                f"{size['p10_side']:.0f}-{size['p90_side']:.0f}"
            )
        if self.dropped:
            lines.append("left out on purpose: " + _fmt(self.dropped) + " (--keep-repair keeps Repair)")
        if self.unknown:
            lines.append("UNKNOWN class names, not used: " + _fmt(self.unknown) + " (add --class-map)")
        return "\n".join(lines)


def _fmt(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))


def _size_summary(widths: list[float], heights: list[float]) -> dict[str, float]:
    if not widths:
        return {}
    sides = sorted((w * h) ** 0.5 for w, h in zip(widths, heights, strict=True))
    return {
        "median_w": statistics.median(widths),
        "median_h": statistics.median(heights),
        "p10_side": sides[int(0.1 * (len(sides) - 1))],
        "p90_side": sides[int(0.9 * (len(sides) - 1))],
    }


def iter_source(source: Path, val_start: int | None, val_fraction: float) -> Iterator[Sample]:
    """Samples of one source folder, whatever its layout."""
    if not source.is_dir():
        raise SourceError(f"{source}: not a folder")
    if is_yolo_source(source):
        prefix = "".join(c if c.isalnum() else "-" for c in source.name) or "yolo"
        yield from read_yolo_source(source, prefix=prefix)
        return
    roots = find_voc_roots(source)
    if not roots:
        raise SourceError(
            f"{source}: no layout recognised (expected RDD2022 '<Country>/train/annotations/xmls' "
            "or a YOLO export with data.yaml)"
        )
    for root in roots:
        yield from read_voc_root(root, val_start, val_fraction)


def build_dataset(
    sources: Iterable[Path],
    out: Path,
    *,
    keep_repair: bool = False,
    class_map: dict[str, str] | None = None,
    val_start: int | None = None,
    val_fraction: float = 0.18,
    copy: bool = False,
    progress: bool = True,
) -> BuildStats:
    """Convert every source into ``out`` (YOLO layout + ``data.yaml`` + ``stats.json``)."""
    names = class_names(keep_repair)
    ids = {n: i for i, n in enumerate(names)}
    stats = BuildStats(classes=names)
    for split in SPLITS:
        for kind in ("images", "labels"):
            target = out / kind / split
            if target.exists():
                shutil.rmtree(target)  # a rebuild must not keep stale files
            target.mkdir(parents=True)
    seen: set[str] = set()
    for source in sources:
        samples = iter_source(Path(source), val_start, val_fraction)
        for sample in tqdm(samples, desc=Path(source).name, unit="img", disable=not progress):
            if sample.key in seen:
                raise SourceError(f"{sample.image}: two images map to the key {sample.key!r}")
            seen.add(sample.key)
            lines = []
            for box in sample.boxes:
                name = canonical_name(box.name, class_map)
                if name is None:
                    stats.unknown[box.name] += 1
                    continue
                if name not in ids:
                    stats.dropped[name] += 1
                    continue
                lines.append(box.yolo_line(ids[name]))
                stats.boxes[sample.split][name] += 1
                stats.widths.append((box.x2 - box.x1) * sample.width)
                stats.heights.append((box.y2 - box.y1) * sample.height)
            stats.images[sample.split] += 1
            stats.empty_images[sample.split] += not lines
            _place_image(
                sample.image,
                out / "images" / sample.split / f"{sample.key}{sample.image.suffix.lower()}",
                copy,
            )
            (out / "labels" / sample.split / f"{sample.key}.txt").write_text(
                "".join(f"{line}\n" for line in lines)
            )
    data = {
        "path": str(out.resolve()),  # absolute: ultralytics resolves relative paths elsewhere
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(names)),
    }
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (out / "stats.json").write_text(json.dumps(stats.as_dict(), indent=2) + "\n")
    return stats


def _place_image(src: Path, dst: Path, copy: bool) -> None:
    if copy:
        shutil.copy2(src, dst)
        return
    try:
        os.symlink(src.resolve(), dst)
    except OSError:  # file systems without symlinks
        shutil.copy2(src, dst)
