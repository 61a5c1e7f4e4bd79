"""Local adaptation: fine-tune the shipped model on a city's corrected photos, on the CPU, and promote it
only if it is better on that city's own held-out photos.

The corrections folder (``python -m service labelstudio pull``) is a YOLO source whose ``train/`` part is
merged with the (optional) base training data, and whose ``valid/`` part is held out: it is never trained
on, not even used for validation during training, and both the current default model and the new one are
evaluated on it through our ONNX path (``training.evaluate``). The new model is added to
``weights/manifest.json`` with its held-out metrics in any case; it becomes the default only when its mAP50
there is higher than the current default's. A JSON report is written next to the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from datasets.build import build_dataset
from datasets.classes import CANONICAL_CLASSES
from datasets.yolo import IMAGE_SUFFIXES, read_names
from detector.manifest import (
    MANIFEST_NAME,
    WEIGHTS_DIR,
    default_model_path,
    load_manifest,
    model_entry,
    sha256_file,
)
from training.evaluate import evaluate
from training.export import export_fp32, update_manifest
from training.offline import PROJECT_ROOT, configure_offline

log = logging.getLogger(__name__)
HOLDOUT_DIR, TRAIN_DIR = "valid", "train"
BASE_REPLAY = 4  # base training images replayed per corrected photo, unless base_limit says otherwise


class AdaptError(ValueError):
    """Inputs that make adaptation impossible or meaningless: a message for people."""


@dataclass
class AdaptOptions:
    # Defaults chosen by bench/adaptation.py (weights/MODEL.md, "How many photos must a city correct"): at
    # 200 corrections, 20 epochs at lr0 5e-4 with 4x base replay and potholes x3 beat the earlier default
    # (10 epochs, 2x replay) on held-out mAP50 (0.444 vs 0.405), pothole AP50 (0.260 vs 0.232) and the base
    # domain (0.774 vs 0.682; v2: 0.772), for 2.8x the CPU time (45 vs 16 CPU minutes on 2 cores).
    epochs: int = 20
    imgsz: int | None = None  # None: the default model's input size
    batch: int = 8
    lr0: float = 0.0005
    freeze: int | None = None  # freeze the first N layers (backbone) during fine-tuning
    base_limit: int | None = (
        None  # at most this many base training images (None: BASE_REPLAY x the corrections)
    )
    oversample_pothole: int = 3  # each corrected photo with a pothole appears this many times (rare class)
    min_gain: float = 0.0  # promote when new mAP50 > old mAP50 + min_gain
    workers: int = 0
    seed: int = 0
    progress: bool = True
    device: str = "cpu"  # ultralytics' device: "cpu", "0" (first GPU), "0,1", "mps"


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def check_corrections(corrections: Path) -> dict[str, int]:
    """Counts of the corrections folder; refuses one that cannot train or cannot be compared on."""
    if not (corrections / "data.yaml").is_file():
        raise AdaptError(
            f"{corrections}: no data.yaml: not a corrections folder (python -m service labelstudio pull)"
        )
    names = read_names(corrections)
    if tuple(names) != CANONICAL_CLASSES:
        raise AdaptError(f"{corrections}: classes {names} differ from the model's {list(CANONICAL_CLASSES)}")
    counts = {}
    for split in (TRAIN_DIR, HOLDOUT_DIR):
        images = _images(corrections / split / "images")
        boxes = 0
        for image in images:
            label = corrections / split / "labels" / f"{image.stem}.txt"
            if label.exists():
                boxes += sum(1 for line in label.read_text().splitlines() if line.strip())
        counts[f"{split}_images"], counts[f"{split}_boxes"] = len(images), boxes
    if counts["train_images"] == 0:
        raise AdaptError(f"{corrections}: no corrected photos in train/ to learn from")
    if counts["valid_boxes"] == 0:
        raise AdaptError(
            f"{corrections}: the held-out part valid/ has {counts['valid_images']} photo(s) and no damage "
            "boxes: old and new model cannot be compared; correct more photos first"
        )
    return counts


def _split_view(corrections: Path, split: str, out: Path) -> Path:
    """A YOLO source folder holding only one split of the corrections (symlinked), named 'corrections'."""
    view = out / "corrections"
    if view.exists():
        shutil.rmtree(view)
    view.mkdir(parents=True)
    shutil.copyfile(corrections / "data.yaml", view / "data.yaml")
    os.symlink((corrections / split).resolve(), view / split)
    return view


def _is_built_dataset(folder: Path) -> bool:
    return (folder / "data.yaml").is_file() and (folder / "images" / "train").is_dir()


def _add_built(base: Path, out: Path, limit: int, rng: np.random.Generator, tag: str) -> dict[str, int]:
    """Link a built dataset's train (sampled to ``limit``) and val images into ``out``."""
    names = read_names(base)
    if tuple(names[: len(CANONICAL_CLASSES)]) != CANONICAL_CLASSES:
        raise AdaptError(f"{base}: classes {names} differ from the model's {list(CANONICAL_CLASSES)}")
    added = {}
    for split in ("train", "val"):
        images = _images(base / "images" / split)
        if split == "train" and len(images) > limit:
            images = [images[i] for i in sorted(rng.choice(len(images), limit, replace=False))]
        for image in images:
            os.symlink(image.resolve(), out / "images" / split / f"{tag}_{image.name}")
            label = base / "labels" / split / f"{image.stem}.txt"
            target = out / "labels" / split / f"{tag}_{image.stem}.txt"
            if label.exists():
                os.symlink(label.resolve(), target)
            else:
                target.write_text("")
        added[split] = len(images)
    return added


