"""Where on the ground a detection in a dashcam photo lies.

The GPS fix says where the camera was; a pothole seen 15 m ahead is 15 m away from that, which is more than
the spacing of neighbouring damage sites. We model the camera as an ideal pinhole (no lens distortion, square
pixels, principal point at the image centre, no roll) mounted at a known height and pitch over a flat road,
and intersect the pixel's viewing ray with the road plane. Errors grow quickly with distance (a one-pixel
change near the horizon moves the hit point by metres), hence the range limit.

Frames: camera x right, y down (image rows), z along the optical axis. Ground: forward (horizontal
projection of the optical axis), right, down. The camera sits `height_m` above the origin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from geotag.earth import EARTH_RADIUS_M

DEFAULT_MAX_RANGE_M = 60.0
_EPS = 1e-9

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels, origin top-left
MIN_HEIGHT_M, MAX_HEIGHT_M = 0.2, 10.0
MAX_PITCH_DEG = 89.0
MIN_HFOV_DEG, MAX_HFOV_DEG = 10.0, 170.0


@dataclass(frozen=True)
class Camera:
    """Mounting of a dashcam: height above the road, downward pitch of the optical axis, horizontal FOV."""

    height_m: float = 1.4
    pitch_deg: float = 10.0
    hfov_deg: float = 100.0

    def __post_init__(self) -> None:
        # The one rule for a camera, used by the CLI, the vehicles page and the pipeline alike.
        if not (math.isfinite(self.height_m) and MIN_HEIGHT_M <= self.height_m <= MAX_HEIGHT_M):
            raise ValueError(
                f"camera height must be {MIN_HEIGHT_M:g}..{MAX_HEIGHT_M:g} m above the road, got {self.height_m!r}"
            )
        if not (math.isfinite(self.pitch_deg) and 0.0 <= self.pitch_deg < MAX_PITCH_DEG):
            raise ValueError(
                f"camera pitch must be 0..{MAX_PITCH_DEG:g} degrees below horizontal, got {self.pitch_deg!r}"
            )
        if not (math.isfinite(self.hfov_deg) and MIN_HFOV_DEG <= self.hfov_deg <= MAX_HFOV_DEG):
            raise ValueError(
                f"horizontal field of view must be {MIN_HFOV_DEG:g}..{MAX_HFOV_DEG:g} degrees, got {self.hfov_deg!r}"
            )


@dataclass(frozen=True)
class GroundEstimate:
    """Estimated position of a detection; `distance_m` is None when it could not be offset (no heading)."""

    lat: float
    lon: float
    distance_m: float | None
    size_m: float | None


def focal_px(width: int, cam: Camera) -> float:
    """Focal length in pixels from the horizontal field of view: (width / 2) / tan(hfov / 2)."""
    return (width / 2.0) / math.tan(math.radians(cam.hfov_deg) / 2.0)


def horizon_fraction(width: int, height: int, cam: Camera) -> float:
    """Where the horizon (a level line of sight) crosses the image, as a fraction of the height from the
    top: the pinhole model's row ``height / 2 - focal_px * tan(pitch)`` (square pixels), clipped to 0..1.
    A camera pitched down sees the horizon above the centre; everything above it is not road."""
    _check_image(width, height)
    row = height / 2.0 - focal_px(width, cam) * math.tan(math.radians(cam.pitch_deg))
    return min(1.0, max(0.0, row / height))


def _check_image(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"image size: expected width > 0 and height > 0, got {width}x{height}")


def ground_offset(
    u: float, v: float, width: int, height: int, cam: Camera, *, max_range_m: float = DEFAULT_MAX_RANGE_M
) -> tuple[float, float] | None:
    """Point of the road plane seen at pixel (u, v), as (forward_m, right_m) from the point below the camera.

    None when the ray meets the road at or above the horizon or behind the camera, or when the ground
    distance sqrt(forward^2 + right^2) exceeds `max_range_m`.
    """
    _check_image(width, height)
    f = focal_px(width, cam)
    x = (u - width / 2.0) / f
    y = (v - height / 2.0) / f
    p = math.radians(cam.pitch_deg)
    down = math.sin(p) + y * math.cos(p)
    forward = math.cos(p) - y * math.sin(p)
    if down <= _EPS or forward <= _EPS:
        return None
    scale = cam.height_m / down
    fwd_m, right_m = forward * scale, x * scale
    if math.hypot(fwd_m, right_m) > max_range_m:
        return None
    return fwd_m, right_m


def project_ground(
    forward_m: float, right_m: float, width: int, height: int, cam: Camera
) -> tuple[float, float] | None:
    """Pixel (u, v) at which a road point (forward_m, right_m) appears: the inverse of ground_offset.

    None when the point is behind the camera. Used to simulate drives (bench/association.py).
    """
    _check_image(width, height)
    p = math.radians(cam.pitch_deg)
    depth = forward_m * math.cos(p) + cam.height_m * math.sin(p)  # along the optical axis
    if depth <= _EPS:
        return None
    down = cam.height_m * math.cos(p) - forward_m * math.sin(p)  # below the optical axis
    f = focal_px(width, cam)
    return width / 2.0 + f * right_m / depth, height / 2.0 + f * down / depth


def locate(
    lat: float, lon: float, heading_deg: float, forward_m: float, right_m: float
) -> tuple[float, float]:
    """Offset a WGS84 position by `forward_m` along `heading_deg` (clockwise from north) and `right_m` to its
    right, on the local tangent plane (equirectangular; error well below a metre at tens of metres)."""
    h = math.radians(heading_deg)
    north = forward_m * math.cos(h) - right_m * math.sin(h)
    east = forward_m * math.sin(h) + right_m * math.cos(h)
    new_lat = lat + math.degrees(north / EARTH_RADIUS_M)
    coslat = max(math.cos(math.radians(lat)), 1e-12)
    new_lon = lon + math.degrees(east / (EARTH_RADIUS_M * coslat))
    return new_lat, (new_lon + 180.0) % 360.0 - 180.0


def _check_box(box: Box) -> None:
    x1, y1, x2, y2 = box
    if not (x1 <= x2 and y1 <= y2):
        raise ValueError(f"box: expected (x1, y1, x2, y2) with x1 <= x2 and y1 <= y2, got {box!r}")


def box_ground_size(
    box: Box, width: int, height: int, cam: Camera, *, max_range_m: float = DEFAULT_MAX_RANGE_M
) -> float | None:
    """Width in metres on the road of a box's bottom edge (distance between its projected bottom corners).

    None when either corner does not project onto the road within range.
    """
    _check_box(box)
    x1, _, x2, y2 = box
    left = ground_offset(x1, y2, width, height, cam, max_range_m=max_range_m)
    right = ground_offset(x2, y2, width, height, cam, max_range_m=max_range_m)
    if left is None or right is None:
        return None
    return math.hypot(right[0] - left[0], right[1] - left[1])


def locate_detection(
    fix_lat: float,
    fix_lon: float,
    heading_deg: float | None,
    box: Box,
    width: int,
    height: int,
    cam: Camera,
    *,
    max_range_m: float = DEFAULT_MAX_RANGE_M,
) -> GroundEstimate | None:
    """Ground position of a detection from the bottom-centre of its box (where it touches the road).

    None when that point does not project onto the road within range. Without a heading the offset
    direction is unknown, so the camera position itself is returned with `distance_m` None (the site is
    then only as accurate as the detection distance, typically 5-30 m).
    """
    _check_box(box)
    x1, _, x2, y2 = box
    offset = ground_offset((x1 + x2) / 2.0, y2, width, height, cam, max_range_m=max_range_m)
    if offset is None:
        return None
    size = box_ground_size(box, width, height, cam, max_range_m=max_range_m)
    if heading_deg is None:
        return GroundEstimate(fix_lat, fix_lon, None, size)
    lat, lon = locate(fix_lat, fix_lon, heading_deg, *offset)
    return GroundEstimate(lat, lon, math.hypot(*offset), size)
