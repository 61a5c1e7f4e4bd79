"""Tests for geotag.gps with generated JPEGs, NMEA logs and GPX documents."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from functools import reduce
from io import BytesIO
from typing import Any

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from geotag import (
    Fix,
    TrackError,
    bearing_deg,
    haversine_m,
    interpolate,
    parse_gpx,
    parse_nmea,
    parse_track,
    read_exif,
)

T0 = datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC)


# ---------------------------------------------------------------- helpers


def jpeg(exif: Image.Exif | bytes | None = None) -> bytes:
    buf = BytesIO()
    kwargs: dict[str, Any] = {} if exif is None else {"exif": exif}
    Image.new("RGB", (16, 12), (90, 90, 90)).save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def exif_with(
    gps: dict[int, Any] | None = None, sub: dict[int, Any] | None = None, orientation: int = 1
) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    if gps is not None:
        exif[0x8825] = gps
    if sub is not None:
        exif[0x8769] = sub
    return jpeg(exif)


GPS_FULL = {
    1: "S",
    2: (33.0, 52.0, 4.8),  # 33.868 S
    3: "W",
    4: (151.0, 12.0, 36.0),  # 151.21 W
    7: (10.0, 20.0, 30.0),
    29: "2026:05:01",
    12: "K",
    13: 36.0,
    16: "T",
    17: 271.5,
}


def nmea(body: str) -> str:
    checksum = reduce(lambda acc, ch: acc ^ ord(ch), body, 0)
    return f"${body}*{checksum:02X}"


def ddmm(value: float, hemis: str) -> tuple[str, str]:
    deg = int(abs(value))
    minutes = (abs(value) - deg) * 60.0
    width = 2 if hemis in "NS" else 3
    return f"{deg:0{width}d}{minutes:07.4f}", (hemis[0] if value >= 0 else hemis[1])


def rmc(
    t: datetime, lat: float, lon: float, knots: float = 10.0, course: float = 0.0, status: str = "A"
) -> str:
    la, ns = ddmm(lat, "NS")
    lo, ew = ddmm(lon, "EW")
    return nmea(f"GPRMC,{t:%H%M%S}.00,{status},{la},{ns},{lo},{ew},{knots:.1f},{course:.1f},{t:%d%m%y},,,A")


def gga(t: datetime, lat: float, lon: float, quality: int = 1) -> str:
    la, ns = ddmm(lat, "NS")
    lo, ew = ddmm(lon, "EW")
    return nmea(f"GNGGA,{t:%H%M%S}.00,{la},{ns},{lo},{ew},{quality},08,0.9,45.0,M,46.9,M,,")


# ---------------------------------------------------------------- math


def test_haversine_one_degree_of_latitude() -> None:
    assert haversine_m(0.0, 0.0, 1.0, 0.0) == pytest.approx(111_195, rel=1e-3)
    assert haversine_m(52.0, 13.0, 52.0, 13.0) == 0.0


@pytest.mark.parametrize(("lat2", "lon2", "expected"), [(1, 0, 0), (0, 1, 90), (-1, 0, 180), (0, -1, 270)])
def test_bearing_cardinal_directions(lat2: float, lon2: float, expected: float) -> None:
    assert bearing_deg(0.0, 0.0, lat2, lon2) == pytest.approx(expected)


def test_fix_validates_and_normalises() -> None:
    with pytest.raises(ValueError, match="lat: expected"):
        Fix(91.0, 0.0, T0)
    with pytest.raises(ValueError, match="lon: expected"):
        Fix(0.0, -180.5, T0)
    with pytest.raises(ValueError, match="tz-aware"):
        Fix(0.0, 0.0, datetime(2026, 5, 1))
    with pytest.raises(ValueError, match="lat: expected"):
        Fix(math.nan, 0.0, T0)
    fix = Fix(1.0, 2.0, datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))), heading=-90.0)
    assert fix.time == T0 and fix.time.tzinfo is UTC
    assert fix.heading == 270.0


# ---------------------------------------------------------------- EXIF


def test_read_exif_full_gps() -> None:
    info = read_exif(exif_with(GPS_FULL, {0x9003: "2026:05:01 12:20:29", 0x9011: "+02:00"}, orientation=6))
    assert info.orientation == 6
    assert info.captured_at == datetime(2026, 5, 1, 10, 20, 29, tzinfo=UTC)
    assert info.fix is not None
    assert info.fix.lat == pytest.approx(-(33 + 52 / 60 + 4.8 / 3600))
    assert info.fix.lon == pytest.approx(-151.21)
    assert info.fix.time == datetime(2026, 5, 1, 10, 20, 30, tzinfo=UTC)  # GPS stamp, not camera clock
    assert info.fix.heading == pytest.approx(271.5)
    assert info.fix.speed == pytest.approx(10.0)  # 36 km/h
    assert info.warnings == []


def test_read_exif_knots_and_track_fallback() -> None:
    gps = {k: v for k, v in GPS_FULL.items() if k not in (16, 17)} | {12: "N", 13: 10.0, 15: 45.0}
    info = read_exif(exif_with(gps))
    assert info.fix is not None
    assert info.fix.speed == pytest.approx(10.0 * 1852 / 3600)
    assert info.fix.heading == pytest.approx(45.0)
    assert info.captured_at == datetime(2026, 5, 1, 10, 20, 30, tzinfo=UTC)  # from the GPS stamp


def test_read_exif_without_offset_assumes_utc() -> None:
    gps = {1: "N", 2: (52.0, 30.0, 0.0), 3: "E", 4: (13.0, 24.0, 0.0)}
    info = read_exif(exif_with(gps, {0x9003: "2026:05:01 12:20:29"}))
    assert info.captured_at == datetime(2026, 5, 1, 12, 20, 29, tzinfo=UTC)
    assert any("assumed UTC" in w for w in info.warnings)
    assert info.fix == Fix(52.5, 13.4, info.captured_at)


def test_read_exif_position_without_any_time_is_dropped() -> None:
    info = read_exif(exif_with({1: "N", 2: (52.0, 0.0, 0.0), 3: "E", 4: (13.0, 0.0, 0.0)}))
    assert info.fix is None and info.captured_at is None
    assert any("no time" in w for w in info.warnings)


@pytest.mark.parametrize(
    "lat",
    [(95.0, 0.0, 0.0), (IFDRational(0, 0), 0.0, 0.0)],
    ids=["out-of-range", "nan"],
)
def test_read_exif_bad_coordinates_are_missing(lat: tuple[Any, ...]) -> None:
    gps = dict(GPS_FULL) | {2: lat}
    info = read_exif(exif_with(gps))
    assert info.fix is None
    assert info.captured_at is not None
    assert any("treated as missing" in w for w in info.warnings)


def test_read_exif_without_exif() -> None:
    info = read_exif(jpeg())
    assert (info.captured_at, info.fix, info.orientation) == (None, None, None)
    assert info.warnings == ["no EXIF data in image"]


@pytest.mark.parametrize(
    "data",
    [
        jpeg(b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff\x01\x02\x03garbage" * 3),
        jpeg(b"Exif\x00\x00MM\x00*\xff\xff\xff\xf0"),
        b"definitely not an image",
        b"",
    ],
    ids=["garbage-ifd", "bad-offset", "not-image", "empty"],
)
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_read_exif_corrupt_never_raises(data: bytes) -> None:
    info = read_exif(data)
    assert (info.captured_at, info.fix, info.orientation) == (None, None, None)
    assert len(info.warnings) == 1
    # The wording depends on which Pillow plugins are registered in this process (importing
    # ultralytics adds a HEIF opener), so only the fact of a warning about EXIF is checked.
    assert "EXIF" in info.warnings[0] or "corrupt" in info.warnings[0] or "unrecognised" in info.warnings[0]


def test_read_exif_bad_date_is_a_warning() -> None:
    info = read_exif(exif_with(None, {0x9003: "yesterday-ish"}))
    assert info.captured_at is None
    assert any("DateTimeOriginal: expected" in w for w in info.warnings)


# ---------------------------------------------------------------- NMEA / GPX


def nmea_log() -> str:
    lines = [
        gga(T0 - timedelta(seconds=1), 52.0, 13.0),  # before any RMC date: skipped
        rmc(T0, 52.0, 13.0, knots=20.0, course=0.0),
        gga(T0, 52.0, 13.0),  # same time as the RMC: RMC kept
        nmea("GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00"),  # other type: ignored
        gga(T0 + timedelta(seconds=1), 52.0001, 13.0),
        rmc(T0 + timedelta(seconds=2), 52.0002, 13.0).replace("*", "*0") + "X",  # broken checksum
        "this is not NMEA",
        rmc(T0 + timedelta(seconds=3), 52.0, 13.0, status="V"),  # void
        rmc(T0 + timedelta(seconds=4), 52.0004, 13.0, knots=20.0, course=2.0),
        "",
    ]
    return "\r\n".join(lines)


def test_parse_nmea_rmc_and_gga() -> None:
    parsed = parse_nmea(nmea_log())
    assert parsed.skipped == 4
    times = [f.time for f in parsed]
    assert times == [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=4)]
    first, gga_fix, last = parsed
    assert first.speed == pytest.approx(20.0 * 1852 / 3600) and first.heading == 0.0
    assert gga_fix.speed is None and gga_fix.lat == pytest.approx(52.0001, abs=1e-7)
    assert last.heading == pytest.approx(2.0)
    assert isinstance(parsed, list) and all(isinstance(f, Fix) for f in parsed)


def test_parse_nmea_gga_rolls_over_midnight() -> None:
    late = datetime(2026, 5, 1, 23, 59, 59, tzinfo=UTC)
    fixes = parse_nmea("\n".join([rmc(late, 1.0, 2.0), gga(late + timedelta(seconds=2), 1.0, 2.0)]))
    assert fixes[-1].time == datetime(2026, 5, 2, 0, 0, 1, tzinfo=UTC)


def gpx_text() -> str:
    points = "".join(
        f'<trkpt lat="{48.0 + i * 0.0001:.6f}" lon="11.0">'
        f"<time>{(T0 + timedelta(seconds=i)):%Y-%m-%dT%H:%M:%SZ}</time></trkpt>"
        for i in (2, 0, 1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<gpx version="1.1" creator="test" '
        f'xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>{points}'
        '<trkpt lat="48.5" lon="11.0"></trkpt></trkseg></trk></gpx>'
    )


def test_parse_gpx_sorts_and_skips_untimed() -> None:
    fixes = parse_gpx(gpx_text())
    assert fixes.skipped == 1
    assert [f.time for f in fixes] == [T0 + timedelta(seconds=i) for i in range(3)]
    assert fixes[1].lat == pytest.approx(48.0001)
    assert all(f.time.tzinfo is UTC for f in fixes)


def test_parse_track_chooses_by_content() -> None:
    assert len(parse_track(gpx_text().encode(), "ride.txt")) == 3
    assert len(parse_track(("\ufeff" + nmea_log()).encode(), "ride.gpx")) == 3


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"lat,lon\n1,2\n", "expected GPX"),
        (b"", "expected GPX"),
        (b"<gpx version='1.1'><trk><trkseg>", "upload.dat: expected a GPX document, got unparsable"),
        (b"$GPRMC,garbage\n", "expected at least one usable fix"),
    ],
)
def test_parse_track_errors(data: bytes, match: str) -> None:
    with pytest.raises(TrackError, match=match):
        parse_track(data, "upload.dat")


# ---------------------------------------------------------------- interpolation


def straight_track() -> list[Fix]:
    # Northbound at ~11.1 m/s: 0.0001 deg latitude per second.
    return [
        Fix(48.0 + i * 0.0001, 11.0, T0 + timedelta(seconds=i), heading=None, speed=11.1) for i in range(5)
    ]


def test_interpolate_midpoint_and_exact() -> None:
    track = straight_track()
    mid = interpolate(track, T0 + timedelta(seconds=1.5))
    assert mid is not None
    assert mid.lat == pytest.approx(48.00015) and mid.lon == pytest.approx(11.0)
    assert mid.heading == pytest.approx(0.0, abs=1e-6)
    assert mid.speed == pytest.approx(11.1)
    assert interpolate(track, T0 + timedelta(seconds=4)) == track[4]


def test_interpolate_with_clock_offset() -> None:
    track = straight_track()
    camera_time = T0 - timedelta(seconds=10)  # camera clock runs 12.5 s behind GPS
    fix = interpolate(track, camera_time, clock_offset_s=12.5)
    assert fix is not None
    assert fix.lat == pytest.approx(48.00025)
    assert fix.time == T0 + timedelta(seconds=2.5)
    assert interpolate(track, camera_time) is None


def test_interpolate_outside_track_or_gap() -> None:
    track = straight_track()
    assert interpolate(track, T0 - timedelta(seconds=0.1)) is None
    assert interpolate(track, T0 + timedelta(seconds=4.1)) is None
    assert interpolate([], T0) is None
    gappy = [track[0], Fix(48.01, 11.0, T0 + timedelta(seconds=31))]
    assert interpolate(gappy, T0 + timedelta(seconds=5)) is None
    assert interpolate(gappy, T0 + timedelta(seconds=5), max_gap_s=31) is not None
    with pytest.raises(ValueError, match="tz-aware"):
        interpolate(track, datetime(2026, 5, 1, 10))


def test_interpolate_stationary_uses_fix_heading() -> None:
    a = Fix(48.0, 11.0, T0, heading=350.0, speed=0.0)
    b = Fix(48.0, 11.0, T0 + timedelta(seconds=2), heading=10.0, speed=0.0)
    fix = interpolate([a, b], T0 + timedelta(seconds=1))
    assert fix is not None
    assert fix.heading == pytest.approx(0.0, abs=1e-9) or fix.heading == pytest.approx(360.0)
    only_one = interpolate([a, Fix(48.0, 11.0, b.time)], T0 + timedelta(seconds=1))
    assert only_one is not None and only_one.heading == 350.0


def test_interpolate_across_antimeridian() -> None:
    a = Fix(0.0, 179.9999, T0)
    b = Fix(0.0, -179.9999, T0 + timedelta(seconds=2))
    fix = interpolate([a, b], T0 + timedelta(seconds=1.5))
    assert fix is not None
    assert fix.lon == pytest.approx(-179.99995)
    assert fix.heading == pytest.approx(90.0)
