"""Mapbox Vector Tiles of damage sites and road sections, encoded by PostGIS (``ST_AsMVT``), for the staff map.

Tiles are Web Mercator (z/x/y as OpenStreetMap).

Sites (layer ``sites``): a site's position is computed from its lon/lat with the Mercator formula (cheaper
than ``ST_Transform`` per row; exact for points) and the tile's lon/lat rectangle finds the sites on the GiST
index. From zoom ``DETAIL_ZOOM`` on, each site is one feature (id, class, status, priority,
citizen_reports); below, sites are grouped per cell of ``CELL`` tile units (16 px of a 256 px tile) into one
feature with ``count`` and the highest ``priority``, so a tile of a whole city stays small.

Grouping a whole city on every low-zoom tile means scanning all its sites (0.2 s at 200,000 sites, more
under load), so up to ``CELL_MAX_ZOOM`` the groups come from ``site_tile_cell``: the same cells counted
once per zoom, status and class (``refresh_cells``: the finest zoom from the sites, each coarser one from
the one below). They are derived data, rebuilt when sites changed and they are older than
``CELLS_REFRESH_S``; a city under ``CELLS_MIN_SITES`` sites, or cells older than ``CELLS_MAX_AGE_S``, is
grouped live (``plan_cells``). Both ways give the same groups (the tests compare them).

Sections (layer ``sections``, from zoom ``SECTION_MIN_ZOOM``): each road section clipped to the tile
(``ST_AsMVTGeom``, which also snaps it to the tile grid) with its street, current condition grade and
coverage: the last usable pass and its age class, from ``service.db.coverage.section_coverage`` (the one
rule of what a usable pass is). ``SectionTileFilter`` is the streets page's filters, for its list, its GeoJSON
map and these tiles alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import Select, exists, func, select, text
from sqlalchemy.orm import Session

from service.db.coverage import section_coverage
from service.db.road_tables import RoadSection, SectionCoverage
from service.db.sections import COLOUR_CLASSES, filter_sections, graded_sections
from service.domain.params import parse_choices, parse_date
from service.errors import NotFound

EXTENT = 4096
CELL = 256
CELLS_PER_TILE = EXTENT // CELL
DETAIL_ZOOM = 14
MAX_ZOOM = 24
LAYER = "sites"
SECTION_LAYER = "sections"
SECTION_MIN_ZOOM = 12
# Groups from site_tile_cell up to this zoom (a tile of zoom 13 holds a sixtieth of a 30 x 20 km city, and
# its cells would be almost as many rows as its sites: bench/tiles.py).
CELL_MAX_ZOOM = 12
CELLS_MIN_SITES = 20_000
CELLS_REFRESH_S = 60.0
CELLS_MAX_AGE_S = 600.0
_LOCK_KEY = 0x7115_0015  # pg_try_advisory_xact_lock: one rebuild at a time across processes

# Mercator world units (0..1) of a position: x from longitude, y (downwards) from the latitude.
_MX = "((ST_X(position) + 180.0) / 360.0)"
_MY = "((1.0 - ln(tan(radians(ST_Y(position))) + 1.0 / cos(radians(ST_Y(position)))) / pi()) / 2.0)"
_PX = f"(({_MX} * :n - :x) * :extent)"
_PY = f"(({_MY} * :n - :y) * :extent)"
_CHOICES = """
      AND (CAST(:statuses AS text[]) IS NULL OR status = ANY(CAST(:statuses AS text[])))
      AND (CAST(:classes AS text[]) IS NULL OR class_name = ANY(CAST(:classes AS text[])))
"""
# A group's colour: the highest priority of its sites still to be dealt with (rejected and repaired ones
# only when the group holds nothing else; ``active`` counts the others, 0: drawn as closed).
_ACTIVE = "status NOT IN ('rejected', 'repaired')"
_FILTERS = f"""
    FROM damage_site
    WHERE position && ST_MakeEnvelope(:west, :south, :east, :north, 4326)
    {_CHOICES}
      AND (CAST(:priority_min AS float8) IS NULL OR priority >= CAST(:priority_min AS float8))
      AND (CAST(:priority_max AS float8) IS NULL OR priority <= CAST(:priority_max AS float8))
      AND (CAST(:seen_from AS timestamptz) IS NULL OR last_seen >= CAST(:seen_from AS timestamptz))
      AND (CAST(:seen_before AS timestamptz) IS NULL OR last_seen < CAST(:seen_before AS timestamptz))
