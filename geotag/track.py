"""GPS tracks from dashcams (GPX or NMEA logs, read with gpxpy and pynmea2) and positions between
their fixes. Bad track lines are skipped and counted; a file with no usable fix is a ``TrackError``.
"""

from __future__ import annotations

import bisect
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import gpxpy
import gpxpy.gpx
import pynmea2

from geotag.earth import bearing_deg, haversine_m

log = logging.getLogger(__name__)

KNOT_MS = 1852.0 / 3600.0
SPEED_REF_MS = {"K": 1000.0 / 3600.0, "M": 1609.344 / 3600.0, "N": KNOT_MS}
_NMEA_LINE = re.compile(r"^\s*\$G[A-Z]", re.MULTILINE)


class TrackError(ValueError):
    """A track file could not be understood as GPX or NMEA, or held no usable fix."""


@dataclass(frozen=True)
class Fix:
    """One GPS position. `time` is tz-aware UTC, `heading` degrees clockwise from north, `speed` m/s."""

    lat: float
    lon: float
    time: datetime
    heading: float | None = None
    speed: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lat) and -90.0 <= self.lat <= 90.0):
            raise ValueError(f"lat: expected a number in -90..90, got {self.lat!r}")
        if not (math.isfinite(self.lon) and -180.0 <= self.lon <= 180.0):
            raise ValueError(f"lon: expected a number in -180..180, got {self.lon!r}")
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError(f"time: expected a tz-aware datetime, got naive {self.time!r}")
        if self.time.tzinfo is not UTC:
            object.__setattr__(self, "time", self.time.astimezone(UTC))
        if self.heading is not None:
            if not math.isfinite(self.heading):
                raise ValueError(f"heading: expected a finite number of degrees, got {self.heading!r}")
            object.__setattr__(self, "heading", self.heading % 360.0)
        if self.speed is not None and not (math.isfinite(self.speed) and self.speed >= 0.0):
            raise ValueError(f"speed: expected a finite number >= 0 m/s, got {self.speed!r}")


class Track(list[Fix]):
    """Fixes sorted by time; `skipped` counts input lines/points that were unusable and left out."""

    def __init__(self, fixes: Iterable[Fix] = (), skipped: int = 0) -> None:
        super().__init__(sorted({f.time: f for f in fixes}.values(), key=lambda f: f.time))
        self.skipped = skipped
        if skipped:
            log.warning("track: skipped %d unusable lines/points", skipped)


def parse_gpx(text: str) -> Track:
    """Track and route points of a GPX document; points without time or valid position are skipped."""
    try:
        doc = gpxpy.parse(text)
    except gpxpy.gpx.GPXException as exc:
        raise TrackError(f"expected a GPX document, got unparsable XML: {exc}") from exc
    points: list[Any] = [p for t in doc.tracks for s in t.segments for p in s.points]
    points += [p for r in doc.routes for p in r.points]
    fixes, skipped = [], 0
    for p in points:
        try:
            when = p.time if p.time.tzinfo else p.time.replace(tzinfo=UTC)
            fixes.append(Fix(float(p.latitude), float(p.longitude), when, p.course, p.speed))
        except (AttributeError, TypeError, ValueError):
            skipped += 1
    return Track(fixes, skipped)


