"""Tests for service.domain.geo against hand-computed pinhole geometry."""

from __future__ import annotations

import math

import pytest

from geotag import bearing_deg, haversine_m
from service.domain.geo import (
    Camera,
    GroundEstimate,
    box_ground_size,
    focal_px,
    ground_offset,
    locate,
    locate_detection,
)

W, H = 1920, 1080


@pytest.mark.parametrize("pitch", [5.0, 10.0, 30.0, 60.0])
def test_centre_pixel_hits_ground_at_h_over_tan_pitch(pitch: float) -> None:
    cam = Camera(height_m=1.5, pitch_deg=pitch)
    hit = ground_offset(W / 2, H / 2, W, H, cam)
    assert hit is not None
    assert hit[0] == pytest.approx(1.5 / math.tan(math.radians(pitch)))
    assert hit[1] == pytest.approx(0.0, abs=1e-12)


def test_focal_length_from_hfov() -> None:
    assert focal_px(W, Camera(hfov_deg=90.0)) == pytest.approx(W / 2)


def test_off_axis_pixel_hand_computed() -> None:
    # hfov 90 -> f = W/2, so the right image edge on the centre row has x = 1:
    # ray (forward, right, down) = (cos p, 1, sin p); scaled to reach the road at depth h.
    cam = Camera(height_m=2.0, pitch_deg=30.0, hfov_deg=90.0)
    hit = ground_offset(W, H / 2, W, H, cam)
    assert hit is not None
    assert hit[0] == pytest.approx(2.0 * math.cos(math.radians(30)) / math.sin(math.radians(30)))
    assert hit[1] == pytest.approx(2.0 / math.sin(math.radians(30)))
    # A row below the centre: y = 0.5 -> down = sin p + 0.5 cos p, forward = cos p - 0.5 sin p.
    p = math.radians(30.0)
    hit = ground_offset(W / 2, H / 2 + 0.5 * W / 2, W, H, cam)
    assert hit is not None
    down = math.sin(p) + 0.5 * math.cos(p)
    assert hit[0] == pytest.approx(2.0 * (math.cos(p) - 0.5 * math.sin(p)) / down)


def test_horizon_and_above_return_none() -> None:
    cam = Camera(pitch_deg=10.0)
    horizon_v = H / 2 - focal_px(W, cam) * math.tan(math.radians(10.0))
    assert ground_offset(W / 2, horizon_v, W, H, cam) is None
    assert ground_offset(W / 2, horizon_v - 50, W, H, cam) is None
    assert ground_offset(W / 2, 0.0, W, H, Camera(pitch_deg=0.0)) is None
    assert ground_offset(W / 2, H / 2, W, H, Camera(pitch_deg=0.0)) is None  # level camera: centre is horizon


def test_max_range() -> None:
    cam = Camera(pitch_deg=10.0)
    horizon_v = H / 2 - focal_px(W, cam) * math.tan(math.radians(10.0))
    assert ground_offset(W / 2, horizon_v + 1.0, W, H, cam) is None  # hundreds of metres away
    far = ground_offset(W / 2, horizon_v + 1.0, W, H, cam, max_range_m=10_000.0)
    assert far is not None and far[0] > 60.0
    near = ground_offset(W / 2, H - 1, W, H, cam)
    assert near is not None and 0.0 < near[0] < 60.0


def test_rows_further_down_are_closer() -> None:
    cam = Camera()
    distances = [ground_offset(W / 2, v, W, H, cam) for v in (600, 700, 800, 900, 1000)]
    forward = [d[0] for d in distances if d is not None]
    assert len(forward) == 5 and forward == sorted(forward, reverse=True)


@pytest.mark.parametrize("du", [10.0, 300.0, 900.0])
def test_symmetric_u_gives_opposite_right(du: float) -> None:
    cam = Camera()
    left = ground_offset(W / 2 - du, 900, W, H, cam)
    right = ground_offset(W / 2 + du, 900, W, H, cam)
    assert left is not None and right is not None
    assert left[0] == pytest.approx(right[0])
    assert left[1] == pytest.approx(-right[1])
    assert right[1] > 0.0


def test_locate_north_and_east() -> None:
    lat, lon = locate(0.0, 0.0, 0.0, 111.0, 0.0)
    assert lat == pytest.approx(0.000998, abs=2e-6) and lon == pytest.approx(0.0, abs=1e-12)
    lat, lon = locate(0.0, 0.0, 90.0, 111.0, 0.0)
    assert lat == pytest.approx(0.0, abs=1e-12) and lon == pytest.approx(0.000998, abs=2e-6)
    # Heading north, 111 m to the right is east; at 60 deg latitude a degree of longitude is half as long.
    lat, lon = locate(60.0, 10.0, 0.0, 0.0, 111.0)
    assert lat == pytest.approx(60.0) and lon == pytest.approx(10.0 + 2 * 0.000998, abs=4e-6)
    assert locate(0.0, 179.9999, 90.0, 50.0, 0.0)[1] < -179.0


