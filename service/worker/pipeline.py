"""Processing one frame: anonymize, detect, locate each damage on the ground; then associate its drive.

Anonymization comes first: the blurred copy is stored (content-addressed, fsynced) before anything
points at it. Frames without a position stop there: the frame points at the copy, their upload is
deleted. A located frame keeps its upload until its detections are committed, so a retry after a crash
anonymizes and detects on the original again.

Detection runs outside any transaction. The frame's pointer to its copy and its observations (located on
the ground as the GPS says) are written in one transaction that first locks the frame row and checks it
is still ``queued``: a worker killed mid-way leaves nothing behind (the transaction rolls back) and the
retried job starts clean. The frame is read once at the start (with its vehicle, one query), locked once
at the end. Association is a stage of its own (``service/worker/association.py``): once every
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
from service.db.profiling import PROFILER, stage
from service.db.store import ImageStore
from service.db.survey import quality_thresholds, record_frame
from service.db.tables import Frame, Observation, Vehicle, point
from service.domain.anonymize import PrivacyConfig, anonymize, band_for, encode_jpeg
from service.domain.geo import Camera, locate_detection
from service.domain.quality import assess
from service.domain.ranking import RankingConfig
from service.domain.statuses import FrameStatus
from service.settings import Settings
from service.worker.association import AssociationConfig
from service.worker.drives import FrameSeen, associate_ready

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


@dataclass(frozen=True)
class AnonymizedCopy:
    """The decoded original (in memory only, for detection) and the stored anonymized copy's key."""

    original: np.ndarray[Any, Any]
    key: str
    blurred_regions: int


def store_anonymized(
    ctx: WorkerContext, frame_id: int, sha256: str, horizon: float | None
) -> AnonymizedCopy | None:
    """Decode the upload, blur persons and vehicles, store the copy (content-addressed: safe to repeat).

    None when the upload is unreadable (the frame is then marked failed).
    """
    try:
        with stage("decode"):
            original = decode_image(ctx.originals.get(sha256), ctx.settings.max_pixels)
    except (ImageError, FileNotFoundError, ValueError) as exc:
        _fail(ctx, frame_id, f"cannot read the uploaded image: {exc}", unless_anonymized=True)
        return None
    config = replace(
        ctx.privacy_config, horizon=horizon if horizon is not None else ctx.privacy_config.horizon
    )
    with stage("blur"):  # the privacy model's own time is its stage, "privacy model"
        blurred, report = anonymize(original, PROFILER.timed(ctx.privacy, "privacy model"), config)
    with stage("encode"):
        data = encode_jpeg(blurred)  # no EXIF: GPS and camera details stay out of the stored copy
        key = hashlib.sha256(data).hexdigest()
    with stage("store"):
        ctx.store.put(key, data)
    return AnonymizedCopy(original, key, len(report.boxes))


def _point_at(frame: Frame, copy: AnonymizedCopy) -> None:
    """The frame shows its anonymized copy from now on (only the first commit sets it)."""
    if frame.anonymized_at is None:
        frame.image_key, frame.anonymized_at = copy.key, datetime.now(UTC)
        frame.blurred_regions = copy.blurred_regions


def anonymize_frame(
    ctx: WorkerContext, frame_id: int, sha256: str, horizon: float | None
) -> np.ndarray[Any, Any] | None:
    """Anonymize a frame on its own (one without a position: nothing follows), point the frame at the
    copy and delete the upload.

    Returns the decoded original, or None when the upload is unreadable (the frame is then marked
    failed). Safe to repeat: only the first commit sets the frame's image.
    """
    copy = store_anonymized(ctx, frame_id, sha256, horizon)
    if copy is None:
        return None
    with stage("commit anonymized"), transaction(ctx.sessions) as session:
        frame = session.get(Frame, frame_id, with_for_update=True)
        if frame is not None:
            _point_at(frame, copy)
    with stage("store"):
        ctx.originals.delete(sha256)  # as soon as the anonymized copy is stored (the janitor retries)
    return copy.original


