"""Read API for staff and tools: ranked sites as GeoJSON, CSV and a GeoJSON file, one site in full."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import Select, and_, func, select

from service.access.deps import SessionDep, ViewerDep
from service.api.schemas import SiteCollection, SiteDetail
from service.db.drives import track_properties, tracks_of
from service.db.grades import SectionGrade
from service.db.road_tables import RoadSection
from service.db.sites import get_site, ranked, site_feature, stream_sites
from service.db.tables import DamageSite, Frame, ModelVersion, Observation
from service.domain.classes import CLASSES
from service.domain.params import parse_bbox, parse_choices
from service.domain.statuses import SITE_STATUSES
from service.exports import sections_gpkg, sites_csv, sites_geojson, sites_gpkg

router = APIRouter(prefix="/api/v1", tags=["read"])


class SiteFilter:
    """Query parameters shared by the list and the exports."""

    def __init__(
        self,
        bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat")] = None,
        status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
        class_: Annotated[str | None, Query(alias="class", description="comma-separated classes")] = None,
    ) -> None:
        self.bbox = parse_bbox(bbox)
        self.statuses = parse_choices(status, SITE_STATUSES, "status")
        self.classes = parse_choices(class_, CLASSES, "class")

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.bbox:
            query = query.where(DamageSite.position.op("&&")(func.ST_MakeEnvelope(*self.bbox, 4326)))
        if self.statuses:
            query = query.where(DamageSite.status.in_(self.statuses))
        if self.classes:
            query = query.where(DamageSite.class_name.in_(self.classes))
        return query


SiteFilterDep = Annotated[SiteFilter, Depends()]


@router.get(
    "/sites", summary="Damage sites as GeoJSON, highest priority first", response_model=SiteCollection
)
def list_sites(
    session: SessionDep,
    user: ViewerDep,
    filters: SiteFilterDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,  # PostgreSQL's OFFSET is a bigint
) -> dict[str, Any]:
    query = filters.apply(select(DamageSite))
    total = session.scalar(filters.apply(select(func.count()).select_from(DamageSite)))
    sites = session.scalars(ranked(query).limit(limit).offset(offset)).all()
    return {
        "type": "FeatureCollection",
        "features": [site_feature(s) for s in sites],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/sites.csv", summary="Damage sites as CSV (same filters)")
def export_csv(session: SessionDep, user: ViewerDep, filters: SiteFilterDep) -> StreamingResponse:
    return sites_csv(stream_sites(session, filters.apply(select(DamageSite))))


@router.get("/sites.geojson", summary="Damage sites as a GeoJSON file (same filters)")
def export_geojson(session: SessionDep, user: ViewerDep, filters: SiteFilterDep) -> StreamingResponse:
    return sites_geojson(stream_sites(session, filters.apply(select(DamageSite))))


@router.get("/sites.gpkg", summary="Damage sites as a GeoPackage (same filters; layer damage_sites)")
def export_gpkg(session: SessionDep, user: ViewerDep, filters: SiteFilterDep) -> FileResponse:
    return sites_gpkg(stream_sites(session, filters.apply(select(DamageSite))))


@router.get(
    "/road-sections.gpkg",
    summary="Road sections with their condition grade as a GeoPackage (layer road_sections)",
)
def export_sections_gpkg(
    session: SessionDep,
    user: ViewerDep,
    bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat")] = None,
) -> FileResponse:
    current = and_(SectionGrade.section_id == RoadSection.id, SectionGrade.current)
    query = select(RoadSection, SectionGrade).outerjoin(SectionGrade, current).order_by(RoadSection.id)
    area = parse_bbox(bbox)
    if area:
        query = query.where(RoadSection.geom.op("&&")(func.ST_MakeEnvelope(*area, 4326)))
    return sections_gpkg(session.execute(query).yield_per(1000))  # rows unpack as (section, grade)


@router.get(
    "/sites/{site_id}", summary="One site with its observations and frames", response_model=SiteDetail
)
def site_detail(site_id: str, session: SessionDep, user: ViewerDep) -> dict[str, Any]:
    site = get_site(session, site_id)
    feature = site_feature(site)
    rows = session.execute(
        select(Observation, Frame, ModelVersion.name)
        .join(Frame, Observation.frame_id == Frame.id)
        .outerjoin(ModelVersion, ModelVersion.id == Observation.model_version_id)
        .where(Observation.site_id == site.id)
        .order_by(Frame.captured_at)
    ).all()
    feature["properties"]["observation_list"] = [
        {
            "id": obs.id,
            "class": obs.class_name,
            "confidence": round(obs.confidence, 4),
            "box": [obs.x1, obs.y1, obs.x2, obs.y2],
            "distance_m": obs.distance_m,
            "size_m": obs.size_m,
            "model_version_id": obs.model_version_id,
            "model_version": model_name,  # the model (manifest name@sha256 prefix) that produced it
            "frame": {
                "id": frame.id,
                "captured_at": frame.captured_at.isoformat() if frame.captured_at else None,
                "image": f"/api/v1/frames/{frame.id}/image",
                "vehicle_id": frame.vehicle_id,
            },
        }
        for obs, frame, model_name in rows
    ]
    # How the site was formed: its tracks, each with its drive's GPS offset and support (issue 13).
    feature["properties"]["tracks"] = [track_properties(t, d) for t, d in tracks_of(session, site.id)]
    return feature
