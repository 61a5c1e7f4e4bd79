"""Command line: one JSON line per image on stdout, logs on stderr.

Exit status: 0 all images read, 1 if any image failed, 2 on usage errors (bad flags, no model).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from detector.errors import DetectorError, ModelError
from detector.manifest import default_model_path
from detector.model import Detector
from detector.preprocess import read_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
log = logging.getLogger("detector")


def iter_images(paths: list[Path]) -> Iterator[Path]:
    """Files as given; folders searched recursively for jpg/jpeg/png, sorted."""
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
        else:
            yield path


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m detector")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="detect road damage in images")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--weights", type=Path, help="ONNX model (default: weights/manifest.json default)")
    p.add_argument("--conf", type=float, default=0.25)
    p.add_argument("--iou", type=float, default=0.45)
    args = parser.parse_args(argv)
    if not 0 <= args.conf <= 1 or not 0 <= args.iou <= 1:
        parser.error("--conf and --iou must be between 0 and 1")
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        parser.error(f"no such file or folder: {', '.join(missing)}")
    try:
        detector = Detector.from_path(args.weights or default_model_path())
    except ModelError as exc:
        parser.error(str(exc))
    failed = 0
    for path in iter_images(args.paths):
        try:
            image = read_image(path)
            detections = detector.predict(image, conf=args.conf, iou=args.iou)
        except DetectorError as exc:
            failed += 1
            log.warning("%s: %s", path, exc)
            print(json.dumps({"image": str(path), "error": str(exc)}), flush=True)
            continue
        height, width = image.shape[:2]
        record = {
            "image": str(path),
            "width": width,
            "height": height,
            "detections": [d.to_dict() for d in detections],
        }
        print(json.dumps(record), flush=True)
    return 1 if failed else 0
