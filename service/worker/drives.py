"""Which frames form a drive and when it is ready: a vehicle's located frames near a frame, split by pauses
(``DRIVE_GAP``); a drive is associated once none of its frames is still queued (``associate_ready``), and the
janitor associates drives left behind (a worker lost between locating and associating: ``associate_stale``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from geoalchemy2.shape import to_shape
from sqlalchemy import Row, exists, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from service.db.drives import Drive, DriveFrame, TrackObservation
from service.db.engine import transaction
from service.db.sites import rescore_sites
from service.db.tables import Frame, Observation, Vehicle, point
from service.domain import tracking
from service.domain.geo import Camera
from service.domain.ranking import RankingConfig
from service.domain.statuses import FrameStatus
from service.worker.association import (
    DRIVE_GAP,
    DRIVE_LOOKAROUND,
    VEHICLE_LOCK,
    AssociationConfig,
    associate_segment,
)


@dataclass(frozen=True)
class FrameSeen:
    """A located frame's vehicle and capture time: what association needs of it (the pipeline has read
    them already)."""

    vehicle_id: int
    captured_at: datetime | None


def _segments(
    session: Session, vehicle_id: int, around: datetime | None, frame_id: int
) -> list[list[Row[int, datetime | None, str, int]]]:
    """The vehicle's located frames near ``around`` as drives: (id, captured_at, status, associated)."""
    query = (
        select(Frame.id, Frame.captured_at, Frame.status, DriveFrame.drive_id)
        .outerjoin(DriveFrame, DriveFrame.frame_id == Frame.id)
        .where(Frame.vehicle_id == vehicle_id, Frame.position.is_not(None))
    )
    if around is None:
        query = query.where(Frame.id == frame_id)
    else:
        query = query.where(Frame.captured_at.between(around - DRIVE_LOOKAROUND, around + DRIVE_LOOKAROUND))
    rows = session.execute(query.order_by(Frame.captured_at, Frame.id)).all()
    groups = tracking.split_drives([r.captured_at for r in rows], DRIVE_GAP.total_seconds())
    return [[rows[i] for i in g] for g in groups]


def _frame_inputs(
    session: Session, frame_ids: Sequence[int], cam: Camera
) -> tuple[list[tracking.FrameInput], list[Observation]]:
    frames = {f.id: f for f in session.scalars(select(Frame).where(Frame.id.in_(frame_ids)))}
    observations = session.scalars(
        select(Observation).where(Observation.frame_id.in_(frame_ids)).order_by(Observation.id)
    ).all()
    by_frame: dict[int, list[Observation]] = {}
    for obs in observations:
        by_frame.setdefault(obs.frame_id, []).append(obs)
    inputs = []
    for fid in frame_ids:
        f = frames[fid]
        fix = to_shape(f.position)
        located = (
            tracking.Sighting.locate(
                o.id,
                o.class_name,
                o.confidence,
                (o.x1, o.y1, o.x2, o.y2),
                fix.y,
                fix.x,
                f.heading,
                f.width,
                f.height,
                cam,
            )
            for o in by_frame.get(fid, [])
        )
        seen_at = f.captured_at or f.processed_at or datetime.now(UTC)
        inputs.append(
            tracking.FrameInput(fid, seen_at, fix.y, fix.x, f.heading, tuple(s for s in located if s))
        )
    return inputs, list(observations)