@pytest.mark.parametrize(("heading", "fwd", "right"), [(0, 20, 0), (45, 15, 3), (200, 30, -4), (315, 8, 8)])
def test_locate_round_trip(heading: float, fwd: float, right: float) -> None:
    lat0, lon0 = 52.52, 13.405
    lat, lon = locate(lat0, lon0, heading, fwd, right)
    assert haversine_m(lat0, lon0, lat, lon) == pytest.approx(math.hypot(fwd, right), rel=1e-4)
    expected = (heading + math.degrees(math.atan2(right, fwd))) % 360.0
    assert bearing_deg(lat0, lon0, lat, lon) == pytest.approx(expected, abs=0.01)
    back = locate(lat, lon, (heading + 180.0) % 360.0, fwd, right)
    assert back[0] == pytest.approx(lat0, abs=1e-7) and back[1] == pytest.approx(lon0, abs=1e-7)


def test_box_ground_size_hand_computed() -> None:
    # Bottom edge on the centre row (y = 0): corners at x = +-a hit the road at right = +-h a / sin p.
    cam = Camera(height_m=1.4, pitch_deg=20.0, hfov_deg=90.0)
    f = W / 2
    a = 0.1
    box = (W / 2 - a * f, 300.0, W / 2 + a * f, H / 2)
    size = box_ground_size(box, W, H, cam)
    assert size == pytest.approx(2 * 1.4 * a / math.sin(math.radians(20.0)))
    assert box_ground_size((100.0, 0.0, 200.0, 10.0), W, H, cam) is None  # above the horizon
    with pytest.raises(ValueError, match="x1 <= x2"):
        box_ground_size((200.0, 0.0, 100.0, 10.0), W, H, cam)


def test_locate_detection() -> None:
    cam = Camera(height_m=1.4, pitch_deg=10.0)
    box = (900.0, 500.0, 1020.0, H / 2)  # bottom-centre on the optical axis
    est = locate_detection(52.0, 13.0, 90.0, box, W, H, cam)
    assert est is not None
    expected = 1.4 / math.tan(math.radians(10.0))
    assert est.distance_m == pytest.approx(expected)
    assert haversine_m(52.0, 13.0, est.lat, est.lon) == pytest.approx(expected, rel=1e-4)
    assert bearing_deg(52.0, 13.0, est.lat, est.lon) == pytest.approx(90.0, abs=0.01)
    assert est.size_m is not None and est.size_m > 0.0


def test_locate_detection_without_heading_or_ground() -> None:
    cam = Camera()
    box = (900.0, 800.0, 1020.0, 1000.0)
    est = locate_detection(52.0, 13.0, None, box, W, H, cam)
    assert est == GroundEstimate(52.0, 13.0, None, box_ground_size(box, W, H, cam))
    assert locate_detection(52.0, 13.0, 0.0, (900.0, 0.0, 1020.0, 100.0), W, H, cam) is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        # One rule for CLI, web page and pipeline (the CLI's words; geo.Camera allowed 0 < h, hfov < 179).
        ({"height_m": 0.0}, "height must be 0.2..10 m"),
        ({"height_m": 10.5}, "height must be"),
        ({"pitch_deg": -1.0}, "pitch must be"),
        ({"pitch_deg": 89.0}, "pitch must be"),
        ({"hfov_deg": 9.0}, "field of view must be"),
        ({"hfov_deg": 171.0}, "field of view must be 10..170"),
        ({"height_m": math.nan}, "height must be"),
    ],
)
def test_camera_validation(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Camera(**kwargs)


def test_image_size_validation() -> None:
    with pytest.raises(ValueError, match="got 0x1080"):
        ground_offset(0.0, 0.0, 0, H, Camera())


@pytest.mark.parametrize(("forward", "right"), [(5.0, 0.0), (12.0, -2.5), (25.0, 3.0), (8.0, 1.0)])
def test_project_ground_inverts_ground_offset(forward: float, right: float) -> None:
    from service.domain.geo import project_ground

    cam = Camera(height_m=1.5, pitch_deg=8.0, hfov_deg=90.0)
    u, v = project_ground(forward, right, 1280, 720, cam)
    back = ground_offset(u, v, 1280, 720, cam)
    assert back == pytest.approx((forward, right), abs=1e-6)
