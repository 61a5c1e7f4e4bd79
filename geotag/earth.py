"""Distances and directions on the earth (a sphere of the IUGG mean radius): the one earth model of the
project, for the vehicle client and the service alike."""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean Earth radius
M_PER_DEG_LAT = math.pi * EARTH_RADIUS_M / 180.0  # about 111,195 m


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


def metres_per_degree_lon(lat: float) -> float:
    """Metres per degree of longitude at latitude ``lat`` (never 0, also at the poles)."""
    return M_PER_DEG_LAT * max(math.cos(math.radians(lat)), 1e-9)


def offset(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    """The position ``east_m`` east and ``north_m`` north of (lat, lon) (local flat-earth step)."""
    return lat + north_m / M_PER_DEG_LAT, lon + east_m / metres_per_degree_lon(lat)


def local_m(from_lat: float, from_lon: float, to_lat: float, to_lon: float) -> tuple[float, float]:
    """(east, north) metres from one position to a nearby other (the inverse of :func:`offset`)."""
    return (to_lon - from_lon) * metres_per_degree_lon(from_lat), (to_lat - from_lat) * M_PER_DEG_LAT
