"""What correcting costs: boxes an annotator adds, deletes or fixes per photo, starting from the model's
proposals (Label Studio pre-annotations, as `python -m service labelstudio push` sends them) or from nothing.

    python bench/preannotation.py [--data data/rf data/rdd-cm] [--model weights/...onnx ...] [--conf 0.25]

For each built dataset's validation photos (the Roboflow ``valid/`` photos stand in for a new city, the RDD
block 001300-001581 for v2's own domain) and each model, the proposals at the service's detection
threshold (``ROADWATCH_DETECT_CONF``) are matched to the ground truth one-to-one, highest IoU first:

- kept: IoU >= 0.5 and the same class (nothing to do);
- fixed: IoU >= 0.5 with another class (relabel), or 0.1 <= IoU < 0.5 (move or resize the box);
- deleted: a proposal that matches no true box;
- added: a true box that no proposal matches (drawn by hand).

The reference in the same run is starting from nothing: every true box added. Edits per photo and their
ratio to the reference say how much of the work the model saves (or costs, where it proposes mostly
wrong boxes). Prints a table and writes bench/results/preannotation.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import table, write_result  # noqa: E402
from detector.postprocess import box_iou  # noqa: E402

MATCH_IOU = 0.5
TOUCH_IOU = 0.1


def edits(
    truth: list[tuple[int, tuple[float, float, float, float]]],
    proposed: list[tuple[int, tuple[float, float, float, float]]],
) -> dict[str, int]:
    """Kept, fixed, deleted and added boxes to turn ``proposed`` into ``truth`` (class, box) for one photo."""
    boxes = np.array([b for _, b in proposed], dtype=float).reshape(-1, 4)
    iou = np.zeros((len(truth), len(proposed)))
    for i, (_, b) in enumerate(truth):
        if len(proposed):
            iou[i] = box_iou(np.array(b, dtype=float), boxes)
    out = {"kept": 0, "fixed": 0, "deleted": 0, "added": 0}
    used_t: set[int] = set()
    used_p: set[int] = set()
    pairs = sorted(
        ((float(iou[i, j]), i, j) for i in range(len(truth)) for j in range(len(proposed))), reverse=True
    )
    for v, i, j in pairs:
        if v < TOUCH_IOU:
            break
        if i in used_t or j in used_p:
            continue
        used_t.add(i)
        used_p.add(j)
        out["kept" if v >= MATCH_IOU and truth[i][0] == proposed[j][0] else "fixed"] += 1
    out["deleted"] = len(proposed) - len(used_p)
    out["added"] = len(truth) - len(used_t)
    return out


def yolo_labels(path: Path, width: int, height: int) -> list[tuple[int, tuple[float, float, float, float]]]:
    rows = []
    if path.is_file():
        for line in path.read_text().split("\n"):
            parts = line.split()
            if len(parts) != 5:
                continue
            c, x, y, w, h = int(parts[0]), *map(float, parts[1:])
            rows.append(
                (c, ((x - w / 2) * width, (y - h / 2) * height, (x + w / 2) * width, (y + h / 2) * height))
            )
    return rows


def measure(dataset: Path, model: Path, conf: float, threads: int) -> dict[str, Any]:
    from detector import Detector, read_image

    detector = Detector.from_path(model, threads=threads)
    images = sorted((dataset / "images" / "val").glob("*.jpg"))
    totals = {"kept": 0, "fixed": 0, "deleted": 0, "added": 0, "truth": 0, "proposed": 0}
    start = time.perf_counter()
    for path in images:
        image = read_image(path)
        h, w = image.shape[:2]
        truth = yolo_labels(dataset / "labels" / "val" / f"{path.stem}.txt", w, h)
        proposed = [(d.class_id, d.box) for d in detector.predict(image, conf=conf)]
        for k, v in edits(truth, proposed).items():
            totals[k] += v
        totals["truth"] += len(truth)
        totals["proposed"] += len(proposed)
    n = max(len(images), 1)
    with_model = totals["fixed"] + totals["deleted"] + totals["added"]
    return {
        "dataset": dataset.name,
        "model": str(model.resolve().relative_to(ROOT))
        if model.resolve().is_relative_to(ROOT)
        else model.name,
        "photos": len(images),
        "true_boxes_per_photo": totals["truth"] / n,
        "proposals_per_photo": totals["proposed"] / n,
        "kept_per_photo": totals["kept"] / n,
        "fixed_per_photo": totals["fixed"] / n,
        "deleted_per_photo": totals["deleted"] / n,
        "added_per_photo": totals["added"] / n,
        "edits_per_photo": with_model / n,
        "edits_from_nothing_per_photo": totals["truth"] / n,
        "ratio_to_nothing": with_model / max(totals["truth"], 1),
        "seconds": time.perf_counter() - start,
        "totals": totals,
    }


def main() -> int:
    from detector.manifest import default_model_path

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, nargs="+", default=[ROOT / "data" / "rf", ROOT / "data" / "rdd-cm"])
    p.add_argument("--model", type=Path, nargs="+", help="ONNX models (default: the shipped default model)")
    p.add_argument("--conf", type=float, help="proposal threshold (default: the service's detect_conf)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if args.conf is None:
        from service.settings import Settings

        args.conf = Settings.model_fields["detect_conf"].default
    models = args.model or [default_model_path()]
    rows = [measure(d, m, args.conf, args.threads) for d in args.data for m in models]
    columns = [
        "dataset",
        "model",
        "photos",
        "true_boxes_per_photo",
        "proposals_per_photo",
        "kept_per_photo",
        "fixed_per_photo",
        "deleted_per_photo",
        "added_per_photo",
        "edits_per_photo",
        "edits_from_nothing_per_photo",
        "ratio_to_nothing",
    ]
    print(table(rows, columns))
    print(
        f"proposals at conf {args.conf}; matched at IoU >= {MATCH_IOU} (kept or relabelled), >= {TOUCH_IOU} (moved)"
    )
    path = write_result(
        "preannotation",
        {"conf": args.conf, "match_iou": MATCH_IOU, "touch_iou": TOUCH_IOU, "rows": rows},
    )
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
