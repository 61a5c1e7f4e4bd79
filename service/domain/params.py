"""Parsing of parameters shared by the JSON API, the web app and the uploads: one rule each for an area
(bbox), a list of choices, a number in a range, a date and a timestamp."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

from service.errors import InvalidInput

BBox = tuple[float, float, float, float]


def parse_bbox(raw: str | None, name: str = "bbox") -> BBox | None:
    """``min_lon,min_lat,max_lon,max_lat`` (min < max) or None when empty."""
    if raw is None or not raw.strip():
        return None
    try:
        v = [float(x) for x in raw.split(",")]
    except ValueError:
        v = []
    if len(v) != 4 or not all(abs(x) < float("inf") for x in v) or v[0] >= v[2] or v[1] >= v[3]:
        raise InvalidInput(
            f"{name} must be 4 numbers min_lon,min_lat,max_lon,max_lat with min < max, got {raw!r}"
        )
    return v[0], v[1], v[2], v[3]


def parse_choices(raw: str | Iterable[str] | None, allowed: Iterable[str], name: str) -> list[str]:
    """Comma-separated values (one string or several), each one of ``allowed``."""
    items = [raw] if isinstance(raw, str) else list(raw or [])
    values = [v.strip() for item in items for v in item.split(",") if v.strip()]
    allowed = tuple(allowed)
    bad = [v for v in values if v not in allowed]
    if bad:
        raise InvalidInput(f"{name} must be among {', '.join(allowed)}, got {', '.join(bad)}")
    return values


def parse_number(raw: str | None, name: str, low: float = 0.0, high: float = 100.0) -> float | None:
    """A number in ``low..high`` (a decimal comma is accepted) or None when empty."""
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw.replace(",", "."))
    except ValueError as exc:
        raise InvalidInput(f"{name} must be a number, got {raw!r}") from exc
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be in {low:g}..{high:g}, got {raw!r}")
    return value


def parse_date(raw: str | None, name: str) -> date | None:
    """A date ``YYYY-MM-DD`` or None when empty."""
    if raw is None or not raw.strip():
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError as exc:
        raise InvalidInput(f"{name} must be a date YYYY-MM-DD, got {raw!r}") from exc


def parse_timestamp(value: object, *, naive_is_utc: bool = False) -> datetime | None:
    """An ISO 8601 time (``Z`` allowed) as an aware datetime; None when empty. The one time-zone rule:
    a time without a zone is refused (ValueError), unless the source is known to speak UTC
    (``naive_is_utc``: Label Studio's own timestamps)."""
    if isinstance(value, datetime):
        parsed = value
    elif not value:
        return None
    else:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        if not naive_is_utc:
            raise ValueError(f"captured_at must carry a time zone, got {value!r}")
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
