"""Where and when a photo was taken: EXIF (``exif``), GPX and NMEA tracks and interpolation between
their fixes (``track``), distances on the earth (``earth``).

A detection is only useful to a municipality once it is tied to a place on the road network. Photos carry
that place in one of two ways: GPS tags in the JPEG's EXIF, or a separate track (GPX or NMEA log) from the
dashcam whose clock must be matched against the photo's capture time. Both are read with maintained
libraries (Pillow, gpxpy, pynmea2); a malformed upload never crashes the pipeline.

Shared by the vehicle client (``uploader``) and the service; imports nothing of either.
"""

from geotag.earth import (
    EARTH_RADIUS_M,
    M_PER_DEG_LAT,
    bearing_deg,
    haversine_m,
    local_m,
    metres_per_degree_lon,
    offset,
)
from geotag.exif import ExifInfo, read_exif, with_exif
from geotag.track import Fix, Track, TrackError, interpolate, parse_gpx, parse_nmea, parse_track

__all__ = [
    "EARTH_RADIUS_M",
    "M_PER_DEG_LAT",
    "ExifInfo",
    "Fix",
    "Track",
    "TrackError",
    "bearing_deg",
    "haversine_m",
    "interpolate",
    "local_m",
    "metres_per_degree_lon",
    "offset",
    "parse_gpx",
    "parse_nmea",
    "parse_track",
    "read_exif",
    "with_exif",
]
