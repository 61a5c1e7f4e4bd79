"""Filters of the staff list (class, status, priority, date, area) and site exports (CSV, GeoJSON)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from geoalchemy2.shape import to_shape
from sqlalchemy import Select, func

from service.api.sites import CLASSES, CSV_FIELDS, site_feature, site_properties
from service.db.tables import SITE_STATUSES, DamageSite

# What a fresh list shows: what still needs someone (rejected and repaired sites are one click away).
DEFAULT_STATUSES = ("open", "confirmed", "scheduled")


def _number(raw: str | None, name: str) -> float | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw.replace(",", "."))
    except ValueError as exc:
        raise HTTPException(422, f"{name} must be a number, got {raw!r}") from exc
    if not 0 <= value <= 100:
        raise HTTPException(422, f"{name} must be in 0..100, got {raw!r}")
    return value


def _date(raw: str | None, name: str) -> date | None:
    if raw is None or not raw.strip():
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError as exc:
        raise HTTPException(422, f"{name} must be a date YYYY-MM-DD, got {raw!r}") from exc


def _bbox(raw: str | None) -> tuple[float, float, float, float] | None:
    if raw is None or not raw.strip():
        return None
    try:
        v = [float(x) for x in raw.split(",")]
    except ValueError:
        v = []
    if len(v) != 4 or v[0] >= v[2] or v[1] >= v[3]:
        raise HTTPException(422, f"area must be min_lon,min_lat,max_lon,max_lat with min < max, got {raw!r}")
    return v[0], v[1], v[2], v[3]


def _choices(raw: list[str] | None, allowed: tuple[str, ...], name: str) -> list[str]:
    values = [v.strip() for item in raw or [] for v in item.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad:
        raise HTTPException(422, f"{name} must be among {', '.join(allowed)}, got {', '.join(bad)}")
    return values


class WebSiteFilter:
    """Query parameters of the list, its map and its exports. ``applied=1`` marks a submitted form;
    without it (a fresh visit) the list shows the statuses that still need someone."""

    def __init__(
        self,
        request: Request,
        class_: Annotated[list[str] | None, Query(alias="class")] = None,
        status: Annotated[list[str] | None, Query()] = None,
        priority_min: str | None = None,
        priority_max: str | None = None,
        seen_from: str | None = None,
        seen_to: str | None = None,
        bbox: str | None = None,
        applied: str | None = None,
    ) -> None:
        self.classes = _choices(class_, CLASSES, "class")
        self.statuses = _choices(status, SITE_STATUSES, "status")
        if not applied and not self.statuses:
            self.statuses = list(DEFAULT_STATUSES)
        self.priority_min = _number(priority_min, "priority_min")
        self.priority_max = _number(priority_max, "priority_max")
        self.seen_from = _date(seen_from, "seen_from")
        self.seen_to = _date(seen_to, "seen_to")
        self.bbox = _bbox(bbox)
        self.bbox_raw = ",".join(f"{x:.6f}" for x in self.bbox) if self.bbox else ""
        self.tz = ZoneInfo(request.app.state.settings.display_timezone)

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.classes:
            query = query.where(DamageSite.class_name.in_(self.classes))
        if self.statuses:
            query = query.where(DamageSite.status.in_(self.statuses))
        if self.priority_min is not None:
            query = query.where(DamageSite.priority >= self.priority_min)
        if self.priority_max is not None:
            query = query.where(DamageSite.priority <= self.priority_max)
        if self.seen_from is not None:  # days in the municipality's time zone
            query = query.where(DamageSite.last_seen >= datetime.combine(self.seen_from, time(), self.tz))
        if self.seen_to is not None and self.seen_to < date.max:  # date.max + 1 day overflows: no bound
            end = datetime.combine(self.seen_to + timedelta(days=1), time(), self.tz)
            query = query.where(DamageSite.last_seen < end)
        if self.bbox:
            query = query.where(DamageSite.position.op("&&")(func.ST_MakeEnvelope(*self.bbox, 4326)))
        return query

    def params(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = [("applied", "1")]
        out += [("class", c) for c in self.classes] + [("status", s) for s in self.statuses]
        for name in ("priority_min", "priority_max"):
            value = getattr(self, name)
            if value is not None:
                out.append((name, f"{value:g}"))
        for name in ("seen_from", "seen_to"):
            value = getattr(self, name)
            if value is not None:
                out.append((name, value.isoformat()))
        if self.bbox:
            out.append(("bbox", self.bbox_raw))
        return out

    def query_string(self, **extra: Any) -> str:
        return urlencode(self.params() + [(k, str(v)) for k, v in extra.items()])


def _no_formula(value: Any) -> Any:
    """Text a spreadsheet would run as a formula (starting with = + - @) gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_response(rows: Iterable[dict[str, Any]], fields: list[str], filename: str) -> StreamingResponse:
    def chunks() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _no_formula(v) for k, v in row.items()})
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
        yield buf.getvalue()

    return StreamingResponse(
        chunks(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def site_row(site: DamageSite, **extra: Any) -> dict[str, Any]:
    p = to_shape(site.position)
    return {**site_properties(site), "lat": round(p.y, 7), "lon": round(p.x, 7), **extra}


def geojson_response(features: Iterable[dict[str, Any]], filename: str, **members: Any) -> StreamingResponse:
    def chunks() -> Iterator[str]:
        head = json.dumps({"type": "FeatureCollection", **members})[:-1]
        yield head + ', "features": ['
        for i, feature in enumerate(features):
            yield ("," if i else "") + json.dumps(feature)
        yield "]}"

    return StreamingResponse(
        chunks(),
        media_type="application/geo+json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def site_features(sites: Iterable[DamageSite], **extra: Any) -> Iterator[dict[str, Any]]:
    for site in sites:
        feature = site_feature(site)
        feature["properties"].update(extra)
        yield feature


__all__ = ["CSV_FIELDS", "WebSiteFilter", "csv_response", "geojson_response", "site_features", "site_row"]
