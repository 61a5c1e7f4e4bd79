"""Test data for the web app: damage sites with frames, photos and observations, and a logged-in client."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from service.db.engine import transaction
from service.db.sites import rescore
from service.db.tables import DamageSite, Frame, ModelVersion, Observation, UploadBatch, Vehicle, point
from service.domain.ranking import DEFAULT_CONFIG
from tests.fixtures import gps_jpeg

# class, confidence, size_m, sightings, status, (lat, lon) offsets from Münster's Prinzipalmarkt
SITES: list[tuple[str, float, float | None, int, str, tuple[float, float]]] = [
    ("D40", 0.91, 0.8, 4, "open", (0.0000, 0.0000)),
    ("D20", 0.84, 1.6, 3, "open", (0.0012, 0.0010)),
    ("D40", 0.62, 0.4, 1, "open", (-0.0020, 0.0031)),
    ("D00", 0.77, 2.5, 2, "confirmed", (0.0031, -0.0022)),
    ("D10", 0.55, None, 1, "open", (-0.0041, -0.0015)),
    ("D20", 0.71, 0.9, 2, "open", (0.0052, 0.0043)),
    ("D00", 0.45, 0.5, 1, "open", (-0.0063, 0.0060)),
    ("D40", 0.88, 0.6, 5, "scheduled", (0.0075, -0.0051)),
    ("D10", 0.35, 0.3, 1, "rejected", (0.0090, 0.0082)),
    ("D00", 0.60, 1.2, 2, "repaired", (-0.0102, -0.0090)),
]
BASE = (51.9617, 7.6282)
NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def seed_sites(
    app: Any, sites: list[tuple[str, float, float | None, int, str, tuple[float, float]]] = SITES
) -> list[DamageSite]:
    """One frame (photo in the store) and one observation per site; scores from the default ranking."""
    with transaction(app.state.sessions) as s:
        vehicle = s.query(Vehicle).first()
        if vehicle is None:
            vehicle = Vehicle(name="seed-truck", token_hash="0" * 64)
            s.add(vehicle)
            s.flush()
        model = ModelVersion(name="roadwatch-yolov5nu-v0-fp32@aab417621d4c", sha256="a" * 64, file="x.onnx")
        batch = UploadBatch(vehicle_id=vehicle.id)
        s.add_all([model, batch])
        s.flush()
        rows = []
        for i, (cls, conf, size, sightings, status, (dlat, dlon)) in enumerate(sites):
            lat, lon = BASE[0] + dlat, BASE[1] + dlon
            seen = NOW - timedelta(days=3 * i, hours=i)
            key = f"{i:02d}" + "e" * 62
            app.state.store.put(key, gps_jpeg(lat, lon, seen, seed=i))
            frame = Frame(
                sha256=key,
                vehicle_id=vehicle.id,
                batch_id=batch.id,
                filename=f"frame{i}.jpg",
                captured_at=seen,
                position=point(lat, lon),
                location_source="exif",
                width=640,
                height=480,
                status="done",
                image_key=key,
                model_version_id=model.id,
            )
            site = DamageSite(
                class_name=cls,
                class_votes={cls: conf},
                position=point(lat, lon),
                max_confidence=conf,
                size_m=size,
                sightings=sightings,
                n_observations=sightings,
                status=status,
                first_seen=seen - timedelta(days=20),
                last_seen=seen,
                model_version_id=model.id,
            )
            rescore(site, DEFAULT_CONFIG, NOW)
            s.add_all([frame, site])
            s.flush()
            s.add(
                Observation(
                    frame_id=frame.id,
                    site_id=site.id,
                    model_version_id=model.id,
                    class_name=cls,
                    confidence=conf,
                    x1=180,
                    y1=250,
                    x2=420,
                    y2=400,
                    distance_m=6.5,
                    size_m=size,
                )
            )
            rows.append(site)
    return sorted(rows, key=lambda r: -r.priority)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def login(client: Any, username: str, password: str) -> None:
    """Log the TestClient in through the form (session cookie)."""
    token = csrf_of(client.get("/login").text)
    r = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token, "next": "/sites"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
