"""Streets: road sections by condition grade (list, map, km per grade class and function class, change
since an earlier date), one section with its grade's components, sites and photos, and a printable
network condition report for the council's committee."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from service.access.deps import SessionDep, ViewerDep
from service.db.coverage import last_passes, section_passes
from service.db.grades import SectionGrade
from service.db.history import SiteVerification
from service.db.road_tables import RoadSection
from service.db.sections import (
    COLOUR_CLASSES,
    grade_history,
    graded_sections,
    latest_frames,
    network_summary,
    section_feature,
    sites_of_section,
    worst_first,
)
from service.db.tables import DamageSite
from service.db.tiles import SECTION_MIN_ZOOM, SectionTileFilter
from service.domain.grades import TARGET, THRESHOLD, WARNING, age_class
from service.domain.history import CONFIRMED, NOT_SEEN_AGAIN, REAPPEARED
from service.domain.params import parse_date
from service.errors import NotFound
from service.web.pages import map_extent
from service.web.render import WebRoute, page, translator

router = APIRouter(route_class=WebRoute, include_in_schema=False)
PAGE_SIZE = 50
MAP_LIMIT = 20_000
REPORT_WORST = 30
QUEUE_STATES = (NOT_SEEN_AGAIN, REAPPEARED, CONFIRMED)


class StreetFilter:
    """The streets page's filters: street name, function class, grade class, surveyed since, not surveyed
    since (no usable pass on or after that day, never surveyed included), applied as the section tiles
    apply them (``SectionTileFilter``); and the date to compare the grades with."""

    def __init__(
        self,
        street: str | None = None,
        highway: str | None = None,
        colour: list[str] | None = None,
        surveyed_since: str | None = None,
        compare: str | None = None,
        not_surveyed_since: str | None = None,
    ) -> None:
        self.where = SectionTileFilter.parse(street, highway, colour, surveyed_since, not_surveyed_since)
        self.street, self.highway = self.where.street, self.where.highway
        self.colours = list(self.where.colours)
        self.surveyed_since = self.where.surveyed_since
        self.not_surveyed_since = self.where.not_surveyed_since
        self.compare = parse_date(compare, "compare")

    def apply(self, query: Select[Any]) -> Select[Any]:
        return self.where.apply(query)


def _grades_at(session: Session, section_ids: list[str], when: date) -> dict[str, float | None]:
    """Each section's grade as it stood at the end of ``when`` (its latest row computed by then)."""
    end = datetime.combine(when, time.max).astimezone()
    latest = (
        select(SectionGrade.section_id, func.max(SectionGrade.computed_at).label("at"))
        .where(SectionGrade.section_id.in_(section_ids), SectionGrade.computed_at <= end)
        .group_by(SectionGrade.section_id)
        .subquery()
    )
    rows = session.execute(
        select(SectionGrade.section_id, SectionGrade.grade).join(
            latest,
            and_(SectionGrade.section_id == latest.c.section_id, SectionGrade.computed_at == latest.c.at),
        )
    ).all()
    return {sid: grade for sid, grade in rows}


def _highways(session: Session) -> list[str]:
    return [
        h for h in session.scalars(select(RoadSection.highway).distinct().order_by(RoadSection.highway)) if h
    ]


def _filters(request: Request) -> StreetFilter:
    q = request.query_params
    return StreetFilter(
        q.get("street"),
        q.get("highway"),
        q.getlist("colour"),
        q.get("surveyed_since"),
        q.get("compare"),
        q.get("not_surveyed_since"),
    )


@router.get("/streets")
def streets_page(request: Request, session: SessionDep, user: ViewerDep, page_no: int = 1) -> Response:
    filters = _filters(request)
    page_no = min(max(page_no, 1), 10**9)
    query = filters.apply(graded_sections())
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(worst_first(query).limit(PAGE_SIZE).offset((page_no - 1) * PAGE_SIZE)).all()
    before = _grades_at(session, [s.id for s, _ in rows], filters.compare) if filters.compare else {}
    params = request.url.query
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "page_no"]  # the filters
    tiles_above = request.app.state.settings.map_section_tiles_above
    tiled = total > tiles_above  # the map draws the section tiles: it needs the extent and the labels
    return page(
        request,
        "streets.html",
        user,
        tiles_above=tiles_above,
        section_min_zoom=SECTION_MIN_ZOOM,
        map_extent=map_extent(session, query, RoadSection.geom) if tiled else "",
        map_labels=section_labels(translator(request)) if tiled else "",
        filters=filters,
        rows=rows,
        before=before,
        total=total,
        page_no=page_no,
        pages=max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1),
        summary=network_summary(session),
        colour_classes=COLOUR_CLASSES,
        highways=_highways(session),
        fixed=(TARGET, WARNING, THRESHOLD),
        query=params,
        page_url=lambda n: "/streets?" + urlencode([*kept, ("page_no", str(n))]),
    )


