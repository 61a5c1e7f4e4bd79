"""How well do observations merge into one site per real defect? A simulated drive on real PostGIS.

    python bench/association.py [--passes 4] [--defects 40] [--seeds 0,1,2,3,4] [--radii 2,3,4] [--search 12]

Known defects lie along a 600 m street (some in close pairs 2.5-6 m apart). A car drives it several
times in both directions, one frame every 4 m. Phone GPS error: a per-pass offset of 3-5 m plus 0.5 m
jitter, heading error 2 deg. Each visible defect is detected with probability 0.85, its box bottom
jittered by 3 px, and located by the service's own code (ground projection, then association in
PostGIS). Each seed is another street layout and other drives; the table sums over the seeds (one
lucky layout proves little). Reported per association radius: true defects that end as exactly one site (all their
sightings in one site holding nothing else), defects split over several sites, and sites mixing two
defects; and the same with the GPS position alone (no camera geometry) for comparison.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import scratch_database, table, write_result
from service.domain.geo import Camera, locate, locate_detection, project_ground
from service.settings import Settings

W, H = 1920, 1080
CAM = Camera(height_m=1.4, pitch_deg=10.0, hfov_deg=100.0)
ORIGIN = (52.0, 13.0)
CLASSES = ("D00", "D10", "D20", "D40")


def make_defects(n: int, rng: np.random.Generator) -> list[tuple[float, float, str]]:
    """(along_m, lateral_m, class): lateral 0 = road centre, + = north side."""
    defects = []
    pairs = n // 4
    for _ in range(n - 2 * pairs):
        defects.append((rng.uniform(20, 580), rng.uniform(-3, 3), str(rng.choice(CLASSES))))
    for _ in range(pairs):  # close pairs: the hard case
        a, lat = rng.uniform(20, 575), rng.uniform(-3, 3)
        gap, angle = rng.uniform(2.5, 6.0), rng.uniform(0, math.pi)
        defects.append((a, lat, str(rng.choice(CLASSES))))
        defects.append(
            (a + gap * math.cos(angle), lat + gap * math.sin(angle) * 0.5, str(rng.choice(CLASSES)))
        )
    return defects


def simulate(defects, passes: int, rng: np.random.Generator, use_geometry: bool):  # type: ignore[no-untyped-def]
    """Yields frames: (pass, time, [(defect index, Located)])."""
    from service.worker.association import Located

    t0 = datetime(2026, 6, 1, 9, tzinfo=UTC)
    for p in range(passes):
        eastbound = p % 2 == 0
        heading = 90.0 if eastbound else 270.0
        bias = rng.normal(0, 1, 2)
        bias = bias / np.linalg.norm(bias) * rng.uniform(3.0, 5.0)  # this pass's GPS offset, metres
        lane = -1.75 if eastbound else 1.75  # driving on the right
        stations = np.arange(0, 600, 4.0) if eastbound else np.arange(600, 0, -4.0)
        for k, s in enumerate(stations):
            when = t0 + timedelta(days=p, seconds=k)
            jitter = rng.normal(0, 0.5, 2)
            gps_e, gps_n = s + bias[0] + jitter[0], lane + bias[1] + jitter[1]
            gps_lat, gps_lon = locate(*ORIGIN, 0.0, gps_n, 0.0)[0], locate(*ORIGIN, 90.0, gps_e, 0.0)[1]
            h_meas = heading + rng.normal(0, 2.0)
            seen = []
            for i, (along, lateral, cls) in enumerate(defects):
                fwd = (along - s) if eastbound else (s - along)
                right = (lane - lateral) if eastbound else (lateral - lane)
                if not 4.0 <= fwd <= 20.0 or rng.random() > 0.85:
                    continue
                pix = project_ground(fwd, right, W, H, CAM)
                if pix is None or not (0 <= pix[0] < W and 0 <= pix[1] < H):
                    continue
                u, v = pix[0] + rng.normal(0, 3), min(pix[1] + rng.normal(0, 3), H - 1)
                half = 0.3 * 1000 / max(fwd, 1)  # ~0.6 m wide defect
                box = (max(u - half, 0), max(v - 40, 0), min(u + half, W - 1), v)
                label = cls if cls == "D40" or rng.random() < 0.8 else str(rng.choice(CLASSES[:3]))
                conf = float(rng.uniform(0.3, 0.95))
                if use_geometry:
                    est = locate_detection(gps_lat, gps_lon, h_meas, box, W, H, CAM)
                    if est is None:
                        continue
                    seen.append((i, Located(label, conf, est.lat, est.lon, est.distance_m, est.size_m, box)))
                else:
                    seen.append((i, Located(label, conf, gps_lat, gps_lon, None, None, box)))
            yield p, when, seen


def run(session_factory, defects, passes: int, seed: int, radius: float, method: str, search: float) -> dict:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    from service.domain.ranking import DEFAULT_CONFIG
    from service.worker.association import associate_frame, combine_offsets

    rng = np.random.default_rng(seed)
    site_defects: dict[int, set[int]] = defaultdict(set)
    defect_sites: dict[int, set[int]] = defaultdict(set)
    recent: list[tuple[float, float]] = []
    current_pass = -1
    with session_factory() as session:
        session.execute(text("TRUNCATE damage_site RESTART IDENTITY CASCADE"))
        for p, when, seen in simulate(defects, passes, rng, method != "GPS position only"):
            if p != current_pass:
                recent, current_pass = [], p
            aligned = method == "geometry + drive alignment"
            prior = combine_offsets(recent[-10:]) if aligned else None
            result = associate_frame(
                session,
                [loc for _, loc in seen],
                prior=prior,
                radius_m=radius,
                search_m=max(radius, search) if aligned else 0.0,  # 0: no offset, nearest site only
                seen_at=when,
                model_version_id=None,
                ranking=DEFAULT_CONFIG,
            )
            if result.offset is not None and result.matched:
                recent.append(result.offset)
            for (i, _), site in zip(seen, result.sites, strict=True):
                site_defects[site.id].add(i)
                defect_sites[i].add(site.id)
        session.rollback()
    seen_ids = [i for i in range(len(defects)) if defect_sites[i]]
    exact = sum(
        1 for i in seen_ids if len(defect_sites[i]) == 1 and site_defects[next(iter(defect_sites[i]))] == {i}
    )
    return {
        "method": method,
        "radius_m": radius,
        "defects_seen": len(seen_ids),
        "exactly_one_site": exact,
        "exact_share": exact / max(len(seen_ids), 1),
        "split_defects": sum(1 for i in seen_ids if len(defect_sites[i]) > 1),
        "sites": len(site_defects),
        "mixed_sites": sum(1 for d in site_defects.values() if len(d) > 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passes", type=int, default=4)
    parser.add_argument("--defects", type=int, default=40)
    parser.add_argument("--seeds", default="0,1,2,3,4", help="street layouts and drives to simulate")
    parser.add_argument("--radii", default="2,3,4,5,6,8")
    parser.add_argument(
        "--search",
        type=float,
        default=Settings.model_fields["association_search_m"].default,
        help="metres within which a drive without an offset looks for known sites (the service's setting)",
    )
    parser.add_argument(
        "--database-url", help="a migrated scratch database (default: devdb 'roadwatch_bench')"
    )
    args = parser.parse_args()
    url = args.database_url or scratch_database("roadwatch_bench")
    from service.db.engine import make_engine, make_sessionmaker

    sessions = make_sessionmaker(make_engine(url))
    methods = ("geometry + drive alignment", "camera geometry", "GPS position only")
    seeds = [int(x) for x in args.seeds.split(",")]
    per_seed = []
    for seed in seeds:
        defects = make_defects(args.defects, np.random.default_rng(seed))
        for m in methods:
            for r in args.radii.split(","):
                per_seed.append(
                    {"seed": seed, **run(sessions, defects, args.passes, seed + 1, float(r), m, args.search)}
                )
    rows = []  # summed over the seeds
    for m in methods:
        for r in args.radii.split(","):
            group = [row for row in per_seed if row["method"] == m and row["radius_m"] == float(r)]
            total = {
                k: sum(row[k] for row in group)
                for k in ("defects_seen", "exactly_one_site", "split_defects", "sites", "mixed_sites")
            }
            total["exact_share"] = total["exactly_one_site"] / max(total["defects_seen"], 1)
            total["exact_per_seed"] = " ".join(str(row["exactly_one_site"]) for row in group)
            rows.append({"method": m, "radius_m": float(r), **total})
    print(
        table(
            rows,
            [
                "method",
                "radius_m",
                "defects_seen",
                "exactly_one_site",
                "exact_share",
                "split_defects",
                "sites",
                "mixed_sites",
                "exact_per_seed",
            ],
        )
    )
    print(f"\nsummed over seeds {args.seeds}: {args.defects} defects, {args.passes} passes each")
    path = write_result(
        f"association-{args.defects}d-{args.passes}p",
        {
            "passes": args.passes,
            "defects": args.defects,
            "seeds": seeds,
            "search_m": args.search,
            "rows": rows,
            "per_seed": per_seed,
        },
    )
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
