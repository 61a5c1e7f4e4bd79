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
    args = parser.parse_args(argv)

    if args.command == "train":
        from training.train import RUNS_DIR, train

        overrides = {"epochs": args.epochs} if args.epochs else {}
        run = train(args.data, args.config, args.runs or RUNS_DIR, **overrides)
        print(run)
    elif args.command == "resume":
        from training.train import resume

        print(resume(args.run_dir))
    return 0
