"""Where and when a dashcam photo was taken.

A detection is only useful to a municipality once it is tied to a place on the road network. Photos carry
that place in one of two ways: GPS tags in the JPEG's EXIF, or a separate track (GPX or NMEA log) from the
dashcam whose clock must be matched against the photo's capture time. This module reads both with
maintained libraries (Pillow, gpxpy, pynmea2) and never lets a malformed upload crash the pipeline: EXIF
problems become warnings, bad track lines are skipped and counted.
"""

from __future__ import annotations

import bisect
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from io import BytesIO
from typing import Any

import gpxpy
import gpxpy.gpx
import pynmea2
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean Earth radius
KNOT_MS = 1852.0 / 3600.0
_SPEED_REF_MS = {"K": 1000.0 / 3600.0, "M": 1609.344 / 3600.0, "N": KNOT_MS}
_GPS_IFD, _EXIF_IFD = 0x8825, 0x8769
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


@dataclass
class ExifInfo:
    """What a photo's EXIF says about it; every field may be None, `warnings` says why."""

    captured_at: datetime | None = None
    fix: Fix | None = None
    orientation: int | None = None
    warnings: list[str] = field(default_factory=list)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two WGS84 positions (spherical Earth)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2.0 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial bearing from point 1 to point 2, degrees clockwise from north in [0, 360)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip("\x00 ").strip()


def _dms(value: Any) -> float:
    parts = value if isinstance(value, (tuple, list)) else (value,)
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"expected 1-3 rationals (deg, min, sec), got {len(parts)}")
    return sum(float(p) / 60.0**i for i, p in enumerate(parts))


def _exif_datetime(text: Any, offset: Any = None) -> datetime:
    dt = datetime.strptime(_text(text)[:19], "%Y:%m:%d %H:%M:%S")
    tz = UTC
    if offset:
        sign = -1 if _text(offset).startswith("-") else 1
        hh, mm = _text(offset).lstrip("+-").split(":")
        tz = timezone(sign * timedelta(hours=int(hh), minutes=int(mm)))
    return dt.replace(tzinfo=tz).astimezone(UTC)


def _gps_time(gps: dict[int, Any]) -> datetime | None:
    if 7 not in gps or 29 not in gps:
        return None
    h, m, s = (float(x) for x in gps[7])
    day = datetime.strptime(_text(gps[29])[:10], "%Y:%m:%d").replace(tzinfo=UTC)
    return day + timedelta(hours=h, minutes=m, seconds=s)


def _gps_position(gps: dict[int, Any]) -> tuple[float, float]:
    lat, lon = _dms(gps[2]), _dms(gps[4])
    if _text(gps.get(1, "N")).upper() == "S":
        lat = -lat
    if _text(gps.get(3, "E")).upper() == "W":
        lon = -lon
    if not (math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90.0 and abs(lon) <= 180.0):
        raise ValueError(f"expected lat in -90..90 and lon in -180..180, got ({lat}, {lon})")
    return lat, lon


def _optional_float(gps: dict[int, Any], tag: int) -> float | None:
    if tag not in gps:
        return None
    value = float(gps[tag])
    return value if math.isfinite(value) else None


def read_exif(data: bytes) -> ExifInfo:
    """Capture time, GPS fix and orientation from a JPEG's EXIF; never raises.

    Capture time preference: DateTimeOriginal with OffsetTimeOriginal (exact); else the GPS date/time stamp
    (always UTC); else DateTimeOriginal (or IFD0 DateTime) assumed to be UTC, with a warning. The fix uses
    the GPS stamp as its time, falling back to the capture time; a position without any time is dropped
    with a warning because a Fix must have one. Heading is GPSImgDirection, else GPSTrack.
    """
    info = ExifInfo()
    try:
        image = Image.open(BytesIO(data))
        exif = image.getexif()
        gps = dict(exif.get_ifd(_GPS_IFD))
        sub = dict(exif.get_ifd(_EXIF_IFD))
    except UnidentifiedImageError:
        info.warnings.append(f"EXIF unreadable: expected an image, got {len(data)} unrecognised bytes")
        return info
    except Exception as exc:  # Pillow raises many types on hostile input
        info.warnings.append(f"EXIF unreadable: expected valid EXIF, got {type(exc).__name__}: {exc}")
        return info
    if not exif and not gps and not sub:
        corrupt = bool(image.info.get("exif"))
        info.warnings.append(
            "EXIF block present but corrupt or empty" if corrupt else "no EXIF data in image"
        )
        return info
    try:
        orientation = int(exif.get(0x0112, 0))
        info.orientation = orientation if 1 <= orientation <= 8 else None
    except (TypeError, ValueError):
        info.warnings.append(f"Orientation: expected an integer 1..8, got {exif.get(0x0112)!r}")
    gps_time = original = None
    try:
        gps_time = _gps_time(gps)
    except Exception as exc:
        info.warnings.append(f"GPS date/time stamp unreadable: {exc}")
    raw = sub.get(0x9003) or exif.get(0x0132)
    try:
        if raw:
            original = _exif_datetime(raw, sub.get(0x9011))
    except Exception as exc:
        info.warnings.append(f"DateTimeOriginal: expected 'YYYY:MM:DD HH:MM:SS', got {raw!r} ({exc})")
    if original is not None and sub.get(0x9011):
        info.captured_at = original
    elif gps_time is not None:
        info.captured_at = gps_time
    elif original is not None:
        info.captured_at = original
        info.warnings.append("capture time has no UTC offset; assumed UTC")
    if 2 not in gps or 4 not in gps:
        info.warnings.append("no GPS position in EXIF")
        return info
    try:
        lat, lon = _gps_position(gps)
        heading = _optional_float(gps, 17)
        heading = _optional_float(gps, 15) if heading is None else heading
        speed = _optional_float(gps, 13)
        if speed is not None:
            ref = _text(gps.get(12, "K")).upper()
            if ref not in _SPEED_REF_MS:
                raise ValueError(f"GPSSpeedRef: expected K, M or N, got {ref!r}")
            speed *= _SPEED_REF_MS[ref]
        when = gps_time or info.captured_at
        if when is None:
            info.warnings.append("GPS position has no time stamp and no capture time; fix dropped")
        else:
            info.fix = Fix(lat, lon, when, heading, speed)
    except Exception as exc:
        info.warnings.append(f"GPS position unusable, treated as missing: {exc}")
    return info


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
    points = [p for t in doc.tracks for s in t.segments for p in s.points]
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
        heading = bearing_deg(a.lat, a.lon, b.lat, b.lon)
    else:
        heading = _mean_heading(a.heading, b.heading, frac)
    if a.speed is not None and b.speed is not None:
        speed: float | None = a.speed + frac * (b.speed - a.speed)
    else:
        speed = a.speed if a.speed is not None else (b.speed if b.speed is not None else dist / gap)
    return Fix(lat, lon, t, heading, speed)