POTHOLE_CLASS = CANONICAL_CLASSES.index("D40")


def _has_class(label: Path, class_id: int) -> bool:
    if not label.is_file():
        return False
    return any(line.split()[:1] == [str(class_id)] for line in label.read_text().splitlines())


def oversample(images: Path, labels: Path, class_id: int, times: int, skip_prefix: str | None = None) -> int:
    """Repeat each image in ``images`` whose label (in ``labels``) has ``class_id`` ``times`` times in all
    (symlinks ``<stem>_repN``; images named ``skip_prefix...`` stay single); returns how many were added."""
    if times < 1:
        raise AdaptError(f"pothole oversampling: expected at least 1, got {times}")
    added = 0
    for image in _images(images):
        label = labels / f"{image.stem}.txt"
        skipped = skip_prefix is not None and image.name.startswith(skip_prefix)
        if skipped or "_rep" in image.stem or not _has_class(label, class_id):
            continue
        for k in range(1, times):
            if (images / f"{image.stem}_rep{k}{image.suffix}").exists():
                continue  # repeated before
            os.symlink(image.resolve(), images / f"{image.stem}_rep{k}{image.suffix}")
            os.symlink(label.resolve(), labels / f"{image.stem}_rep{k}.txt")
            added += 1
    return added


def merge_training_data(
    corrections: Path,
    base_data: list[Path],
    out: Path,
    base_limit: int,
    seed: int = 0,
    oversample_pothole: int = 1,
) -> dict[str, Any]:
    """The fine-tuning set: corrections' train/ plus base data; the held-out valid/ is left out entirely.
    Corrected photos with a pothole appear ``oversample_pothole`` times (the base data's once)."""
    work = out.parent / f"{out.name}-views"
    raw = [b for b in base_data if not _is_built_dataset(b)]
    built = [b for b in base_data if _is_built_dataset(b)]
    stats = build_dataset([_split_view(corrections, TRAIN_DIR, work), *raw], out, progress=False)
    rng = np.random.default_rng(seed)
    base_counts = {str(b): _add_built(b, out, base_limit, rng, f"base{i}") for i, b in enumerate(built)}
    repeated = 0
    if oversample_pothole > 1:  # the corrections' photos, not the base data's (named base<i>_...)
        images, labels = out / "images" / "train", out / "labels" / "train"
        repeated = oversample(images, labels, POTHOLE_CLASS, oversample_pothole, skip_prefix="base")
    val = out / "images" / "val"
    data = yaml.safe_load((out / "data.yaml").read_text())
    if not _images(val):
        # No base validation images: ultralytics needs some, and the held-out photos must not be them.
        data["val"] = "images/train"
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return {
        "train_images": len(_images(out / "images" / "train")),
        "val_images": len(_images(val)),
        "built": stats.as_dict()["images"],
        "base": base_counts,
        "pothole_repeats": repeated,
    }


