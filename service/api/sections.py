"""Road sections with their condition grade: list (filters: street, function class, grade, colour class,
surveyed since), one section with its grade's components, sites and history, network statistics, exports.

A grade is "modelled on ZTV ZEB-StB / E EMI 2012; not a certified survey" (docs/condition-grades.md).
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import Select, func, select

from service.access.deps import SessionDep, ViewerDep
from service.db.grades import SectionGrade
from service.db.road_tables import RoadSection, SiteSurvey
from service.db.sections import (
    COLOUR_CLASSES,
    SECTION_FIELDS,
    filter_sections,
    graded_sections,
    network_summary,
    section_feature,
    section_properties,
    stream_sections,
    worst_first,
)
from service.db.sites import site_feature
from service.db.tables import DamageSite
from service.domain.params import parse_choices, parse_date, parse_number
from service.errors import NotFound
from service.exports import csv_response, geojson_response

router = APIRouter(prefix="/api/v1", tags=["road sections"])


class SectionFilter:
    """Query parameters of the section list and its exports."""

    def __init__(
        self,
        street: Annotated[str | None, Query(description="street name (exact, case-insensitive)")] = None,
        highway: Annotated[str | None, Query(description="comma-separated OSM function classes")] = None,
        grade_min: Annotated[str | None, Query(description="1.0..5.0")] = None,
        grade_max: Annotated[str | None, Query(description="1.0..5.0")] = None,
        colour: Annotated[str | None, Query(description="comma-separated classes, e.g. 4.0-4.5")] = None,
        surveyed_since: Annotated[
            str | None, Query(description="YYYY-MM-DD: last usable pass on or after")
        ] = None,
        insufficient: Annotated[bool | None, Query(description="only sections without enough data")] = None,
    ) -> None:
        self.street = street.strip() if street and street.strip() else None
        self.highways = parse_choices(highway, _any_word(highway), "highway")
        self.grade_min = parse_number(grade_min, "grade_min", 1.0, 5.0)
        self.grade_max = parse_number(grade_max, "grade_max", 1.0, 5.0)
        self.colours = parse_choices(colour, COLOUR_CLASSES, "colour")
        since = parse_date(surveyed_since, "surveyed_since")
        self.since = datetime.combine(since, time()).astimezone() if since else None
        self.insufficient = insufficient

    def apply(self, query: Select[Any]) -> Select[Any]:
        return filter_sections(
            query,
            street=self.street,
            highways=self.highways,
            colours=self.colours,
            grade_min=self.grade_min,
            grade_max=self.grade_max,
            surveyed_since=self.since,
            insufficient=self.insufficient,
        )


def _any_word(raw: str | None) -> tuple[str, ...]:
    """Function classes are open-ended (the city's own network may use its own): any word is allowed."""
    return tuple(v.strip() for v in (raw or "").split(",") if v.strip())


SectionFilterDep = Annotated[SectionFilter, Depends()]


@router.get("/sections", summary="Road sections with their condition grade, worst first")
def list_sections(
    session: SessionDep,
    user: ViewerDep,
    filters: SectionFilterDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> dict[str, Any]:
    query = filters.apply(graded_sections())
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.execute(worst_first(query).limit(limit).offset(offset)).all()
    return {
        "type": "FeatureCollection",
        "features": [section_feature(s, g) for s, g in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
        "disclaimer": "modelled on ZTV ZEB-StB / E EMI 2012; not a certified survey",
    }


@router.get("/sections.csv", summary="Road sections with grades as CSV (same filters)")
def sections_csv(session: SessionDep, user: ViewerDep, filters: SectionFilterDep) -> StreamingResponse:
    rows = (section_properties(s, g) for s, g in stream_sections(session, filters.apply(graded_sections())))
    return csv_response(rows, SECTION_FIELDS, "sections.csv")


@router.get("/sections.geojson", summary="Road sections with grades as a GeoJSON file (same filters)")
def sections_geojson(session: SessionDep, user: ViewerDep, filters: SectionFilterDep) -> StreamingResponse:
    features = (section_feature(s, g) for s, g in stream_sections(session, filters.apply(graded_sections())))
    return geojson_response(features, "sections.geojson")


@router.get("/sections/summary", summary="Km per grade class and function class")
def sections_summary(session: SessionDep, user: ViewerDep) -> dict[str, Any]:
    return network_summary(session)


@router.get("/sections/{section_id}", summary="One section: grade, its components, sites and history")
def section_detail(section_id: str, session: SessionDep, user: ViewerDep) -> dict[str, Any]:
    section = session.get(RoadSection, section_id)
    if section is None:
        raise NotFound(f"no road section {section_id}")
    history = list(
        session.scalars(
            select(SectionGrade)
            .where(SectionGrade.section_id == section_id)
            .order_by(SectionGrade.computed_at.desc())
        )
    )
    current = next((g for g in history if g.current), None)
    sites = session.scalars(
        select(DamageSite)
        .join(SiteSurvey, SiteSurvey.site_id == DamageSite.id)
        .where(SiteSurvey.section_id == section_id)
    )
    feature = section_feature(section, current)
    feature["properties"].update(
        components=current.inputs.get("components", []) if current else [],
        reason=current.inputs.get("reason") if current else None,
        surveyed_area_m2=current.inputs.get("surveyed_area_m2") if current else None,
        sites=[site_feature(s) for s in sites],
        history=[
            {"computed_at": g.computed_at.isoformat(), "grade": g.grade, "status": g.status,
             "config_version": g.config_version, "passes": g.passes}
            for g in history
        ],
    )  # fmt: skip
    return feature
