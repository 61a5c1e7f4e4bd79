"""Downloads of sites and work orders as CSV and GeoJSON, streamed, for the API and the web app alike.

One CSV writer for every export: text a spreadsheet would run as a formula gets a leading quote.
GeoPackages (``sites_gpkg``, ``order_gpkg``, ``sections_gpkg``) are written by pyogrio (GDAL) into a temporary
file that is deleted once sent: EPSG:4326 points, times as DateTime, numbers as Real or Integer.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC
from typing import Any

import numpy as np
import pyogrio.raw
from fastapi.responses import FileResponse, StreamingResponse
from geoalchemy2.shape import to_shape
from starlette.background import BackgroundTask

from service.db.grades import SectionGrade
from service.db.road_tables import RoadSection
from service.db.sites import site_feature, site_properties, site_row
from service.db.tables import DamageSite, WorkOrder
from service.db.work_orders import order_sites

CSV_FIELDS = [
    "id",
    "class",
    "status",
    "priority",
    "severity",
    "size_m",
    "max_confidence",
    "sightings",
    "first_seen",
    "last_seen",
    "lat",
    "lon",
    "street",
    "from_street",
    "to_street",
    "section_id",
    "low_trust",
    "ranking_version",
]
ORDER_FIELDS = ["order_id", "order_title", "crew", "order_status", "order_position", *CSV_FIELDS]


def no_formula(value: Any) -> Any:
    """Text a spreadsheet would run as a formula (starting with = + - @) gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


def csv_response(rows: Iterable[dict[str, Any]], fields: list[str], filename: str) -> StreamingResponse:
    """``rows`` as a CSV download with the columns ``fields`` (others are left out)."""

    def chunks() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: no_formula(v) for k, v in row.items()})
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
        yield buf.getvalue()

    return StreamingResponse(chunks(), media_type="text/csv; charset=utf-8", headers=_attachment(filename))


def geojson_response(features: Iterable[dict[str, Any]], filename: str, **members: Any) -> StreamingResponse:
    """``features`` as a GeoJSON FeatureCollection download, with extra top-level ``members``."""

    def chunks() -> Iterator[str]:
        head = json.dumps({"type": "FeatureCollection", **members})[:-1]
        yield head + ', "features": ['
        for i, feature in enumerate(features):
            yield ("," if i else "") + json.dumps(feature)
        yield "]}"

    return StreamingResponse(chunks(), media_type="application/geo+json", headers=_attachment(filename))


def site_features(sites: Iterable[DamageSite], **extra: Any) -> Iterator[dict[str, Any]]:
    """Sites as GeoJSON features, ``extra`` added to each one's properties."""
    for site in sites:
        feature = site_feature(site)
        feature["properties"].update(extra)
        yield feature


def sites_csv(sites: Iterable[DamageSite], filename: str = "sites.csv") -> StreamingResponse:
    return csv_response((site_row(s) for s in sites), CSV_FIELDS, filename)


def sites_geojson(sites: Iterable[DamageSite], filename: str = "sites.geojson") -> StreamingResponse:
    return geojson_response(site_features(sites), filename)


def order_extra(order: WorkOrder) -> dict[str, Any]:
    """The order's columns in each row of its export."""
    return {
        "order_id": order.id,
        "order_title": order.title,
        "crew": order.crew,
        "order_status": order.status,
    }


def order_csv(order: WorkOrder) -> StreamingResponse:
    rows = [site_row(s, order_position=i, **order_extra(order)) for i, s in enumerate(order_sites(order), 1)]
    return csv_response(rows, ORDER_FIELDS, f"work-order-{order.id}.csv")


def order_geojson(order: WorkOrder) -> StreamingResponse:
    features = list(site_features(order_sites(order), **order_extra(order)))
    return geojson_response(features, f"work-order-{order.id}.geojson", work_order=order_extra(order))


# GeoPackage columns: name -> numpy dtype (GDAL field type: object String, float64 Real, int32 Integer,
# datetime64 DateTime in UTC).
GPKG_SITE_FIELDS: dict[str, str] = {
    "id": "object",
    "class": "object",
    "status": "object",
    "priority": "float64",
    "severity": "object",
    "size_m": "float64",
    "max_confidence": "float64",
    "sightings": "int32",
    "observations": "int32",
    "first_seen": "datetime64[ms]",
    "last_seen": "datetime64[ms]",
    "ranking_version": "object",
    "street": "object",
    "from_street": "object",
    "to_street": "object",
    "section_id": "object",
}
GPKG_ORDER_FIELDS: dict[str, str] = {
    "order_id": "int32",
    "order_title": "object",
    "crew": "object",
    "order_status": "object",
    "order_position": "int32",
    **GPKG_SITE_FIELDS,
}
GPKG_SECTION_FIELDS: dict[str, str] = {
    "id": "object",
    "name": "object",
    "highway": "object",
    "surface": "object",
    "importance": "float64",
    "from_name": "object",
    "to_name": "object",
    "length_m": "float64",
    # The current condition grade (service/db/grades.py), empty where the section has none yet.
    "grade": "float64",
    "grade_status": "object",
    "colour_class": "object",
    "surveyed_share": "float64",
    "passes": "int32",
    "last_pass": "datetime64[ms]",
    "graded_at": "datetime64[ms]",
}
GPKG_MEDIA_TYPE = "application/geopackage+sqlite3"


