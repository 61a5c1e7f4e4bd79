"""Downloads of sites and work orders as CSV and GeoJSON, streamed, for the API and the web app alike.

One CSV writer for every export: text a spreadsheet would run as a formula gets a leading quote.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.responses import StreamingResponse

from service.db.sites import site_feature, site_row
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
