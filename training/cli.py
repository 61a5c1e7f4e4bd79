"""Command line of the training package; exit 2 on usage errors."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
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
    p = sub.add_parser("export", help="ONNX fp32 + int8 into weights/, checked, manifest updated")
    p.add_argument("--weights", required=True, type=Path, help="trained checkpoint (.pt)")
    p.add_argument("--name", default="roadwatch-yolov5nu")
    p.add_argument("--version", required=True)
    p.add_argument("--imgsz", type=int, default=416)
    p.add_argument("--calib", required=True, type=Path, help="folder of real training images")
    p.add_argument("--data-version", default="rdd2022-China_MotorBike-000000-001299")
    p.add_argument("--metrics", type=Path, help="JSON {fp32: {...}, int8: {...}} to record")
    p.add_argument("--default", choices=["fp32", "int8"], default="fp32")
    p = sub.add_parser(
        "privacy-model", help="person/vehicle ONNX detector for blurring, from classic YOLOv5n"
    )
    p.add_argument("--weights", required=True, type=Path, help="classic YOLOv5n v6.1 COCO checkpoint (.pt)")
    p.add_argument("--out", type=Path, default=Path("weights/privacy-yolov5n-coco.onnx"))
    p.add_argument("--imgsz", type=int, default=640)
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
        import sys

        from training.evaluate import evaluate, summary_table, write_report

        metrics = evaluate(args.weights, args.data, args.split, threads=args.threads)
        if args.out:
            write_report(metrics, args.out)
        print(summary_table(metrics), file=sys.stderr)
        print(json.dumps({k: v for k, v in metrics.items() if k not in ("pr_curves", "confusion")}))
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
        )
        for entry in entries:
            print(json.dumps(entry))
    elif args.command == "privacy-model":
        import json

        from training.privacy import build_privacy_onnx

        print(json.dumps(build_privacy_onnx(args.weights, args.out, args.imgsz)))
    return 0