def process_frame(ctx: WorkerContext, frame_id: int) -> str:
    """Anonymize, then (for located frames) detect and locate, once; then associate the frame's drive
    if all its frames are located (a retry finishes an association a crash interrupted); the sites it
    touched are rescored in the same transaction."""
    status, seen = _process_frame(ctx, frame_id)
    if status in (FrameStatus.DONE, FrameStatus.FAILED):
        with stage("associate"):
            associate_ready(
                ctx.sessions,
                frame_id,
                config=AssociationConfig(radius_m=ctx.settings.association_radius_m),
                model_version_id=ctx.model_version_id,
                ranking=ctx.ranking,
                seen=seen,
            )
    return status


def _process_frame(ctx: WorkerContext, frame_id: int) -> tuple[str, FrameSeen | None]:
    # One frame's whole life in order (state checks, anonymize, detect, locate, store, hand over to the drive):
    # kept in one function so each transaction boundary and crash-safety check is visible in sequence.
    # Returns the status and, for a located frame, its vehicle and time (what association looks for).
    with stage("load frame"), ctx.sessions() as session:
        row = session.execute(
            select(Frame, Vehicle)
            .outerjoin(Vehicle, Vehicle.id == Frame.vehicle_id)
            .where(Frame.id == frame_id)
        ).first()
        if row is None:
            log.warning("frame %s does not exist", frame_id)
            return "missing", None
        frame, vehicle = row
        status, key, sha, anonymized = frame.status, frame.image_key, frame.sha256, frame.anonymized_at
        seen = FrameSeen(frame.vehicle_id, frame.captured_at) if frame.position is not None else None
        cam, horizon = None, None
        if vehicle is not None:  # the vehicle's band, else the service's, else from its camera
            cam = Camera(vehicle.camera_height_m, vehicle.camera_pitch_deg, vehicle.camera_hfov_deg)
            horizon = band_for(ctx.privacy_config, vehicle.privacy_horizon, cam, frame.width, frame.height)
    if status not in (FrameStatus.QUEUED, FrameStatus.NO_LOCATION) or (
        status == FrameStatus.NO_LOCATION and anonymized is not None
    ):
        return status, seen
    copy = None
    if status == FrameStatus.NO_LOCATION:  # nothing follows: anonymize, commit, done
        return (FrameStatus.FAILED if anonymize_frame(ctx, frame_id, sha, horizon) is None else status), seen
    if anonymized is None:  # the copy is committed with the detections (one transaction, below)
        copy = store_anonymized(ctx, frame_id, sha, horizon)
        if copy is None:
            return FrameStatus.FAILED, seen
        image = copy.original
    else:  # anonymized by an older version, which committed the copy on its own; the original is kept
        try:
            image = decode_image(ctx.originals.get(sha), ctx.settings.max_pixels)
        except FileNotFoundError:  # deleted by an older version: only the anonymized copy is left
            log.warning("frame %s: original gone, detecting on the anonymized copy", frame_id)
            try:
                image = decode_image(ctx.store.get(key or ""), ctx.settings.max_pixels)
            except (ImageError, FileNotFoundError, ValueError) as exc:
                return _fail(ctx, frame_id, f"cannot read the stored image: {exc}"), seen
        except (ImageError, ValueError) as exc:
            return _fail(ctx, frame_id, f"cannot read the uploaded image: {exc}"), seen
    assert cam is not None  # a frame's vehicle is never deleted (foreign key)
    return _detect_and_write(ctx, frame_id, sha, image, cam, copy), seen


def _detect_and_write(
    ctx: WorkerContext,
    frame_id: int,
    sha: str,
    image: np.ndarray[Any, Any],
    cam: Camera,
    copy: AnonymizedCopy | None,
) -> str:
    # Damage is detected on the original in memory: a false person box must not hide a pothole.
    with stage("damage model"):
        detections = ctx.detector.predict(image, ctx.settings.detect_conf, ctx.settings.detect_iou)
    with stage("quality"):
        verdict = assess(image, quality_thresholds(ctx.settings))  # unusable frames are kept, low trust

    with stage("locate and write"), transaction(ctx.sessions) as session:
        frame = session.execute(select(Frame).where(Frame.id == frame_id).with_for_update()).scalar_one()
        if frame.status != FrameStatus.QUEUED:  # another worker finished it meanwhile
            return frame.status
        if copy is not None:
            _point_at(frame, copy)
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
        with stage("road section"):
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
    with stage("store"):
        ctx.originals.delete(sha)  # detections committed: the original is no longer needed
    log.info("frame %s: %d detections", frame_id, len(detections))
    return FrameStatus.DONE
