"""Generated drives (photos with or without EXIF GPS, GPX and NMEA tracks) and a faulty transport."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.fixtures import T0, gps_jpeg
from uploader.api import Api, Retrier

LAT, LON = 48.137, 11.575
M_PER_DEG_LAT = 111_195.0
SIZE = (96, 64)


@dataclass
class Point:
    lat: float
    lon: float
    time: datetime  # GPS time


def drive(
    n: int, speeds_ms: list[float] | None = None, dt_s: float = 1.0, start: datetime = T0
) -> list[Point]:
    """`n` positions one per `dt_s` driving north at the given speeds (default 5 m/s)."""
    points, north = [], 0.0
    for i in range(n):
        if i:
            north += (speeds_ms[i] if speeds_ms else 5.0) * dt_s
        points.append(Point(LAT + north / M_PER_DEG_LAT, LON, start + timedelta(seconds=i * dt_s)))
    return points


def write_photos(
    folder: Path,
    points: list[Point],
    *,
    exif_gps: bool = True,
    camera_offset_s: float = 0.0,
    size: tuple[int, int] = SIZE,
    prefix: str = "IMG",
    seed: int = 0,
) -> list[Path]:
    """One JPEG per point; the camera clock reads GPS time minus `camera_offset_s`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, p in enumerate(points):
        when = p.time - timedelta(seconds=camera_offset_s)
        data = gps_jpeg(
            p.lat if exif_gps else None, p.lon if exif_gps else None, when, 0.0, seed=seed + i, size=size
        )
        path = folder / f"{prefix}_{i:04d}.jpg"
        path.write_bytes(data)
        paths.append(path)
    return paths


def gpx(points: list[Point]) -> str:
    pts = "\n".join(
        f'<trkpt lat="{p.lat:.7f}" lon="{p.lon:.7f}"><time>{p.time.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ}</time></trkpt>'
        for p in points
    )
    return f'<?xml version="1.0"?><gpx version="1.1" creator="test"><trk><trkseg>{pts}</trkseg></trk></gpx>'


def _nmea_coord(value: float, width: int) -> str:
    deg = int(abs(value))
    return f"{deg:0{width}d}{(abs(value) - deg) * 60:07.4f}"


def nmea(points: list[Point]) -> str:
    lines = []
    for p in points:
        t = p.time.astimezone(UTC)
        body = (
            f"GPRMC,{t:%H%M%S}.{t.microsecond // 10000:02d},A,{_nmea_coord(p.lat, 2)},{'N' if p.lat >= 0 else 'S'},"
            f"{_nmea_coord(p.lon, 3)},{'E' if p.lon >= 0 else 'W'},9.7,0.0,{t:%d%m%y},,,A"
        )
        checksum = 0
        for ch in body:
            checksum ^= ord(ch)
        lines.append(f"${body}*{checksum:02X}")
    return "\r\n".join(lines) + "\r\n"


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dlat = (b[0] - a[0]) * M_PER_DEG_LAT
    dlon = (b[1] - a[1]) * M_PER_DEG_LAT * math.cos(math.radians(a[0]))
    return math.hypot(dlat, dlon)


class Crash(BaseException):
    """Stands in for the uploader process dying (power cut, SIGKILL): nothing in it catches this."""


@dataclass
class FaultyTransport(httpx.BaseTransport):
    """Forwards to `inner`, but the next requests to a path suffer the faults queued for it.

    Faults: "connect" (never reaches the server), "lost" (the server handles it, the answer is lost),
    "crash" (the server handles it, then the client dies), or (status, retry_after) answered locally.
    """

    inner: httpx.BaseTransport
    faults: dict[str, list[object]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls.append(path)
        queue = self.faults.get(path) or []
        fault = queue.pop(0) if queue else None
        if fault == "connect":
            raise httpx.ConnectError("injected: connection refused", request=request)
        if isinstance(fault, tuple):
            status, retry_after = fault
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            return httpx.Response(status, json={"detail": "injected"}, headers=headers, request=request)
        response = self.inner.handle_request(request)
        if fault in ("lost", "crash"):
            response.read()
            response.close()
            if fault == "crash":
                raise Crash()
            raise httpx.ReadError("injected: connection reset while reading the answer", request=request)
        return response


def fast_retrier(sleeps: list[float] | None = None, attempts: int = 6) -> Retrier:
    record: Callable[[float], bool] = lambda s: bool(sleeps.append(s)) if sleeps is not None else False  # noqa: E731
    return Retrier(attempts=attempts, base_s=0.01, sleep=record)


def api_for(transport: httpx.BaseTransport, token: str) -> Api:
    return Api("http://testserver", token, transport=transport, timeout_s=30)
