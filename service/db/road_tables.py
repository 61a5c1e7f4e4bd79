"""The road network and what each photo says about it: sections, imports, importance overrides, each frame's
section and footprint, each frame's capture quality, each site's section and trust (migration 0008); each
section's passes and last passes, the coverage that the frames add up to (migration 0014).

Sections are replaced as a whole on re-import; their ids are stable (``service/domain/roads.py``), so the
rows that refer to them (``frame_road``, ``site_survey``, ``road_importance_override``) carry the id
without a foreign key and are re-attached in the import's transaction.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import NUMMULTIRANGE
from sqlalchemy.orm import Mapped, foreign, mapped_column, relationship

from service.db.tables import Base, DamageSite

# pg_advisory_xact_lock key: an import (service/db/roads.py) and a rebuild of the coverage tables
# (service/db/coverage.py) hold it exclusively, recording a frame or a site's section shared
# (service/db/survey.py), so nothing is attached to a section an import is removing.
ROADS_LOCK = 7_300_008


class RoadSection(Base):
    """A stretch of one street (at most the configured section length), between two cut points."""

    __tablename__ = "road_section"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)  # "{way_id}:{ordinal}"
    way_id: Mapped[str] = mapped_column(String(80))
    ordinal: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(300))
    highway: Mapped[str | None] = mapped_column(String(50))
    oneway: Mapped[bool] = mapped_column(Boolean, default=False)
    surface: Mapped[str | None] = mapped_column(String(50))
    importance: Mapped[float] = mapped_column(Float)
    importance_source: Mapped[str] = mapped_column(String(50))  # mapping version, "input" or "override"
    from_name: Mapped[str | None] = mapped_column(String(300))
    to_name: Mapped[str | None] = mapped_column(String(300))
    length_m: Mapped[float] = mapped_column(Float)
    geom: Mapped[Any] = mapped_column(Geometry("LINESTRING", srid=4326, spatial_index=False))
    __table_args__ = (
        Index("ix_road_section_geom", "geom", postgresql_using="gist"),
        Index("ix_road_section_name", "name"),
    )


class RoadImport(Base):
    """One import of the network: what was read, how it was cut, what it produced."""

    __tablename__ = "road_import"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    imported_at: Mapped[datetime] = mapped_column(server_default=func.now())
    source: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    n_ways: Mapped[int] = mapped_column(Integer)
    n_sections: Mapped[int] = mapped_column(Integer)
    length_km: Mapped[float] = mapped_column(Float)
    max_section_m: Mapped[float] = mapped_column(Float)
    importance_version: Mapped[str] = mapped_column(String(50))
    sites_attached: Mapped[int] = mapped_column(Integer)
    frames_attached: Mapped[int] = mapped_column(Integer)


class RoadImportanceOverride(Base):
    """Staff's importance for one section; survives re-imports (section ids are stable)."""

    __tablename__ = "road_importance_override"
    section_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    importance: Mapped[float] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(Text)
    set_at: Mapped[datetime] = mapped_column(server_default=func.now())


class FrameRoad(Base):
    """Where a located frame was taken on the network, and the road it shows clearly (its footprint)."""

    __tablename__ = "frame_road"
    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), primary_key=True)
    section_id: Mapped[str | None] = mapped_column(String(100))
    distance_m: Mapped[float | None] = mapped_column(Float)
    # The stretch of the section inside the footprint (metres from the section's start); None: none.
    seen_from_m: Mapped[float | None] = mapped_column(Float)
    seen_to_m: Mapped[float | None] = mapped_column(Float)
    footprint: Mapped[Any] = mapped_column(Geometry("POLYGON", srid=4326, spatial_index=False), nullable=True)
    __table_args__ = (
        Index("ix_frame_road_section", "section_id"),
        Index("ix_frame_road_footprint", "footprint", postgresql_using="gist"),
    )


class FrameQuality(Base):
    """The capture-quality verdict of a frame (``service/domain/quality.py``)."""

    __tablename__ = "frame_quality"
    frame_id: Mapped[int] = mapped_column(ForeignKey("frame.id", ondelete="CASCADE"), primary_key=True)
    usable: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    version: Mapped[str] = mapped_column(String(50))


class SiteSurvey(Base):
    """What the survey knows about a damage site: the section it lies on (re-attached on every import) and how
    many of its sightings came from usable and from unusable frames (low trust when only the latter)."""

    __tablename__ = "site_survey"
    site_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("damage_site.id", ondelete="CASCADE"), primary_key=True
    )
    section_id: Mapped[str | None] = mapped_column(String(100))
    section_distance_m: Mapped[float | None] = mapped_column(Float)
    usable_sightings: Mapped[int] = mapped_column(Integer, default=0)
    unusable_sightings: Mapped[int] = mapped_column(Integer, default=0)
    __table_args__ = (Index("ix_site_survey_section", "section_id"),)


class SectionPass(Base):
    """One pass (a vehicle on one day, UTC) over a section: what its frames add up to.

    Written in each frame's transaction (``service/db/survey.py``), rebuilt from the frames on demand and
    nightly. ``seen`` is the union of the stretches (metres from the section's start) that its usable
    frames saw; ``last_seen_at`` the time of the last usable frame that saw any.
    """

    __tablename__ = "section_pass"
    section_id: Mapped[str] = mapped_column(String(100), ForeignKey("road_section.id", ondelete="CASCADE"))
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicle.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    frames: Mapped[int] = mapped_column(Integer)
    unusable_frames: Mapped[int] = mapped_column(Integer)
    last_at: Mapped[datetime] = mapped_column()
    last_usable_at: Mapped[datetime | None] = mapped_column()
    last_seen_at: Mapped[datetime | None] = mapped_column()
    seen: Mapped[Any] = mapped_column(NUMMULTIRANGE, server_default="{}")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    __table_args__ = (
        PrimaryKeyConstraint("section_id", "day", "vehicle_id"),
        Index("ix_section_pass_vehicle", "vehicle_id"),
    )


class SectionCoverage(Base):
    """A section's last pass and last usable pass of all time (the network summary reads only these)."""

    __tablename__ = "section_coverage"
    section_id: Mapped[str] = mapped_column(
        String(100), ForeignKey("road_section.id", ondelete="CASCADE"), primary_key=True
    )
    last_at: Mapped[datetime] = mapped_column()
    last_usable_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    __table_args__ = (Index("ix_section_coverage_updated", "updated_at"),)


# Read-only links for display (a site's street in lists, pages and exports). Declared here, beside the
# tables they read, so that service/db/tables.py stays free of the road network; selectin loads the surveys
# of a page of sites in one query, each with its section joined.
SiteSurvey.section = relationship(
    RoadSection,
    primaryjoin=lambda: foreign(SiteSurvey.section_id) == RoadSection.id,
    viewonly=True,
    lazy="joined",
)
DamageSite.survey = relationship(
    SiteSurvey,
    primaryjoin=lambda: foreign(SiteSurvey.site_id) == DamageSite.id,
    viewonly=True,
    uselist=False,
    lazy="selectin",
)
