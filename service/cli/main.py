"""``python -m service <verb>``: migrate, serve, worker, vehicle add, user add, roads import, labelstudio."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from service.domain.statuses import PUSH_STRATEGIES, ROLES, PushStrategy, Role

if TYPE_CHECKING:
    from service.settings import Settings


def _settings() -> Settings:
    from pydantic import ValidationError

    from service.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        sys.exit(f"configuration error (set DATABASE_URL): {exc.errors()[0]['msg']}")


def _horizon(value: str) -> float | None:
    """The stored privacy band: 'default' -> None (ROADWATCH_PRIVACY_HORIZON), 'none' -> 0 (no band),
    or a fraction of the height in 0..1."""
    if value in ("none", "default"):
        return 0.0 if value == "none" else None
    try:
        fraction = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number in 0..1, 'none' or 'default', got {value!r}"
        ) from None
    if not 0.0 <= fraction <= 1.0:
        raise argparse.ArgumentTypeError(
            f"the privacy horizon is a fraction of the height (0..1), got {fraction}"
        )
    return fraction


def build_parser() -> argparse.ArgumentParser:
    """The command line: one sub-command per verb (``python -m service -h`` lists them)."""
    parser = argparse.ArgumentParser(prog="python -m service")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the database schema")
    p = sub.add_parser("serve", help="run the API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p = sub.add_parser("worker", help="run one worker process")
    p.add_argument("--concurrency", type=int, default=1)
    _vehicle_parser(sub)
    _user_parser(sub)
    sub.add_parser("retention", help="delete images older than ROADWATCH_RETENTION_DAYS now")
    sub.add_parser("transparency", help="print the transparency record (JSON)")
    from service.cli import demo, open311, roads

    demo.add_parser(sub)
    roads.add_parser(sub)
    open311.add_parser(sub)
    _labelstudio_parser(sub)
    return parser


def _vehicle_parser(sub: Any) -> None:
    from service.cli.admin import KEEP

    p = sub.add_parser("vehicle", help="manage vehicles")
    vsub = p.add_subparsers(dest="action", required=True)
    p = vsub.add_parser("add", help="add a vehicle and print its upload token (shown once)")
    p.add_argument("name")
    p.add_argument("--height-m", type=float, default=1.4, help="camera height above the road")
    p.add_argument("--pitch-deg", type=float, default=10.0, help="camera tilt below horizontal")
    p.add_argument("--hfov-deg", type=float, default=100.0, help="horizontal field of view")
    p.add_argument(
        "--privacy-horizon", type=_horizon, help="fraction of the height blurred from the top, or none"
    )
    vsub.add_parser("list", help="all vehicles with their camera and privacy settings (never tokens)")
    p = vsub.add_parser("set", help="change a vehicle's camera geometry or privacy band")
    p.add_argument("name")
    p.add_argument("--height-m", type=float)
    p.add_argument("--pitch-deg", type=float)
    p.add_argument("--hfov-deg", type=float)
    p.add_argument(
        "--privacy-horizon",
        type=_horizon,
        default=KEEP,
        help="fraction of the height blurred from the top (0..1), 'none' for no band, "
        "'default' for ROADWATCH_PRIVACY_HORIZON",
    )
    p = vsub.add_parser("revoke", help="deactivate a vehicle: its token stops working at once")
    p.add_argument("name")
    p = vsub.add_parser("token", help="issue a new upload token (the old one stops working); reactivates")
    p.add_argument("name")


def _user_parser(sub: Any) -> None:
    p = sub.add_parser("user", help="manage staff accounts")
    usub = p.add_subparsers(dest="action", required=True)
    p = usub.add_parser("add", help="add a staff user; prints a generated password unless --password")
    p.add_argument("username")
    p.add_argument("--role", choices=ROLES, default=Role.VIEWER)
    p.add_argument("--password")


def _labelstudio_parser(sub: Any) -> None:
    p = sub.add_parser("labelstudio", help="send frames to Label Studio for correction, fetch corrections")
    lsub = p.add_subparsers(dest="action", required=True)
    p = lsub.add_parser("push", help="send frames with the model's boxes as predictions (each frame once)")
    p.add_argument("--limit", type=int, default=50, help="at most this many frames (default 50)")
    p.add_argument(
        "--strategy",
        choices=PUSH_STRATEGIES,
        default=PushStrategy.RANDOM,
        help="random (default: it beat uncertain in bench/active_learning.py); uncertain: least certain "
        "detections first; rejected: sites staff rejected or relabelled",
    )
    lsub.add_parser("pull", help="fetch finished annotations as YOLO labels into DATA_DIR/corrections")


def _migrate(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from service.db.migrate import upgrade

    upgrade(settings.database_url)
    print(json.dumps({"migrated": True}))
    return 0


def _compute_threads(settings: Settings) -> None:
    """OpenCV's threads as ONNX Runtime's (``ROADWATCH_THREADS``, default 1): with one process per core
    (workers and the API), more threads per process only make them wait for each other."""
    import cv2

    cv2.setNumThreads(settings.threads)


def _serve(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import uvicorn

    from service.app import create_app

    _compute_threads(settings)

    uvicorn.run(create_app(settings), host=args.host, port=args.port)
    return 0


def _worker(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from service.worker.context import worker_context
    from service.worker.jobs import run_worker

    _compute_threads(settings)
    asyncio.run(run_worker(settings, worker_context(settings), args.concurrency))
    return 0


def _records(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from service.db.engine import make_engine, make_sessionmaker
    from service.db.store import ImageStore

    sessions = make_sessionmaker(make_engine(settings.database_url, pool_size=1))
    if args.command == "retention":
        from service.worker.retention import enforce_retention

        deleted = enforce_retention(
            sessions,
            ImageStore(settings.image_dir),
            settings.retention_days,
            corrections=settings.corrections_dir,
        )
        print(json.dumps({"deleted_images": deleted, "retention_days": settings.retention_days}))
    else:
        from service.db.transparency import transparency_record
        from service.worker.context import ranking_config

        with sessions() as session:
            print(json.dumps(transparency_record(session, settings, ranking_config(settings)), indent=2))
    return 0


def _labelstudio(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from service import labelstudio
    from service.db.engine import make_engine, make_sessionmaker

    if args.action == "push" and args.limit < 1:
        parser.error("--limit must be at least 1")
    sessions = make_sessionmaker(make_engine(settings.database_url, pool_size=1))
    with labelstudio.cli_errors():
        if args.action == "push":
            result = labelstudio.push(settings, sessions, limit=args.limit, strategy=args.strategy)
        else:
            result = labelstudio.pull(settings, sessions)
    print(json.dumps(result))
    return 0


def _roads(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from service.cli import roads

    return roads.run(settings, args)


def _open311(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from service.cli import open311

    return open311.run(settings, args)


def _admin(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from service.cli.admin import run_admin

    return run_admin(settings, args)


def _demo(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from service.cli import demo

    return demo.run(settings, args) if args.action else _admin(settings, args, parser)


Command = Callable[["Settings", argparse.Namespace, argparse.ArgumentParser], int]
COMMANDS: dict[str, Command] = {
    "migrate": _migrate,
    "serve": _serve,
    "worker": _worker,
    "retention": _records,
    "transparency": _records,
    "labelstudio": _labelstudio,
    "roads": _roads,
    "open311": _open311,
    "vehicle": _admin,
    "user": _admin,
    "demo": _demo,
}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    parser = build_parser()
    args = parser.parse_args(argv)
    return COMMANDS[args.command](_settings(), args, parser)
