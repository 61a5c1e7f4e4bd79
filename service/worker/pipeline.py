"""Processing one frame: anonymize, detect, locate each damage on the ground; then associate its drive.

Anonymization comes first and is committed on its own: the blurred copy is stored and the frame points
at it. Frames without a position stop there (their upload is deleted); a located frame keeps its upload
until its detections are committed, so a retry after a crash detects on the original as well.

Detection runs outside any transaction. The frame's observations (located on the ground as the GPS
says) are written in one transaction that first locks the frame row and checks it is still
``queued``: a worker killed mid-way leaves nothing behind (the transaction rolls back) and the retried
job starts clean. Association is a stage of its own (``service/worker/association.py``): once every
frame of a drive segment is located, the whole segment is tracked, registered against the map and
merged into sites in one transaction, under locks of the map cells it touches; a frame joins a drive
once, so a retried job never counts a sighting twice.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from geoalchemy2.shape import to_shape
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from detector import Detector, ImageError, decode_image
from geotag import bearing_deg, haversine_m
from service.db.engine import transaction
from service.db.store import ImageStore
from service.db.survey import quality_thresholds, record_frame, refresh_sites_of_drive
from service.db.tables import Frame, Observation, Vehicle, point
from service.domain.anonymize import PrivacyConfig, anonymize, band_for, encode_jpeg
from service.domain.geo import Camera, locate_detection
from service.domain.quality import assess
from service.domain.ranking import RankingConfig
from service.domain.statuses import FrameStatus
from service.settings import Settings
from service.worker.association import AssociationConfig
from service.worker.drives import associate_ready

log = logging.getLogger(__name__)
NEIGHBOUR_WINDOW = timedelta(seconds=30)


@dataclass
class WorkerContext:
    """What a worker process loads once: settings, database, stores, models, ranking config."""

    settings: Settings
    sessions: sessionmaker[Session]
    store: ImageStore  # anonymized images
    detector: Detector
    model_version_id: int
    ranking: RankingConfig
    originals: ImageStore
    privacy: Detector
    privacy_config: PrivacyConfig


def heading_from_neighbours(session: Session, frame: Frame, lat: float, lon: float) -> float | None:
    """Heading from the same vehicle's previous or next located frame within 30 s (> 2 m away)."""
    if frame.captured_at is None:
        return None
    base = select(Frame).where(
        Frame.vehicle_id == frame.vehicle_id,
        Frame.id != frame.id,
        Frame.position.is_not(None),
        Frame.captured_at.between(frame.captured_at - NEIGHBOUR_WINDOW, frame.captured_at + NEIGHBOUR_WINDOW),
    )
    prev = session.scalar(
        base.where(Frame.captured_at <= frame.captured_at).order_by(Frame.captured_at.desc()).limit(1)
    )
    nxt = session.scalar(
        base.where(Frame.captured_at > frame.captured_at).order_by(Frame.captured_at).limit(1)
    )
    for other, forward in ((prev, False), (nxt, True)):
        if other is None:
            continue
        p = to_shape(other.position)
        if haversine_m(lat, lon, p.y, p.x) > 2.0:
            return bearing_deg(lat, lon, p.y, p.x) if forward else bearing_deg(p.y, p.x, lat, lon)
    return None


def _fail(ctx: WorkerContext, frame_id: int, message: str, unless_anonymized: bool = False) -> str:
    with transaction(ctx.sessions) as session:
        frame = session.get(Frame, frame_id, with_for_update=True)
        if frame is not None and unless_anonymized and frame.anonymized_at is not None:
            return frame.status  # another job for this frame stored the copy and deleted the upload
        if frame is not None and frame.status in (FrameStatus.QUEUED, FrameStatus.NO_LOCATION):
            frame.status, frame.error, frame.failed_at = FrameStatus.FAILED, message, datetime.now(UTC)
    return FrameStatus.FAILED


def anonymize_frame(
    ctx: WorkerContext, frame_id: int, sha256: str, horizon: float | None, keep_original: bool = False
) -> np.ndarray[Any, Any] | None:
    """Blur persons and vehicles, store the copy, point the frame at it, delete the upload (unless
    ``keep_original``: a located frame keeps it until its detections are committed, so a retry after a
    crash detects on the original too).

    Returns the decoded original (kept in memory only, for detection), or None when the upload is
    unreadable (the frame is then marked failed). Safe to repeat: the copy is content-addressed and
    only the first commit sets the frame's image.
    """
    try:
        original = decode_image(ctx.originals.get(sha256), ctx.settings.max_pixels)
    except (ImageError, FileNotFoundError, ValueError) as exc:
        _fail(ctx, frame_id, f"cannot read the uploaded image: {exc}", unless_anonymized=True)
        return None
    config = replace(
        ctx.privacy_config, horizon=horizon if horizon is not None else ctx.privacy_config.horizon
    )
    blurred, report = anonymize(original, ctx.privacy, config)
    data = encode_jpeg(blurred)  # no EXIF: GPS and camera details stay out of the stored copy
    key = hashlib.sha256(data).hexdigest()
    ctx.store.put(key, data)
    with transaction(ctx.sessions) as session:
        frame = session.get(Frame, frame_id, with_for_update=True)
        if frame is not None and frame.anonymized_at is None:
            frame.image_key, frame.anonymized_at = key, datetime.now(UTC)
            frame.blurred_regions = len(report.boxes)
    if not keep_original:
        ctx.originals.delete(sha256)  # as soon as the anonymized copy is stored (the janitor retries)
    return original


