"""Vector-tile latency: ``GET /tiles/sites/{z}/{x}/{y}.pbf`` against the running service with a city of
generated sites in PostGIS, as a map user pans and zooms over it.

    python bench/tiles.py [--sites 200000] [--views 4] [--zooms 10,11,12,13,14,15,16,17]

The sequence: a 1280 x 800 px map over the city, ``--views`` views per zoom (the first at a random point of
the city, each next one panned by half a screen in a random direction), every tile of each view that was
not fetched before (the browser keeps tiles; the measured fetches are all cold: the service never saw the
tile, its grouped-tile cache holds none of them).

Measured per zoom: each tile over HTTP with HTTP Basic (p50/p95), and its SQL alone in this process,
interleaved tile by tile: the grouping read from the site cells (what the service does for a large city)
and the reference, the same groups computed live from the sites (what it did before the cells), with
the ratio of their p95s. The cells' rebuild (from the sites) is timed too. Results: a table on stdout and
bench/results/tiles.json.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import scratch_database, summary_ms, table, write_result  # noqa: E402
from bench.service import credentials, free_port, start, wait_http  # noqa: E402

# The city of bench/service.py: about 30 x 20 km around Cologne.
SOUTH, WEST, HEIGHT, WIDTH = 50.85, 6.80, 0.18, 0.42
VIEW_W, VIEW_H = 1280, 800
SEED_SQL = """
INSERT INTO damage_site (public_id, class_name, class_votes, position, position_weight, severity, max_confidence,
    sightings, n_observations, priority, score_components, ranking_version, status, first_seen, last_seen)
SELECT gen_random_uuid(), (ARRAY['D00','D00','D10','D20','D40'])[1 + floor(random() * 5)::int], '{}',
    ST_SetSRID(ST_MakePoint(%(west)s + random() * %(width)s, %(south)s + random() * %(height)s), 4326),
    1, 'medium', 0.6, 2, 2, random() * 100, '{}', 'bench',
    (ARRAY['open','open','open','confirmed','scheduled','rejected','repaired'])[1 + floor(random() * 7)::int],
    now() - interval '30 days', now()
