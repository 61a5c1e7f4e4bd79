"""``python -m uploader send|watch|status DIR``: JSON summary on stdout, logs and progress on stderr.

Exit status: 0 all done; 1 a photo failed in this run, ``send`` left photos pending, or an error stopped
the run (the summary's ``error`` says which); 2 usage errors. SIGTERM or Ctrl-C: the request in flight
is finished, then the summary is printed. The token comes from ``--token-file``, the environment
(``ROADWATCH_TOKEN``) or ``--token`` (visible in process lists: avoid it on shared machines).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import httpx

from uploader.api import Api, Retrier
from uploader.errors import UploaderError, UsageError
from uploader.journal import Journal
from uploader.progress import Progress
from uploader.sync import Options, Uploader

log = logging.getLogger("uploader")
JOURNAL_NAME = ".roadwatch-journal.sqlite"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m uploader", description="Send dashcam photos to Roadwatch."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("dir", type=Path, help="folder with the photos (searched recursively)")
    common.add_argument("--journal", type=Path, help=f"journal file (default: DIR/{JOURNAL_NAME})")
    common.add_argument("-v", "--verbose", action="count", default=0)
    common.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    up = argparse.ArgumentParser(add_help=False)
    up.add_argument(
        "--server",
        default=os.environ.get("ROADWATCH_SERVER"),
        help="e.g. https://roadwatch.example (env ROADWATCH_SERVER)",
    )
    up.add_argument(
        "--insecure", action="store_true", help="allow plain http:// to a server that is not on this machine"
    )
    up.add_argument("--token", help="vehicle token (prefer --token-file or env ROADWATCH_TOKEN)")
    up.add_argument("--token-file", type=Path, help="file holding the vehicle token")
    up.add_argument("--every-m", type=float, help="keep one photo per N metres driven")
    up.add_argument("--clock-offset-s", type=float, default=0.0, help="added to camera time to get GPS time")
    up.add_argument(
        "--track",
        type=Path,
        action="append",
        default=[],
        help="GPX/NMEA file (repeatable); *.gpx *.nmea *.nma *.log in DIR are used anyway",
    )
    up.add_argument(
        "--track-max-gap-s", type=float, default=30.0, help="no position across larger track gaps"
    )
    up.add_argument(
        "--batch-size", type=int, default=20, help="photos per request (halved if the server says 413)"
    )
    up.add_argument("--batch-mb", type=float, default=16.0, help="at most this many MB per request")
    up.add_argument("--retries", type=int, default=6, help="tries per request (0: unlimited)")
    up.add_argument(
        "--backoff-s", type=float, default=1.0, help="first backoff step; doubles, capped at 60 s"
    )
    up.add_argument("--timeout-s", type=float, default=120.0)
    up.add_argument(
        "--dry-run", action="store_true", help="find, locate and sample, but send and record nothing"
    )
    up.add_argument("--retry-failed", action="store_true", help="send photos the server refused before again")
    up.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("send", parents=[common, up], help="send what is there now, then exit")
    p.add_argument("--settle-s", type=float, default=1.0, help="files must keep their size this long")
    p = sub.add_parser(
        "watch", parents=[common, up], help="keep watching the folder (stop with SIGTERM/Ctrl-C)"
    )
    p.add_argument("--poll-s", type=float, default=5.0, help="seconds between polls")
    sub.add_parser("status", parents=[common], help="print the journal's counts and failures")
    return parser


def _token(args: argparse.Namespace) -> str:
    if args.token and args.token_file:
        raise UsageError("give --token or --token-file, not both")
    if args.token_file:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            raise UsageError(f"--token-file: {exc}") from exc
    else:
        token = args.token or os.environ.get("ROADWATCH_TOKEN", "").strip()
    if not token:
        raise UsageError("no token: use --token-file FILE or set ROADWATCH_TOKEN")
    return str(token)


def _check(args: argparse.Namespace) -> None:
    if not args.dir.is_dir():
        raise UsageError(f"{args.dir}: not a folder")
    if args.command == "status":
        return
    for name in ("every_m", "batch_mb", "timeout_s", "backoff_s", "track_max_gap_s", "settle_s", "poll_s"):
        value = getattr(args, name, None)
        if (value is not None and value < 0) or (name in ("batch_mb", "timeout_s") and value == 0):
            raise UsageError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
    if args.batch_size < 1 or args.retries < 0:
        raise UsageError("--batch-size must be >= 1 and --retries >= 0")
    for track in args.track:
        if not track.is_file():
            raise UsageError(f"--track {track}: no such file")
    if not args.dry_run and not args.server:
        raise UsageError("--server URL is needed (or env ROADWATCH_SERVER)")
    if args.server and not args.server.startswith(("http://", "https://")):
        raise UsageError(f"--server: expected http(s)://host[:port], got {args.server!r}")
    if args.server and args.server.startswith("http://") and not args.insecure:
        host = httpx.URL(args.server).host
        if not _is_loopback(host):
            raise UsageError(
                f"--server {args.server}: plain http:// to {host} would send the vehicle token and photos "
                "unencrypted; use https:// (or --insecure on a trusted network)"
            )


def _is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: plain HTTP never leaves the machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace, transport: httpx.BaseTransport | None = None) -> tuple[dict[str, Any], int]:
    """Do what the parsed arguments say; returns (summary, exit status)."""
    _check(args)
    journal_path = args.journal or args.dir / JOURNAL_NAME
    out: dict[str, Any] = {"command": args.command, "dir": str(args.dir), "journal_path": str(journal_path)}
    if args.command == "status":
        with Journal(journal_path, dry_run=True) as journal:
            return {**out, "journal": journal.counts(), "failures": journal.failures(1000)}, 0
    token = _token(args) if not args.dry_run else ""
    if args.token:
        log.warning("--token is visible in process lists; prefer --token-file or ROADWATCH_TOKEN")
    stop = threading.Event()
    options = Options(
        every_m=args.every_m or None,
        clock_offset_s=args.clock_offset_s,
        track_max_gap_s=args.track_max_gap_s,
        tracks=list(args.track),
        batch_size=args.batch_size,
        batch_bytes=int(args.batch_mb * 1024 * 1024),
        dry_run=args.dry_run,
    )
    retrier = Retrier(attempts=args.retries, base_s=args.backoff_s, sleep=stop.wait)
    api = None if args.dry_run else Api(args.server, token, transport=transport, timeout_s=args.timeout_s)
    progress = Progress(enabled=False if args.no_progress or args.quiet else None)
    error, status = None, 0
    try:
        with Journal(journal_path, dry_run=args.dry_run) as journal:
            uploader = Uploader(args.dir, journal, api, options, retrier, progress, stop)
            if args.retry_failed and not args.dry_run:
                log.info("%d failed photos will be sent again", journal.reset_failed())
            try:
                _on_signals(stop)
                if args.command == "watch":
                    uploader.watch(args.poll_s)
                else:
                    uploader.send_once(args.settle_s)
            except UploaderError as exc:
                error, status = f"{type(exc).__name__}: {exc}", 1
                log.error("%s", error)
            summary = uploader.summary()
    finally:
        if api is not None:
            api.close()
    if summary["failed"] or (args.command == "send" and summary["pending"] and not args.dry_run):
        status = 1
    return {**out, "dry_run": args.dry_run, **summary, "error": error}, status


def _on_signals(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: object) -> None:
        log.info("signal %d: finishing the current request, then stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def main(argv: list[str] | None = None, transport: httpx.BaseTransport | None = None) -> int:
    args = _parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if args.verbose < 2:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        summary, status = run(args, transport)
    except UsageError as exc:
        print(f"python -m uploader {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except UploaderError as exc:  # e.g. the journal is held by another uploader
        summary, status = (
            {"command": args.command, "dir": str(args.dir), "error": f"{type(exc).__name__}: {exc}"},
            1,
        )
        log.error("%s", exc)
    print(json.dumps(summary, indent=None, default=str))
    return status
