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
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from detector import ImageError, decode_image
from geotag import ExifInfo, Fix, Track, interpolate, read_exif
from service.db.store import ImageStore
from service.db.tables import Frame, UploadBatch, Vehicle, point
from service.domain.params import parse_timestamp
from service.domain.statuses import FrameStatus, UploadStatus

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


def locate_upload(
    exif: ExifInfo,
    image_meta: dict[str, Any],
    track: Track | None,
    clock_offset_s: float,
    track_max_gap_s: float,
) -> tuple[Fix | None, str, datetime | None]:
    """Where and when: EXIF GPS, else the client's metadata, else the track at the photo's time.
    Returns (fix, its source, capture time); ValueError, TypeError or OverflowError for bad metadata."""
    captured_at = parse_timestamp(image_meta.get("captured_at")) or exif.captured_at
    fix, source = exif.fix, "exif"
    if fix is None:
        fix, source = _metadata_fix(image_meta, captured_at), "metadata"
    if fix is None and track and captured_at is not None:
        fix, source = interpolate(track, captured_at, track_max_gap_s, clock_offset_s), "track"
    return fix, source if fix is not None else "none", captured_at


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
    """Check, locate, store and record one image. Commits its own row before returning."""
    digest = hashlib.sha256(data).hexdigest()
    with session_factory() as session:
        existing = session.scalar(select(Frame.id).where(Frame.sha256 == digest))
    if existing is not None:
        return ImageResult(filename, UploadStatus.DUPLICATE, digest, existing)
    try:
        image = decode_image(data, max_pixels)  # content decides, not the file name
    except ImageError as exc:
        return ImageResult(filename, UploadStatus.REJECTED, digest, reason=str(exc))
    height, width = image.shape[:2]
    try:
        fix, source, captured_at = locate_upload(
            read_exif(data), image_meta, track, clock_offset_s, track_max_gap_s
        )
    except (ValueError, TypeError, OverflowError) as exc:  # Overflow: a time or offset beyond year 1..9999
        return ImageResult(filename, UploadStatus.REJECTED, digest, reason=f"invalid metadata: {exc}")
    originals.put(digest, data)  # fsynced before the row that points at it is committed
    frame = Frame(
        sha256=digest,
        vehicle_id=vehicle.id,
        batch_id=batch_id,
        filename=filename.replace("\x00", "\ufffd")[:500],  # PostgreSQL text cannot hold NUL
        captured_at=captured_at or (fix.time if fix else None),
        position=point(fix.lat, fix.lon) if fix else None,
        location_source=source,
        heading=fix.heading if fix else None,
        speed=fix.speed if fix else None,
        width=width,
        height=height,
        status=FrameStatus.QUEUED if fix else FrameStatus.NO_LOCATION,
        image_key=None,  # set once the worker has stored the anonymized copy
    )
    try:
        with session_factory() as session, session.begin():
            session.add(frame)
    except IntegrityError:  # the same bytes arrived concurrently: the other request stored them
        with session_factory() as session:
            existing = session.scalar(select(Frame.id).where(Frame.sha256 == digest))
        return ImageResult(filename, UploadStatus.DUPLICATE, digest, existing)
    status = UploadStatus.QUEUED if fix else UploadStatus.NO_LOCATION
    return ImageResult(filename, status, digest, frame.id, location_source=source)


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