def associate_ready(
    sessions: sessionmaker[Session],
    frame_id: int,
    *,
    config: AssociationConfig,
    model_version_id: int | None,
    ranking: RankingConfig,
    before_write: Callable[[], None] | None = None,
    seen: FrameSeen | None = None,
) -> list[int]:
    """Associate every drive of the frame's vehicle near it whose frames are all located (none still
    queued) and that has located frames not yet associated: one transaction per drive segment.

    Returns the ids of the drives written. Safe to call any number of times and from any number of
    workers: a frame joins a drive once (``drive_frame``'s primary key, checked under the vehicle's lock).
    ``seen``: the frame's vehicle and time when the caller has them (None: read here; a frame without a
    position is in no drive).
    """
    # Check, lock, check again, associate: the second check under the vehicle lock is the point, so the
    # sequence stays together.
    with sessions() as session:
        if seen is None:
            frame = session.get(Frame, frame_id)
            if frame is None or frame.position is None:
                return []
            seen = FrameSeen(frame.vehicle_id, frame.captured_at)
        vehicle_id, around = seen.vehicle_id, seen.captured_at
        if around is not None and session.scalar(  # cheap and common: a neighbour is still queued
            select(
                exists().where(
                    Frame.vehicle_id == vehicle_id,
                    Frame.status == FrameStatus.QUEUED,
                    Frame.position.is_not(None),
                    Frame.captured_at.between(around - DRIVE_GAP, around + DRIVE_GAP),
                )
            )
        ):
            return []
    written: list[int] = []
    with sessions() as session:
        segments = _segments(session, vehicle_id, around, frame_id)
    for segment in segments:
        if not _pending(segment):
            continue
        with transaction(sessions) as session:
            session.execute(select(func.pg_advisory_xact_lock(VEHICLE_LOCK, vehicle_id)))
            # Again under the lock: another worker may have associated it, or a frame is still queued.
            fresh = [
                s
                for s in _segments(session, vehicle_id, around, frame_id)
                if {r.id for r in s} & {r.id for r in segment}
            ]
            segment = [r for s in fresh for r in s]
            pending = _pending(segment)
            if not pending:
                continue
            vehicle = session.get(Vehicle, vehicle_id)
            if vehicle is None:
                return written
            cam = Camera(vehicle.camera_height_m, vehicle.camera_pitch_deg, vehicle.camera_hfov_deg)
            inputs, observations = _frame_inputs(session, pending, cam)
            if any(o.site_id is not None for o in observations):  # associated frame by frame (before 0007)
                inputs = [
                    f
                    for f in inputs
                    if not any(o.site_id is not None and o.frame_id == f.key for o in observations)
                ]
            drive_ids = [r.drive_id for r in segment if r.drive_id is not None]
            drive = session.get(Drive, max(drive_ids)) if drive_ids else None
            result = associate_segment(
                session,
                vehicle_id,
                inputs,
                config=config,
                model_version_id=model_version_id,
                drive=drive,
                before_write=before_write,
            )
            for obs in observations:
                if obs.id in result.site_of:
                    obs.site_id = result.site_of[obs.id]
                    obs.position = point(*result.positions[obs.id])
            rescore_sites(session, result.sites, ranking)  # once, with the sightings just linked
            session.add_all(
                TrackObservation(observation_id=k, track_id=v) for k, v in result.track_of.items()
            )
            session.add_all(DriveFrame(frame_id=fid, drive_id=result.drive_id) for fid in pending)
            registered = result.plan.registration.reference == "map"
            own = (result.plan.registration.offset_e_m, result.plan.registration.offset_n_m)
            for f in session.scalars(select(Frame).where(Frame.id.in_(pending))):
                if registered:
                    f.gps_offset_e_m, f.gps_offset_n_m = result.frame_offsets.get(f.id, own)
            written.append(result.drive_id)
    return written


def _pending(segment: Sequence[Row[int, datetime | None, str, int]]) -> list[int]:
    """Frames of a drive segment to associate now: none while any frame of it is still queued."""
    if any(r.status == FrameStatus.QUEUED for r in segment):
        return []
    return [r.id for r in segment if r.status == FrameStatus.DONE and r.drive_id is None]


STALE_SQL = text(
    """
    SELECT f.id FROM frame f
    WHERE f.status = 'done' AND f.position IS NOT NULL
      AND f.processed_at < now() - make_interval(secs => :age)
      AND NOT EXISTS (SELECT 1 FROM drive_frame d WHERE d.frame_id = f.id)
      AND NOT EXISTS (SELECT 1 FROM observation o WHERE o.frame_id = f.id AND o.site_id IS NOT NULL)
    ORDER BY f.id LIMIT 200
    """
)


def associate_stale(
    sessions: sessionmaker[Session],
    *,
    older_than_s: float,
    config: AssociationConfig,
    model_version_id: int | None,
    ranking: RankingConfig,
) -> int:
    """Associate the drives of located frames left unassociated for ``older_than_s`` (for the janitor:
    a drive whose last frame failed, or a worker lost between locating a frame and associating its
    drive). Returns how many drive segments were written."""
    with sessions() as session:
        frame_ids = list(session.scalars(STALE_SQL, {"age": older_than_s}))
    written: set[int] = set()
    for frame_id in frame_ids:
        written.update(
            associate_ready(
                sessions, frame_id, config=config, model_version_id=model_version_id, ranking=ranking
            )
        )
    return len(written)
