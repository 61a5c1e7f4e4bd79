"""Vector tiles for the staff map (Mapbox Vector Tile; viewer role); see ``service/db/tiles.py``:

- ``GET /tiles/sites/{z}/{x}/{y}.pbf``: layer ``sites``, with the sites list's filters (status, class,
  priority, last seen, area); grouped below zoom 14.
- ``GET /tiles/sections/{z}/{x}/{y}.pbf``: layer ``sections`` (from zoom 12): road sections with their grade
  and coverage (last usable pass, age class as in ``GET /api/v1/coverage``), with the streets page's filters
  (street, function class, grade class, surveyed since, not surveyed since).

Grouped tiles cover much of the city each and change little: they are kept for ``CACHE_TTL_S`` per app (the
browser keeps every tile that long too: ``max-age``). For a large city they are read from the site cells,
which this app rebuilds in a background thread when ``plan_cells`` says so (one rebuild at a time).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from sqlalchemy.orm import Session, sessionmaker

from service.access.deps import SessionDep, ViewerDep
from service.api.coverage import age_class
from service.db.engine import transaction
from service.db.tiles import (
    CELL_MAX_ZOOM,
    DETAIL_ZOOM,
    SectionTileFilter,
    SiteTileFilter,
    cell_state,
    plan_cells,
    refresh_cells,
    section_tile,
    site_tile,
)
from service.domain.classes import CLASSES
from service.domain.params import parse_bbox, parse_choices, parse_date, parse_number
from service.domain.statuses import SITE_STATUSES

log = logging.getLogger(__name__)
MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
CACHE_TTL_S = 60.0
CACHE_TILES = 512
TileKey = tuple[int, int, int, SiteTileFilter]


class TileCache:
    """The last ``size`` grouped tiles, each for ``ttl_s`` seconds (thread-safe: routes run in a pool)."""

    def __init__(self, ttl_s: float = CACHE_TTL_S, size: int = CACHE_TILES) -> None:
        self.ttl_s, self.size = ttl_s, size
        self.tiles: OrderedDict[TileKey, tuple[float, bytes]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: TileKey) -> bytes | None:
        with self.lock:
            hit = self.tiles.get(key)
            if hit is None or time.monotonic() - hit[0] > self.ttl_s:
                return None
            self.tiles.move_to_end(key)
            return hit[1]

    def put(self, key: TileKey, tile: bytes) -> None:
        with self.lock:
            self.tiles[key] = (time.monotonic(), tile)
            self.tiles.move_to_end(key)
            while len(self.tiles) > self.size:
                self.tiles.popitem(last=False)


class CellRefresh:
    """Rebuilds the site cells in a daemon thread, at most one at a time per app."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.running = threading.Lock()

    def start(self) -> bool:
        if not self.running.acquire(blocking=False):
            return False
        threading.Thread(target=self._run, name="tile-cells", daemon=True).start()
        return True

    def _run(self) -> None:
        try:
            began = time.perf_counter()
            with transaction(self.sessions) as session:
                if refresh_cells(session, datetime.now(UTC)):
                    log.info("site tile cells rebuilt in %.2f s", time.perf_counter() - began)
        except Exception:  # a failed rebuild leaves the old cells; the next stale tile tries again
            log.exception("rebuilding the site tile cells failed")
        finally:
            self.running.release()


def tile_cache(app: FastAPI) -> TileCache:
    cache = getattr(app.state, "tile_cache", None)
    if cache is None:
        cache = app.state.tile_cache = TileCache()
    return cache


def cell_refresh(app: FastAPI) -> CellRefresh:
    refresh = getattr(app.state, "tile_cell_refresh", None)
    if refresh is None:
        refresh = app.state.tile_cell_refresh = CellRefresh(app.state.sessions)
    return refresh


def grouped_from_cells(request: Request, session: Session) -> bool:
    """Whether this grouped tile reads the site cells; starts their rebuild when they are stale."""
    plan = plan_cells(cell_state(session), datetime.now(UTC))
    if plan.refresh:
        cell_refresh(request.app).start()
    return plan.use


router = APIRouter(prefix="/tiles", tags=["read"])
HEADERS = {"Cache-Control": "private, max-age=60"}


