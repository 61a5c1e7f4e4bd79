"""Mapbox Vector Tiles of damage sites, encoded by PostGIS (``ST_AsMVT``), for the staff map.

Tiles are Web Mercator (z/x/y as OpenStreetMap). A site's position in the tile is computed from its lon/lat
with the Mercator formula (cheaper than ``ST_Transform`` per row; exact for points) and the tile's lon/lat
rectangle finds the sites on the GiST index. From zoom ``DETAIL_ZOOM`` on, each site is one feature (id,
class, status, priority, citizen_reports); below, sites are grouped per cell of ``CELL`` tile units (16 px
of a 256 px tile) into one feature with ``count`` and the highest ``priority``, so a tile of a whole city
stays small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from service.errors import NotFound

EXTENT = 4096
CELL = 256
DETAIL_ZOOM = 14
MAX_ZOOM = 24
LAYER = "sites"

_FILTERS = """
    FROM damage_site
    WHERE position && ST_MakeEnvelope(:west, :south, :east, :north, 4326)
      AND (CAST(:statuses AS text[]) IS NULL OR status = ANY(CAST(:statuses AS text[])))
      AND (CAST(:classes AS text[]) IS NULL OR class_name = ANY(CAST(:classes AS text[])))
"""
# Tile units of a position: x from longitude, y (downwards) from the Mercator latitude.
_PX = "((ST_X(position) + 180.0) / 360.0 * :n - :x) * :extent"
_PY = "((1.0 - ln(tan(radians(ST_Y(position))) + 1.0 / cos(radians(ST_Y(position)))) / pi()) / 2.0 * :n - :y) * :extent"

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
               round(max(priority)::numeric, 1)::float8 AS priority
        FROM (SELECT {_PX} AS px, {_PY} AS py, priority {_FILTERS}) p
        GROUP BY floor(px / {CELL}), floor(py / {CELL})
    ) q
    """
)


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """The lon/lat rectangle (west, south, east, north) of Web Mercator tile z/x/y."""
    n = 2**z

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360.0 - 180.0, lat(y + 1), (x + 1) / n * 360.0 - 180.0, lat(y)


def site_tile(
    session: Session, z: int, x: int, y: int, statuses: Sequence[str] = (), classes: Sequence[str] = ()
) -> bytes:
    """The MVT of tile z/x/y (layer ``sites``); empty bytes when no site lies in it."""
    if not 0 <= z <= MAX_ZOOM or not (0 <= x < 2**z and 0 <= y < 2**z):
        raise NotFound(f"no tile {z}/{x}/{y}: zoom 0..{MAX_ZOOM}, x and y 0..2^zoom-1")
    west, south, east, north = tile_bounds(z, x, y)
    params = {
        "west": west,
        "south": south,
        "east": east,
        "north": north,
        "n": float(2**z),
        "x": x,
        "y": y,
        "extent": EXTENT,
        "statuses": list(statuses) or None,
        "classes": list(classes) or None,
    }
    tile = session.execute(DETAIL_SQL if z >= DETAIL_ZOOM else CLUSTER_SQL, params).scalar()
    return bytes(tile or b"")