"""

DETAIL_SQL = text(
    f"""
    SELECT ST_AsMVT(q, '{LAYER}', {EXTENT}, 'geom') FROM (
        SELECT ST_MakePoint(round({_PX}), round({_PY})) AS geom,
               public_id::text AS id, class_name AS class, status, round(priority::numeric, 1)::float8 AS priority,
               citizen_reports
        {_FILTERS}
    ) q
    """
)
CLUSTER_SQL = text(
    f"""
    SELECT ST_AsMVT(q, '{LAYER}', {EXTENT}, 'geom') FROM (
        SELECT ST_MakePoint(round(avg(px)), round(avg(py))) AS geom, count(*)::int AS count,
               round(COALESCE(max(priority) FILTER (WHERE {_ACTIVE}), max(priority))::numeric, 1)::float8
                   AS priority,
               (count(*) FILTER (WHERE {_ACTIVE}))::int AS active
        FROM (SELECT {_PX} AS px, {_PY} AS py, priority, status {_FILTERS}) p
        GROUP BY floor(px / {CELL}), floor(py / {CELL})
    ) q
    """
)
CELLS_SQL = text(
    f"""
    SELECT ST_AsMVT(q, '{LAYER}', {EXTENT}, 'geom') FROM (
        SELECT ST_MakePoint(round((sum(sum_mx) / sum(n) * :n - :x) * :extent),
                            round((sum(sum_my) / sum(n) * :n - :y) * :extent)) AS geom,
               sum(n)::int AS count,
               round(COALESCE(max(max_priority) FILTER (WHERE {_ACTIVE}), max(max_priority))::numeric, 1)::float8
                   AS priority,
               COALESCE(sum(n) FILTER (WHERE {_ACTIVE}), 0)::int AS active
        FROM site_tile_cell
        WHERE zoom = :z AND cx BETWEEN :cx0 AND :cx1 AND cy BETWEEN :cy0 AND :cy1
        {_CHOICES}
        GROUP BY cx, cy
    ) q
    """
)

_CELL_STATE_SQL = text(
    """
    SELECT s.built_at, s.changes AS changes_then,
           pg_stat_get_tuples_inserted(t.oid) + pg_stat_get_tuples_updated(t.oid)
               + pg_stat_get_tuples_deleted(t.oid) AS changes_now,
           t.reltuples AS sites
    FROM pg_class t LEFT JOIN site_tile_cell_state s ON s.id = 1
    WHERE t.oid = 'damage_site'::regclass
    """
)
_CELLS_FROM_SITES = text(
    f"""
    INSERT INTO site_tile_cell (zoom, cx, cy, status, class_name, n, sum_mx, sum_my, max_priority)
    SELECT :z, floor(mx * :cells)::int, floor(my * :cells)::int, status, class_name,
           count(*), sum(mx), sum(my), max(priority)
    FROM (SELECT {_MX} AS mx, {_MY} AS my, status, class_name, priority FROM damage_site) m
    GROUP BY 2, 3, 4, 5
    """
)
_CELLS_FROM_FINER = text(
    """
    INSERT INTO site_tile_cell (zoom, cx, cy, status, class_name, n, sum_mx, sum_my, max_priority)
    SELECT :z, cx >> 1, cy >> 1, status, class_name, sum(n), sum(sum_mx), sum(sum_my), max(max_priority)
    FROM site_tile_cell WHERE zoom = :z + 1
    GROUP BY 2, 3, 4, 5
    """
)
_CELLS_BUILT = text(
    """
    INSERT INTO site_tile_cell_state (id, built_at, changes, sites)
    VALUES (1, :now, :changes, (SELECT coalesce(sum(n), 0) FROM site_tile_cell WHERE zoom = 0))
    ON CONFLICT (id) DO UPDATE SET built_at = EXCLUDED.built_at, changes = EXCLUDED.changes,
        sites = EXCLUDED.sites
    """
)

SECTION_SQL = text(
    f"""
    SELECT ST_AsMVT(q, '{SECTION_LAYER}', {EXTENT}, 'geom') FROM (
        SELECT ST_AsMVTGeom(ST_Transform(s.geom, 3857), ST_TileEnvelope(:z, :x, :y), {EXTENT}, 64, true) AS geom,
               s.id, s.name, s.from_name, s.to_name, s.highway,
               round(g.grade::numeric, 1)::float8 AS grade, g.colour_class,
               c.last_usable_pass, c.age_class
        FROM road_section s
        JOIN unnest(CAST(:ids AS text[]), CAST(:last AS text[]), CAST(:ages AS text[]))
            AS c(id, last_usable_pass, age_class) ON c.id = s.id
        LEFT JOIN section_grade g ON g.section_id = s.id AND g.current
    ) q
    WHERE geom IS NOT NULL
    """
)


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """The lon/lat rectangle (west, south, east, north) of Web Mercator tile z/x/y."""
    n = 2**z

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360.0 - 180.0, lat(y + 1), (x + 1) / n * 360.0 - 180.0, lat(y)


def _check(z: int, x: int, y: int) -> None:
    if not 0 <= z <= MAX_ZOOM or not (0 <= x < 2**z and 0 <= y < 2**z):
        raise NotFound(f"no tile {z}/{x}/{y}: zoom 0..{MAX_ZOOM}, x and y 0..2^zoom-1")


@dataclass(frozen=True)
class SiteTileFilter:
    """The list's filters as tiles apply them (``seen_before`` exclusive; ``bbox`` lon/lat)."""

    statuses: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    priority_min: float | None = None
    priority_max: float | None = None
    seen_from: datetime | None = None
    seen_before: datetime | None = None
    bbox: tuple[float, float, float, float] | None = None

    @property
    def by_cells(self) -> bool:
        """Whether the site cells can answer it (they count per status and class only)."""
        return (
            self.priority_min is None
            and self.priority_max is None
            and self.seen_from is None
            and (self.seen_before is None and self.bbox is None)
        )


