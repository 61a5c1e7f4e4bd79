"""Accepting a batch of photos: check each, place it in time and space, store it durably, queue it.

Every image gets a status: ``queued`` (stored, a job will anonymize it and detect damage),
``no_location`` (stored and anonymized by a job, but neither EXIF, metadata nor the track gives its
position, so it is not located), ``duplicate`` (its sha256 is known),
or ``rejected`` with a reason (not an image, too large, ...). One bad image never blocks the rest.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from detector import ImageError, check_image
from geotag import ExifInfo, Fix, Track, interpolate, read_exif
from service.db import profiling
from service.db.store import ImageStore
from service.db.tables import Frame, UploadBatch, Vehicle, point
from service.domain.params import parse_timestamp
from service.domain.statuses import FrameStatus, UploadStatus
from service.errors import Conflict, NotFound

log = logging.getLogger(__name__)


@dataclass
class ImageResult:
    filename: str
    status: str
    sha256: str | None = None
    frame_id: int | None = None
    reason: str | None = None
    location_source: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class BatchResult:
    batch_id: str
    images: list[ImageResult] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for image in self.images:
            out[image.status] = out.get(image.status, 0) + 1
        return out

    def frame_ids_to_process(self) -> list[int]:
        """New frames: every one is anonymized by a worker, and those with a position detected."""
        return [
            i.frame_id
            for i in self.images
            if i.status in (UploadStatus.QUEUED, UploadStatus.NO_LOCATION) and i.frame_id is not None
        ]


def _metadata_fix(meta: dict[str, Any], when: datetime | None) -> Fix | None:
    """A position the client sent for this image in the metadata part, if any."""
    if "lat" not in meta or "lon" not in meta or when is None:
        return None
    return Fix(float(meta["lat"]), float(meta["lon"]), when, meta.get("heading"), meta.get("speed"))


def capture_time(exif: ExifInfo, image_meta: dict[str, Any]) -> tuple[datetime | None, str | None]:
    """When the photo was taken, and who says so: the client's metadata, else EXIF."""
    from_meta = parse_timestamp(image_meta.get("captured_at"))
    if from_meta is not None:
        return from_meta, "metadata"
    return exif.captured_at, "exif" if exif.captured_at is not None else None


def locate_upload(
    exif: ExifInfo,
    image_meta: dict[str, Any],
    track: Track | None,
    clock_offset_s: float,
    track_max_gap_s: float,
    received_at: datetime | None = None,
) -> tuple[Fix | None, str, datetime | None, str | None]:
    """Where and when: EXIF GPS, else the client's metadata, else the track at the photo's time.
    Returns (fix, its source, capture time, the time's source); ValueError, TypeError or OverflowError
    for bad metadata. An EXIF position without any time takes ``received_at`` (time source 'upload')."""
    captured_at, time_source = capture_time(exif, image_meta)
    fix, source = exif.fix, "exif"
    if fix is None and exif.position is not None:  # EXIF GPS without a time stamp of its own
        if captured_at is None and received_at is not None:
            captured_at, time_source = received_at, "upload"
        if captured_at is not None:
            lat, lon, heading, speed = exif.position
            fix = Fix(lat, lon, captured_at, heading, speed)
    if fix is None:
        fix, source = _metadata_fix(image_meta, captured_at), "metadata"
    if fix is None and track and captured_at is not None:
        fix, source = interpolate(track, captured_at, track_max_gap_s, clock_offset_s), "track"
    return fix, source if fix is not None else "none", captured_at, time_source


