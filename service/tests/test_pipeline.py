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
from service.db.store import ImageStore
from service.db.tables import DamageSite, Frame, Observation
from service.domain.anonymize import PrivacyConfig
from service.domain.ranking import DEFAULT_CONFIG
from service.worker.context import register_model
from service.worker.pipeline import WorkerContext, process_frame
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
        ImageStore(settings.original_dir),
        privacy_model(tmp_path),
        PrivacyConfig(horizon=None),
    )


PRIVACY_NAMES = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 4: "bus", 5: "truck"}
# A person at input (10, 40) size 8x12: in a 640x480 frame the box 60..140 x 260..380.
PERSON_BOX = (60, 260, 140, 380)


def privacy_model(tmp_path: Path) -> Detector:
    head = head_with([(10, 40, 8, 12, 0, 0.9)], nc=6)
    return Detector.from_path(
        build_constant_head_model(tmp_path / "privacy.onnx", head, 64, names=PRIVACY_NAMES)
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
        sha = s.get(Frame, frame_id).sha256
    ctx.originals.delete(sha)  # the upload vanished before any worker got to it
    assert process_frame(ctx, frame_id) == "failed"
    with ctx.sessions() as s:
        assert "cannot read the uploaded image" in s.get(Frame, frame_id).error


def test_person_is_blurred_and_the_upload_deleted(client, vehicle_token, ctx) -> None:  # type: ignore[no-untyped-def]
    import cv2
    import numpy as np

    data = gps_jpeg(LAT, LON, T0, heading=0.0, seed=9)
    frame_id = upload(client, vehicle_token, "a.jpg", data)
    with ctx.sessions() as s:
        sha = s.get(Frame, frame_id).sha256
        assert s.get(Frame, frame_id).image_key is None  # nothing viewable before anonymization
    assert ctx.originals.path(sha).exists()
    assert process_frame(ctx, frame_id) == "done"
    assert not ctx.originals.path(sha).exists()  # the upload is gone
    with ctx.sessions() as s:
        frame = s.get(Frame, frame_id)
        assert frame.blurred_regions == 1 and frame.anonymized_at is not None
        stored = ctx.store.get(frame.image_key)
    original = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).astype(float)
    anonymized = cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_COLOR).astype(float)
    x1, y1, x2, y2 = PERSON_BOX
    inner = (slice(y1 + 5, y2 - 5), slice(x1 + 5, x2 - 5))
    assert anonymized[inner].std() < 0.3 * original[inner].std()  # detail destroyed
    far = (slice(0, 200), slice(300, 640))
    assert np.abs(anonymized[far] - original[far]).mean() < 3  # elsewhere only JPEG re-encoding
    assert b"Exif" not in stored[:200]  # no GPS or camera metadata in the stored copy


def test_frames_without_position_are_anonymized_too(client, vehicle_token, ctx) -> None:  # type: ignore[no-untyped-def]
    frame_id = upload(client, vehicle_token, "nogps.jpg", gps_jpeg(None, None, T0, seed=10))
    assert process_frame(ctx, frame_id) == "no_location"
    with ctx.sessions() as s:
        frame = s.get(Frame, frame_id)
        assert frame.status == "no_location" and frame.image_key is not None
        assert not ctx.originals.path(frame.sha256).exists()
        assert s.scalar(select(func.count()).select_from(Observation)) == 0


def test_retention_deletes_old_images_and_keeps_everything_else(client, vehicle_token, ctx) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from service.worker.retention import enforce_retention

    old = upload(client, vehicle_token, "old.jpg", gps_jpeg(LAT, LON, T0, heading=0.0, seed=11))
    new = upload(
        client,
        vehicle_token,
        "new.jpg",
        gps_jpeg(LAT, LON + 0.01, T0 + timedelta(days=200), heading=0.0, seed=12),
    )
    for frame_id in (old, new):
        process_frame(ctx, frame_id)
    with ctx.sessions() as s:
        keys = {f.id: f.image_key for f in s.scalars(select(Frame))}
        n_obs = s.scalar(select(func.count()).select_from(Observation))
        n_sites = s.scalar(select(func.count()).select_from(DamageSite))
    # Uploaded today; retention counts from the earlier of capture and upload: the old frame was
    # captured on T0 (Sept 2026), the new one is dated 2027 and uploaded today: only the old one goes.
    now = datetime.now(UTC) + timedelta(days=100)
    assert enforce_retention(ctx.sessions, ctx.store, days=180, now=now) == 1
    assert not ctx.store.path(keys[old]).exists() and ctx.store.path(keys[new]).exists()
    with ctx.sessions() as s:
        assert s.get(Frame, old).image_key is None and s.get(Frame, old).image_deleted_at is not None
        assert s.get(Frame, new).image_key == keys[new]
        assert s.scalar(select(func.count()).select_from(Observation)) == n_obs
        assert s.scalar(select(func.count()).select_from(DamageSite)) == n_sites
    assert enforce_retention(ctx.sessions, ctx.store, days=180, now=now) == 0  # idempotent
    assert enforce_retention(ctx.sessions, ctx.store, days=0, now=datetime.now(UTC)) == 0  # 0 = keep
    r = client.get(f"/api/v1/frames/{old}/image", auth=("viewer", "x"))  # no user: 401 before anything
    assert r.status_code == 401