@dataclass(frozen=True)
class CellState:
    """What ``plan_cells`` decides on: when the cells were built, damage_site's change counter then and now
    (PostgreSQL's statistics: rows inserted, updated and deleted), and the planner's estimate of its rows."""

    built_at: datetime | None
    changes_then: int | None
    changes_now: int
    sites: float


@dataclass(frozen=True)
class CellPlan:
    use: bool  # group from site_tile_cell (else live from damage_site)
    refresh: bool  # rebuild the cells (in the background)


def cell_state(session: Session) -> CellState:
    row = session.execute(_CELL_STATE_SQL).one()
    return CellState(row.built_at, row.changes_then, int(row.changes_now or 0), float(row.sites))


def plan_cells(
    state: CellState,
    now: datetime,
    min_sites: float = CELLS_MIN_SITES,
    refresh_s: float = CELLS_REFRESH_S,
    max_age_s: float = CELLS_MAX_AGE_S,
) -> CellPlan:
    """Read the cells when the city is large and they are recent; rebuild them when sites changed since
    and they are older than ``refresh_s`` (so they lag the sites by at most about that)."""
    if state.sites < min_sites:
        return CellPlan(use=False, refresh=False)
    if state.built_at is None:
        return CellPlan(use=False, refresh=True)
    age = (now - state.built_at).total_seconds()
    changed = state.changes_now != state.changes_then
    return CellPlan(use=age <= max_age_s or not changed, refresh=changed and age > refresh_s)


def refresh_cells(session: Session, now: datetime) -> bool:
    """Rebuild ``site_tile_cell`` from the sites (in the caller's transaction; readers keep seeing the old
    cells until it commits). False when another session is rebuilding them already."""
    if not session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK_KEY}).scalar():
        return False
    changes = cell_state(session).changes_now  # before reading the sites: later changes trigger the next one
    session.execute(text("DELETE FROM site_tile_cell"))
    session.execute(_CELLS_FROM_SITES, {"z": CELL_MAX_ZOOM, "cells": CELLS_PER_TILE * 2**CELL_MAX_ZOOM})
    for z in range(CELL_MAX_ZOOM - 1, -1, -1):
        session.execute(_CELLS_FROM_FINER, {"z": z})
    session.execute(_CELLS_BUILT, {"now": now, "changes": changes})
    return True


def site_tile(
    session: Session, z: int, x: int, y: int, where: SiteTileFilter | None = None, cells: bool = False
) -> bytes:
    """The MVT of tile z/x/y (layer ``sites``) of the sites ``where`` selects; empty bytes when none lies
    in it. ``cells``: group from ``site_tile_cell`` (up to ``CELL_MAX_ZOOM``, for filters ``by_cells``
    only; see ``plan_cells``)."""
    _check(z, x, y)
    where = where or SiteTileFilter()
    west, south, east, north = tile_bounds(z, x, y)
    if where.bbox is not None:  # the list's area: only the part of the tile inside it
        west, south = max(west, where.bbox[0]), max(south, where.bbox[1])
        east, north = min(east, where.bbox[2]), min(north, where.bbox[3])
        if west > east or south > north:
            return b""
    params: dict[str, Any] = {
        "west": west,
        "south": south,
        "east": east,
        "north": north,
        "n": float(2**z),
        "x": x,
        "y": y,
        "extent": EXTENT,
        "statuses": list(where.statuses) or None,
        "classes": list(where.classes) or None,
        "priority_min": where.priority_min,
        "priority_max": where.priority_max,
        "seen_from": where.seen_from,
        "seen_before": where.seen_before,
    }
    if cells and z <= CELL_MAX_ZOOM and where.by_cells:
        sql = CELLS_SQL
        params |= {"z": z, "cx0": x * CELLS_PER_TILE, "cx1": x * CELLS_PER_TILE + CELLS_PER_TILE - 1}
        params |= {"cy0": y * CELLS_PER_TILE, "cy1": y * CELLS_PER_TILE + CELLS_PER_TILE - 1}
    else:
        sql = DETAIL_SQL if z >= DETAIL_ZOOM else CLUSTER_SQL
    tile = session.execute(sql, params).scalar()
    return bytes(tile or b"")