FROM generate_series(1, %(n)s)
"""


def populate(url: str, n: int) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("SELECT setseed(0.16)")
        conn.execute(SEED_SQL, {"n": n, "west": WEST, "south": SOUTH, "width": WIDTH, "height": HEIGHT})
        conn.commit()
        conn.execute("ANALYZE damage_site")


def world(lat: float, lon: float) -> tuple[float, float]:
    """Web Mercator world units (0..1, y downwards)."""
    return (lon + 180) / 360, (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2


def view_tiles(mx: float, my: float, z: int) -> list[tuple[int, int]]:
    """The tiles of a VIEW_W x VIEW_H px map centred on world point (mx, my) at zoom z."""
    px, py, n = mx * 256 * 2**z, my * 256 * 2**z, 2**z
    xs = range(int((px - VIEW_W / 2) // 256), int((px + VIEW_W / 2) // 256) + 1)
    ys = range(int((py - VIEW_H / 2) // 256), int((py + VIEW_H / 2) // 256) + 1)
    return [(x, y) for y in ys for x in xs if 0 <= x < n and 0 <= y < n]


def sequence(zooms: list[int], views: int, rng: random.Random) -> list[tuple[int, int, int]]:
    """Distinct tiles (z, x, y) in the order a user panning and zooming over the city asks for them."""
    seen: set[tuple[int, int, int]] = set()
    out = []
    for z in zooms:
        mx, my = world(SOUTH + rng.random() * HEIGHT, WEST + rng.random() * WIDTH)
        step = 256 * 2**z
        for _ in range(views):
            for x, y in view_tiles(mx, my, z):
                if (z, x, y) not in seen:
                    seen.add((z, x, y))
                    out.append((z, x, y))
            angle = rng.random() * 2 * math.pi
            mx += math.cos(angle) * VIEW_W / 2 / step
            my += math.sin(angle) * VIEW_H / 2 / step
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, default=200_000)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--zooms", default="10,11,12,13,14,15,16,17")
    args = parser.parse_args()
    from service.db.engine import make_engine, make_sessionmaker, transaction
    from service.db.tiles import CELL_MAX_ZOOM, refresh_cells, site_tile

    url = scratch_database("roadwatch_bench_tiles")
    began = time.perf_counter()
    populate(url, args.sites)
    load_s = time.perf_counter() - began
    sessions = make_sessionmaker(make_engine(url))
    began = time.perf_counter()
    with transaction(sessions) as session:
        refresh_cells(session, datetime.now(UTC))
    cells_s = time.perf_counter() - began
    tiles = sequence([int(v) for v in args.zooms.split(",")], args.views, random.Random(16))

    sql: dict[int, dict[str, list[float]]] = {}
    with sessions() as session:
        site_tile(session, 20, 0, 0)  # warm-up, an empty tile
        for z, x, y in tiles:
            row = sql.setdefault(z, {"cells": [], "live": []})
            for way, cells in (("live", False), ("cells", True)):
                t = time.perf_counter()
                site_tile(session, z, x, y, cells=cells)
                row[way].append(time.perf_counter() - t)

    with transaction(sessions) as session:  # again: the sites' change counter has settled by now, so the
        refresh_cells(session, datetime.now(UTC))  # service starts no rebuild of its own while measured
    _, user, password = credentials(url)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "ROADWATCH_DATA_DIR": tempfile.mkdtemp(prefix="rw-bench-")}
    server = start(["serve", "--port", str(port)], env)
    http: dict[int, list[float]] = {}
    sizes: dict[int, list[int]] = {}
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/health")
        with httpx.Client(base_url=base, auth=(user, password), timeout=60) as client:
            client.get("/tiles/sites/20/0/0.pbf").raise_for_status()  # warm-up, an empty tile
            for z, x, y in tiles:
                t = time.perf_counter()
                r = client.get(f"/tiles/sites/{z}/{x}/{y}.pbf")
                http.setdefault(z, []).append(time.perf_counter() - t)
                r.raise_for_status()
                sizes.setdefault(z, []).append(len(r.content))
    finally:
        server.terminate()
        server.wait(20)

    rows: list[dict[str, Any]] = []
    for z in sorted(http):
        from_cells, live = summary_ms(sql[z]["cells"]), summary_ms(sql[z]["live"])
        grouped = z <= CELL_MAX_ZOOM
        rows.append(
            {
                "zoom": z,
                "tiles": len(http[z]),
                "http_median_ms": summary_ms(http[z])["median_ms"],
                "http_p95_ms": summary_ms(http[z])["p95_ms"],
                "sql_p95_ms": from_cells["p95_ms"] if grouped else live["p95_ms"],
                "reference_sql_p95_ms": live["p95_ms"],
                "ratio_p95": from_cells["p95_ms"] / live["p95_ms"] if grouped else 1.0,
                "kb_mean": sum(sizes[z]) / len(sizes[z]) / 1024,
            }
        )
    every = [s for z in http for s in http[z]]
    rows.append({"zoom": "all", "tiles": len(every), "http_median_ms": summary_ms(every)["median_ms"],
                 "http_p95_ms": summary_ms(every)["p95_ms"]})  # fmt: skip
    columns = [
        "zoom",
        "tiles",
        "http_median_ms",
        "http_p95_ms",
        "sql_p95_ms",
        "reference_sql_p95_ms",
        "ratio_p95",
    ]
    print(table(rows, [*columns, "kb_mean"]))
    print(
        f"{args.sites} sites loaded in {load_s:.0f} s; site cells (zoom 0..{CELL_MAX_ZOOM}) built in {cells_s:.2f} s;"
        f" {args.views} views of {VIEW_W}x{VIEW_H} px per zoom, each tile fetched once (cold);"
        " reference: the same groups computed live from the sites"
    )
    path = write_result(
        "tiles",
        {
            "sites": args.sites,
            "views_per_zoom": args.views,
            "view_px": [VIEW_W, VIEW_H],
            "cells_build_s": cells_s,
            "cell_max_zoom": CELL_MAX_ZOOM,
            "rows": rows,
        },
    )
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