def test_janitor_deletes_uploads_left_by_a_crash(client, vehicle_token, ctx) -> None:  # type: ignore[no-untyped-def]
    from service.worker.janitor import sweep_originals

    frame_id = upload(client, vehicle_token, "a.jpg", gps_jpeg(LAT, LON, T0, heading=0.0, seed=13))
    pending = upload(client, vehicle_token, "b.jpg", gps_jpeg(LAT, LON, T0, heading=0.0, seed=14))
    with ctx.sessions() as s:
        sha, pending_sha = s.get(Frame, frame_id).sha256, s.get(Frame, pending).sha256
    data = ctx.originals.get(sha)
    process_frame(ctx, frame_id)
    ctx.originals.put(sha, data)  # as if the worker died between storing the copy and deleting this
    assert sweep_originals(ctx.sessions, ctx.originals) == 1
    assert not ctx.originals.path(sha).exists()
    assert ctx.originals.path(pending_sha).exists()  # not anonymized yet: kept


def test_a_second_job_after_the_upload_is_gone_does_not_fail_the_frame(client, vehicle_token, ctx) -> None:  # type: ignore[no-untyped-def]
    # Two jobs for one frame (the upload's defer after the janitor's): job A stores the copy and deletes
    # the upload; job B, which read the frame before A committed, finds no upload. It must not mark the
    # frame failed (A's detections would then be thrown away).
    from service.worker.pipeline import anonymize_frame

    frame_id = upload(client, vehicle_token, "a.jpg", gps_jpeg(LAT, LON, T0, heading=0.0, seed=15))
    with ctx.sessions() as s:
        sha = s.get(Frame, frame_id).sha256
    assert anonymize_frame(ctx, frame_id, sha, None) is not None  # job A
    assert anonymize_frame(ctx, frame_id, sha, None) is None  # job B, with its stale read
    with ctx.sessions() as s:
        frame = s.get(Frame, frame_id)
        assert frame.status == "queued" and frame.error is None
    assert process_frame(ctx, frame_id) == "done"


def test_janitor_deletes_orphaned_uploads_and_temporary_files(client, vehicle_token, ctx) -> None:  # type: ignore[no-untyped-def]
    # A request that died between storing the upload and committing its row (or whose row the database
    # refused) left a photo nobody would ever delete.
    import os
    import time

    from service.worker.janitor import ORPHAN_UPLOAD_AGE_S, sweep_originals

    pending = upload(client, vehicle_token, "b.jpg", gps_jpeg(LAT, LON, T0, heading=0.0, seed=16))
    with ctx.sessions() as s:
        pending_sha = s.get(Frame, pending).sha256
    old = time.time() - ORPHAN_UPLOAD_AGE_S - 60
    orphan = ctx.originals.put("a" * 64, b"raw photo")
    recent = ctx.originals.put("b" * 64, b"raw photo, still being committed")
    tmp = orphan.parent / ".tmp-crashed"
    tmp.write_bytes(b"half a photo")
    for path in (orphan, tmp, ctx.originals.path(pending_sha)):
        os.utime(path, (old, old))
    assert sweep_originals(ctx.sessions, ctx.originals) == 2
    assert not orphan.exists() and not tmp.exists()
    assert recent.exists()  # too young: its request may be committing now
    assert ctx.originals.path(pending_sha).exists()  # has a frame, not anonymized yet: kept however old
    # Storing the same bytes again makes the file young again (a re-upload of an orphan is committing).
    os.utime(recent, (old, old))
    ctx.originals.put("b" * 64, b"raw photo, still being committed")
    assert sweep_originals(ctx.sessions, ctx.originals) == 0 and recent.exists()


def test_retention_goes_by_upload_time_when_the_camera_clock_is_in_the_future(
    client, vehicle_token, ctx
) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from service.worker.retention import enforce_retention

    future = datetime(2099, 1, 1, tzinfo=UTC)
    frame_id = upload(client, vehicle_token, "f.jpg", gps_jpeg(LAT, LON, future, heading=0.0, seed=15))
    assert process_frame(ctx, frame_id) == "done", ctx.sessions().get(Frame, frame_id).error
    # Uploaded "now"; a year and a day later the image must go, whatever the camera said.
    later = datetime.now(UTC) + timedelta(days=366)
    assert enforce_retention(ctx.sessions, ctx.store, days=365, now=later) == 1
