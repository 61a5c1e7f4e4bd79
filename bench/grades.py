"""Condition grades at city scale: recompute every section, and one section after a new sighting.

    python bench/grades.py [--sections 100000] [--frames 1000000] [--sites 200000]

A generated city in a scratch PostGIS database (generate_series, server-side): ``--sections`` sections of
50 m on a grid (5,000 km at the default), ``--frames`` located frames each covering a stretch of one
section (5 % unusable: blurred), counted into the coverage tables (``rebuild_coverage``, as the nightly job
does; the worker counts each frame as it records it), ``--sites`` damage sites of all classes on random
sections. Measured:

- all sections graded (``recompute_all``: batched reads of the coverage tables, grading, writing history
  rows);
- one section regraded after a new sighting (``recompute`` for one section, 50 random sections);
- the reference in the same run: the same sections graded one query each (the naive way), extrapolated
  from 500 sections; the ratio says what batching buys.

Targets (issue 15): all sections under 60 s, one section under 50 ms. Prints a table and writes
bench/results/grades.json.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select, text

from bench.common import scratch_database, summary_ms, table, write_result
from service.db.coverage import rebuild_coverage
from service.db.engine import make_engine, make_sessionmaker, transaction
from service.db.grades import grade_sections, recompute, recompute_all, section_refs
from service.db.road_tables import RoadSection
from service.domain.grades import load_grading

GENERATE = [
    """INSERT INTO vehicle (name, token_hash, camera_height_m, camera_pitch_deg, camera_hfov_deg, active)
       VALUES ('bench', 'x', 1.4, 10, 100, true)""",
    """INSERT INTO upload_batch (id, vehicle_id, counts, meta) VALUES ('00000000-0000-0000-0000-000000000001', 1, '{}', '{}')""",
    # A grid of streets: section i lies on row i / 1000, 50 m (about 0.0008 degrees of longitude) long.
    """INSERT INTO road_section (id, way_id, ordinal, name, highway, oneway, importance, importance_source,
                                 length_m, geom)
       SELECT 'w' || (i / 100) || ':' || (i % 100), 'w' || (i / 100), i % 100, 'Street ' || (i / 100),
              (ARRAY['residential','residential','tertiary','secondary','primary','service'])[1 + i % 6],
              false, 0.5, 'bench', 50.0,
              ST_SetSRID(ST_MakeLine(ST_MakePoint(24.0 + (i % 1000) * 0.0008, 60.0 + (i / 1000) * 0.0005),
                                     ST_MakePoint(24.0008 + (i % 1000) * 0.0008, 60.0 + (i / 1000) * 0.0005)),
                         4326)
       FROM generate_series(0, :sections - 1) i""",
    """INSERT INTO frame (id, sha256, vehicle_id, batch_id, filename, location_source, width, height, status,
                          captured_at, position)
       SELECT i, md5(i::text) || md5((i + 1)::text), 1, '00000000-0000-0000-0000-000000000001', 'f.jpg',
              'exif', 1280, 720, 'done', now() - (i % 400) * interval '1 day',
              ST_SetSRID(ST_MakePoint(24.0, 60.0), 4326)
       FROM generate_series(1, :frames) i""",
    """INSERT INTO frame_road (frame_id, section_id, distance_m, seen_from_m, seen_to_m)
       SELECT i, s.id, 1.0, (i * 7) % 40, (i * 7) % 40 + 18
       FROM generate_series(1, :frames) i
       JOIN LATERAL (SELECT 'w' || ((i::bigint * 7919) % :sections / 100) || ':' || ((i::bigint * 7919) % :sections % 100) AS id) s
         ON true""",
    """INSERT INTO frame_quality (frame_id, usable, reasons, metrics, version)
       SELECT i, i % 20 <> 0, '[]', '{}', 'bench' FROM generate_series(1, :frames) i""",
    """INSERT INTO damage_site (id, public_id, class_name, class_votes, position, position_weight, severity,
                                max_confidence, sightings, n_observations, priority, score_components,
                                ranking_version, status, first_seen, last_seen, size_m)
       SELECT i, gen_random_uuid(), (ARRAY['D00','D10','D20','D40'])[1 + i % 4], '{}',
              ST_SetSRID(ST_MakePoint(24.0, 60.0), 4326), 1.0, 'medium', 0.3 + (i % 7) / 10.0, 2, 2, 50.0,
              '{}', 'bench', (ARRAY['open','open','confirmed','repaired'])[1 + i % 4], now(), now(),
              CASE WHEN i % 5 = 0 THEN NULL ELSE 0.2 + (i % 30) / 10.0 END
       FROM generate_series(1, :sites) i""",
    """INSERT INTO site_survey (site_id, section_id, section_distance_m, usable_sightings, unusable_sightings)
       SELECT i, 'w' || ((i::bigint * 104729) % :sections / 100) || ':' || ((i::bigint * 104729) % :sections % 100), 1.0, 2, 0
       FROM generate_series(1, :sites) i""",
    "VACUUM ANALYZE",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", type=int, default=100_000)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--sites", type=int, default=200_000)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    url = scratch_database("roadwatch_bench_grades")
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    config = load_grading()
    params = {"sections": args.sections, "frames": args.frames, "sites": args.sites}
    start = time.perf_counter()
    with engine.begin() as conn:
        for sql in GENERATE[:-1]:
            conn.execute(text(sql), params)
    with transaction(sessions) as session:  # frames written by SQL, not by the worker: count their passes
        rebuild_coverage(session)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(GENERATE[-1]))
    generated_s = time.perf_counter() - start
    now = datetime.now(UTC)

    start = time.perf_counter()
    counts = recompute_all(sessions, config, now)
    all_s = time.perf_counter() - start

    rng = random.Random(0)
    ids = [f"w{i // 100}:{i % 100}" for i in rng.sample(range(args.sections), 50)]
    one = []
    for section_id in ids:  # a new sighting: the site grows, its section is regraded
        with transaction(sessions) as session:
            session.execute(
                text(
                    "UPDATE damage_site SET size_m = coalesce(size_m, 0.5) + 0.3 WHERE id = "
                    "(SELECT site_id FROM site_survey WHERE section_id = :s LIMIT 1)"
                ),
                {"s": section_id},
            )
            t0 = time.perf_counter()
            recompute(session, config, now, [section_id])
            one.append(time.perf_counter() - t0)

    naive_n = min(500, args.sections)
    with sessions() as session:
        sample = section_refs(
            session, list(session.scalars(select(RoadSection.id).order_by(RoadSection.id).limit(naive_n)))
        )
        t0 = time.perf_counter()
        for section in sample:
            grade_sections(session, [section], config, now)
        naive_s = (time.perf_counter() - t0) * args.sections / naive_n
    one_ms = summary_ms(one)
    rows = [
        {"measure": "generate city", "seconds": generated_s, "note": f"{args.sections} sections, {args.frames} frames, {args.sites} sites"},
        {"measure": "all sections (batched)", "seconds": all_s, "note": f"{counts['changed']} grades written; target < 60 s"},
        {"measure": "all sections (one query each, extrapolated)", "seconds": naive_s, "note": f"from {naive_n} sections"},
        {"measure": "one section after a sighting", "seconds": one_ms["median_ms"] / 1000, "note": f"p95 {one_ms['p95_ms']:.1f} ms; target < 50 ms"},
    ]  # fmt: skip
    print(table(rows, ["measure", "seconds", "note"]))
    print(f"batched vs one query per section: {naive_s / all_s:.1f}x faster")
    path = write_result(
        "grades" + (f"-{args.label}" if args.label else ""),
        {
            **params,
            "generate_s": generated_s,
            "recompute_all_s": all_s,
            "grades_written": counts["changed"],
            "one_section_ms": one_ms,
            "naive_all_s_extrapolated": naive_s,
            "batched_speedup": naive_s / all_s,
            "targets": {"recompute_all_s": 60, "one_section_ms": 50},
        },
    )
    print(f"wrote {path}")
    engine.dispose()


if __name__ == "__main__":
    main()