def section_labels(t: Any) -> str:
    """The texts of the tiled map's popups (the tiles carry the grade and the last usable pass), as JSON."""
    return json.dumps(
        {
            "no_grade": t("streets.no_grade"),
            "last_pass": t("streets.map_last_pass"),
            "never": t("streets.map_never"),
        }
    )


@router.get("/streets/map.geojson")
def streets_map(request: Request, session: SessionDep, user: ViewerDep) -> dict[str, Any]:
    t = translator(request)
    rows = session.execute(worst_first(_filters(request).apply(graded_sections())).limit(MAP_LIMIT)).all()
    passes = last_passes(session, [s.id for s, _ in rows])  # coverage: the last usable pass of all time
    now = datetime.now(UTC)
    features = []
    for section, grade in rows:
        feature = section_feature(section, grade)
        props = feature["properties"]
        name = props["label"] or section.id
        grade_text = t.number(props["grade"]) if props["grade"] is not None else t("streets.no_grade")
        usable = passes.get(section.id, (None, None))[1]
        props.update(
            url=f"/streets/{section.id}",
            label=f"{name}: {grade_text}",
            last_usable_pass=usable.isoformat() if usable else None,
            age_class=age_class(usable, now),
            coverage_label=f"{name}: "
            + (
                t("streets.map_last_pass", date=t.date(usable, "short")) if usable else t("streets.map_never")
            ),
        )
        features.append(feature)
    return {"type": "FeatureCollection", "features": features}


@router.get("/streets/report")
def streets_report(request: Request, session: SessionDep, user: ViewerDep) -> Response:
    rows = session.execute(
        worst_first(graded_sections().where(SectionGrade.grade.is_not(None))).limit(REPORT_WORST)
    ).all()
    worst = [(s, g, sites_of_section(session, s.id)[:3]) for s, g in rows]
    photos = latest_frames(session, [site.id for _, _, top in worst for site in top])
    versions = sorted(set(session.scalars(select(SectionGrade.config_version).where(SectionGrade.current))))
    return page(
        request,
        "streets_report.html",
        user,
        summary=network_summary(session),
        worst=worst,
        photos=photos,
        versions=versions,
        colour_classes=COLOUR_CLASSES,
        generated=datetime.now().astimezone(),
        fixed=(TARGET, WARNING, THRESHOLD),
    )


@router.get("/streets/{section_id}")
def street_section(section_id: str, request: Request, session: SessionDep, user: ViewerDep) -> Response:
    section = session.get(RoadSection, section_id)
    if section is None:
        raise NotFound(f"no road section {section_id}")
    history = grade_history(session, section_id)
    current = next((g for g in history if g.current), None)
    sites = {s.id: s for s in sites_of_section(session, section_id)}
    components = current.inputs.get("components", []) if current else []
    return page(
        request,
        "street.html",
        user,
        section=section,
        feature=section_feature(section, current),
        grade=current,
        components=components,
        sites=sites,
        history=history,
        passes=section_passes(session, section_id),
        fixed=(TARGET, WARNING, THRESHOLD),
    )


@router.get("/verification")
def verification_page(request: Request, session: SessionDep, user: ViewerDep) -> Response:
    """What routine drives said: sites not seen again (staff decide), reappeared repairs, confirmed ones."""
    rows = session.execute(
        select(DamageSite, SiteVerification)
        .join(SiteVerification, SiteVerification.site_id == DamageSite.id)
        .where(SiteVerification.state.in_(QUEUE_STATES))
        .order_by(SiteVerification.changed_at.desc(), DamageSite.id)
        .limit(500)
    ).all()
    groups = {state: [(s, v) for s, v in rows if v.state == state] for state in QUEUE_STATES}
    return page(request, "verification.html", user, groups=groups)
