"""Coverage of the road network (service/db/coverage.py): a summary, and sections with their coverage as
GeoJSON for a map layer coloured by the age of the last usable pass ("never" is its own class)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from geoalchemy2.shape import to_shape
from sqlalchemy import func, select

from service.access.deps import SessionDep, ViewerDep
from service.db.coverage import DailySummary, coverage_summary, daily_summary, section_coverage
from service.db.road_tables import RoadSection
from service.db.roads import section_record
from service.domain import grades
from service.domain.params import parse_bbox, parse_date
from service.errors import InvalidInput

router = APIRouter(prefix="/api/v1", tags=["coverage"])


def age_class(last_usable: str | None, now: datetime) -> str:
    """``service.domain.grades.age_class`` of an ISO time as the coverage records carry it."""
    return grades.age_class(datetime.fromisoformat(last_usable) if last_usable else None, now)


@router.get("/coverage/summary", summary="Km surveyed by usable frames within N months, and the rest")
def summary(
    request: Request,
    session: SessionDep,
    user: ViewerDep,
    months: Annotated[int, Query(ge=1, le=240)] = 6,
    fresh: Annotated[bool, Query(description="recompute now instead of the day's summary")] = False,
) -> dict[str, Any]:
    """The day's summary (computed once a day per process: seconds at a million frames); other periods
    and ``fresh=true`` are computed on request."""
    if months == DailySummary().months and not fresh:
        return daily_summary(request.app.state, session)
    return coverage_summary(session, months=months)


@router.get("/coverage", summary="Road sections with their coverage (GeoJSON; bbox, not_surveyed_since)")
def sections(
    request: Request,
    session: SessionDep,
    user: ViewerDep,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat")] = None,
    not_surveyed_since: Annotated[
        str | None, Query(description="YYYY-MM-DD: only sections without a usable pass since then")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=20000)] = 5000,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> dict[str, Any]:
    area = parse_bbox(bbox)
    since_day = parse_date(not_surveyed_since, "not_surveyed_since")
    query = select(RoadSection).order_by(RoadSection.id)
    if area is not None:
        query = query.where(RoadSection.geom.op("&&")(func.ST_MakeEnvelope(*area, 4326)))
    rows = session.scalars(query.limit(limit).offset(offset)).all()
    now = datetime.now(UTC)
    period = request.app.state.settings.coverage_period_days
    coverage = section_coverage(session, [(s.id, s.length_m) for s in rows], period, now)
    since = datetime.combine(since_day, time(), tzinfo=UTC) if since_day else None
    if since is not None and since > now:
        raise InvalidInput(f"not_surveyed_since: expected a date in the past, got {since_day}")
    features = []
    for s in rows:
        c = coverage[s.id]
        last = c["last_usable_pass"]
        if since is not None and last is not None and datetime.fromisoformat(last) >= since:
            continue
        line = to_shape(s.geom)
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[round(x, 7), round(y, 7)] for x, y in line.coords],
                },
                "properties": {**section_record(s), **c, "age_class": age_class(last, now)},
            }
        )
    return {"type": "FeatureCollection", "features": features, "limit": limit, "offset": offset}