def _gpkg_column(values: list[Any], dtype: str) -> tuple[Any, Any]:
    """One column as a numpy array of ``dtype`` and its mask of missing values (None: none missing)."""
    missing = np.array([v is None for v in values], dtype=bool)
    if dtype == "float64":  # NaN is written as NULL
        return np.array([np.nan if v is None else v for v in values], dtype=dtype), None
    if dtype == "int32":
        filled = [0 if v is None else v for v in values]
    elif dtype.startswith("datetime64"):
        filled = [
            np.datetime64("NaT") if v is None else np.datetime64(v.astimezone(UTC).replace(tzinfo=None), "ms")
            for v in values
        ]
    else:
        filled = values
    return np.array(filled, dtype=dtype), (missing if missing.any() else None)


def gpkg_response(
    rows: Iterable[tuple[Any, dict[str, Any]]],
    fields: dict[str, str],
    layer: str,
    geometry_type: str,
    filename: str,
) -> FileResponse:
    """``rows`` (a shapely-convertible geometry column value and the row's fields) as a GeoPackage download
    with one layer ``layer``; the temporary file is deleted after the response is sent."""
    wkb: list[bytes] = []
    columns: dict[str, list[Any]] = {name: [] for name in fields}
    for geom, row in rows:
        wkb.append(to_shape(geom).wkb)
        for name in fields:
            columns[name].append(row.get(name))
    field_data, masks = zip(*(_gpkg_column(columns[n], dtype) for n, dtype in fields.items()), strict=True)
    fd, path = tempfile.mkstemp(prefix="roadwatch-", suffix=".gpkg")
    os.close(fd)
    os.unlink(path)  # GDAL creates the file; an empty one is not a GeoPackage
    try:
        pyogrio.raw.write(
            path,
            np.array(wkb, dtype=object),
            list(field_data),
            list(fields),
            field_mask=list(masks),
            layer=layer,
            driver="GPKG",
            geometry_type=geometry_type,
            crs="EPSG:4326",
        )
    except BaseException:
        if os.path.exists(path):
            os.unlink(path)
        raise
    return FileResponse(
        path,
        media_type=GPKG_MEDIA_TYPE,
        filename=filename,
        background=BackgroundTask(os.unlink, path),
    )


def _site_gpkg_row(site: DamageSite, **extra: Any) -> tuple[Any, dict[str, Any]]:
    row = {**site_properties(site), "first_seen": site.first_seen, "last_seen": site.last_seen, **extra}
    return site.position, row


def sites_gpkg(sites: Iterable[DamageSite], filename: str = "sites.gpkg") -> FileResponse:
    return gpkg_response(
        (_site_gpkg_row(s) for s in sites), GPKG_SITE_FIELDS, "damage_sites", "Point", filename
    )


def order_gpkg(order: WorkOrder) -> FileResponse:
    rows = (
        _site_gpkg_row(s, order_position=i, **order_extra(order)) for i, s in enumerate(order_sites(order), 1)
    )
    return gpkg_response(
        rows, GPKG_ORDER_FIELDS, f"work_order_{order.id}", "Point", f"work-order-{order.id}.gpkg"
    )


def _section_row(section: RoadSection, grade: SectionGrade | None) -> tuple[Any, dict[str, Any]]:
    row = {name: getattr(section, name) for name in GPKG_SECTION_FIELDS if hasattr(RoadSection, name)}
    if grade is not None:
        row |= {
            "grade": grade.grade,
            "grade_status": grade.status,
            "colour_class": grade.colour_class,
            "surveyed_share": grade.surveyed_share,
            "passes": grade.passes,
            "last_pass": grade.last_pass,
            "graded_at": grade.computed_at,
        }
    return section.geom, row


def sections_gpkg(
    sections: Iterable[tuple[RoadSection, SectionGrade | None]], filename: str = "road-sections.gpkg"
) -> FileResponse:
    """Sections with their current grade (None: not graded yet) as a GeoPackage (layer road_sections)."""
    rows = (_section_row(section, grade) for section, grade in sections)
    return gpkg_response(rows, GPKG_SECTION_FIELDS, "road_sections", "LineString", filename)
