"""Evaluate an ONNX model through our own inference path (``detector``) on a YOLO dataset split.

Predictions use ultralytics' validation settings (conf 0.001, IoU 0.7, 300 boxes) so the numbers are
comparable with ``yolo val``; the letterbox is the square one the service uses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from detector import Detector, read_image
from training.metrics import Evaluation

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def load_labels(label_path: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """YOLO label file -> xyxy pixel boxes and class ids."""
    if not label_path.exists() or not label_path.read_text().strip():
        return np.zeros((0, 4)), np.zeros(0, dtype=int)
    rows = np.array(
        [[float(v) for v in line.split()[:5]] for line in label_path.read_text().splitlines() if line.strip()]
    )
    cls, cx, cy, w, h = rows.T
    boxes = np.stack(
        [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], axis=1
    )
    return boxes, cls.astype(int)


def evaluate(
    weights: Path,
    data_dir: Path,
    split: str = "val",
    conf: float = 0.001,
    iou: float = 0.7,
    threads: int | None = None,
    progress: bool = True,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Metrics of an ONNX model on a dataset split. ``transform`` changes each image before detection
    (e.g. anonymization, to measure what it costs)."""
    meta = yaml.safe_load((data_dir / "data.yaml").read_text())
    names = meta["names"]
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    detector = Detector.from_path(weights, threads=threads)
    model_names = [detector.names[i] for i in sorted(detector.names)]
    if model_names[: len(names)] != names:
        raise ValueError(f"model classes {model_names} differ from the dataset's {names}")
    images = sorted(p for p in (data_dir / "images" / split).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    ev = Evaluation(names)
    seconds = 0.0
    for path in tqdm(images, desc=f"eval {weights.name}", disable=not progress):
        image = read_image(path)
        if transform is not None:
            image = transform(image)
        h, w = image.shape[:2]
        start = time.perf_counter()
        dets = detector.predict(image, conf=conf, iou=iou, multi_label=True)
        seconds += time.perf_counter() - start
        gt_boxes, gt_cls = load_labels(data_dir / "labels" / split / f"{path.stem}.txt", w, h)
        ev.add(
            np.array([d.box for d in dets]).reshape(-1, 4),
            np.array([d.confidence for d in dets]),
            np.array([d.class_id for d in dets], dtype=int),
            gt_boxes,
            gt_cls,
        )
    metrics = ev.compute()
    metrics.update(
        {
            "images": len(images),
            "ms_per_image": 1000 * seconds / max(len(images), 1),
            "weights": weights.name,
            "split": split,
            "data": str(data_dir),
        }
    )
    return metrics


def write_report(metrics: dict[str, Any], out: Path) -> None:
    """metrics.json, a PR curve and a confusion matrix image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    for name, (recall, precision) in metrics["pr_curves"].items():
        ax.plot(recall, precision, label=f"{name} AP50 {metrics['per_class'][name]['ap50']:.2f}")
    ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title=f"PR curve (IoU 0.5), mAP50 {metrics['map50']:.3f}",
    )
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(out / "pr_curve.png")
    plt.close(fig)
    names = [*metrics["names"], "background"]
    cm = np.array(metrics["confusion"])
    if cm.size:
        fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
        col = cm / np.maximum(cm.sum(axis=0, keepdims=True), 1)
        ax.imshow(col, cmap="Blues", vmin=0, vmax=1)
        labels = names[: cm.shape[0]]
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set(xlabel="true", ylabel="predicted", title="Confusion (conf 0.25, column-normalised)")
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    color="black" if col[i, j] < 0.6 else "white",
                )
        fig.tight_layout()
        fig.savefig(out / "confusion_matrix.png")
        plt.close(fig)


def summary_table(metrics: dict[str, Any]) -> str:
    lines = [f"{'class':8} {'n':>5} {'AP50':>6} {'AP50-95':>8}"]
    for name, m in metrics["per_class"].items():
        lines.append(f"{name:8} {m['instances']:>5} {m['ap50']:>6.3f} {m['ap50_95']:>8.3f}")
    lines.append(f"{'all':8} {'':>5} {metrics['map50']:>6.3f} {metrics['map50_95']:>8.3f}")
    lines.append(
        f"best F1 {metrics['f1']:.3f} at conf {metrics['f1_threshold']:.2f}; "
        f"{metrics['ms_per_image']:.1f} ms/image over {metrics['images']} images"
    )
    return "\n".join(lines)
