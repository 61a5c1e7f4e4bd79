"""Response models of the JSON API, so that ``/openapi.json`` describes what each route returns.

GeoJSON features keep their properties open (``extra="allow"``): the site's fields are listed, and
new ones (road section, tracks) appear without breaking clients.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.db.decisions import ACTIONS
from service.domain.statuses import WORK_ORDER_STATUSES


class SiteProperties(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(description="public id (UUID)")
    class_: str = Field(alias="class", description="damage class (D00, D10, D20, D40)")
    status: str
    proposed_by_model: bool = Field(description="true while no person has decided on the site")
    priority: float = Field(description="0..100, see the ranking config")
    score_components: dict[str, Any]
    ranking_version: str
    severity: str | None
    size_m: float | None
    max_confidence: float
    sightings: int
    observations: int
    first_seen: str
    last_seen: str
    model_version_id: int | None


class Point(BaseModel):
    type: Literal["Point"]
    coordinates: list[float] = Field(description="[lon, lat] in WGS 84")


class SiteFeature(BaseModel):
    type: Literal["Feature"]
    geometry: Point
    properties: SiteProperties


class DriveOut(BaseModel):
    """A drive that contributed a track, with the GPS correction its registration found."""

    id: int
    vehicle_id: int
    started_at: str | None
    ended_at: str | None
    offset_e_m: float = Field(description="metres added to the drive's GPS positions, east")
    offset_n_m: float = Field(description="metres added to the drive's GPS positions, north")
    drift_m: float | None = Field(description="largest local (drift) correction away from the offset, metres")
    support: int = Field(description="tracks that agreed on the offset; 0: the drive keeps its own reference")
    candidates: int = Field(
        description="tracks with a compatible known site near enough to propose an offset"
    )
    reference: Literal["map", "own"]
    algorithm: str


class TrackOut(BaseModel):
    """One defect as one drive saw it: its sightings in consecutive frames, and the site it formed or joined."""

    id: int
    class_: str = Field(alias="class", description="the track's class vote")
    sightings: int = Field(description="frames the defect was seen in")
    observations: int
    size_m: float | None
    max_confidence: float
    first_seen: str
    last_seen: str
    joined_known_site: bool = Field(description="false: the site was new in this track's drive")
    match_m: float | None = Field(description="distance to the known site it joined, after correction")
    drive: DriveOut


class SiteDetailProperties(SiteProperties):
    tracks: list[TrackOut] = Field(
        default_factory=list, description="the tracks that formed the site, oldest first (issue 13)"
    )


class SiteDetail(BaseModel):
    """``GET /api/v1/sites/{id}``: the site, its observations and how it was formed."""

    type: Literal["Feature"]
    geometry: Point
    properties: SiteDetailProperties


class SiteCollection(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[SiteFeature]
    total: int = Field(description="sites matching the filters, all pages")
    limit: int
    offset: int


class DecisionIn(BaseModel):
    action: str = Field(description=f"one of {', '.join(ACTIONS)}")
    reason: str | None = Field(None, description="required for reject (why it is a false detection)")
    class_: str | None = Field(None, alias="class", description="the new class, for reclassify")


class DecisionOut(BaseModel):
    id: int
    site: str
    user: str
    at: str
    action: str
    reason: str | None
    previous_status: str
    new_status: str
    previous_class: str
    new_class: str
    model_version_id: int | None = Field(description="the model whose proposal was decided on")
    ranking_version: str


class DecisionResult(BaseModel):
    decision: DecisionOut
    site: SiteFeature


class WorkOrderIn(BaseModel):
    title: str
    crew: str | None = None
    notes: str | None = None
    sites: list[str] = Field(description="site ids (UUIDs)")


class WorkOrderPatch(BaseModel):
    title: str | None = None
    crew: str | None = None
    notes: str | None = None
    status: str | None = Field(None, description=f"one of {', '.join(WORK_ORDER_STATUSES)}")


class SitesIn(BaseModel):
    sites: list[str]


class WorkOrderOut(BaseModel):
    id: int
    title: str
    crew: str | None
    status: str
    notes: str | None
    created_by: str | None
    created_at: str
    updated_at: str
    sites: list[str] = Field(description="site ids in the order's order")
    history: list[dict[str, Any]] | None = Field(None, description="events, oldest first")


class ImageResultOut(BaseModel):
    filename: str
    status: str = Field(description="queued, no_location, duplicate or rejected")
    sha256: str | None = None
    frame_id: int | None = None
    reason: str | None = Field(None, description="why an image was rejected")
    location_source: str | None = Field(None, description="exif, metadata or track")


class BatchOut(BaseModel):
    batch_id: str
    counts: dict[str, int] = Field(description="images per status")
    images: list[ImageResultOut]


class MissingOut(BaseModel):
    missing: list[str] = Field(description="the sha256 values the server does not have")