def parse_nmea(text: str) -> Track:
    """Fixes from RMC and GGA sentences (any $G? talker); other sentence types are ignored.

    RMC gives date, time, position, speed (knots) and course. GGA gives only a time of day, so it takes the
    date of the last RMC seen (rolling over midnight); GGA before any RMC is skipped. When RMC and GGA share
    a time the RMC fix wins. Void RMC, no-fix GGA and lines failing to parse or checksum count as skipped.
    """
    by_time: dict[datetime, tuple[bool, Fix]] = {}
    skipped = 0
    last_rmc: datetime | None = None
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        try:
            msg = pynmea2.parse(line)
            if msg.sentence_type == "RMC":
                if msg.status != "A":
                    raise ValueError("void RMC")
                when = datetime.combine(msg.datestamp, msg.timestamp).replace(tzinfo=UTC)
                speed = float(msg.spd_over_grnd) * KNOT_MS if msg.spd_over_grnd not in (None, "") else None
                course = float(msg.true_course) if msg.true_course not in (None, "") else None
                by_time[when] = (True, Fix(msg.latitude, msg.longitude, when, course, speed))
                last_rmc = when
            elif msg.sentence_type == "GGA":
                if last_rmc is None or not int(msg.gps_qual or 0):
                    raise ValueError("GGA without fix or before any RMC date")
                when = datetime.combine(last_rmc.date(), msg.timestamp).replace(tzinfo=UTC)
                if when < last_rmc - timedelta(hours=12):
                    when += timedelta(days=1)
                if when not in by_time or not by_time[when][0]:
                    by_time[when] = (False, Fix(msg.latitude, msg.longitude, when))
        except (pynmea2.ParseError, AttributeError, TypeError, ValueError):
            skipped += 1
    return Track((f for _, f in by_time.values()), skipped)


def parse_track(data: bytes, filename: str) -> Track:
    """Parse an uploaded track, choosing GPX or NMEA by content (`filename` only names it in errors).

    Raises TrackError when the content is neither format or when no usable fix was found.
    """
    text = data.decode("utf-8-sig", errors="replace")
    if "<gpx" in text[:4096].lower():
        try:
            track = parse_gpx(text)
        except TrackError as exc:
            raise TrackError(f"{filename}: {exc}") from exc
    elif _NMEA_LINE.search(text):
        track = parse_nmea(text)
    else:
        head = text[:40].strip()
        raise TrackError(f"{filename}: expected GPX (<gpx) or NMEA sentences ($GP/$GN), got {head!r}")
    if not track:
        raise TrackError(f"{filename}: expected at least one usable fix, got none ({track.skipped} skipped)")
    return track


def _mean_heading(a: float | None, b: float | None, frac: float) -> float | None:
    if a is None or b is None:
        return a if b is None else b
    delta = (b - a + 180.0) % 360.0 - 180.0
    return (a + frac * delta) % 360.0


def interpolate(
    track: list[Fix], when: datetime, max_gap_s: float = 30.0, clock_offset_s: float = 0.0
) -> Fix | None:
    """Position at photo time `when` from a time-sorted track.

    The track is looked up at `when + clock_offset_s` (the offset corrects the camera clock to GPS time);
    the returned Fix carries that corrected time. Latitude/longitude are linear between the surrounding
    fixes (across the antimeridian too). Returns None outside the track or when those fixes are more than
    `max_gap_s` apart. Heading is the bearing between them when they are > 1 m apart, else the fixes' own
    (interpolated on the circle). Speed is interpolated from the fixes, else distance / time between them.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"when: expected a tz-aware datetime, got naive {when!r}")
    t = when.astimezone(UTC) + timedelta(seconds=clock_offset_s)
    i = bisect.bisect_left(track, t, key=lambda f: f.time)
    if i < len(track) and track[i].time == t:
        return track[i]
    if i == 0 or i == len(track):
        return None
    a, b = track[i - 1], track[i]
    gap = (b.time - a.time).total_seconds()
    if gap > max_gap_s:
        return None
    frac = (t - a.time).total_seconds() / gap
    dlon = (b.lon - a.lon + 180.0) % 360.0 - 180.0
    lon = (a.lon + frac * dlon + 180.0) % 360.0 - 180.0
    lat = a.lat + frac * (b.lat - a.lat)
    dist = haversine_m(a.lat, a.lon, b.lat, b.lon)
    if dist > 1.0:
        heading: float | None = bearing_deg(a.lat, a.lon, b.lat, b.lon)
    else:
        heading = _mean_heading(a.heading, b.heading, frac)
    if a.speed is not None and b.speed is not None:
        speed: float | None = a.speed + frac * (b.speed - a.speed)
    else:
        speed = a.speed if a.speed is not None else (b.speed if b.speed is not None else dist / gap)
    return Fix(lat, lon, t, heading, speed)