@profiling.profiled("upload")
def ingest_image(
    session_factory: sessionmaker[Session],
    originals: ImageStore,
    vehicle: Vehicle,
    batch_id: Any,
    filename: str,
    data: bytes,
    *,
    track: Track | None,
    image_meta: dict[str, Any],
    clock_offset_s: float,
    max_pixels: int,
    track_max_gap_s: float,
) -> ImageResult:
    """Check, locate, store and record one image. Commits its own row before returning.

    Duplicates are answered per vehicle: bytes this vehicle sent before are ``duplicate`` (with its frame);
    bytes another vehicle sent are answered as a new upload would be, without a frame id, so no vehicle
    learns what another uploaded. Bytes whose frame failed for good are taken again: the frame starts over.
    """
    # One upload in order (duplicate, decode limits, locate, store, row, race with a concurrent upload): each
    # early return is an answer the client gets; splitting would scatter them.
    with profiling.stage("hash and duplicate"):
        digest = hashlib.sha256(data).hexdigest()
        with session_factory() as session:
            existing = session.execute(
                select(Frame.id, Frame.vehicle_id, Frame.status).where(Frame.sha256 == digest)
            ).first()
    if existing is not None and existing.status != FrameStatus.FAILED and existing.vehicle_id == vehicle.id:
        return ImageResult(filename, UploadStatus.DUPLICATE, digest, existing.id)
    try:
        with profiling.stage("check image"):
            # Content decides, not the file name; the worker decodes in full (once), this checks.
            width, height = check_image(data, max_pixels)
    except ImageError as exc:
        return ImageResult(filename, UploadStatus.REJECTED, digest, reason=str(exc))
    try:
        with profiling.stage("exif and locate"):
            fix, source, captured_at, time_source = locate_upload(
                read_exif(data), image_meta, track, clock_offset_s, track_max_gap_s, datetime.now(UTC)
            )
    except (ValueError, TypeError, OverflowError) as exc:  # Overflow: a time or offset beyond year 1..9999
        return ImageResult(filename, UploadStatus.REJECTED, digest, reason=f"invalid metadata: {exc}")
    status = UploadStatus.QUEUED if fix else UploadStatus.NO_LOCATION
    if existing is not None and existing.status != FrameStatus.FAILED:  # another vehicle's frame
        return ImageResult(filename, status, digest, location_source=source)
    fields: dict[str, Any] = {
        "vehicle_id": vehicle.id,
        "batch_id": batch_id,
        "filename": filename.replace("\x00", "\ufffd")[:500],  # PostgreSQL text cannot hold NUL
        "captured_at": captured_at or (fix.time if fix else None),
        "time_source": time_source or ("gps" if fix else None),
        "position": point(fix.lat, fix.lon) if fix else None,
        "location_source": source,
        "heading": fix.heading if fix else None,
        "speed": fix.speed if fix else None,
        "width": width,
        "height": height,
        "status": FrameStatus.QUEUED if fix else FrameStatus.NO_LOCATION,
        "image_key": None,  # set once the worker has stored the anonymized copy
    }
    with profiling.stage("store"):
        originals.put(digest, data)  # fsynced before the row that points at it is committed
    if existing is not None:
        frame_id = _start_over(session_factory, existing.id, fields)
        if frame_id is None:  # someone else took it again at the same moment
            return ImageResult(filename, UploadStatus.DUPLICATE, digest, existing.id)
        return ImageResult(filename, status, digest, frame_id, location_source=source)
    frame = Frame(sha256=digest, **fields)
    try:
        with profiling.stage("frame row"), session_factory() as session, session.begin():
            session.add(frame)
    except IntegrityError:  # the same bytes arrived concurrently: the other request stored them
        with session_factory() as session:
            other = session.execute(select(Frame.id, Frame.vehicle_id).where(Frame.sha256 == digest)).first()
        if other is not None and other.vehicle_id != vehicle.id:
            return ImageResult(filename, status, digest, location_source=source)
        return ImageResult(filename, UploadStatus.DUPLICATE, digest, other.id if other else None)
    return ImageResult(filename, status, digest, frame.id, location_source=source)


def _start_over(session_factory: sessionmaker[Session], frame_id: int, fields: dict[str, Any]) -> int | None:
    """A frame that failed for good, received again: processed from the start (None: it is no longer
    failed, someone else took it again first)."""
    with session_factory() as session, session.begin():
        frame = session.get(Frame, frame_id, with_for_update=True)
        if frame is None or frame.status != FrameStatus.FAILED:
            return None
        for name, value in fields.items():
            setattr(frame, name, value)
        frame.error, frame.failed_at, frame.stall_count = None, None, 0
        frame.anonymized_at, frame.blurred_regions, frame.processed_at = None, None, None
        return frame.id


def create_batch(session_factory: sessionmaker[Session], vehicle: Vehicle, meta: dict[str, Any]) -> Any:
    with session_factory() as session, session.begin():
        batch = UploadBatch(vehicle_id=vehicle.id, meta=meta)
        session.add(batch)
        session.flush()
        return batch.id


def finish_batch(session_factory: sessionmaker[Session], result: BatchResult) -> None:
    with session_factory() as session, session.begin():
        batch = session.get(UploadBatch, result.batch_id)
        if batch is not None:
            batch.counts = result.counts()


def failed_count(session: Session) -> int:
    """How many frames failed for good (admins see them on every page)."""
    return int(
        session.scalar(select(func.count()).select_from(Frame).where(Frame.status == FrameStatus.FAILED)) or 0
    )


def failed_frames(session: Session, limit: int = 200) -> list[Frame]:
    """Failed frames, the newest failure first."""
    return list(
        session.scalars(
            select(Frame)
            .where(Frame.status == FrameStatus.FAILED)
            .order_by(Frame.failed_at.desc().nulls_last(), Frame.id.desc())
            .limit(limit)
        )
    )


def retry_failed(session: Session, frame_id: int, originals: ImageStore) -> Frame:
    """A failed frame processed from the start again (its job is the caller's to queue). NotFound, or
    Conflict when the frame did not fail or its upload is no longer kept (the vehicle may send it again)."""
    frame = session.get(Frame, frame_id, with_for_update=True) if 0 < frame_id < 2**63 else None
    if frame is None:
        raise NotFound(f"no frame {frame_id}")
    if frame.status != FrameStatus.FAILED:
        raise Conflict(f"frame {frame_id} has not failed (it is {frame.status})")
    if not originals.path(frame.sha256).exists():
        raise Conflict(f"the upload of frame {frame_id} is no longer kept: the vehicle can send it again")
    frame.status = FrameStatus.QUEUED if frame.position is not None else FrameStatus.NO_LOCATION
    frame.error, frame.failed_at, frame.stall_count = None, None, 0  # an anonymized copy stays valid
    return frame
