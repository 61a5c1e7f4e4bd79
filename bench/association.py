"""How well do observations merge into one site per real defect? Simulated drives on real PostGIS.

    python bench/association.py [--mode hard|simple] [--passes 4] [--defects 40] [--seeds 0,...,9]
                                [--radii 4] [--background-sites 0]

``--mode hard`` (default): a grid of streets with junctions (3 east-west and 3 north-south streets of
300 m, 150 m apart). Defects lie on random streets, half of them in close pairs 1.5-6 m apart. Each pass
is a drive on another day through every street, each in a random direction, one frame every 4 m.
What real drives have: per-defect detection probability 0.7-0.9, class confusion among cracks (15 %),
false positives (one per ten frames on average, random position and class), GPS error as a per-drive
offset of 2-8 m plus slow drift (about 1 m per 100 m, 1.6 m at most) plus 0.5 m jitter per frame, heading
error (1 deg per drive plus 2 deg per frame), box bottoms jittered by 3 px. Each seed is another layout
and other drives; every seed is reported. Methods: ``greedy per frame`` (the association of each frame
on its own, as before issue 13) and ``tracks + registration`` (per drive: tracking, registration against
the map, one-to-one assignment; ``service/worker/association.py``).

Reported per method: true defects seen, defects that end as exactly one site (all their sightings in
one site holding no other true defect), defects split over several sites, sites mixing two or more true
defects, sites made of false positives only (and how many of those have a single sighting and rank below
the multi-sighting true sites of the same class), and the association time per 1,000 frames.
``--background-sites N`` first fills the map with N generated sites around (not on) the streets, to time
association against a large map.

``--mode simple`` is the benchmark before issue 13, kept for comparison: a 600 m street driven in both
directions, per-pass GPS offset 3-5 m plus 0.5 m jitter, heading error 2 deg, detection probability 0.85;
methods ``geometry + drive alignment``, ``camera geometry``, ``GPS position only``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
    from service.worker.frame_association import Located

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


def run(  # type: ignore[no-untyped-def]
    session_factory, defects, passes: int, seed: int, radius: float, method: str, search: float
) -> dict[str, Any]:
    from sqlalchemy import text

    from service.domain.ranking import DEFAULT_CONFIG
    from service.worker.frame_association import associate_frame, combine_offsets

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


def main_simple(args: argparse.Namespace, sessions) -> int:  # type: ignore[no-untyped-def]
    methods = ("geometry + drive alignment", "camera geometry", "GPS position only")
    args.seeds = args.seeds or "0,1,2,3,4"
    args.radii = args.radii or "2,3,4,5,6,8"
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


# --- hard mode: a grid of streets, realistic drives -------------------------------------------------

GRID_N, GRID_SPACING_M, GRID_LENGTH_M = 3, 150.0, 300.0
FRAME_STEP_M = 4.0
LANE_M = 1.75  # driving on the right of the centre line
VIEW_M = (4.0, 20.0)  # forward range in which the detector finds damage
FP_RATE = 0.1  # false positives per frame
CONFUSION = 0.15  # share of crack detections labelled as another crack class
DRIFT_PERIOD_M = 1000.0
DRIFT_AMPLITUDE_M = 0.01 * DRIFT_PERIOD_M / (2 * math.pi)  # steepest slope 1 m per 100 m


@dataclass(frozen=True)
class Street:
    start: tuple[float, float]  # east, north metres from ORIGIN
    end: tuple[float, float]

    def at(self, along: float, lateral: float) -> tuple[float, float]:
        (x0, y0), (x1, y1) = self.start, self.end
        ux, uy = (x1 - x0) / GRID_LENGTH_M, (y1 - y0) / GRID_LENGTH_M
        return x0 + ux * along - uy * lateral, y0 + uy * along + ux * lateral  # lateral: to the left


@dataclass(frozen=True)
class Defect:
    east: float
    north: float
    class_name: str
    p_detect: float


@dataclass
class SimDetection:
    defect: int  # index into the defects, -1 for a false positive
    class_name: str
    confidence: float
    box: tuple[float, float, float, float]


@dataclass
class SimFrame:
    drive: int
    when: datetime
    lat: float
    lon: float
    heading: float
    detections: list[SimDetection]
    gps_error: tuple[float, float] = (0.0, 0.0)  # east, north metres (what the truth would correct)


def grid_streets() -> list[Street]:
    streets = []
    for k in range(GRID_N):
        c = k * GRID_SPACING_M
        streets.append(Street((0.0, c), (GRID_LENGTH_M, c)))  # east-west
        streets.append(Street((c, 0.0), (c, GRID_LENGTH_M)))  # north-south
    return streets


def grid_defects(n: int, rng: np.random.Generator) -> list[Defect]:
    streets = grid_streets()

    def one(street: Street, along: float, lateral: float) -> Defect:
        east, north = street.at(along, lateral)
        return Defect(east, north, str(rng.choice(CLASSES)), float(rng.uniform(0.7, 0.9)))

    defects = []
    pairs = n // 4
    for _ in range(n - 2 * pairs):
        street = streets[rng.integers(len(streets))]
        defects.append(one(street, rng.uniform(8, GRID_LENGTH_M - 8), rng.uniform(-3, 3)))
    for _ in range(pairs):  # close pairs: the hard case
        street = streets[rng.integers(len(streets))]
        along, lateral = rng.uniform(8, GRID_LENGTH_M - 14), rng.uniform(-2.5, 2.5)
        gap, angle = rng.uniform(1.5, 6.0), rng.uniform(0, math.pi)
        defects.append(one(street, along, lateral))
        defects.append(
            one(
                street,
                along + gap * math.cos(angle),
                float(np.clip(lateral + gap * math.sin(angle), -3.5, 3.5)),
            )
        )
    return defects


def to_latlon(east: float, north: float) -> tuple[float, float]:
    lat = locate(*ORIGIN, 0.0, north, 0.0)[0]
    return lat, locate(lat, ORIGIN[1], 90.0, east, 0.0)[1]


def _detect(
    defects: list[Defect], cam_e: float, cam_n: float, heading: float, rng: np.random.Generator
) -> list[SimDetection]:
    h = math.radians(heading)
    fwd_e, fwd_n = math.sin(h), math.cos(h)
    seen = []
    candidates = [(i, d.east - cam_e, d.north - cam_n) for i, d in enumerate(defects)]
    if rng.random() < FP_RATE:
        fwd, right = rng.uniform(*VIEW_M), rng.uniform(-4, 4)
        candidates.append((-1, fwd * fwd_e + right * fwd_n, fwd * fwd_n - right * fwd_e))
    for i, de, dn in candidates:
        fwd, right = de * fwd_e + dn * fwd_n, de * fwd_n - dn * fwd_e
        if not VIEW_M[0] <= fwd <= VIEW_M[1] or (i >= 0 and rng.random() > defects[i].p_detect):
            continue
        pix = project_ground(fwd, right, W, H, CAM)
        if pix is None or not (0 <= pix[0] < W and 0 <= pix[1] < H):
            continue
        u, v = pix[0] + rng.normal(0, 3), min(pix[1] + rng.normal(0, 3), H - 1)
        half = 0.3 * 1000 / max(fwd, 1)  # ~0.6 m wide defect
        box = (max(u - half, 0), max(v - 40, 0), min(u + half, W - 1), v)
        if i < 0:
            label, conf = str(rng.choice(CLASSES)), float(rng.uniform(0.25, 0.6))
        else:
            label = defects[i].class_name
            if label != "D40" and rng.random() < CONFUSION:
                label = str(rng.choice([c for c in CLASSES[:3] if c != label]))
            conf = float(rng.uniform(0.3, 0.95))
        seen.append(SimDetection(i, label, conf, box))
    return seen


def simulate_grid(defects: list[Defect], passes: int, rng: np.random.Generator) -> list[SimFrame]:
    """All frames of all drives, in time order (one drive per pass, one pass per day)."""
    frames: list[SimFrame] = []
    streets = grid_streets()
    t0 = datetime(2026, 6, 1, 9, tzinfo=UTC)
    for p in range(passes):
        direction = rng.normal(0, 1, 2)
        bias = direction / np.linalg.norm(direction) * rng.uniform(2.0, 8.0)  # this drive's GPS offset
        phase = rng.uniform(0, 2 * math.pi, 2)
        heading_bias = rng.normal(0, 1.0)
        when, travelled, last = t0 + timedelta(days=p), 0.0, None
        for k in rng.permutation(len(streets)):
            street = streets[k]
            a, b = (street.start, street.end) if rng.random() < 0.5 else (street.end, street.start)
            heading = math.degrees(math.atan2(b[0] - a[0], b[1] - a[1])) % 360.0
            ux, uy = (b[0] - a[0]) / GRID_LENGTH_M, (b[1] - a[1]) / GRID_LENGTH_M
            if last is not None:
                travelled += math.dist(last, a)
                when += timedelta(seconds=20)
            for s in np.arange(0.0, GRID_LENGTH_M + 0.1, FRAME_STEP_M):
                cam_e, cam_n = a[0] + ux * s + uy * LANE_M, a[1] + uy * s - ux * LANE_M  # right lane
                drift = DRIFT_AMPLITUDE_M * np.sin(2 * math.pi * (travelled + s) / DRIFT_PERIOD_M + phase)
                err = bias + drift + rng.normal(0, 0.5, 2)
                lat, lon = to_latlon(cam_e + err[0], cam_n + err[1])
                measured = (heading + heading_bias + rng.normal(0, 2.0)) % 360.0
                frames.append(
                    SimFrame(
                        p,
                        when,
                        lat,
                        lon,
                        measured,
                        _detect(defects, cam_e, cam_n, heading, rng),
                        (float(err[0]), float(err[1])),
                    )
                )
                when += timedelta(seconds=1)
            travelled += GRID_LENGTH_M
            last = b
    return frames


def _greedy(session, frames: list[SimFrame], radius: float, search: float) -> list[list[int]]:  # type: ignore[no-untyped-def]
    """Site id per detection with the per-frame association from before issue 13."""
    from service.domain.ranking import DEFAULT_CONFIG
    from service.worker.frame_association import Located, associate_frame, combine_offsets

    out: list[list[int]] = []
    recent: list[tuple[float, float]] = []
    drive = -1
    for f in frames:
        if f.drive != drive:
            recent, drive = [], f.drive
        located, where = [], []
        for j, d in enumerate(f.detections):
            est = locate_detection(f.lat, f.lon, f.heading, d.box, W, H, CAM)
            if est is not None:
                located.append(
                    Located(d.class_name, d.confidence, est.lat, est.lon, est.distance_m, est.size_m, d.box)
                )
                where.append(j)
        result = associate_frame(
            session,
            located,
            prior=combine_offsets(recent[-10:]),
            radius_m=radius,
            search_m=max(radius, search),
            seen_at=f.when,
            model_version_id=None,
            ranking=DEFAULT_CONFIG,
        )
        if result.offset is not None and result.matched:
            recent.append(result.offset)
        ids = [-1] * len(f.detections)
        for j, site in zip(where, result.sites, strict=True):
            ids[j] = site.id
        out.append(ids)
    return out


def _tracked(session, frames: list[SimFrame], radius: float, search: float) -> list[list[int]]:  # type: ignore[no-untyped-def]
    """Site id per detection with the per-drive association (tracks, registration, assignment)."""
    from sqlalchemy import text

    from service.db.sites import rescore_sites
    from service.domain.ranking import DEFAULT_CONFIG
    from service.domain.tracking import FrameInput, Sighting
    from service.worker.association import AssociationConfig, associate_segment

    vehicle_id = session.execute(
        text(
            "INSERT INTO vehicle (name, token_hash, camera_height_m, camera_pitch_deg, camera_hfov_deg, active)"
            " VALUES ('bench', md5(random()::text), 1.4, 10, 100, true) RETURNING id"
        )
    ).scalar_one()
    config = AssociationConfig(radius_m=radius)  # registers within its own reach (search_m 20 m)
    ids: dict[tuple[int, int], int] = {}
    for drive in sorted({f.drive for f in frames}):
        inputs = []
        for k, f in enumerate(frames):
            if f.drive != drive:
                continue
            sightings = []
            for j, d in enumerate(f.detections):
                s = Sighting.locate(
                    k * 100 + j, d.class_name, d.confidence, d.box, f.lat, f.lon, f.heading, W, H, CAM
                )
                if s is not None:
                    sightings.append(s)
            inputs.append(FrameInput(k, f.when, f.lat, f.lon, f.heading, tuple(sightings)))
        result = associate_segment(session, vehicle_id, inputs, config=config, model_version_id=None)
        rescore_sites(session, result.sites, DEFAULT_CONFIG)  # as associate_ready does
        for key, site_id in result.site_of.items():
            ids[divmod(key, 100)] = site_id
    return [[ids.get((k, j), -1) for j in range(len(f.detections))] for k, f in enumerate(frames)]


HARD_METHODS = {"greedy per frame": _greedy, "tracks + registration": _tracked}


def add_background_sites(session, n: int) -> None:  # type: ignore[no-untyped-def]
    """``n`` open sites scattered over 40 km x 40 km around the grid, none within 100 m of it."""
    from sqlalchemy import text

    session.execute(
        text(
            """
            INSERT INTO damage_site (public_id, class_name, class_votes, position, position_weight, severity,
                max_confidence, sightings, n_observations, priority, score_components, ranking_version, status,
                first_seen, last_seen)
            SELECT gen_random_uuid(), (ARRAY['D00','D10','D20','D40'])[1 + (g % 4)], '{}',
                   ST_SetSRID(ST_MakePoint(:lon0 + e / (111320 * cos(radians(:lat0))), :lat0 + n / 111320.0), 4326),
                   1, 'low', 0.5, 1, 1, 10, '{}', '', 'open', now(), now()
            FROM (SELECT g, -20000 + 40000 * random() AS e, -20000 + 40000 * random() AS n
                  FROM generate_series(1, :n) g) pts
            WHERE NOT (e BETWEEN -100 AND 400 AND n BETWEEN -100 AND 400)
            """
        ),
        {"n": n, "lat0": ORIGIN[0], "lon0": ORIGIN[1]},
    )
    session.execute(text("ANALYZE damage_site"))
    session.commit()


def run_hard(  # type: ignore[no-untyped-def]
    session_factory, defects: list[Defect], frames: list[SimFrame], method: str, radius: float, search: float
) -> dict[str, Any]:
    from sqlalchemy import text

    site_defects: dict[int, set[int]] = defaultdict(set)
    site_fps: dict[int, int] = defaultdict(int)
    defect_sites: dict[int, set[int]] = defaultdict(set)
    with session_factory() as session:
        start_id = session.execute(text("SELECT coalesce(max(id), 0) FROM damage_site")).scalar_one()
        start = time.perf_counter()
        ids = HARD_METHODS[method](session, frames, radius, search)
        seconds = time.perf_counter() - start
        for f, frame_ids in zip(frames, ids, strict=True):
            for d, site_id in zip(f.detections, frame_ids, strict=True):
                if site_id < 0:
                    continue  # not on the road plane
                if d.defect >= 0:
                    site_defects[site_id].add(d.defect)
                    defect_sites[d.defect].add(site_id)
                else:
                    site_fps[site_id] += 1
        rows = session.execute(
            text("SELECT id, class_name, priority, sightings FROM damage_site WHERE id > :s"), {"s": start_id}
        ).all()
        session.rollback()
    seen_ids = [i for i in range(len(defects)) if defect_sites[i]]
    exact = sum(
        1 for i in seen_ids if len(defect_sites[i]) == 1 and site_defects[next(iter(defect_sites[i]))] == {i}
    )
    fp_sites = [r for r in rows if r.id in site_fps and not site_defects.get(r.id)]
    true_multi = [r for r in rows if site_defects.get(r.id) and r.sightings >= 2]
    pairs = [(f, t) for f in fp_sites for t in true_multi if f.class_name == t.class_name]
    return {
        "method": method,
        "radius_m": radius,
        "frames": len(frames),
        "defects_seen": len(seen_ids),
        "exactly_one_site": exact,
        "exact_share": exact / max(len(seen_ids), 1),
        "split_defects": sum(1 for i in seen_ids if len(defect_sites[i]) > 1),
        "sites": len(rows),
        "mixed_sites": sum(1 for d in site_defects.values() if len(d) > 1),
        "fp_sites": len(fp_sites),
        "fp_single_sighting": sum(1 for r in fp_sites if r.sightings == 1),
        "fp_below_true": sum(1 for f, t in pairs if f.priority < t.priority) / max(len(pairs), 1),
        "ms_per_1000_frames": 1000 * 1000 * seconds / max(len(frames), 1),
    }


def main_hard(args: argparse.Namespace, sessions) -> int:  # type: ignore[no-untyped-def]
    seeds = [int(x) for x in (args.seeds or "0,1,2,3,4,5,6,7,8,9").split(",")]
    methods = [m.strip() for m in args.methods.split(",")]
    radii = [float(r) for r in (args.radii or "4").split(",")]
    if args.background_sites:
        with sessions() as session:
            from sqlalchemy import text

            have = session.execute(text("SELECT count(*) FROM damage_site")).scalar_one()
            if have < args.background_sites:
                add_background_sites(session, args.background_sites - have)
    per_seed = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        defects = grid_defects(args.defects, rng)
        frames = simulate_grid(defects, args.passes, np.random.default_rng(seed + 1000))
        for m in methods:
            for r in radii:
                row = {"seed": seed, **run_hard(sessions, defects, frames, m, r, args.search)}
                per_seed.append(row)
                print(
                    f"seed {seed} {m} r={r}: {row['exactly_one_site']}/{row['defects_seen']} exact, "
                    f"{row['mixed_sites']} mixed, {row['split_defects']} split, {row['fp_sites']} fp sites, "
                    f"{row['ms_per_1000_frames']:.0f} ms/1000 frames",
                    flush=True,
                )
    rows = []
    keys = (
        "frames",
        "defects_seen",
        "exactly_one_site",
        "split_defects",
        "sites",
        "mixed_sites",
        "fp_sites",
        "fp_single_sighting",
    )
    for m in methods:
        for r in radii:
            group = [row for row in per_seed if row["method"] == m and row["radius_m"] == r]
            total: dict[str, Any] = {k: sum(row[k] for row in group) for k in keys}
            total["exact_share"] = total["exactly_one_site"] / max(total["defects_seen"], 1)
            total["mixed_share"] = total["mixed_sites"] / max(total["sites"] - total["fp_sites"], 1)
            total["worst_seed_share"] = min(row["exact_share"] for row in group)
            total["fp_below_true"] = statistics.fmean(row["fp_below_true"] for row in group)
            total["ms_per_1000_frames"] = statistics.fmean(row["ms_per_1000_frames"] for row in group)
            total["exact_per_seed"] = " ".join(
                f"{row['exactly_one_site']}/{row['defects_seen']}" for row in group
            )
            rows.append({"method": m, "radius_m": r, **total})
    columns = [
        "method",
        "radius_m",
        "defects_seen",
        "exactly_one_site",
        "exact_share",
        "worst_seed_share",
        "split_defects",
        "sites",
        "mixed_sites",
        "mixed_share",
        "fp_sites",
        "fp_single_sighting",
        "fp_below_true",
        "ms_per_1000_frames",
    ]
    print(table(rows, columns))
    print(
        "\nper seed (exactly one site / seen): "
        + "; ".join(f"{r['method']}: {r['exact_per_seed']}" for r in rows)
    )
    print(f"summed over seeds {','.join(map(str, seeds))}: {args.defects} defects, {args.passes} passes each")
    suffix = f"-{args.background_sites // 1000}k-sites" if args.background_sites else ""
    path = write_result(
        f"association-hard-{args.defects}d-{args.passes}p{suffix}",
        {
            "mode": "hard",
            "passes": args.passes,
            "defects": args.defects,
            "seeds": seeds,
            "search_m": args.search,
            "background_sites": args.background_sites,
            "rows": rows,
            "per_seed": per_seed,
        },
    )
    print(f"written to {path}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("hard", "simple"), default="hard")
    parser.add_argument("--passes", type=int, default=4)
    parser.add_argument("--defects", type=int, default=40)
    parser.add_argument("--seeds", help="layouts and drives to simulate (hard: 0-9, simple: 0-4)")
    parser.add_argument("--radii", help="association radii in metres (hard: 4, simple: 2,3,4,5,6,8)")
    parser.add_argument("--methods", default=",".join(HARD_METHODS), help="hard mode: methods to run")
    parser.add_argument(
        "--background-sites", type=int, default=0, help="hard mode: generated sites on the map"
    )
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
    if args.mode == "hard":
        return main_hard(args, sessions)
    return main_simple(args, sessions)


if __name__ == "__main__":
    raise SystemExit(main())