def site_filter(
    request: Request,
    status: Annotated[list[str] | None, Query(description="statuses (comma-separated or repeated)")] = None,
    class_: Annotated[
        list[str] | None, Query(alias="class", description="classes (comma-separated or repeated)")
    ] = None,
    priority_min: Annotated[str | None, Query(description="0..100")] = None,
    priority_max: Annotated[str | None, Query(description="0..100")] = None,
    seen_from: Annotated[
        str | None, Query(description="YYYY-MM-DD, last seen on or after (local days)")
    ] = None,
    seen_to: Annotated[
        str | None, Query(description="YYYY-MM-DD, last seen on or before (local days)")
    ] = None,
    bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat")] = None,
) -> SiteTileFilter:
    """The sites list's filters (the same parameters as ``/sites``; days in the display time zone)."""
    tz = ZoneInfo(request.app.state.settings.display_timezone)
    first, last = parse_date(seen_from, "seen_from"), parse_date(seen_to, "seen_to")
    return SiteTileFilter(
        statuses=tuple(sorted(parse_choices(status, SITE_STATUSES, "status"))),
        classes=tuple(sorted(parse_choices(class_, CLASSES, "class"))),
        priority_min=parse_number(priority_min, "priority_min"),
        priority_max=parse_number(priority_max, "priority_max"),
        seen_from=datetime.combine(first, dt_time(), tz) if first else None,
        seen_before=datetime.combine(last + timedelta(days=1), dt_time(), tz)
        if last and last < date.max
        else None,
        bbox=parse_bbox(bbox),
    )


@router.get(
    "/sites/{z}/{x}/{y}.pbf",
    summary="Damage sites as a Mapbox Vector Tile (grouped below zoom 14)",
    response_class=Response,
    responses={200: {"content": {MVT_MEDIA_TYPE: {}}}},
)
def sites_tile(
    z: int,
    x: int,
    y: int,
    request: Request,
    session: SessionDep,
    user: ViewerDep,
    where: Annotated[SiteTileFilter, Depends(site_filter)],
) -> Response:
    key = (z, x, y, where)
    cache = tile_cache(request.app) if z < DETAIL_ZOOM else None
    tile = cache.get(key) if cache else None
    if tile is None:
        cells = 0 <= z <= CELL_MAX_ZOOM and where.by_cells and grouped_from_cells(request, session)
        tile = site_tile(session, z, x, y, where, cells=cells)
        if cache:
            cache.put(key, tile)
    return Response(tile, media_type=MVT_MEDIA_TYPE, headers=HEADERS)


def section_filter(
    street: Annotated[str | None, Query(description="street name (any case)")] = None,
    highway: Annotated[str | None, Query(description="function class (OpenStreetMap highway)")] = None,
    colour: Annotated[
        list[str] | None, Query(description="grade classes such as 3.5-4.0 (comma-separated or repeated)")
    ] = None,
    surveyed_since: Annotated[
        str | None, Query(description="YYYY-MM-DD, graded from a pass on or after")
    ] = None,
    not_surveyed_since: Annotated[
        str | None, Query(description="YYYY-MM-DD, no usable pass on or after (never surveyed included)")
    ] = None,
) -> SectionTileFilter:
    """The streets page's filters (the same parameters as ``/streets`` and ``/streets/map.geojson``)."""
    return SectionTileFilter.parse(street, highway, colour, surveyed_since, not_surveyed_since)


@router.get(
    "/sections/{z}/{x}/{y}.pbf",
    summary="Road sections with grade and coverage as a Mapbox Vector Tile (from zoom 12)",
    response_class=Response,
    responses={200: {"content": {MVT_MEDIA_TYPE: {}}}},
)
def sections_tile(
    z: int,
    x: int,
    y: int,
    request: Request,
    session: SessionDep,
    user: ViewerDep,
    where: Annotated[SectionTileFilter, Depends(section_filter)],
) -> Response:
    now = datetime.now(UTC)
    period = request.app.state.settings.coverage_period_days
    tile = section_tile(session, z, x, y, lambda last: age_class(last, now), period, now, where)
    return Response(tile, media_type=MVT_MEDIA_TYPE, headers=HEADERS)
