"""Where and when a photo was taken, from its EXIF (Pillow). Never raises: problems become warnings."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from io import BytesIO
from typing import Any

from PIL import Image, UnidentifiedImageError

from geotag.track import SPEED_REF_MS, Fix

log = logging.getLogger(__name__)

_GPS_IFD, _EXIF_IFD = 0x8825, 0x8769


@dataclass
class ExifInfo:
    """What a photo's EXIF says about it; every field may be None, `warnings` says why."""

    captured_at: datetime | None = None
    fix: Fix | None = None
    # The GPS position (lat, lon, heading, speed) even when no time came with it (then ``fix`` is None):
    # the caller may know the time from elsewhere.
    position: tuple[float, float, float | None, float | None] | None = None
    orientation: int | None = None
    warnings: list[str] = field(default_factory=list)


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


def _capture_time(exif: Any, sub: dict[int, Any], gps: dict[int, Any], info: ExifInfo) -> datetime | None:
    """Sets ``info.captured_at`` by the preference of :func:`read_exif`; returns the GPS time stamp."""
    gps_time = original = None
    try:
        gps_time = _gps_time(gps)
    except Exception as exc:  # hostile EXIF: a warning, never a crash
        info.warnings.append(f"GPS date/time stamp unreadable: {exc}")
    raw = sub.get(0x9003) or exif.get(0x0132)
    try:
        if raw:
            original = _exif_datetime(raw, sub.get(0x9011))
    except Exception as exc:  # hostile EXIF: a warning, never a crash
        info.warnings.append(f"DateTimeOriginal: expected 'YYYY:MM:DD HH:MM:SS', got {raw!r} ({exc})")
    if original is not None and sub.get(0x9011):
        info.captured_at = original
    elif gps_time is not None:
        info.captured_at = gps_time
    elif original is not None:
        info.captured_at = original
        info.warnings.append("capture time has no UTC offset; assumed UTC")
    return gps_time


def _gps_fix(gps: dict[int, Any], when: datetime | None, info: ExifInfo) -> Fix | None:
    """The GPS position with heading and speed at ``when``, or None (with a warning in ``info``)."""
    try:
        lat, lon = _gps_position(gps)
        heading = _optional_float(gps, 17)
        heading = _optional_float(gps, 15) if heading is None else heading
        speed = _optional_float(gps, 13)
        if speed is not None:
            ref = _text(gps.get(12, "K")).upper()
            if ref not in SPEED_REF_MS:
                raise ValueError(f"GPSSpeedRef: expected K, M or N, got {ref!r}")
            speed *= SPEED_REF_MS[ref]
        info.position = (lat, lon, heading, speed)
        if when is None:
            info.warnings.append("GPS position has no time stamp and no capture time; fix dropped")
            return None
        return Fix(lat, lon, when, heading, speed)
    except Exception as exc:  # hostile EXIF: any error means "no position", never a crash
        info.warnings.append(f"GPS position unusable, treated as missing: {exc}")
        return None


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
    gps_time = _capture_time(exif, sub, gps, info)
    if 2 not in gps or 4 not in gps:
        info.warnings.append("no GPS position in EXIF")
        return info
    info.fix = _gps_fix(gps, gps_time or info.captured_at, info)
    return info


def _dms_rationals(value: float) -> tuple[float, float, float]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    return float(degrees), float(minutes), round((value - degrees - minutes / 60) * 3600, 4)


def _exif_payload(when: datetime, fix: Fix | None) -> bytes:
    exif = Image.Exif()
    utc = when.astimezone(UTC)
    exif[_EXIF_IFD] = {0x9003: utc.strftime("%Y:%m:%d %H:%M:%S"), 0x9011: "+00:00"}
    if fix is not None:
        gps: dict[int, Any] = {
            1: "N" if fix.lat >= 0 else "S",
            2: _dms_rationals(fix.lat),
            3: "E" if fix.lon >= 0 else "W",
            4: _dms_rationals(fix.lon),
            7: (float(fix.time.hour), float(fix.time.minute), float(fix.time.second)),
            29: fix.time.strftime("%Y:%m:%d"),
        }
        if fix.heading is not None:
            gps[16], gps[17] = "T", round(float(fix.heading), 2)
        if fix.speed is not None:
            gps[12], gps[13] = "K", round(fix.speed * 3.6, 2)
        exif[_GPS_IFD] = gps
    return bytes(exif.tobytes())


def with_exif(jpeg: bytes, when: datetime, fix: Fix | None = None) -> bytes:
    """The JPEG with its EXIF replaced by a capture time (UTC) and, given a fix, GPS position, time,
    direction and speed. The image data is copied unchanged (no re-encoding). ValueError if not a JPEG."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError(f"expected a JPEG (FF D8), got {jpeg[:2].hex()}")
    pos, segments = 2, []
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF and jpeg[pos + 1] not in (0xDA, 0xD9):
        end = pos + 2 + int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        segment = jpeg[pos:end]
        if not (segment[1] == 0xE1 and segment[4:10] == b"Exif\x00\x00"):
            segments.append(segment)
        pos = end
    payload = _exif_payload(when, fix)
    if len(payload) + 2 > 0xFFFF:
        raise ValueError(f"EXIF of {len(payload)} bytes does not fit one APP1 segment")
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    jfif = [s for s in segments if s[1] == 0xE0]  # APP0 (JFIF) stays first
    rest = [s for s in segments if s[1] != 0xE0]
    return b"\xff\xd8" + b"".join(jfif) + app1 + b"".join(rest) + jpeg[pos:]
