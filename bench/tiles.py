"""Vector-tile latency: ``GET /tiles/sites/{z}/{x}/{y}.pbf`` against the running service with a city of
generated sites in PostGIS.

    python bench/tiles.py [--sites 200000] [--requests 60] [--zooms 10,11,12,13,14,15,16,17]

For each zoom, ``--requests`` tiles under random points of the city (as map users pan), fetched over HTTP
with HTTP Basic; p50/p95 per zoom and over all, and the p95 of each distinct tile's first fetch (``cold``:
below zoom 14 the service keeps a tile 60 s, and at low zoom a few tiles cover the whole city). Results: a table on stdout
and bench/results/tiles.json.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import scratch_database, summary_ms, table, write_result  # noqa: E402
from bench.service import credentials, free_port, start, wait_http  # noqa: E402

# The city of bench/service.py: about 30 x 20 km around Cologne.
SOUTH, WEST, HEIGHT, WIDTH = 50.85, 6.80, 0.18, 0.42
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


def tile_of(lat: float, lon: float, z: int) -> tuple[int, int]:
    n = 2**z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--zooms", default="10,11,12,13,14,15,16,17")
    args = parser.parse_args()
    url = scratch_database("roadwatch_bench_tiles")
    began = time.perf_counter()
    populate(url, args.sites)
    load_s = time.perf_counter() - began
    _, user, password = credentials(url)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "ROADWATCH_DATA_DIR": tempfile.mkdtemp(prefix="rw-bench-")}
    server = start(["serve", "--port", str(port)], env)
    rng = random.Random(16)
    rows: list[dict[str, Any]] = []
    everything: list[float] = []
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/health")
        with httpx.Client(base_url=base, auth=(user, password), timeout=60) as client:
            for z in (int(v) for v in args.zooms.split(",")):
                tiles = [
                    tile_of(SOUTH + rng.random() * HEIGHT, WEST + rng.random() * WIDTH, z)
                    for _ in range(args.requests)
                ]
                client.get(
                    f"/tiles/sites/{min(z + 6, 24)}/0/0.pbf"
                ).raise_for_status()  # warm-up, an empty tile
                samples, cold, sizes, seen = [], [], [], set()
                for x, y in tiles:
                    t = time.perf_counter()
                    r = client.get(f"/tiles/sites/{z}/{x}/{y}.pbf")
                    samples.append(time.perf_counter() - t)
                    r.raise_for_status()
                    sizes.append(len(r.content))
                    if (x, y) not in seen:
                        cold.append(samples[-1])
                    seen.add((x, y))
                everything += samples
                rows.append(
                    {
                        "zoom": z,
                        **summary_ms(samples),
                        "tiles": len(seen),
                        "cold_p95_ms": summary_ms(cold)["p95_ms"],
                        "kb_mean": sum(sizes) / len(sizes) / 1024,
                    }
                )
    finally:
        server.terminate()
        server.wait(20)
    rows.append({"zoom": "all", **summary_ms(everything)})
    print(table(rows, ["zoom", "median_ms", "p95_ms", "mean_ms", "tiles", "cold_p95_ms", "kb_mean"]))
    print(
        f"{args.sites} sites loaded in {load_s:.0f} s; below zoom 14 sites are grouped per 16 px cell and a tile"
        " is kept 60 s (cold: the first fetch of each distinct tile)"
    )
    path = write_result("tiles", {"sites": args.sites, "requests_per_zoom": args.requests, "rows": rows})
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
