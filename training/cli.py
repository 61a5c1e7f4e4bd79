"""Command line of the training package; exit 2 on usage errors."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _quantization_args(p: argparse.ArgumentParser) -> None:
    from training.export import CALIBRATION_METHODS

    p.add_argument(
        "--default",
        choices=["fp32", "int8"],
        default="int8",
        help='the manifest\'s default (int8: weights/MODEL.md, "Default precision")',
    )
    p.add_argument("--calib-count", type=int, default=200, help="calibration images for int8")
    p.add_argument("--calib-method", choices=CALIBRATION_METHODS, default="minmax")


def main(argv: list[str] | None = None) -> int:
    from training.export import CALIBRATION_METHODS
    from training.privacy_finetune import FinetuneOptions

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m training")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train from a config")
    p.add_argument("--data", required=True, type=Path, help="dataset folder from `python -m datasets build`")
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--epochs", type=int)
    p.add_argument("--runs", type=Path, help="folder for runs (default: runs/)")
    p = sub.add_parser("resume", help="continue an interrupted run")
    p.add_argument("run_dir", type=Path)
    p = sub.add_parser("eval", help="per-class AP50, mAP50, mAP50-95, best F1 through our ONNX path")
    p.add_argument("--weights", required=True, type=Path, help="ONNX model")
    p.add_argument("--data", required=True, type=Path, help="dataset folder (data.yaml)")
    p.add_argument("--split", default="val")
    p.add_argument("--out", type=Path, help="folder for metrics.json, pr_curve.png, confusion_matrix.png")
    p.add_argument("--threads", type=int, default=2)
    p = sub.add_parser("release", help="export, evaluate, record metrics, keep a stripped checkpoint")
    p.add_argument("--weights", required=True, type=Path)
    p.add_argument("--version", required=True)
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--extra-data", type=Path, help="another dataset (other roads) to evaluate on")
    p.add_argument("--calib", required=True, type=Path)
    p.add_argument("--imgsz", type=int, default=416)
    p.add_argument("--data-version", default="rdd2022-China_MotorBike-000000-001299")
    _quantization_args(p)
    p = sub.add_parser("export", help="ONNX fp32 + int8 into weights/, checked, manifest updated")
    p.add_argument("--weights", required=True, type=Path, help="trained checkpoint (.pt)")
    p.add_argument("--name", default="roadwatch-yolov5nu")
    p.add_argument("--version", required=True)
    p.add_argument("--imgsz", type=int, default=416)
    p.add_argument("--calib", required=True, type=Path, help="folder of real training images")
    p.add_argument("--data-version", default="rdd2022-China_MotorBike-000000-001299")
    p.add_argument("--metrics", type=Path, help="JSON {fp32: {...}, int8: {...}} to record")
    _quantization_args(p)
    p = sub.add_parser(
        "privacy-model", help="person/vehicle ONNX detector for blurring, from classic YOLOv5n"
    )
    p.add_argument("--weights", required=True, type=Path, help="classic YOLOv5n v6.1 COCO checkpoint (.pt)")
    p.add_argument("--out", type=Path, default=Path("weights/privacy-persons-vehicles.onnx"))
    p.add_argument("--imgsz", type=int, default=640)
    p = sub.add_parser(
        "privacy-finetune",
        help="fine-tune the privacy model on photos whose persons and vehicles were labelled by eye",
    )
    p.add_argument("--weights", required=True, type=Path, help="classic YOLOv5n v6.1 COCO checkpoint (.pt)")
    p.add_argument(
        "--labels", required=True, type=Path, action="append",
        help="labels JSON (repeatable): file name -> [{class: person|vehicle, box: [x1, y1, x2, y2]}]",
    )  # fmt: skip
    p.add_argument(
        "--images", required=True, type=Path, action="append", help="folder searched for the labelled photos"
    )
    p.add_argument(
        "--negatives", type=Path, action="append", default=[],
        help="folder of photos checked to show no person or vehicle (repeatable): all of them train as negatives",
    )  # fmt: skip
    p.add_argument(
        "--negatives-sample", type=int, default=0,
        help="also this many unlabelled photos found under --images (a data set screened by eye: they show nobody)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    p.add_argument("--epochs", type=int, default=FinetuneOptions.epochs)
    p.add_argument("--batch", type=int, default=FinetuneOptions.batch)
    p.add_argument("--lr0", type=float, default=FinetuneOptions.lr0)
    p.add_argument("--imgsz", type=int, default=FinetuneOptions.imgsz, help="training input, px (square)")
    p.add_argument("--seed", type=int, default=FinetuneOptions.seed)
    p = sub.add_parser(
        "privacy-int8",
        help="int8 privacy model (static QDQ as the damage model), calibrated on street photos",
    )
    p.add_argument("--fp32", type=Path, default=Path("weights/privacy-persons-vehicles.onnx"))
    p.add_argument("--out", type=Path, default=Path("weights/privacy-persons-vehicles-int8.onnx"))
    p.add_argument(
        "--calib",
        required=True,
        type=Path,
        action="append",
        help="folder of street photos (repeatable); photos where the fp32 model sees a person or vehicle are used",
    )
    p.add_argument(
        "--exclude",
        type=Path,
        action="append",
        default=[],
        help="JSON whose keys are file names never to calibrate on (the audit labels; repeatable)",
    )
    p.add_argument("--calib-count", type=int, default=100)
    p.add_argument("--calib-method", choices=CALIBRATION_METHODS, default="minmax")
    p.add_argument(
        "--calib-chunk",
        type=int,
        help="calibrate this many photos at a time (must divide --calib-count; bounds memory at 640 px)",
    )
    p = sub.add_parser(
        "adapt",
        help="fine-tune the default model on corrected photos (CPU or --device); promote only if better on held-out ones",
    )
    p.add_argument("--corrections", required=True, type=Path, help="corrections folder (labelstudio pull)")
    p.add_argument(
        "--base-data",
        type=Path,
        action="append",
        default=[],
        help="training data to keep learning from: a built dataset or a source `datasets build` reads (repeatable)",
    )
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument(
        "--from",
        dest="checkpoint",
        type=Path,
        help="PyTorch checkpoint to start from (default: the default model's, weights/<name>-<version>.pt)",
    )
    p.add_argument("--weights-dir", type=Path, help="folder with manifest.json (default: weights/)")
    p.add_argument("--runs", type=Path, help="folder for adaptation runs (default: runs/adapt/)")
    p.add_argument("--version", help="version of the new model (default: <old>-adapt<UTC time>)")
    p.add_argument("--imgsz", type=int, help="default: the default model's input size")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr0", type=float, default=0.0005)
    p.add_argument("--freeze", type=int, help="freeze the first N layers")
    p.add_argument(
        "--base-limit", type=int, help="at most N base training images (default: 4x the corrections)"
    )
    p.add_argument(
        "--oversample-pothole",
        type=int,
        default=3,
        help="repeat corrected photos with potholes N times in all",
    )
    p.add_argument(
        "--min-gain", type=float, default=0.0, help="promote only if mAP50 rises by more than this"
    )
    p.add_argument(
        "--device", default="cpu", help="where to fine-tune (ultralytics' device): cpu, 0 (first GPU), 0,1"
    )
    args = parser.parse_args(argv)

    if args.command == "train":
        from training.train import RUNS_DIR, train

        overrides = {"epochs": args.epochs} if args.epochs else {}
        run = train(args.data, args.config, args.runs or RUNS_DIR, **overrides)
        print(run)
    elif args.command == "resume":
        from training.train import resume

        print(resume(args.run_dir))
    elif args.command == "eval":
        import json

        from training.evaluate import evaluate, summary_table, write_report

        metrics = evaluate(args.weights, args.data, args.split, threads=args.threads)
        if args.out:
            write_report(metrics, args.out)
        print(summary_table(metrics), file=sys.stderr)
        print(json.dumps({k: v for k, v in metrics.items() if k not in ("pr_curves", "confusion")}))
    elif args.command == "release":
        import json

        from training.release import release

        report = release(
            args.weights,
            args.version,
            args.data,
            args.calib,
            args.extra_data,
            imgsz=args.imgsz,
            data_version=args.data_version,
            default_precision=args.default,
            calib_count=args.calib_count,
            calib_method=args.calib_method,
        )
        print(json.dumps(report))
    elif args.command == "export":
        import json

        from training.export import export_release

        metrics = json.loads(args.metrics.read_text()) if args.metrics else None
        entries = export_release(
            args.weights,
            args.name,
            args.version,
            args.imgsz,
            args.calib,
            args.data_version,
            metrics,
            default_precision=args.default,
            calib_count=args.calib_count,
            calib_method=args.calib_method,
        )
        for entry in entries:
            print(json.dumps(entry))
    elif args.command == "adapt":
        import json

        from detector.manifest import WEIGHTS_DIR
        from training.adapt import AdaptError, AdaptOptions, adapt

        if args.epochs < 1:
            parser.error("--epochs must be at least 1")
        options = AdaptOptions(
            epochs=args.epochs,
            imgsz=args.imgsz,
            batch=args.batch,
            lr0=args.lr0,
            freeze=args.freeze,
            base_limit=args.base_limit,
            oversample_pothole=args.oversample_pothole,
            min_gain=args.min_gain,
            device=args.device,
        )
        try:
            report = adapt(
                args.corrections,
                args.base_data,
                args.checkpoint,
                options,
                weights_dir=args.weights_dir or WEIGHTS_DIR,
                runs_dir=args.runs,
                version=args.version,
            )
        except AdaptError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        verdict = "PROMOTED to default" if report["promoted"] else "not promoted (not better), listed"
        print(
            f"held-out mAP50 ({report['holdout']['images']} photos): {report['old']['name']} "
            f"{report['old']['map50']:.4f} -> {report['new']['name']} {report['new']['map50']:.4f}: {verdict}",
            file=sys.stderr,
        )
        print(json.dumps(report))
    elif args.command == "privacy-model":
        import json

        from training.privacy import build_privacy_onnx

        print(json.dumps(build_privacy_onnx(args.weights, args.out, args.imgsz)))
    elif args.command == "privacy-finetune":
        import json

        from training.privacy_finetune import (
            find_photos,
            finetune,
            make_samples,
            read_labels,
            sample_negatives,
        )

        if args.epochs < 1 or args.batch < 1 or args.imgsz < 32 or args.imgsz % 32:
            parser.error("--epochs and --batch must be at least 1, --imgsz a multiple of 32")
        try:
            labels = read_labels(args.labels)
            photos = find_photos(args.images)
            negatives = sorted(find_photos(args.negatives).values())
            if args.negatives_sample:
                negatives += sample_negatives(photos, set(labels), args.negatives_sample, args.seed)
            samples = make_samples(labels, photos, negatives)
        except (ValueError, OSError) as error:
            parser.error(str(error))
        tuning = FinetuneOptions(
            epochs=args.epochs, batch=args.batch, lr0=args.lr0, seed=args.seed, imgsz=args.imgsz
        )
        report = finetune(
            args.weights, samples, args.out, tuning, log=lambda line: print(line, file=sys.stderr)
        )
        print(json.dumps(report))
    elif args.command == "privacy-int8":
        import json

        from training.privacy import build_privacy_int8

        if args.calib_count < 1:
            parser.error("--calib-count must be at least 1")
        if args.calib_chunk is not None and (args.calib_chunk < 1 or args.calib_count % args.calib_chunk):
            parser.error("--calib-chunk must divide --calib-count")
        exclude = {name for path in args.exclude for name in json.loads(path.read_text())}
        report = build_privacy_int8(
            args.fp32, args.out, args.calib, exclude, args.calib_count, args.calib_method, args.calib_chunk
        )
        print(json.dumps(report))
    return 0
