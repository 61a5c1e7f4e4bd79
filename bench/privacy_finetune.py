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
``(folds - 1) / folds`` of 320 frames buys. The shipped model is fine-tuned on all 320 frames (the same
recipe), so ``bench/privacy_audit.py`` on it measures how well it fits its training frames, not its recall:
the figures of record are these. ``--int8`` also quantises every model as the shipped int8 file is.

Both models, COCO's (``python -m training privacy-model`` from the same checkpoint: the privacy model
before the fine-tune) and the fine-tuned one, go through
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
import statistics
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
    Outcome,
    damage_boxes,
    damage_summary,
    index_images,
    load_labels,
    outcomes_at,
    recall_row,
    subsets,
    wilson,
)
from detector import read_image  # noqa: E402
from service.domain.anonymize import (  # noqa: E402
    COARSE_PASS,
    PrivacyConfig,
    find_people_and_vehicles,
    load_privacy_detector,
    privacy_operating_point,
)
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


# Where `make privacy-int8` takes its calibration photos, under the data folder.
CALIBRATION_FOLDERS = ("rdd2022/China_MotorBike/train/images", "roboflow-road-crack/train/images")


def quantized(fp32: Path, folders: Sequence[Path], audit: set[str]) -> Path:
    """A fold model's int8 file, quantised as the shipped one is (calibration photos outside the audit)."""
    from training.privacy import build_privacy_int8

    out = fp32.with_name(fp32.stem + "-int8.onnx")
    calib = [f / sub for f in folders for sub in CALIBRATION_FOLDERS if (f / sub).is_dir()] or list(folders)
    if not out.exists():
        build_privacy_int8(fp32, out, calib, audit, method="percentile", chunk=10)  # as `make privacy-int8`
    return out


# The COCO model's thresholds before the fine-tune shipped (weights/PRIVACY_MODEL.md, "Operating point").
COCO_POINTS = {"fp32": 0.10, "int8": 0.09}


