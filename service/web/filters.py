"""Filters of the staff list (class, status, priority, date, area), its map and its exports."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Query, Request
from sqlalchemy import Select, func

from service.db.tables import DamageSite
from service.domain.classes import CLASSES
from service.domain.params import parse_bbox, parse_choices, parse_date, parse_number
from service.domain.statuses import SITE_NEEDS_ACTION, SITE_STATUSES

# What a fresh list shows: what still needs someone (rejected and repaired sites are one click away).
DEFAULT_STATUSES = SITE_NEEDS_ACTION


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
        self.classes = parse_choices(class_, CLASSES, "class")
        self.statuses = parse_choices(status, SITE_STATUSES, "status")
        if not applied and not self.statuses:
            self.statuses = list(DEFAULT_STATUSES)
        self.priority_min = parse_number(priority_min, "priority_min")
        self.priority_max = parse_number(priority_max, "priority_max")
        self.seen_from = parse_date(seen_from, "seen_from")
        self.seen_to = parse_date(seen_to, "seen_to")
        self.bbox = parse_bbox(bbox, "area")
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
