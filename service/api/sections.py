"""Road sections with their condition grade: list (filters: street, function class, grade, colour class,
surveyed since), one section with its grade's components, sites and history, network statistics, exports.

A grade is "modelled on ZTV ZEB-StB / E EMI 2012; not a certified survey" (docs/condition-grades.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, time
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from geoalchemy2.shape import to_shape
from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from service.access.deps import SessionDep, ViewerDep
from service.db.grades import SectionGrade
from service.db.road_tables import RoadSection, SiteSurvey
from service.db.roads import section_record
from service.db.sites import site_feature
from service.db.tables import DamageSite
from service.domain.grades import CLASS_BOUNDS, INSUFFICIENT
from service.domain.params import parse_choices, parse_date, parse_number
from service.errors import NotFound
from service.exports import csv_response, geojson_response

router = APIRouter(prefix="/api/v1", tags=["road sections"])
COLOUR_CLASSES = tuple(f"{b:.1f}-{b + 0.5:.1f}" for b in CLASS_BOUNDS)
SECTION_FIELDS = [
    "id", "name", "from_name", "to_name", "highway", "length_m", "importance", "grade", "status",
    "colour_class", "surveyed_share", "passes", "last_pass", "config_version",
]  # fmt: skip


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
        if self.street:
            query = query.where(func.lower(RoadSection.name) == self.street.lower())
        if self.highways:
            query = query.where(RoadSection.highway.in_(self.highways))
        if self.grade_min is not None:
            query = query.where(SectionGrade.grade >= self.grade_min)
        if self.grade_max is not None:
            query = query.where(SectionGrade.grade <= self.grade_max)
        if self.colours:
            query = query.where(SectionGrade.colour_class.in_(self.colours))
        if self.since is not None:
            query = query.where(SectionGrade.last_pass >= self.since)
        if self.insufficient is not None:
            wanted = SectionGrade.status == INSUFFICIENT
            query = query.where(wanted if self.insufficient else ~wanted)
        return query


def _any_word(raw: str | None) -> tuple[str, ...]:
    """Function classes are open-ended (the city's own network may use its own): any word is allowed."""
    return tuple(v.strip() for v in (raw or "").split(",") if v.strip())


def _graded() -> Select[Any]:
    query = select(RoadSection, SectionGrade).outerjoin(
        SectionGrade, and_(SectionGrade.section_id == RoadSection.id, SectionGrade.current)
    )
    return cast("Select[Any]", query)


def section_properties(section: RoadSection, grade: SectionGrade | None) -> dict[str, Any]:
    """A section with its current grade (None fields when it was never graded)."""
    return {
        **section_record(section),
        "grade": grade.grade if grade else None,
        "status": grade.status if grade else None,
        "colour_class": grade.colour_class if grade else None,
        "surveyed_share": round(grade.surveyed_share, 4) if grade else None,
        "passes": grade.passes if grade else None,
        "last_pass": grade.last_pass.isoformat() if grade and grade.last_pass else None,
        "config_version": grade.config_version if grade else None,
        "computed_at": grade.computed_at.isoformat() if grade else None,
    }


def section_feature(section: RoadSection, grade: SectionGrade | None) -> dict[str, Any]:
    line = to_shape(section.geom)
    return {
        "type": "Feature",
        "geometry": {
            "type": "LineString",
            "coordinates": [[round(x, 7), round(y, 7)] for x, y in line.coords],
        },
        "properties": section_properties(section, grade),
    }


def _worst_first(query: Select[Any]) -> Select[Any]:
    return query.order_by(SectionGrade.grade.desc().nulls_last(), RoadSection.id)


SectionFilterDep = Annotated[SectionFilter, Depends()]


@router.get("/sections", summary="Road sections with their condition grade, worst first")
def list_sections(
    session: SessionDep,
    user: ViewerDep,
    filters: SectionFilterDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> dict[str, Any]:
    query = filters.apply(_graded())
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.execute(_worst_first(query).limit(limit).offset(offset)).all()
    return {
        "type": "FeatureCollection",
        "features": [section_feature(s, g) for s, g in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
        "disclaimer": "modelled on ZTV ZEB-StB / E EMI 2012; not a certified survey",
    }


def _stream(
    session: Session, query: Select[Any], batch: int = 1000
) -> Iterator[tuple[RoadSection, SectionGrade | None]]:
    offset = 0
    while True:
        rows = session.execute(_worst_first(query).limit(batch).offset(offset)).all()
        yield from ((s, g) for s, g in rows)
        if len(rows) < batch:
            return
        offset += batch


@router.get("/sections.csv", summary="Road sections with grades as CSV (same filters)")
def sections_csv(session: SessionDep, user: ViewerDep, filters: SectionFilterDep) -> StreamingResponse:
    rows = (section_properties(s, g) for s, g in _stream(session, filters.apply(_graded())))
    return csv_response(rows, SECTION_FIELDS, "sections.csv")


@router.get("/sections.geojson", summary="Road sections with grades as a GeoJSON file (same filters)")
def sections_geojson(session: SessionDep, user: ViewerDep, filters: SectionFilterDep) -> StreamingResponse:
    features = (section_feature(s, g) for s, g in _stream(session, filters.apply(_graded())))
    return geojson_response(features, "sections.geojson")


def network_summary(session: Session) -> dict[str, Any]:
    """Km per colour class and per function class, and km without enough data."""
    rows = session.execute(
        select(
            RoadSection.highway,
            SectionGrade.colour_class,
            SectionGrade.status,
            func.sum(RoadSection.length_m),
        )
        .select_from(RoadSection)
        .outerjoin(SectionGrade, and_(SectionGrade.section_id == RoadSection.id, SectionGrade.current))
        .group_by(RoadSection.highway, SectionGrade.colour_class, SectionGrade.status)
    ).all()
    by_class: dict[str, float] = {c: 0.0 for c in COLOUR_CLASSES}
    by_highway: dict[str, dict[str, float]] = {}
    insufficient = ungraded = 0.0
    for highway, colour, status, metres in rows:
        km = float(metres or 0.0) / 1000.0
        per = by_highway.setdefault(highway or "unknown", {"km": 0.0, "graded_km": 0.0})
        per["km"] += km
        if colour:
            by_class[colour] += km
            per["graded_km"] += km
        elif status == INSUFFICIENT:
            insufficient += km
        else:
            ungraded += km
    return {
        "km_by_colour_class": {k: round(v, 3) for k, v in by_class.items()},
        "km_by_highway": {k: {n: round(x, 3) for n, x in v.items()} for k, v in sorted(by_highway.items())},
        "km_insufficient_data": round(insufficient, 3),
        "km_not_graded": round(ungraded, 3),
    }


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
