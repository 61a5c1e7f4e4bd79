"""Coverage per section and the network summary, on real PostGIS, from generated drives with usable and
unusable frames along two streets 15 m apart."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.db.coverage import coverage_summary, section_coverage
from service.db.engine import make_engine, make_sessionmaker, transaction
from service.db.road_tables import RoadSection
from service.db.roads import import_network
from service.db.survey import record_frame
from service.db.tables import Frame, UploadBatch, Vehicle, point
from service.domain.geo import Camera
from service.domain.matching import footprint_local
from service.domain.quality import Verdict
from service.domain.roads import from_local

CAM = Camera(1.4, 10.0, 100.0)
LAT0, LON0 = 60.2, 24.9
DAY1 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
NOW = DAY1 + timedelta(days=30)


@pytest.fixture
def sessions(clean_db: str) -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(clean_db))


def _network(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    lines = {"West": 0.0, "East": 15.0}  # two 300 m streets northwards, 15 m apart: 6 sections each
    roads = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"id": name, "name": name, "highway": "residential"},
                "geometry": {
                    "type": "LineString",
                    "coordinates": [from_local(LAT0, LON0, east, 0.0), from_local(LAT0, LON0, east, 300.0)],
                },
            }
            for name, east in lines.items()
        ],
    }
    path = tmp_path / "two.geojson"
    path.write_text(json.dumps(roads))
    import_network(sessions, path)


def _vehicle(session: Session) -> Vehicle:
    name = f"cov-{uuid.uuid4().hex[:8]}"
    vehicle = Vehicle(name=name, token_hash=hashlib.sha256(name.encode()).hexdigest())
    session.add(vehicle)
    session.flush()
    return vehicle


def drive_frames(
    session: Session, vehicle: Vehicle, east: float, until_m: float, start: datetime, verdicts: Any
) -> list[Frame]:
    """Frames every 5 m northwards from 0 to ``until_m``; ``verdicts(i)`` says each frame's quality."""
    batch = UploadBatch(vehicle_id=vehicle.id, counts={}, meta={})
    session.add(batch)
    session.flush()
    frames = []
    for i, north in enumerate(range(0, int(until_m), 5)):
        lon, lat = from_local(LAT0, LON0, east, float(north))
        frame = Frame(
            sha256=hashlib.sha256(f"{vehicle.name}/{start}/{i}".encode()).hexdigest(),
            vehicle_id=vehicle.id,
            batch_id=batch.id,
            filename=f"{i}.jpg",
            captured_at=start + timedelta(seconds=i),
            position=point(lat, lon),
            location_source="exif",
            heading=0.0,
            width=1280,
            height=720,
            status="done",
        )
        session.add(frame)
        session.flush()
        record_frame(session, frame, lat, lon, 0.0, CAM, verdicts(i))
        frames.append(frame)
    return frames


def _drive(session: Session, east: float, until_m: float, start: datetime, usable: bool) -> None:
    verdict = Verdict(True, ()) if usable else Verdict(False, ("blurred",))
    drive_frames(session, _vehicle(session), east, until_m, start, lambda i: verdict)