@dataclass(frozen=True)
class SectionTileFilter:
    """The streets page's section filters: street name (any case), function class, grade classes, graded
    from a pass on or after a day, not surveyed since a day (no usable pass on or after it, never surveyed
    included). Days start at midnight in the service's time zone."""

    street: str = ""
    highway: str = ""
    colours: tuple[str, ...] = ()
    surveyed_since: date | None = None
    not_surveyed_since: date | None = None

    @classmethod
    def parse(
        cls,
        street: str | None = None,
        highway: str | None = None,
        colour: str | list[str] | None = None,
        surveyed_since: str | None = None,
        not_surveyed_since: str | None = None,
    ) -> SectionTileFilter:
        """The filters from the query parameters of ``/streets`` (InvalidInput for a bad one)."""
        return cls(
            street=(street or "").strip(),
            highway=(highway or "").strip(),
            colours=tuple(parse_choices(colour, COLOUR_CLASSES, "colour")),
            surveyed_since=parse_date(surveyed_since, "surveyed_since"),
            not_surveyed_since=parse_date(not_surveyed_since, "not_surveyed_since"),
        )

    @property
    def by_grade(self) -> bool:
        """Whether a filter needs the sections' grades (the query on :func:`graded_sections`)."""
        return bool(self.colours or self.surveyed_since)

    def apply(self, query: Select[Any]) -> Select[Any]:
        """``query`` narrowed to the sections these filters select (on :func:`graded_sections`, or on
        ``road_section`` alone when not ``by_grade``)."""
        since = datetime.combine(self.surveyed_since, time()).astimezone() if self.surveyed_since else None
        highways = [self.highway] if self.highway else []
        query = filter_sections(
            query, street=self.street, highways=highways, colours=self.colours, surveyed_since=since
        )
        if self.not_surveyed_since:
            cutoff = datetime.combine(self.not_surveyed_since, time()).astimezone()
            query = query.where(
                ~exists().where(
                    SectionCoverage.section_id == RoadSection.id, SectionCoverage.last_usable_at >= cutoff
                )
            )
        return query


def section_tile(
    session: Session,
    z: int,
    x: int,
    y: int,
    age_class: Callable[[str | None], str],
    period_days: int,
    now: datetime,
    where: SectionTileFilter | None = None,
) -> bytes:
    """The MVT of tile z/x/y (layer ``sections``): each section in it that ``where`` selects, with ``id``,
    ``name``, ``from_name``, ``to_name``, ``highway``, ``grade`` and ``colour_class`` (absent without a
    grade), ``last_usable_pass`` (ISO time; absent when never) and ``age_class``
    (``age_class(last_usable_pass)``). Empty below zoom ``SECTION_MIN_ZOOM`` (a whole city's network is the
    coverage GeoJSON's job)."""
    _check(z, x, y)
    if z < SECTION_MIN_ZOOM:
        return b""
    where = where or SectionTileFilter()
    west, south, east, north = tile_bounds(z, x, y)
    pad = (east - west) * 64 / EXTENT  # the clip buffer of ST_AsMVTGeom
    box = func.ST_MakeEnvelope(west - pad, south - pad, east + pad, north + pad, 4326)
    base = graded_sections() if where.by_grade else select(RoadSection)  # no grade join unless needed
    query = where.apply(base).where(RoadSection.geom.op("&&")(box))
    sections = [
        (r.id, r.length_m)
        for r in session.execute(query.with_only_columns(RoadSection.id, RoadSection.length_m))
    ]
    if not sections:
        return b""
    coverage = section_coverage(session, sections, period_days, now)
    ids = [sid for sid, _ in sections]
    last = [coverage[sid]["last_usable_pass"] for sid in ids]
    params = {"z": z, "x": x, "y": y, "ids": ids, "last": last, "ages": [age_class(v) for v in last]}
    tile = session.execute(SECTION_SQL, params).scalar()
    return bytes(tile or b"")
