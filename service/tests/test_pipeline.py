"""Frame processing with a real ONNX model whose output is known (constant head): locating,
association, sightings, idempotency."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from geoalchemy2.shape import to_shape
from sqlalchemy import func, select

from detector import Detector
from detector.tests.conftest import build_constant_head_model, head_with
from service.models import DamageSite, Frame, Observation
from service.pipeline import WorkerContext, process_frame
from service.ranking import DEFAULT_CONFIG
from service.runtime import register_model
from service.store import ImageStore
from tests.fixtures import T0, gps_jpeg

LAT, LON = 52.0, 13.0


@pytest.fixture
def ctx(app, settings, tmp_path: Path) -> WorkerContext:  # type: ignore[no-untyped-def]
    # Input 64 px; a 640x480 frame maps with gain 0.1 and 8 px padding top/bottom.
    # Box 1: a pothole whose bottom centre is the image centre (row 240 -> input y 32).
    # Box 2: a crack near the bottom of the image (row 440 -> input y 52).
    model = build_constant_head_model(
        tmp_path / "const.onnx", head_with([(32, 29, 6, 6, 3, 0.9), (20, 50, 8, 4, 0, 0.6)]), 64
    )
    return WorkerContext(
        settings,
        app.state.sessions,
        ImageStore(settings.image_dir),
        Detector.from_path(model),
        register_model(app.state.sessions, model),
        DEFAULT_CONFIG,
    )


def upload(client, token: str, name: str, data: bytes) -> int:  # type: ignore[no-untyped-def]
    r = client.post(
        "/api/v1/batches",
        files=[("images", (name, data, "image/jpeg"))],
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 202, r.text
    return r.json()["images"][0]["frame_id"]


def test_detections_are_located_ahead_along_the_heading(client, vehicle_token, ctx) -> None:  # type: ignore[no-untyped-def]
    frame_id = upload(client, vehicle_token, "a.jpg", gps_jpeg(LAT, LON, T0, heading=90.0, seed=1))
    assert process_frame(ctx, frame_id) == "done"
    with ctx.sessions() as s:
        obs = s.scalars(select(Observation).order_by(Observation.confidence.desc())).all()
        assert [o.class_name for o in obs] == ["D40", "D00"]
        pothole = to_shape(obs[0].position)
        # Heading east, pitch 10 deg, height 1.4 m: the image centre hits the road 1.4/tan(10deg) = 7.9 m ahead.
        assert obs[0].distance_m == pytest.approx(7.94, abs=0.1)
        assert pothole.y == pytest.approx(LAT, abs=2e-6)
        assert (pothole.x - LON) * 111_320 * 0.6157 == pytest.approx(7.94, abs=0.15)
        assert obs[1].distance_m < obs[0].distance_m  # lower in the image = nearer
        sites = s.scalars(select(DamageSite).order_by(DamageSite.priority.desc())).all()
        assert [site.class_name for site in sites] == ["D40", "D00"]  # pothole ranks first
        assert all(site.sightings == 1 and site.ranking_version == DEFAULT_CONFIG.version for site in sites)
        assert set(sites[0].score_components["components"]) >= {"class", "confidence", "sightings", "recency"}
        frame = s.get(Frame, frame_id)
        assert frame.status == "done" and frame.model_version_id == ctx.model_version_id


def test_processing_twice_counts_once(client, vehicle_token, ctx) -> None:  # type: ignore[no-untyped-def]
    frame_id = upload(client, vehicle_token, "a.jpg", gps_jpeg(LAT, LON, T0, heading=0.0, seed=2))
    assert process_frame(ctx, frame_id) == "done"
    assert process_frame(ctx, frame_id) == "done"
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Observation)) == 2
        assert s.scalar(select(func.sum(DamageSite.sightings))) == 2


def test_same_defect_seen_again_joins_its_site(client, vehicle_token, ctx) -> None:  # type: ignore[no-untyped-def]
    # Second pass 1 m further west, same heading: the same ground points within the radius.
    ids = [
        upload(client, vehicle_token, "a.jpg", gps_jpeg(LAT, LON, T0, heading=90.0, seed=3)),
        upload(
            client,
            vehicle_token,
            "b.jpg",
            gps_jpeg(LAT, LON - 0.000015, T0 + timedelta(days=1), heading=90.0, seed=4),
        ),
        upload(
            client, vehicle_token, "c.jpg", gps_jpeg(LAT + 0.01, LON, T0, heading=90.0, seed=5)
        ),  # 1.1 km away
    ]
    for frame_id in ids:
        process_frame(ctx, frame_id)
    with ctx.sessions() as s:
        sites = s.scalars(select(DamageSite).order_by(DamageSite.id)).all()
        assert len(sites) == 4  # two defects near the first position, two far away
        assert [site.sightings for site in sites] == [2, 2, 1, 1]
        assert sites[0].last_seen - sites[0].first_seen == timedelta(days=1)
        assert (
            s.scalar(select(func.count()).select_from(Observation).where(Observation.site_id.is_(None))) == 0
        )


def test_heading_from_consecutive_frames(client, vehicle_token, ctx) -> None:  # type: ignore[no-untyped-def]
    # No heading in EXIF; the next frame 11 m to the north gives heading 0.
    first = upload(client, vehicle_token, "a.jpg", gps_jpeg(LAT, LON, T0, seed=6))
    upload(client, vehicle_token, "b.jpg", gps_jpeg(LAT + 0.0001, LON, T0 + timedelta(seconds=2), seed=7))
    process_frame(ctx, first)
    with ctx.sessions() as s:
        assert s.get(Frame, first).heading == pytest.approx(0.0, abs=0.5)
        pothole = s.scalars(select(Observation).where(Observation.class_name == "D40")).first()
        assert to_shape(pothole.position).y > LAT  # placed ahead, to the north


def test_unreadable_stored_image_fails_the_frame(client, vehicle_token, ctx) -> None:  # type: ignore[no-untyped-def]
    frame_id = upload(client, vehicle_token, "a.jpg", gps_jpeg(LAT, LON, T0, seed=8))
    with ctx.sessions() as s:
        key = s.get(Frame, frame_id).image_key
    ctx.store.delete(key)
    assert process_frame(ctx, frame_id) == "failed"
    with ctx.sessions() as s:
        assert "cannot read stored image" in s.get(Frame, frame_id).error
