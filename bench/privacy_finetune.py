"""Would fine-tuning the privacy model on labelled road photos reach issue 21's recall? Cross-validated.

    python bench/privacy_finetune.py [FOLDER ...] [--weights yolov5n-coco-v6.1-fp16.pt] [--folds 2]
        [--epochs 20] [--negatives 60] [--work runs/privacy-finetune] [--jobs 2]

There are no labelled photos with persons and vehicles outside the audit set (every frame of both data
sets that shows one is in it), so this measures the fine-tune (:mod:`training.privacy_finetune`) by
**grouped k-fold cross-validation on the audit frames**: the frames are split into ``--folds`` folds by
street (China_MotorBike: blocks of 40 consecutive frame numbers, which come from one ride, alternate
between folds; Roboflow: by the photo the exporter's copies were made from); for each fold a model is
fine-tuned on the other folds' frames (plus ``--negatives`` photos outside the audit that show nobody, the
same for every fold) and audited on the fold it never saw. Every audit object is then judged once, by a
model that did not train on its frame; the pooled recall is what a fine-tune on about
``(folds - 1) / folds`` of 320 frames buys. The shipped model is **not** changed by this: a model trained
on the audit frames could no longer be audited on them.

Both models, the shipped one (fp32 file, built from the same checkpoint) and the fine-tuned one, go through
the service's detection (:func:`service.domain.anonymize.find_people_and_vehicles`, coarse pass included)
on the same held-out frames at every threshold of ``--conf``; rows give recall by the model alone (95 %
Wilson interval), the share of each photo destroyed and the damage boxes hidden, so the two are compared
at equal cost, not only at equal threshold. Training runs in the background-safe way the adaptation curve
does: each fold's model is written to ``--work`` and a finished fold is not trained again.
Result: a table on stdout and ``bench/results/privacy_finetune.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import table, write_result  # noqa: E402
from bench.privacy_audit import (  # noqa: E402
    DEFAULT_DATA,
    DEFAULT_LABELS,
    damage_boxes,
    index_images,
    load_labels,
    sweep,
)
from detector import read_image  # noqa: E402
from service.domain.anonymize import PRIVACY_MODEL_PATHS, PrivacyConfig, load_privacy_detector  # noqa: E402
from training.privacy_finetune import FinetuneOptions, find_photos, sample_negatives  # noqa: E402

DEFAULT_WEIGHTS = ROOT.parent / "shared" / "weights" / "yolov5n-coco-v6.1-fp16.pt"
BLOCK = 40  # China_MotorBike frame numbers per street block
CONFS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)


def street_group(frame: str) -> str:
    """The group a frame is split by: its block of ``BLOCK`` China_MotorBike frame numbers, or the
    Roboflow photo its exported copies share (the name before ``_jpg.rf.``)."""
    match = re.fullmatch(r"China_MotorBike_(\d+)\.jpg", frame)
    if match:
        return f"China_MotorBike/{int(match.group(1)) // BLOCK}"
    return "roboflow/" + re.split(r"[._]jpg\.rf\.|\.rf\.", frame)[0]


def fold_of(frame: str, folds: int) -> int:
    """The fold of a frame: China blocks alternate; Roboflow groups by a hash of their name."""
    group = street_group(frame)
    if group.startswith("China_MotorBike/"):
        return int(group.split("/")[1]) % folds
    return int(hashlib.sha256(group.encode()).hexdigest(), 16) % folds


def train_fold(args: dict[str, Any]) -> dict[str, Any]:
    """One fold's fine-tune (in a worker process, one torch thread): returns its summary."""
    import torch

    from training.privacy_finetune import finetune, make_samples, read_labels

    torch.set_num_threads(1)
    out = Path(args["out"])
    summary_path = out.with_suffix(".json")
    if out.exists() and summary_path.exists():
        return dict(json.loads(summary_path.read_text()))
    labels = read_labels([Path(p) for p in args["labels"]])
    train = {f: boxes for f, boxes in labels.items() if f in set(args["frames"])}
    samples = make_samples(
        train, {k: Path(v) for k, v in args["paths"].items()}, [Path(p) for p in args["negatives"]]
    )
    log_path = out.with_suffix(".log")
    with log_path.open("w") as log:

        def write(line: str) -> None:
            log.write(line + "\n")
            log.flush()

        summary = finetune(
            Path(args["weights"]),
            samples,
            out,
            FinetuneOptions(epochs=args["epochs"], seed=args["seed"]),
            write,
        )
    summary["train_frames"] = sorted(train)
    summary_path.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path, help=f"image folders (default {DEFAULT_DATA})")
    parser.add_argument(
        "--weights", type=Path, default=DEFAULT_WEIGHTS, help="classic YOLOv5n v6.1 COCO checkpoint"
    )
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=FinetuneOptions.epochs)
    parser.add_argument(
        "--negatives", type=int, default=60, help="photos outside the audit added as negatives"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "privacy-finetune")
    parser.add_argument("--jobs", type=int, default=2, help="folds trained at once (one CPU thread each)")
    parser.add_argument("--conf", default=",".join(map(str, CONFS)), help="thresholds compared")
    parser.add_argument("--min-coverage", type=float, default=0.8)
    parser.add_argument("--train-only", action="store_true")
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds must be at least 2")

    folders = args.folders or [DEFAULT_DATA]
    labels = load_labels(list(DEFAULT_LABELS))
    frames = sorted({lab.frame for lab in labels})
    found = index_images(folders, set(frames))
    if len(found) != len(frames):
        raise SystemExit(f"{len(frames) - len(found)} audit frames not found under {folders}")
    paths = {f: str(p) for f, (p, _) in found.items()}
    negatives = sample_negatives(find_photos(folders), set(frames), args.negatives, args.seed)
    fold = {f: fold_of(f, args.folds) for f in frames}
    args.work.mkdir(parents=True, exist_ok=True)
    jobs = [
        {
            "out": str(
                args.work / f"fold-{k}-of-{args.folds}-e{args.epochs}-n{args.negatives}-s{args.seed}.onnx"
            ),
            "labels": [str(p) for p in DEFAULT_LABELS],
            "frames": [f for f in frames if fold[f] != k],
            "paths": paths,
            "negatives": [str(p) for p in negatives],
            "weights": str(args.weights),
            "epochs": args.epochs,
            "seed": args.seed,
        }
        for k in range(args.folds)
    ]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        summaries = list(pool.map(train_fold, jobs))
    if args.train_only:
        return 0

    confs = [float(v) for v in args.conf.split(",")]
    margin = PrivacyConfig().margin
    base = load_privacy_detector(PRIVACY_MODEL_PATHS["fp32"])
    rows: list[dict[str, Any]] = []
    pooled: dict[tuple[str, float], dict[str, float]] = {}
    for k, job in enumerate(jobs):
        held = [f for f in frames if fold[f] == k]
        images = {f: read_image(Path(paths[f])) for f in held}
        held_labels = [lab for lab in labels if lab.frame in images]
        damage = {f: boxes for f in held if (boxes := damage_boxes(Path(paths[f]))) is not None}
        tuned = load_privacy_detector(Path(job["out"]))
        for name, detector in (("shipped fp32", base), ("fine-tuned", tuned)):
            for row in sweep(detector, images, held_labels, confs, [margin], None, args.min_coverage, damage):
                rows.append({"fold": k, "model": name, "frames": len(held), **row})
                acc = pooled.setdefault(
                    (name, row["conf"]), {"n": 0, "protected": 0, "area": 0.0, "hidden": 0}
                )
                acc["n"] += row["n"]
                acc["protected"] += row["protected_model"]
                acc["area"] += row["area_destroyed_by_model"] * len(held)
                acc["hidden"] += row["damage_hidden_by_model"]
    from bench.privacy_audit import wilson

    pooled_rows = []
    for (name, conf), acc in sorted(pooled.items()):
        lo, hi = wilson(int(acc["protected"]), int(acc["n"]))
        pooled_rows.append(
            {
                "model": name,
                "conf": conf,
                "n": int(acc["n"]),
                "protected": int(acc["protected"]),
                "recall_model": round(acc["protected"] / acc["n"], 3),
                "ci95_model": f"{lo:.2f}-{hi:.2f}",
                "area_destroyed_by_model": round(acc["area"] / len(frames), 4),
                "damage_hidden_by_model": int(acc["hidden"]),
            }
        )
    print(table(rows, list(rows[0])))
    print(
        f"\npooled over {args.folds} folds ({len(frames)} frames, {len(labels)} objects, each judged once):"
    )
    print(table(pooled_rows, list(pooled_rows[0])))
    path = write_result(
        "privacy_finetune",
        {
            "method": __doc__.split("\n\n")[1],
            "weights": args.weights.name,
            "folds": args.folds,
            "fold_frames": [sum(fold[f] == k for f in frames) for k in range(args.folds)],
            "negatives": [p.name for p in negatives],
            "margin": margin,
            "min_coverage": args.min_coverage,
            "training": [{k: v for k, v in s.items() if k != "train_frames"} for s in summaries],
            "rows": rows,
            "pooled": pooled_rows,
        },
    )
    print(f"\nwrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
