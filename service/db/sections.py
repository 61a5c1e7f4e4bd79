"""Road sections with their current condition grade, as the API, the web app and the exports read them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, cast

from geoalchemy2.shape import to_shape
from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from service.db.grades import SectionGrade
from service.db.road_tables import RoadSection, SiteSurvey
from service.db.roads import section_record
from service.db.tables import DamageSite, Observation
from service.domain.grades import CLASS_BOUNDS, INSUFFICIENT

COLOUR_CLASSES = tuple(f"{b:.1f}-{b + 0.5:.1f}" for b in CLASS_BOUNDS)
SECTION_FIELDS = [
    "id", "name", "from_name", "to_name", "highway", "length_m", "importance", "grade", "status",
    "colour_class", "surveyed_share", "passes", "last_pass", "config_version",
]  # fmt: skip


def graded_sections() -> Select[Any]:
    """Sections with their current grade (None where never graded), as (RoadSection, SectionGrade) rows."""
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


def worst_first(query: Select[Any]) -> Select[Any]:
    """Worst grade first, ungraded last, ties by id (pages never overlap)."""
    return query.order_by(SectionGrade.grade.desc().nulls_last(), RoadSection.id)


def stream_sections(
    session: Session, query: Select[Any], batch: int = 1000
) -> Iterator[tuple[RoadSection, SectionGrade | None]]:
    offset = 0
    while True:
        rows = session.execute(worst_first(query).limit(batch).offset(offset)).all()
        yield from ((s, g) for s, g in rows)
        if len(rows) < batch:
            return
        offset += batch


def sites_of_section(session: Session, section_id: str) -> list[DamageSite]:
    """The damage sites attached to a section."""
    return list(
        session.scalars(
            select(DamageSite)
            .join(SiteSurvey, SiteSurvey.site_id == DamageSite.id)
            .where(SiteSurvey.section_id == section_id)
            .order_by(DamageSite.priority.desc())
        )
    )


def grade_history(session: Session, section_id: str) -> list[SectionGrade]:
    """Every grade the section had, newest first."""
    return list(
        session.scalars(
            select(SectionGrade)
            .where(SectionGrade.section_id == section_id)
            .order_by(SectionGrade.computed_at.desc())
        )
    )


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


def latest_frames(session: Session, site_ids: list[int]) -> dict[int, int]:
    """Each site's most recent frame (its photo for reports)."""
    if not site_ids:
        return {}
    rows = session.execute(
        select(Observation.site_id, func.max(Observation.frame_id))
        .where(Observation.site_id.in_(site_ids))
        .group_by(Observation.site_id)
    ).all()
    return {int(site_id): int(frame_id) for site_id, frame_id in rows if site_id is not None}


def filter_sections(
    query: Select[Any],
    *,
    street: str | None = None,
    highways: Sequence[str] = (),
    colours: Sequence[str] = (),
    grade_min: float | None = None,
    grade_max: float | None = None,
    surveyed_since: datetime | None = None,
    insufficient: bool | None = None,
) -> Select[Any]:
    """The section filters of the API, the streets page and their exports, on :func:`graded_sections`."""
    if street:
        query = query.where(func.lower(RoadSection.name) == street.lower())
    if highways:
        query = query.where(RoadSection.highway.in_(list(highways)))
    if grade_min is not None:
        query = query.where(SectionGrade.grade >= grade_min)
    if grade_max is not None:
        query = query.where(SectionGrade.grade <= grade_max)
    if colours:
        query = query.where(SectionGrade.colour_class.in_(list(colours)))
    if surveyed_since is not None:
        query = query.where(SectionGrade.last_pass >= surveyed_since)
    if insufficient is not None:
        wanted = SectionGrade.status == INSUFFICIENT
        query = query.where(wanted if insufficient else ~wanted)
    return query