def holdout_dataset(corrections: Path, out: Path) -> tuple[Path, str]:
    """The held-out photos as a dataset (split 'val') and a fingerprint of their images and labels."""
    view = _split_view(corrections, HOLDOUT_DIR, out.parent / f"{out.name}-views")
    build_dataset([view], out, copy=True, progress=False)
    digest = hashlib.sha256()
    for image in _images(corrections / HOLDOUT_DIR / "images"):
        label = corrections / HOLDOUT_DIR / "labels" / f"{image.stem}.txt"
        digest.update(image.name.encode() + b"\0" + sha256_file(image).encode() + b"\0")
        digest.update(label.read_bytes() if label.exists() else b"")
    return out, digest.hexdigest()[:16]


def default_checkpoint(entry: dict[str, Any], weights_dir: Path) -> Path:
    """The PyTorch checkpoint of a manifest entry: its 'checkpoint', else weights/<name>-<version>.pt."""
    if entry.get("checkpoint"):
        return weights_dir / entry["checkpoint"]
    return weights_dir / f"{model_stem(entry)}-{entry['version']}.pt"


def model_stem(entry: dict[str, Any]) -> str:
    """'roadwatch-yolov5nu' of 'roadwatch-yolov5nu-v0-fp32'."""
    name = entry["name"]
    for suffix in (f"-{entry.get('precision', '')}", f"-{entry.get('version', '')}"):
        if suffix != "-" and name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def fine_tune(checkpoint: Path, data_dir: Path, run_dir: Path, imgsz: int, options: AdaptOptions) -> Path:
    """Fine-tune on ``options.device`` (the CPU by default; ultralytics shows a progress bar per epoch);
    returns the final weights."""
    configure_offline()
    from ultralytics import YOLO

    if not options.progress:
        os.environ["YOLO_VERBOSE"] = "false"
    model = YOLO(str(checkpoint.resolve()))
    model.train(
        data=str((data_dir / "data.yaml").resolve()),
        epochs=options.epochs,
        imgsz=imgsz,
        batch=options.batch,
        workers=options.workers,
        device=options.device,
        seed=options.seed,
        deterministic=True,
        optimizer="AdamW",
        lr0=options.lr0,
        warmup_epochs=0,
        freeze=options.freeze,
        project=str(run_dir.parent.resolve()),
        name=run_dir.name,
        exist_ok=True,
        plots=False,
        val=False,
        amp=False,
        cache=False,
        patience=0,
        verbose=options.progress,
    )
    last = run_dir / "weights" / "last.pt"
    if not last.is_file():
        raise AdaptError(f"training wrote no {last}")
    return last


def _brief(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "map50": metrics["map50"],
        "map50_95": metrics["map50_95"],
        "per_class_ap50": {k: v["ap50"] for k, v in metrics["per_class"].items() if v["instances"]},
        "images": metrics["images"],
    }