def test_coverage_per_section_and_summary(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    _network(sessions, tmp_path)
    with transaction(sessions) as session:
        _drive(session, 0.0, 150.0, DAY1, usable=True)  # West, first half
        _drive(session, 0.0, 300.0, DAY2, usable=True)  # West, whole length
        _drive(session, 15.0, 300.0, DAY2, usable=False)  # East: driven, every photo blurred
    near = footprint_local(CAM, 1280, 720)[0][0]  # 1.46 m: the road under the bonnet is not seen
    assert near == pytest.approx(1.4 / 0.9598, abs=0.01)
    with sessions() as session:
        lengths = [(s.id, s.length_m) for s in session.query(RoadSection).order_by(RoadSection.id)]
        assert [sid for sid, _ in lengths] == [f"fEast:{k}" for k in range(6)] + [
            f"fWest:{k}" for k in range(6)
        ]
        cov = section_coverage(session, lengths, period_days=182, now=NOW)
        later = section_coverage(session, lengths, period_days=182, now=NOW + timedelta(days=365))
    first, last, east = cov["fWest:0"], cov["fWest:5"], cov["fEast:2"]
    assert first["passes"] == 2 and last["passes"] == 1 and first["passes_previous_period"] == 0
    assert first["seen_share"] == pytest.approx((50.0 - near) / 50.0, abs=0.01)
    # the frame at 250 m, on the boundary, matched the section before: this one is seen from 255 m + near
    assert last["seen_share"] == pytest.approx((50.0 - 5.0 - near) / 50.0, abs=0.01)
    assert first["last_usable_pass"].startswith("2026-03-03") and first["unusable_share"] == 0.0
    assert first["frames"] == 22  # 0, 5, .., 50 m on each of two drives (a tie goes to the lower id)
    assert east["last_usable_pass"] is None and east["passes"] == 0 and east["seen_share"] == 0.0
    assert east["unusable_share"] == 1.0 and east["last_pass"].startswith("2026-03-03")
    # a year later the same passes are outside the period
    assert later["fWest:0"]["passes"] == 0 and later["fWest:0"]["last_usable_pass"] is not None
    with sessions() as session:
        summary = coverage_summary(session, months=6, now=NOW)
        assert summary["sections"] == 12 and summary["km"] == pytest.approx(0.6, abs=0.001)
        assert summary["km_surveyed"] == pytest.approx(0.3, abs=0.001)
        assert summary["km_not_surveyed"] == pytest.approx(0.3, abs=0.001)
        assert summary["km_driven_not_usable"] == pytest.approx(0.3, abs=0.001)
        assert summary["km_never_surveyed"] == pytest.approx(0.3, abs=0.001)
        assert coverage_summary(session, months=1, now=NOW + timedelta(days=60))["km_surveyed"] == 0.0
        with pytest.raises(ValueError, match="months"):
            coverage_summary(session, months=0)


def test_coverage_api(app, client, staff, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sessions = app.state.sessions
    _network(sessions, tmp_path)
    now = datetime.now(UTC)
    with transaction(sessions) as session:
        _drive(session, 0.0, 300.0, now - timedelta(days=10), usable=True)
    auth = staff["viewer"]
    summary = client.get("/api/v1/coverage/summary?months=6&fresh=true", auth=auth).json()
    assert summary["km_surveyed"] == pytest.approx(0.3, abs=0.001) and summary["km_never_surveyed"] > 0.29
    layer = client.get("/api/v1/coverage", auth=auth).json()
    classes = {f["properties"]["id"]: f["properties"]["age_class"] for f in layer["features"]}
    assert classes["fWest:0"] == "0-3 months" and classes["fEast:0"] == "never"
    since = (now - timedelta(days=5)).date().isoformat()
    stale = client.get(f"/api/v1/coverage?not_surveyed_since={since}", auth=auth).json()
    assert {f["properties"]["id"] for f in stale["features"]} == {f"fEast:{k}" for k in range(6)} | {
        f"fWest:{k}" for k in range(6)
    }
    recent = (now - timedelta(days=20)).date().isoformat()
    stale = client.get(f"/api/v1/coverage?not_surveyed_since={recent}", auth=auth).json()
    assert {f["properties"]["id"] for f in stale["features"]} == {f"fEast:{k}" for k in range(6)}
    assert client.get("/api/v1/coverage?bbox=1,2,3", auth=auth).status_code == 422
    assert client.get("/api/v1/coverage/summary").status_code == 401
    daily = client.get("/api/v1/coverage/summary", auth=auth).json()  # the day's, cached
    assert daily["km_surveyed"] == summary["km_surveyed"]
    assert client.get("/api/v1/coverage/summary", auth=auth).json()["as_of"] == daily["as_of"]
    from service.tests.web_seed import login

    login(client, *staff["viewer"])
    page = client.get("/sites?lang=en").text
    assert "Road network: 0.3 of 0.6 km surveyed with usable photos in the last 6 months; 0.3 km not" in page
