"""OGC API - Features (read-only) at ``/ogc``, served by tipg (developmentseed/tipg, built on FastAPI) inside
the service: landing page, conformance, collections, items (``bbox``, ``limit``, ``offset`` with next links,
``datetime``, property filters, ``sortby``), single items; GeoJSON in CRS84 and HTML. QGIS, ArcGIS and GDAL
(``OAPIF:``) read it. Collections: ``damage_sites`` (the table), ``work_orders`` and ``road_sections`` (with
the current condition grade and coverage), the latter two views of migration 0010.

tipg reads PostGIS through its own asyncpg pool (opened on the first request, closed with the app), with the
staff's authentication in front (HTTP Basic or the session, viewer role at least; vehicle tokens open nothing).
It would publish every column of every table: the catalog is cut down here to the collections in
``COLLECTIONS`` and, in each, to the columns listed, so nothing else (no personal data) is ever served.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Path, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.engine import make_url
from tipg.collections import Catalog, Collection, pg_get_collection_index
from tipg.database import connection_factory
from tipg.errors import DEFAULT_STATUS_CODES, NotFound, TiPgError
from tipg.factory import OGCFeaturesFactory
from tipg.settings import DatabaseSettings

from service.access.deps import ViewerDep
from service.settings import Settings

PREFIX = "/ogc"
CATALOG_TTL_S = 300.0  # extents (bbox, time span) are re-read at most this often


@dataclass(frozen=True)
class Published:
    """One table or view as an OGC collection: its id, title, key, time column and the columns shown."""

    id: str
    title: str
    description: str
    pk: str
    datetime: str
    columns: tuple[str, ...]


COLLECTIONS: dict[str, Published] = {
    "public.damage_site": Published(
        id="damage_sites",
        title="Damage sites",
        description="Road damage found by the model and decided by staff, with its priority (0..100).",
        pk="public_id",
        datetime="last_seen",
        columns=(
            "public_id",
            "class_name",
            "status",
            "priority",
            "severity",
            "size_m",
            "max_confidence",
            "sightings",
            "n_observations",
            "first_seen",
            "last_seen",
            "ranking_version",
            "citizen_reports",
            "citizen_reported",
            "position",
        ),
    ),
    # Views of migration 0010.
    "public.ogc_work_order": Published(
        id="work_orders",
        title="Work orders",
        description="Sites handed to a road crew as one job, as one MultiPoint of their sites.",
        pk="id",
        datetime="updated_at",
        columns=("id", "title", "crew", "status", "created_at", "updated_at", "n_sites", "geom"),
    ),
    "public.ogc_road_section": Published(
        id="road_sections",
        title="Road sections",
        description="Road sections with their current condition grade (1 good .. 5 bad) and survey coverage.",
        pk="id",
        datetime="graded_at",
        columns=(
            "id",
            "name",
            "highway",
            "surface",
            "importance",
            "from_name",
            "to_name",
            "length_m",
            "grade",
            "grade_status",
            "colour_class",
            "surveyed_share",
            "passes",
            "last_pass",
            "graded_at",
            "geom",
        ),
    ),
}


def published(collections: list[Collection]) -> Catalog:
    """The catalog of ``COLLECTIONS`` only, each with only its listed columns, in the order listed."""
    out: dict[str, Collection] = {}
    for spec_id, spec in COLLECTIONS.items():
        found = [c for c in collections if c.id == spec_id]
        if not found:
            continue
        (col,) = found
        columns = [c for c in col.table_columns if c.name in spec.columns]
        by_name = {c.name: c for c in columns}
        out[spec.id] = col.model_copy(
            update={
                "id": spec.id,
                "title": spec.title,
                "description": spec.description,
                "table_columns": columns,
                "properties": [c for c in columns if not c.is_geometry],
                "id_column": by_name[spec.pk],
                "datetime_column": by_name[spec.datetime],
                "geometry_column": next(c for c in columns if c.is_geometry),
            }
        )
    return Catalog(collections=out, last_updated=datetime.now())


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL (``postgresql+psycopg://...``) as a libpq URL for asyncpg."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class OgcState:
    """tipg's pool and catalog for one app, made on first use (under a lock) and refreshed after a TTL."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.pool: asyncpg.Pool | None = None
        self.read_at = 0.0

    async def ensure(self, app: FastAPI) -> None:
        if self.pool is not None and time.monotonic() - self.read_at < CATALOG_TTL_S:
            return
        async with self.lock:
            if self.pool is None:
                settings: Settings = app.state.settings
                self.pool = await asyncpg.create_pool(
                    asyncpg_dsn(settings.database_url),
                    min_size=1,
                    max_size=4,
                    init=connection_factory(["public"], "pg_temp"),
                )
                app.state.pool = self.pool  # where tipg's endpoints look for it
            if time.monotonic() - self.read_at >= CATALOG_TTL_S:
                db = DatabaseSettings(schemas=["public"], tables=list(COLLECTIONS), only_spatial_tables=True)
                async with self.pool.acquire() as conn:
                    app.state.collection_catalog = published(await pg_get_collection_index(conn, settings=db))
                self.read_at = time.monotonic()

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None


def _state(app: FastAPI) -> OgcState:
    state = getattr(app.state, "ogc", None)
    if state is None:
        state = app.state.ogc = OgcState()
    return state


async def ready(request: Request, user: ViewerDep) -> None:
    """Staff only (viewer role at least), then tipg's pool and catalog."""
    await _state(request.app).ensure(request.app)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await _state(app).close()


class OgcRoute(APIRoute):
    """tipg's errors (bad bbox, datetime, unknown collection or item) as JSON with tipg's status codes, and
    values PostgreSQL refuses as 400."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except TiPgError as exc:
                code = next(c for cls, c in DEFAULT_STATUS_CODES.items() if isinstance(exc, cls))
                return JSONResponse({"code": type(exc).__name__, "description": str(exc)}, status_code=code)
            except asyncpg.DataError as exc:  # a value PostgreSQL cannot read (an item id that is no UUID)
                return JSONResponse(
                    {"code": "InvalidParameterValue", "description": str(exc)}, status_code=400
                )
            except ValueError as exc:  # tipg parsing a malformed query (bbox=':'; found by schemathesis)
                return JSONResponse(
                    {"code": "InvalidParameterValue", "description": str(exc)}, status_code=400
                )

        return handle


def collection_param(
    request: Request, collectionId: Annotated[str, Path(description="Collection identifier")]
) -> Collection:
    """The published collection ``collectionId`` (tipg's own wants ``schema.table`` ids)."""
    catalog: Catalog = request.app.state.collection_catalog
    found = catalog["collections"].get(collectionId)
    if found is None:
        raise NotFound(f"no collection {collectionId!r}; there are {', '.join(catalog['collections'])}")
    return found


features = OGCFeaturesFactory(
    router=APIRouter(route_class=OgcRoute),
    collection_dependency=collection_param,
    router_prefix=PREFIX,
    title="Roadwatch OGC API - Features",
)
router = APIRouter(
    prefix=PREFIX, tags=["OGC API - Features"], dependencies=[Depends(ready)], lifespan=lifespan
)
router.include_router(features.router)
