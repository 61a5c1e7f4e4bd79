"""The PostGIS schema as SQLAlchemy 2 models. Alembic migrations (service/migrations) create it.

Positions are ``POINT`` in EPSG:4326 (lon, lat) with GiST indexes; distances are computed on
``geography`` casts, which are metric.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from geoalchemy2 import Geometry, WKTElement
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from service.domain.statuses import (
    FRAME_STATUSES,
    PUSH_STRATEGIES,
    ROLES,
    SITE_STATUSES,
    WORK_ORDER_STATUSES,
    FrameStatus,
    SiteStatus,
    WorkOrderStatus,
)


def point(lat: float, lon: float) -> WKTElement:
    """A position as the value of a ``POINT`` column (EPSG:4326, lon lat order)."""
    return WKTElement(f"POINT({lon} {lat})", srid=4326)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


def _point() -> Any:
    # spatial_index=False: the GiST indexes are declared explicitly below and in the migration.
    return Geometry("POINT", srid=4326, spatial_index=False)


class ModelVersion(Base):
    """A detection model that produced observations (the manifest entry at the time)."""

    __tablename__ = "model_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    file: Mapped[str] = mapped_column(String(500))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Vehicle(Base):
    __tablename__ = "vehicle"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # sha256 of a 256-bit random token: a slow hash adds nothing against guessing at that entropy.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    camera_height_m: Mapped[float] = mapped_column(Float, default=1.4)
    camera_pitch_deg: Mapped[float] = mapped_column(Float, default=10.0)
    camera_hfov_deg: Mapped[float] = mapped_column(Float, default=100.0)
    # Fraction of the image height above which everything is blurred; None: the service default.
    privacy_horizon: Mapped[float | None] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class UploadBatch(Base):
    __tablename__ = "upload_batch"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicle.id"))
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Frame(Base):
    """One uploaded photo. ``sha256`` of its bytes is the idempotency key."""

    __tablename__ = "frame"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicle.id"), index=True)
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("upload_batch.id"))
    filename: Mapped[str] = mapped_column(String(500))
    captured_at: Mapped[datetime | None] = mapped_column()
    position: Mapped[Any] = mapped_column(_point(), nullable=True)
    location_source: Mapped[str] = mapped_column(String(20))  # exif | track | metadata | none
    heading: Mapped[float | None] = mapped_column(Float)
    speed: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default=FrameStatus.QUEUED)
    error: Mapped[str | None] = mapped_column(Text)
    image_key: Mapped[str | None] = mapped_column(String(200))
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_version.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    processed_at: Mapped[datetime | None] = mapped_column()
    # The drive's GPS error estimated at this frame (east/north metres), see service/association.py.
    gps_offset_e_m: Mapped[float | None] = mapped_column(Float)
    gps_offset_n_m: Mapped[float | None] = mapped_column(Float)
    # Privacy: when the anonymized copy replaced the upload, how many regions were blurred, and
    # when retention deleted the image (the frame's data stays).
    anonymized_at: Mapped[datetime | None] = mapped_column()
    blurred_regions: Mapped[int | None] = mapped_column(Integer)
    image_deleted_at: Mapped[datetime | None] = mapped_column()
    # Hardening (0009): worker deaths while processing it, when it failed for good, the capture time's source.
    stall_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failed_at: Mapped[datetime | None] = mapped_column()
    time_source: Mapped[str | None] = mapped_column(String(20))  # exif | metadata | upload
    observations: Mapped[list[Observation]] = relationship(back_populates="frame")
    __table_args__ = (
        CheckConstraint(f"status IN {FRAME_STATUSES}", name="frame_status"),
        Index("ix_frame_position", "position", postgresql_using="gist"),
        Index("ix_frame_vehicle_time", "vehicle_id", "captured_at"),
    )


class DamageSite(Base):
    """One physical defect, built from observations across frames, drives and vehicles."""

    __tablename__ = "damage_site"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    public_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, default=uuid.uuid4)
    class_name: Mapped[str] = mapped_column(String(10))
    class_votes: Mapped[dict[str, Any]] = mapped_column(default=dict)  # class -> summed confidence
    position: Mapped[Any] = mapped_column(_point())
    position_weight: Mapped[float] = mapped_column(Float, default=0.0)
    severity: Mapped[str] = mapped_column(String(10), default="low")
    size_m: Mapped[float | None] = mapped_column(Float)
    max_confidence: Mapped[float] = mapped_column(Float, default=0.0)
    sightings: Mapped[int] = mapped_column(Integer, default=0)  # distinct frames
    n_observations: Mapped[int] = mapped_column(Integer, default=0)
    road_importance: Mapped[float | None] = mapped_column(Float)
    priority: Mapped[float] = mapped_column(Float, default=0.0, index=True)
    score_components: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ranking_version: Mapped[str] = mapped_column(String(50), default="")
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_version.id"))
    status: Mapped[str] = mapped_column(String(20), default=SiteStatus.OPEN)
    first_seen: Mapped[datetime] = mapped_column()
    last_seen: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    # Open311 (service/db/open311.py): reports attached to the site; created from a report, not by the model.
    citizen_reports: Mapped[int] = mapped_column(Integer, default=0)
    citizen_reported: Mapped[bool] = mapped_column(Boolean, default=False)
    observations: Mapped[list[Observation]] = relationship(back_populates="site")
    __table_args__ = (
        CheckConstraint(f"status IN {SITE_STATUSES}", name="site_status"),
        Index("ix_damage_site_position", "position", postgresql_using="gist"),
    )


class Observation(Base):
    """One detection in one frame, with its estimated ground position and size."""

    __tablename__ = "observation"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id"), index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("damage_site.id"), index=True)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_version.id"))
    class_name: Mapped[str] = mapped_column(String(10))
    confidence: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    position: Mapped[Any] = mapped_column(_point(), nullable=True)
    distance_m: Mapped[float | None] = mapped_column(Float)
    size_m: Mapped[float | None] = mapped_column(Float)
    frame: Mapped[Frame] = relationship(back_populates="observations")
    site: Mapped[DamageSite | None] = relationship(back_populates="observations")
    __table_args__ = (Index("ix_observation_position", "position", postgresql_using="gist"),)


class Decision(Base):
    """Who decided what about a site, when, why, and on which model's and ranking's proposal."""

    __tablename__ = "decision"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("damage_site.id"), index=True)
    user_name: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    action: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str | None] = mapped_column(Text)
    previous_status: Mapped[str] = mapped_column(String(20))
    new_status: Mapped[str] = mapped_column(String(20))
    previous_class: Mapped[str] = mapped_column(String(10))
    new_class: Mapped[str] = mapped_column(String(10))
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_version.id"))
    ranking_version: Mapped[str] = mapped_column(String(50))


class RoadSegment(Base):
    """An imported road with its importance (0..1) for ranking."""

    __tablename__ = "road_segment"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(300))
    importance: Mapped[float] = mapped_column(Float)
    geom: Mapped[Any] = mapped_column(Geometry("LINESTRING", srid=4326, spatial_index=False))
    __table_args__ = (Index("ix_road_segment_geom", "geom", postgresql_using="gist"),)


class User(Base):
    """A staff account (viewer, reviewer, admin); the password is stored as an argon2 hash."""

    __tablename__ = "staff_user"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Raised by logout, deactivation and a password change: sessions made with an older one are over.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    __table_args__ = (CheckConstraint(f"role IN {ROLES}", name="user_role"),)


class AuditEvent(Base):
    """Who did what to an account (password changed or reset, deactivated, signed out everywhere) or to
    a frame (a failed frame retried)."""

    __tablename__ = "audit_event"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    action: Mapped[str] = mapped_column(String(40))
    target_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    frame_id: Mapped[int | None] = mapped_column(ForeignKey("frame.id", ondelete="SET NULL"))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class WorkOrder(Base):
    """Sites handed to a road crew as one job; its sites are scheduled while it is active."""

    __tablename__ = "work_order"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    crew: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=WorkOrderStatus.NEW)
    notes: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    sites: Mapped[list[WorkOrderSite]] = relationship(
        back_populates="work_order", order_by="WorkOrderSite.position"
    )
    __table_args__ = (CheckConstraint(f"status IN {WORK_ORDER_STATUSES}", name="work_order_status"),)


class WorkOrderSite(Base):
    __tablename__ = "work_order_site"
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_order.id"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("damage_site.id"), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    added_at: Mapped[datetime] = mapped_column(server_default=func.now())
    work_order: Mapped[WorkOrder] = relationship(back_populates="sites")
    site: Mapped[DamageSite] = relationship()


class WorkOrderEvent(Base):
    """The history of a work order: created, sites added or removed, crew and status changes."""

    __tablename__ = "work_order_event"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_order.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_user.id"))
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    action: Mapped[str] = mapped_column(String(30))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class LabelStudioTask(Base):
    """A frame sent to Label Studio for correction (at most once), and what came back.

    A row exists only once Label Studio has created the task (``task_id``); ``split`` is the frame's fixed
    place in the corrections folder (``valid`` is held out: never trained on).
    """

    __tablename__ = "labelstudio_task"
    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer)
    task_id: Mapped[int] = mapped_column(BigInteger)
    strategy: Mapped[str] = mapped_column(String(20))
    sent_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # The model whose boxes were sent as predictions (None: the frame had no detections to send).
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_version.id"))
    annotation_id: Mapped[int | None] = mapped_column(BigInteger)
    annotated_at: Mapped[datetime | None] = mapped_column()  # the annotation's updated_at in Label Studio
    pulled_at: Mapped[datetime | None] = mapped_column()
    split: Mapped[str | None] = mapped_column(String(10))
    n_boxes: Mapped[int | None] = mapped_column(Integer)
    __table_args__ = (
        CheckConstraint(f"strategy IN {PUSH_STRATEGIES}", name="labelstudio_task_strategy"),
        Index("ux_labelstudio_task_task", "project_id", "task_id", unique=True),
    )
