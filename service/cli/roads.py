"""``python -m service roads import FILE | importance SECTION VALUE | coverage | rebuild-coverage``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from service.db.engine import make_engine, make_sessionmaker, transaction
from service.db.roads import ImportOptions, import_network, set_importance_override
from service.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser("roads", help="road network: import, importance overrides, coverage")
    rsub = p.add_subparsers(dest="action", required=True)
    p = rsub.add_parser(
        "import",
        help="replace the network with an OSM extract (.osm.pbf) or a GeoPackage/GeoJSON/Shapefile of lines",
    )
    p.add_argument("file", type=Path)
    p.add_argument(
        "--max-section-m", type=float, help="longest section (default ROADWATCH_ROAD_MAX_SECTION_M)"
    )
    p.add_argument("--highway-classes", help="comma-separated OSM highway classes to import")
    p = rsub.add_parser("importance", help="set one section's importance (0..1), or 'class' to undo")
    p.add_argument("section")
    p.add_argument("value")
    p.add_argument("--reason")
    p = rsub.add_parser("coverage", help="coverage summary: km surveyed, km not surveyed for N months")
    p.add_argument("--months", type=int, default=6)
    rsub.add_parser(
        "rebuild-coverage",
        help="count every section's passes again from the frames (fixes what differs; also nightly)",
    )


def import_options(settings: Settings, args: argparse.Namespace | None = None) -> ImportOptions:
    classes = (getattr(args, "highway_classes", None) or settings.road_highway_classes).split(",")
    max_m = getattr(args, "max_section_m", None) or settings.road_max_section_m
    return ImportOptions(
        highway_classes=tuple(c.strip() for c in classes if c.strip()),
        max_section_m=max_m,
        importance_version=settings.road_importance_version,
        max_file_bytes=settings.road_max_file_mb * 1024 * 1024,
    )


def _importance(value: str) -> float | None:
    if value == "class":
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"importance: expected a number in 0..1 or 'class', got {value!r}") from None


def run(settings: Settings, args: argparse.Namespace) -> int:
    sessions = make_sessionmaker(make_engine(settings.database_url, pool_size=1))
    try:
        if args.action == "import":
            result = import_network(sessions, args.file, import_options(settings, args))
        elif args.action == "importance":
            with transaction(sessions) as session:
                result = set_importance_override(session, args.section, _importance(args.value), args.reason)
        elif args.action == "rebuild-coverage":
            from service.db.coverage import rebuild_coverage

            with transaction(sessions) as session:
                result = rebuild_coverage(session)
        else:
            from service.db.coverage import coverage_summary

            with sessions() as session:
                result = coverage_summary(session, months=args.months)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, default=str))
    return 0
