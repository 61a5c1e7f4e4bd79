"""Which road section a photo was taken on, and which stretch of it the photo shows clearly.

No database: candidates come in as plain records (``service/db/roads.py`` fetches the sections near a frame).

The matching rule (nearest section consistent with the heading, helped by the drive's previous frame):

- candidates are the sections within ``max_distance_m`` (default 20 m) of the GPS position;
- cost = distance to the section (m) + ``angle_weight`` (0.15 m per degree) x the angle between the vehicle's
  heading and the section's direction at the nearest point (for two-way sections the direction that fits
  better; for one-way sections the drawn direction, so driving against it costs up to 27 m);
- sections more than ``max_angle_deg`` (60 degrees) off the heading are not candidates: at a junction the
  street the vehicle turned into wins as soon as the heading follows it;
- the section the drive's previous frame matched costs ``continuity_m`` (3 m) less, a section touching it
  1.5 m less, so GPS noise does not flip a frame to a parallel street 15 m away or a side road;
- a frame on the cut point between two sections belongs to the one ahead in its heading;
- without a heading the nearest section wins (ties: the lower id).

The heading itself comes from EXIF, the track, or the vehicle's neighbouring frames (``worker/pipeline.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from shapely.geometry import LineString, Point, Polygon

from service.domain.geo import Camera, ground_offset
from service.domain.roads import LonLat, from_local, to_local

DEFAULT_MAX_DISTANCE_M = 20.0
DEFAULT_ANGLE_WEIGHT = 0.15  # metres of distance one degree of heading mismatch is worth
DEFAULT_MAX_ANGLE_DEG = 60.0
DEFAULT_CONTINUITY_M = 3.0
DEFAULT_CLEAR_RANGE_M = 20.0  # beyond this a dashcam photo shows cracks too small to judge
_ADJACENT_M = 1.0
_END_M, _LEAVING_M = 0.01, 0.01
_ORIGIN = Point(0.0, 0.0)  # the frame, in its own local plane


@dataclass(frozen=True)
class Candidate:
    """A section near a frame: id, (lon, lat) points in drawing order, one-way or not."""

    id: str
    coords: tuple[LonLat, ...]
    oneway: bool = False


@dataclass(frozen=True)
class Match:
    section_id: str
    distance_m: float
    angle_deg: float | None
    cost: float
    along_m: float  # position of the frame's nearest point along the section, from its start


@dataclass(frozen=True)
class MatchParams:
    max_distance_m: float = DEFAULT_MAX_DISTANCE_M
    angle_weight: float = DEFAULT_ANGLE_WEIGHT
    max_angle_deg: float = DEFAULT_MAX_ANGLE_DEG
    continuity_m: float = DEFAULT_CONTINUITY_M


def _angle_diff(a: float, b: float) -> float:
    d = abs(a - b) % 360.0
    return 360.0 - d if d > 180.0 else d


def _local_line(lat: float, lon: float, coords: Sequence[LonLat]) -> LineString:
    return LineString([to_local(lat, lon, x, y) for x, y in coords])


def _direction_at(line: LineString, along: float) -> float:
    """Bearing (degrees clockwise from north) of the line at ``along`` metres from its start."""
    length = line.length
    a = line.interpolate(max(0.0, min(along - 1.0, length - 2.0)))
    b = line.interpolate(min(length, max(along + 1.0, 2.0)))
    return math.degrees(math.atan2(b.x - a.x, b.y - a.y)) % 360.0


def _touches(a: Candidate, b: Candidate, lat: float, lon: float) -> bool:
    ends_a = [to_local(lat, lon, *a.coords[0]), to_local(lat, lon, *a.coords[-1])]
    ends_b = [to_local(lat, lon, *b.coords[0]), to_local(lat, lon, *b.coords[-1])]
    return any(math.dist(p, q) <= _ADJACENT_M for p in ends_a for q in ends_b)


def match_frame(
    lat: float,
    lon: float,
    heading_deg: float | None,
    candidates: Sequence[Candidate],
    previous: Candidate | None = None,
    params: MatchParams | None = None,
) -> Match | None:
    """The section a frame at (lat, lon) with this heading was taken on, or None (no road near)."""
    params = params or MatchParams()
    best: Match | None = None
    for cand in candidates:
        line = _local_line(lat, lon, cand.coords)
        if line.length == 0.0:
            continue
        distance = line.distance(_ORIGIN)
        if distance > params.max_distance_m:
            continue
        along = line.project(_ORIGIN)
        angle: float | None = None
        cost = distance
        if heading_deg is not None:
            direction = _direction_at(line, along)
            angle = _angle_diff(heading_deg, direction)
            crossing = min(angle, 180.0 - angle)  # 0 along the street either way, 90 across it
            if crossing > params.max_angle_deg:
                continue
            forwards = angle < 90.0
            if (along >= line.length - _END_M and forwards) or (along <= _END_M and not forwards):
                cost += _LEAVING_M  # on a cut point, the section ahead wins over the one just left
            if not cand.oneway:
                angle = crossing
            cost += params.angle_weight * angle
        if previous is not None:
            if cand.id == previous.id:
                cost -= params.continuity_m
            elif _touches(cand, previous, lat, lon):
                cost -= params.continuity_m / 2.0
        if best is None or cost < best.cost:
            best = Match(cand.id, distance, angle, cost, along)
    return best


# --- footprint ------------------------------------------------------------------------------------------


def footprint_local(
    cam: Camera, width: int, height: int, clear_range_m: float = DEFAULT_CLEAR_RANGE_M
) -> list[tuple[float, float]] | None:
    """The road a photo shows clearly, as a quadrilateral of (forward_m, right_m) corners.

    From the nearest road row at the image bottom to ``clear_range_m`` ahead (or the image top, if nearer);
    its half-width at forward distance F is tan(hfov/2) x the depth along the optical axis
    (F cos pitch + height sin pitch), i.e. the image's left and right edges. None when the image bottom
    already lies beyond the clear range (camera tilted up).
    """
    near = ground_offset(width / 2.0, float(height), width, height, cam, max_range_m=math.inf)
    if near is None or near[0] >= clear_range_m:
        return None
    far_m = clear_range_m
    top = ground_offset(width / 2.0, 0.0, width, height, cam, max_range_m=math.inf)
    if top is not None:
        far_m = min(far_m, top[0])
    p = math.radians(cam.pitch_deg)
    tan_half = math.tan(math.radians(cam.hfov_deg) / 2.0)

    def half_width(forward: float) -> float:
        return tan_half * (forward * math.cos(p) + cam.height_m * math.sin(p))

    n = near[0]
    return [(n, -half_width(n)), (far_m, -half_width(far_m)), (far_m, half_width(far_m)), (n, half_width(n))]


def footprint(
    lat: float,
    lon: float,
    heading_deg: float,
    cam: Camera,
    width: int,
    height: int,
    clear_range_m: float = DEFAULT_CLEAR_RANGE_M,
) -> list[LonLat] | None:
    """The footprint as a closed ring of (lon, lat) points around the frame's position and heading."""
    corners = footprint_local(cam, width, height, clear_range_m)
    if corners is None:
        return None
    h = math.radians(heading_deg)
    ring = []
    for fwd, right in corners:
        east = fwd * math.sin(h) + right * math.cos(h)
        north = fwd * math.cos(h) - right * math.sin(h)
        ring.append(from_local(lat, lon, east, north))
    return [*ring, ring[0]]


def seen_interval(section: Candidate, ring: Sequence[LonLat]) -> tuple[float, float] | None:
    """The stretch (from_m, to_m along the section) that lies inside a footprint, or None."""
    lon0, lat0 = ring[0]
    line = _local_line(lat0, lon0, section.coords)
    poly = Polygon([to_local(lat0, lon0, x, y) for x, y in ring])
    inside = line.intersection(poly)
    if inside.is_empty or inside.length == 0.0:
        return None
    parts = list(getattr(inside, "geoms", [inside]))
    ends = [line.project(Point(c)) for part in parts for c in part.coords]
    return min(ends), max(ends)
