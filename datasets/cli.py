"""Command line: ``python -m datasets build --out DIR SOURCE...``, ``python -m datasets pack DIR --out DIR``;
exit 2 on usage errors."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from datasets.build import build_dataset
from datasets.classes import CANONICAL_CLASSES, REPAIR_CLASS
from datasets.errors import DatasetError


def _class_map(values: list[str]) -> dict[str, str]:
    result = {}
    for value in values:
        source, sep, target = value.partition("=")
        if not sep or target not in (*CANONICAL_CLASSES, REPAIR_CLASS):
            raise argparse.ArgumentTypeError(
                f"--class-map expects NAME=CLASS with CLASS in {', '.join(CANONICAL_CLASSES)}, got {value!r}"
            )
        result[source] = target
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datasets")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="convert sources into one YOLO dataset")
    build.add_argument("sources", nargs="+", type=Path, metavar="SOURCE")
    build.add_argument("--out", required=True, type=Path)
    build.add_argument("--keep-repair", action="store_true", help="keep RDD's Repair as class 4")
    build.add_argument("--class-map", nargs="*", default=[], metavar="NAME=CLASS")
    build.add_argument("--val-start", type=int, help="first frame number of the validation block")
    build.add_argument("--val-fraction", type=float, default=0.18, help="last share of frames for val")
    build.add_argument("--copy", action="store_true", help="copy images instead of symlinking")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    pack = sub.add_parser(
        "pack", help="a built dataset with its images at the training size (to carry to a GPU)"
    )
    pack.add_argument("source", type=Path, help="a built dataset (python -m datasets build)")
    pack.add_argument("--out", required=True, type=Path)
    pack.add_argument("--max-side", type=int, default=416, help="longer image side in px (never enlarged)")
    pack.add_argument("--quality", type=int, default=80, help="JPEG quality 1..100")
    args = parser.parse_args(argv)
    if args.command == "pack":
        return _pack(parser, args)
    try:
        class_map = _class_map(args.class_map)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    try:
        stats = build_dataset(
            args.sources,
            args.out,
            keep_repair=args.keep_repair,
            class_map=class_map,
            val_start=args.val_start,
            val_fraction=args.val_fraction,
            copy=args.copy,
            progress=not args.quiet,
        )
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(stats.table(), file=sys.stderr)
    print(json.dumps({"out": str(args.out), **stats.as_dict()}))
    return 0


def _pack(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from datasets.pack import pack_dataset

    try:
        stats = pack_dataset(args.source, args.out, args.max_side, args.quality)
    except ValueError as exc:  # the options themselves
        parser.error(str(exc))
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"out": str(args.out), **stats.as_dict()}))
    return 0
