"""Vector tiles of damage sites for the staff map: ``GET /tiles/sites/{z}/{x}/{y}.pbf`` (Mapbox Vector Tile,
layer ``sites``; viewer role), with the list's ``status`` and ``class`` filters. See ``service/db/tiles.py``.

Grouped tiles (below zoom 14) cover much of the city each, cost a scan of all its sites and change little:
they are kept for ``CACHE_TTL_S`` per app (the browser keeps every tile that long too: ``max-age``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request, Response

from service.access.deps import SessionDep, ViewerDep
from service.db.tiles import DETAIL_ZOOM, site_tile
from service.domain.classes import CLASSES
from service.domain.params import parse_choices
from service.domain.statuses import SITE_STATUSES

MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
CACHE_TTL_S = 60.0
CACHE_TILES = 512
TileKey = tuple[int, int, int, tuple[str, ...], tuple[str, ...]]


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


def tile_cache(app: FastAPI) -> TileCache:
    cache = getattr(app.state, "tile_cache", None)
    if cache is None:
        cache = app.state.tile_cache = TileCache()
    return cache


router = APIRouter(prefix="/tiles", tags=["read"])


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
    status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
    class_: Annotated[str | None, Query(alias="class", description="comma-separated classes")] = None,
) -> Response:
    statuses = parse_choices(status, SITE_STATUSES, "status")
    classes = parse_choices(class_, CLASSES, "class")
    key = (z, x, y, tuple(sorted(statuses)), tuple(sorted(classes)))
    cache = tile_cache(request.app) if z < DETAIL_ZOOM else None
    tile = cache.get(key) if cache else None
    if tile is None:
        tile = site_tile(session, z, x, y, statuses, classes)
        if cache:
            cache.put(key, tile)
    return Response(tile, media_type=MVT_MEDIA_TYPE, headers={"Cache-Control": "private, max-age=60"})
