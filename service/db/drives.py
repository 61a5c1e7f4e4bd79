"""Drives, tracks and their links to frames and observations (migration 0007).

A drive is one vehicle's frames grouped by time gaps and associated together
(``service/worker/association.py``); a track is one defect followed across the drive's consecutive
frames. They record how each site was formed: which drives saw it, with which GPS offset and support.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, CheckConstraint, Float, ForeignKey, Index, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from service.db.tables import Base

DRIVE_REFERENCES = ("map", "own")  # registered against known sites | kept its own GPS reference


class Drive(Base):
    __tablename__ = "drive"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicle.id"))
    started_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    # The correction added to the drive's GPS positions (east/north metres), how many tracks agreed
    # on it, how many had a known site in reach, and how far the local offset drifted from it.
    offset_e_m: Mapped[float] = mapped_column(Float, default=0.0)
    offset_n_m: Mapped[float] = mapped_column(Float, default=0.0)
    drift_m: Mapped[float | None] = mapped_column(Float)
    support: Mapped[int] = mapped_column(Integer, default=0)
    candidates: Mapped[int] = mapped_column(Integer, default=0)
    reference: Mapped[str] = mapped_column(String(10), default="own")
    n_frames: Mapped[int] = mapped_column(Integer, default=0)
    n_tracks: Mapped[int] = mapped_column(Integer, default=0)
    algorithm: Mapped[str] = mapped_column(String(50), default="")
    associated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    __table_args__ = (
        CheckConstraint(f"reference IN {DRIVE_REFERENCES}", name="drive_reference"),
        Index("ix_drive_vehicle_time", "vehicle_id", "started_at"),
    )


class DriveFrame(Base):
    """A located frame associated as part of a drive; at most once (primary key)."""

    __tablename__ = "drive_frame"
    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), primary_key=True)
    drive_id: Mapped[int] = mapped_column(ForeignKey("drive.id", ondelete="CASCADE"), index=True)


class Track(Base):
    """One defect followed across a drive's frames, and the site it formed or joined."""

    __tablename__ = "track"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    drive_id: Mapped[int] = mapped_column(ForeignKey("drive.id", ondelete="CASCADE"), index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("damage_site.id"), index=True)
    class_name: Mapped[str] = mapped_column(String(10))
    position: Mapped[Any] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    sightings: Mapped[int] = mapped_column(Integer)
    n_observations: Mapped[int] = mapped_column(Integer)
    size_m: Mapped[float | None] = mapped_column(Float)
    max_confidence: Mapped[float] = mapped_column(Float)
    match_m: Mapped[float | None] = mapped_column(Float)  # distance to the site it joined; None: created it
    first_seen: Mapped[datetime] = mapped_column()
    last_seen: Mapped[datetime] = mapped_column()


class TrackObservation(Base):
    __tablename__ = "track_observation"
    observation_id: Mapped[int] = mapped_column(
        ForeignKey("observation.id", ondelete="CASCADE"), primary_key=True
    )
    track_id: Mapped[int] = mapped_column(ForeignKey("track.id", ondelete="CASCADE"), index=True)


def tracks_of(session: Session, site_id: int) -> list[tuple[Track, Drive]]:
    """The tracks that formed or joined a site, oldest first, each with its drive."""
    rows = session.execute(
        select(Track, Drive)
        .join(Drive, Drive.id == Track.drive_id)
        .where(Track.site_id == site_id)
        .order_by(Track.first_seen, Track.id)
    ).all()
    return [(track, drive) for track, drive in rows]


def track_properties(track: Track, drive: Drive) -> dict[str, Any]:
    """A track and its drive's GPS offset and support, as the API shows them."""
    return {
        "id": track.id,
        "class": track.class_name,
        "sightings": track.sightings,
        "observations": track.n_observations,
        "size_m": track.size_m,
        "max_confidence": round(track.max_confidence, 4),
        "first_seen": track.first_seen.isoformat(),
        "last_seen": track.last_seen.isoformat(),
        "joined_known_site": track.match_m is not None,  # False: the site was new in its drive
        "match_m": None if track.match_m is None else round(track.match_m, 2),
        "drive": {
            "id": drive.id,
            "vehicle_id": drive.vehicle_id,
            "started_at": drive.started_at.isoformat() if drive.started_at else None,
            "ended_at": drive.ended_at.isoformat() if drive.ended_at else None,
            "offset_e_m": round(drive.offset_e_m, 2),
            "offset_n_m": round(drive.offset_n_m, 2),
            "drift_m": None if drive.drift_m is None else round(drive.drift_m, 2),
            "support": drive.support,
            "candidates": drive.candidates,
            "reference": drive.reference,
            "algorithm": drive.algorithm,
        },
    }