def process_frame(ctx: WorkerContext, frame_id: int) -> str:
    """Anonymize, then (for located frames) detect and locate, once; then associate the frame's drive
    if all its frames are located (a retry finishes an association a crash interrupted)."""
    status = _process_frame(ctx, frame_id)
    if status in (FrameStatus.DONE, FrameStatus.FAILED):
        associate_ready(
            ctx.sessions,
            frame_id,
            config=AssociationConfig(radius_m=ctx.settings.association_radius_m),
            model_version_id=ctx.model_version_id,
            ranking=ctx.ranking,
        )
        refresh_sites_of_drive(ctx.sessions, frame_id, ctx.ranking)  # sections, low trust
    return status


def _process_frame(ctx: WorkerContext, frame_id: int) -> str:
    # One frame's whole life in order (state checks, anonymize, detect, locate, store, hand over to the drive):
    # kept in one function so each transaction boundary and crash-safety check is visible in sequence.
    with ctx.sessions() as session:
        frame = session.get(Frame, frame_id)
        if frame is None:
            log.warning("frame %s does not exist", frame_id)
            return "missing"
        status, key, sha, anonymized = frame.status, frame.image_key, frame.sha256, frame.anonymized_at
        vehicle = session.get(Vehicle, frame.vehicle_id)
        horizon = None
        if vehicle is not None:  # the vehicle's band, else the service's, else from its camera
            cam = Camera(vehicle.camera_height_m, vehicle.camera_pitch_deg, vehicle.camera_hfov_deg)
            horizon = band_for(ctx.privacy_config, vehicle.privacy_horizon, cam, frame.width, frame.height)
    if status not in (FrameStatus.QUEUED, FrameStatus.NO_LOCATION) or (
        status == FrameStatus.NO_LOCATION and anonymized is not None
    ):
        return status
    if anonymized is None:
        image = anonymize_frame(ctx, frame_id, sha, horizon, keep_original=status == FrameStatus.QUEUED)
        if image is None:
            return FrameStatus.FAILED
        if status == FrameStatus.NO_LOCATION:
            return status
    else:  # a retry after a crash: the original is kept until detection has committed
        try:
            image = decode_image(ctx.originals.get(sha), ctx.settings.max_pixels)
        except FileNotFoundError:  # deleted by an older version: only the anonymized copy is left
            log.warning("frame %s: original gone, detecting on the anonymized copy", frame_id)
            try:
                image = decode_image(ctx.store.get(key or ""), ctx.settings.max_pixels)
            except (ImageError, FileNotFoundError, ValueError) as exc:
                return _fail(ctx, frame_id, f"cannot read the stored image: {exc}")
        except (ImageError, ValueError) as exc:
            return _fail(ctx, frame_id, f"cannot read the uploaded image: {exc}")
    # Damage is detected on the original in memory: a false person box must not hide a pothole.
    detections = ctx.detector.predict(image, ctx.settings.detect_conf, ctx.settings.detect_iou)
    verdict = assess(image, quality_thresholds(ctx.settings))  # unusable frames are kept, low trust

    with transaction(ctx.sessions) as session:
        frame = session.execute(select(Frame).where(Frame.id == frame_id).with_for_update()).scalar_one()
        if frame.status != FrameStatus.QUEUED:  # another worker finished it meanwhile
            return frame.status
        vehicle = session.get(Vehicle, frame.vehicle_id)
        assert vehicle is not None
        cam = Camera(vehicle.camera_height_m, vehicle.camera_pitch_deg, vehicle.camera_hfov_deg)
        pos = to_shape(frame.position)
        lat, lon = pos.y, pos.x
        heading = (
            frame.heading if frame.heading is not None else heading_from_neighbours(session, frame, lat, lon)
        )
        for det in detections:
            est = locate_detection(lat, lon, heading, det.box, frame.width, frame.height, cam)
            obs = Observation(
                frame_id=frame.id,
                model_version_id=ctx.model_version_id,
                class_name=det.class_name,
                confidence=det.confidence,
                x1=det.box[0],
                y1=det.box[1],
                x2=det.box[2],
                y2=det.box[3],
                distance_m=est.distance_m if est else None,
                size_m=est.size_m if est else None,
                # Where the GPS puts it (None: not on the road plane); association corrects it per drive.
                position=point(est.lat, est.lon) if est else None,
            )
            session.add(obs)
        if ctx.settings.debug_pause_s:
            session.flush()  # observations written, not committed: a kill here must leave no trace
            time.sleep(ctx.settings.debug_pause_s)
        if heading is not None and frame.heading is None:
            frame.heading = heading
        record_frame(
            session,
            frame,
            lat,
            lon,
            heading,
            cam,
            verdict,
            clear_range_m=ctx.settings.footprint_clear_range_m,
        )
        frame.status = FrameStatus.DONE
        frame.model_version_id = ctx.model_version_id
        frame.processed_at = datetime.now(UTC)
    ctx.originals.delete(sha)  # detections committed: the original is no longer needed
    log.info("frame %s: %d detections", frame_id, len(detections))
    return FrameStatus.DONE