def adapt(
    corrections: Path,
    base_data: list[Path] | None = None,
    checkpoint: Path | None = None,
    options: AdaptOptions | None = None,
    weights_dir: Path = WEIGHTS_DIR,
    runs_dir: Path | None = None,
    name: str | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """Merge, fine-tune, export, evaluate old and new on the held-out photos, promote if better."""
    options = options or AdaptOptions()
    if options.epochs < 1:
        raise AdaptError("epochs must be at least 1")
    began = time.time()
    corrections = Path(corrections)
    counts = check_corrections(corrections)
    old = model_entry(None, weights_dir)
    old_path = default_model_path(weights_dir)
    checkpoint = Path(checkpoint) if checkpoint else default_checkpoint(old, weights_dir)
    if not checkpoint.is_file():
        raise AdaptError(
            f"no PyTorch checkpoint {checkpoint} for the default model {old['name']}: fine-tuning needs one "
            "(pass --from CHECKPOINT.pt)"
        )
    imgsz = options.imgsz or int(old.get("imgsz") or 416)
    name = name or model_stem(old)
    stamp = datetime.now(UTC)
    version = version or f"{str(old['version']).split('-adapt')[0]}-adapt{stamp:%Y%m%d%H%M%S}"
    new_name = f"{name}-{version}-fp32"
    if any(m["name"] == new_name for m in load_manifest(weights_dir)["models"]):
        raise AdaptError(
            f"{new_name} is already listed in {weights_dir / MANIFEST_NAME}: choose another --version"
        )
    run = (runs_dir or PROJECT_ROOT / "runs" / "adapt") / version
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)

    log.info("1/4 merging %d corrected photos with the base data", counts["train_images"])
    base_limit = (
        options.base_limit if options.base_limit is not None else BASE_REPLAY * counts["train_images"]
    )
    data = merge_training_data(
        corrections, list(base_data or []), run / "data", base_limit, options.seed, options.oversample_pothole
    )
    holdout, holdout_id = holdout_dataset(corrections, run / "holdout")

    log.info("2/4 fine-tuning %s for %d epoch(s) on %s", checkpoint.name, options.epochs, options.device)
    trained = fine_tune(checkpoint, run / "data", run / "train", imgsz, options)
    new_checkpoint = weights_dir / f"{name}-{version}.pt"
    shutil.copyfile(trained, new_checkpoint)
    new_path = export_fp32(new_checkpoint, imgsz, weights_dir / f"{new_name}.onnx")

    log.info("3/4 evaluating old and new model on %d held-out photos", counts["valid_images"])
    old_metrics = evaluate(old_path, holdout, "val", progress=options.progress)
    new_metrics = evaluate(new_path, holdout, "val", progress=options.progress)
    old_score, new_score = old_metrics["map50"], new_metrics["map50"]
    promoted = new_score > old_score + options.min_gain

    entry = {
        "name": new_name,
        "version": version,
        "precision": "fp32",
        "file": new_path.name,
        "sha256": sha256_file(new_path),
        "classes": list(CANONICAL_CLASSES),
        "imgsz": imgsz,
        "data_version": f"{old.get('data_version', '')}+corrections:{counts['train_images']}",
        "checkpoint": new_checkpoint.name,
        "base_model": old["name"],
        "adapted_at": stamp.isoformat(timespec="seconds"),
        "metrics": {
            "holdout": {"id": holdout_id, **_brief(new_metrics)},
            "holdout_base_model": {"id": holdout_id, **_brief(old_metrics)},
        },
    }
    default = new_name if promoted else load_manifest(weights_dir)["default"]
    update_manifest([entry], default, weights_dir)
    log.info(
        "4/4 held-out mAP50: %s %.4f -> %s %.4f: %s",
        old["name"],
        old_score,
        new_name,
        new_score,
        "promoted to default" if promoted else "NOT promoted (not better); listed in the manifest",
    )
    report = {
        "promoted": promoted,
        "default": default,
        "old": {"name": old["name"], "file": old_path.name, **_brief(old_metrics)},
        "new": {
            "name": new_name,
            "file": new_path.name,
            "checkpoint": new_checkpoint.name,
            **_brief(new_metrics),
        },
        "holdout": {"id": holdout_id, "images": counts["valid_images"], "boxes": counts["valid_boxes"]},
        "corrections": {"path": str(corrections), **counts},
        "training": {
            "from": str(checkpoint),
            "epochs": options.epochs,
            "imgsz": imgsz,
            "lr0": options.lr0,
            "freeze": options.freeze,
            "device": options.device,
            **data,
        },
        "min_gain": options.min_gain,
        "seconds": round(time.time() - began, 1),
        "run": str(run),
    }
    (run / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