def operating_point_of(name: str) -> float:
    """The threshold a row's model is judged at in the per-subset tables: the COCO model's own, or the
    service's for a fine-tuned one (the shipped file is the fine-tune)."""
    precision = name.split()[-1]
    return COCO_POINTS[precision] if name.startswith("COCO") else privacy_operating_point(precision)


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
    parser.add_argument(
        "--horizon", type=lambda v: None if v == "none" else float(v), default=0.05,
        help="band for the with-band recall (default 0.05: what the RDD motorbike camera's own band gives)",
    )  # fmt: skip
    parser.add_argument(
        "--coarse-pass", type=int, default=COARSE_PASS,
        help=f"input px of the service's second, coarse pass (default {COARSE_PASS}; 0: one pass)",
    )  # fmt: skip
    parser.add_argument(
        "--int8", action="store_true", help="also quantise each fold's model and compare int8"
    )
    parser.add_argument(
        "--at",
        type=float,
        default=None,
        help="threshold of the per-subset tables (default: each file's operating point)",
    )
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds must be at least 2")

    folders = args.folders or [DEFAULT_DATA]
    labels = load_labels(list(DEFAULT_LABELS))
    frames = sorted({lab.frame for lab in labels})
    found_images = index_images(folders, set(frames))
    if len(found_images) != len(frames):
        raise SystemExit(f"{len(frames) - len(found_images)} audit frames not found under {folders}")
    paths = {f: str(p) for f, (p, _) in found_images.items()}
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

    points = [operating_point_of(f"{kind} {p}") for kind in ("COCO", "fine-tuned") for p in ("fp32", "int8")]
    confs = sorted(
        {float(v) for v in args.conf.split(",")} | ({args.at} if args.at is not None else set(points))
    )
    margin = PrivacyConfig().margin
    config = PrivacyConfig(horizon=args.horizon, coarse_pass=args.coarse_pass or None)
    precisions = ["fp32", "int8"] if args.int8 else ["fp32"]
    models: dict[str, list[Path]] = {}
    coco = args.work / "coco-fp32.onnx"
    if not coco.exists():
        from training.privacy import build_privacy_onnx

        build_privacy_onnx(args.weights, coco)
    for precision in precisions:
        base, tuned = coco, [Path(job["out"]) for job in jobs]
        if precision == "int8":
            base, tuned = (
                quantized(coco, folders, set(frames)),
                [quantized(p, folders, set(frames)) for p in tuned],
            )
        models[f"COCO {precision}"] = [base] * args.folds
        models[f"fine-tuned {precision}"] = tuned
    outcomes: dict[tuple[str, float], list[Outcome]] = {}
    areas: dict[tuple[str, float], list[float]] = {}
    covers: dict[tuple[str, float], list[tuple[float, float, float]]] = {}
    for k in range(args.folds):
        held = [f for f in frames if fold[f] == k]
        images = {f: read_image(Path(paths[f])) for f in held}
        held_labels = [lab for lab in labels if lab.frame in images]
        damage = {f: boxes for f in held if (boxes := damage_boxes(Path(paths[f]))) is not None}
        for name, files in models.items():
            detector = load_privacy_detector(files[k])
            found = {
                f: find_people_and_vehicles(img, detector, config, conf=min(confs))
                for f, img in images.items()
            }
            for conf in confs:
                got, area, cover = outcomes_at(found, images, held_labels, conf, margin, args.horizon, damage)
                outcomes.setdefault((name, conf), []).extend(got)
                areas.setdefault((name, conf), []).extend(area)
                covers.setdefault((name, conf), []).extend(cover)

    def row(name: str, conf: float) -> dict[str, Any]:
        got = outcomes[(name, conf)]
        n = len(got)
        by_model = sum(o.cover_model >= args.min_coverage for o in got)
        with_band = sum(o.cover_all >= args.min_coverage for o in got)
        persons = [o for o in got if o.label.cls == "person"]
        vehicles = [o for o in got if o.label.cls == "vehicle"]
        lo, hi = wilson(by_model, n)
        lo_b, hi_b = wilson(with_band, n)
        cost = damage_summary(covers[(name, conf)], len(frames))
        return {
            "model": name,
            "conf": conf,
            "n": n,
            "recall_model": round(by_model / n, 3),
            "ci95_model": f"{lo:.2f}-{hi:.2f}",
            "persons_model": round(
                sum(o.cover_model >= args.min_coverage for o in persons) / len(persons), 3
            ),
            "vehicles_model": round(
                sum(o.cover_model >= args.min_coverage for o in vehicles) / len(vehicles), 3
            ),
            "recall_with_band": round(with_band / n, 3),
            "ci95_with_band": f"{lo_b:.2f}-{hi_b:.2f}",
            "area_destroyed_by_model": round(statistics.fmean(areas[(name, conf)]), 4),
            "damage_hidden_by_model": cost["hidden_model"],
        }

    rows = [row(name, conf) for name in models for conf in confs]
    print(
        f"pooled over {args.folds} folds ({len(frames)} frames, {len(labels)} objects, each judged once by a model "
        f"that did not train on its frame); band: {args.horizon}"
    )
    print(table(rows, list(rows[0])))
    sources = {f: source for f, (_, source) in found_images.items()}
    detail: dict[str, Any] = {}
    for name in models:
        conf = args.at if args.at is not None else operating_point_of(name)
        detail[f"{name} at {conf}"] = [
            recall_row(group, subset, args.min_coverage)
            for group, subset in subsets(outcomes[(name, conf)], args.min_coverage, sources)
        ]
    for name, subset_rows in detail.items():
        print(f"\n{name}:")
        print(
            table(
                [{k: "-" if v is None else v for k, v in r.items()} for r in subset_rows],
                list(subset_rows[0]),
            )
        )
    path = write_result(
        "privacy_finetune"
        + ("" if args.horizon == 0.05 else f"-horizon-{args.horizon}")
        + ("" if args.coarse_pass == COARSE_PASS else f"-coarse-{args.coarse_pass}"),
        {
            "method": __doc__.split("\n\n")[1],
            "weights": args.weights.name,
            "folds": args.folds,
            "fold_frames": [sum(fold[f] == k for f in frames) for k in range(args.folds)],
            "negatives": [p.name for p in negatives],
            "margin": margin,
            "horizon": args.horizon,
            "coarse_pass": args.coarse_pass,
            "min_coverage": args.min_coverage,
            "models": {name: [f.name for f in files] for name, files in models.items()},
            "training": [{k: v for k, v in s.items() if k != "train_frames"} for s in summaries],
            "rows": rows,
            "subsets": detail,
        },
    )
    print(f"\nwrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
