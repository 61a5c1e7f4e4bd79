"""The demo: which data is demo data, the demo vehicle's camera, and where its sample photos were "taken".

Demo data is marked by its vehicle: a vehicle whose name starts with :data:`DEMO_PREFIX` is a demo vehicle
(``service/db/vehicles.py`` refuses that prefix for any other), its frames are demo frames, and a site is a
demo site when every observation of it comes from a demo frame. No column marks it, so no migration: the
name is the mark, shown as a badge on every page that lists such a vehicle, frame or site, and
``python -m service demo remove`` deletes exactly that data.

The samples (``samples/``) are single photos without GPS. :func:`plan_drives` places them as two drives
on real streets: frames a few metres apart along a street's centre line, offset to the right lane, with
the street's bearing as heading. The second drive, days later, passes the same spots again (the RDD frames
are the only photos of those spots, so it replays them) with its own GPS error, as a real second pass would.

Plain records in, plain records out: no database, no files.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from geotag import bearing_deg, haversine_m
from geotag.earth import local_m, offset
from service.domain.geo import Camera
from service.domain.roads import Way, line_length_m

DEMO_PREFIX = "demo:"
DEMO_VEHICLE = "demo:rdd-motorbike"

# The RDD2022 China_MotorBike camera, estimated from the photos (no calibration is published): a phone
# on the handlebar, about 1.2 m above the road, tilted down so far that the horizon lies at or just above
# the top edge in nearly every frame, 512x512 pixels cropped from a phone's main camera (60 degrees).
# With pitch 35 and hfov 60 the bottom row sees the road 0.6 m ahead and the top row 14 m ahead; the
# horizon would be 54 px above the top edge, so no privacy band is needed (horizon 0: none).
DEMO_CAMERA = Camera(height_m=1.2, pitch_deg=35.0, hfov_deg=60.0)
DEMO_PRIVACY_HORIZON = 0.0

# Highway classes a demo street is taken from: streets with a name, where a motorbike would ride.
STREET_CLASSES = ("secondary", "tertiary", "unclassified", "residential")


def is_demo_vehicle(name: str | None) -> bool:
    """True for the reserved names of demo vehicles (``demo:...``)."""
    return bool(name) and str(name).startswith(DEMO_PREFIX)


@dataclass(frozen=True)
class Pose:
    """Where a photo was taken: position, heading (degrees clockwise from north) and time (tz-aware)."""

    lat: float
    lon: float
    heading: float
    time: datetime


@dataclass(frozen=True)
class Shot:
    """One sample photo placed in a drive: the file name under ``samples/`` and its pose."""

    sample: str
    pose: Pose


@dataclass(frozen=True)
class DrivePlan:
    """A drive: its shots in time order; ``gps_error_m`` (east, north) is the error added to its GPS."""

    name: str
    shots: tuple[Shot, ...]
    gps_error_m: tuple[float, float]


def pick_streets(ways: Sequence[Way], n: int, min_length_m: float) -> list[Way]:
    """The ``n`` longest named ways of :data:`STREET_CLASSES`, at most one per name (ties by way id).

    ValueError when the network has fewer such streets.
    """
    if n < 1:
        raise ValueError(f"expected at least one street, got n={n}")
    candidates = sorted(
        (
            w
            for w in ways
            if w.name and w.highway in STREET_CLASSES and line_length_m(w.coords) >= min_length_m
        ),
        key=lambda w: (-line_length_m(w.coords), w.way_id),
    )
    picked: list[Way] = []
    for way in candidates:
        if all(p.name != way.name for p in picked):
            picked.append(way)
        if len(picked) == n:
            return picked
    raise ValueError(
        f"the network has {len(picked)} named streets of {min_length_m:g} m or more "
        f"({', '.join(STREET_CLASSES)}), the demo needs {n}"
    )


def along(coords: Sequence[tuple[float, float]], distance_m: float) -> tuple[float, float, float]:
    """(lat, lon, bearing) at ``distance_m`` along a (lon, lat) polyline from its start (clamped to it)."""
    if len(coords) < 2:
        raise ValueError(f"expected a line of at least 2 points, got {len(coords)}")
    walked = 0.0
    for (lon1, lat1), (lon2, lat2) in itertools.pairwise(coords):
        step = haversine_m(lat1, lon1, lat2, lon2)
        if step > 0 and walked + step >= distance_m:
            frac = max(distance_m - walked, 0.0) / step
            east, north = local_m(lat1, lon1, lat2, lon2)
            lat, lon = offset(lat1, lon1, east * frac, north * frac)
            return lat, lon, bearing_deg(lat1, lon1, lat2, lon2)
        walked += step
    (lon1, lat1), (lon2, lat2) = coords[-2], coords[-1]
    return lat2, lon2, bearing_deg(lat1, lon1, lat2, lon2)


def place_run(
    way: Way,
    n: int,
    start: datetime,
    *,
    start_m: float,
    spacing_m: float,
    speed_ms: float,
    right_m: float,
) -> list[Pose]:
    """``n`` poses ``spacing_m`` apart along ``way`` from ``start_m``, ``right_m`` right of its centre line,
    in its drawing direction (the direction of traffic on a oneway), at ``speed_ms``."""
    if spacing_m <= 0 or speed_ms <= 0:
        raise ValueError(f"expected spacing and speed > 0, got {spacing_m} m and {speed_ms} m/s")
    end_m = start_m + spacing_m * (n - 1)
    if end_m > line_length_m(way.coords):
        raise ValueError(f"way {way.way_id}: {line_length_m(way.coords):.0f} m, the run needs {end_m:.0f} m")
    poses = []
    for k in range(n):
        lat, lon, heading = along(way.coords, start_m + k * spacing_m)
        h = math.radians(heading + 90.0)  # to the right of the direction of travel
        lat, lon = offset(lat, lon, right_m * math.sin(h), right_m * math.cos(h))
        poses.append(Pose(lat, lon, heading, start + timedelta(seconds=k * spacing_m / speed_ms)))
    return poses


def plan_drives(
    runs: Sequence[Sequence[str]],
    extras: Sequence[str],
    streets: Sequence[Way],
    first_day: datetime,
    second_day: datetime,
    *,
    spacing_m: float = 4.0,
    speed_ms: float = 4.0,
    start_m: float = 12.0,
    right_m: float = 1.5,
    pause_s: float = 60.0,
    second_gps_error_m: tuple[float, float] = (1.5, -1.0),
) -> tuple[DrivePlan, DrivePlan]:
    """Two drives over the same streets: run ``i`` of sample files on ``streets[i]``.

    The first drive (at ``first_day``) starts with the ``extras`` (street photos with people, for the
    privacy path) and has exact positions; the second (at ``second_day``) repeats the runs with a GPS
    error of ``second_gps_error_m`` (east, north). Runs are ``pause_s`` apart (the ride to the next street),
    well within one drive.
    """
    if len(streets) < len(runs):
        raise ValueError(f"expected a street per run, got {len(streets)} streets for {len(runs)} runs")

    def drive(name: str, t0: datetime, error: tuple[float, float], with_extras: bool) -> DrivePlan:
        shots: list[Shot] = []
        t = t0
        for i, (files, way) in enumerate(zip(runs, streets, strict=False)):
            names = [*extras, *files] if i == 0 else list(files)  # the same spots on both drives
            poses = place_run(
                way, len(names), t, start_m=start_m, spacing_m=spacing_m, speed_ms=speed_ms, right_m=right_m
            )
            for sample, pose in zip(names, poses, strict=True):
                if sample in extras and not with_extras:
                    continue
                lat, lon = offset(pose.lat, pose.lon, *error)
                shots.append(Shot(sample, Pose(lat, lon, pose.heading, pose.time)))
            t = poses[-1].time + timedelta(seconds=pause_s)
        return DrivePlan(name, tuple(shots), error)

    return (
        drive("drive-1", first_day, (0.0, 0.0), True),
        drive("drive-2", second_day, second_gps_error_m, False),
    )


def gpx_document(shots: Sequence[Shot], pause_s: float = 30.0) -> str:
    """A GPX 1.1 track through the shots' positions at their times; a new segment after a pause longer
    than ``pause_s`` (the uploader interpolates within segments only up to its ``--track-max-gap-s``)."""
    segments: list[list[Shot]] = []
    for shot in shots:
        if not segments or (shot.pose.time - segments[-1][-1].pose.time).total_seconds() > pause_s:
            segments.append([])
        segments[-1].append(shot)
    body = "".join(
        "<trkseg>"
        + "".join(
            f'<trkpt lat="{s.pose.lat:.8f}" lon="{s.pose.lon:.8f}">'
            f"<time>{s.pose.time.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z</time></trkpt>"
            for s in seg
        )
        + "</trkseg>"
        for seg in segments
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gpx version="1.1" creator="roadwatch demo" xmlns="http://www.topografix.com/GPX/1/1">'
        f"<trk><name>roadwatch demo</name>{body}</trk></gpx>\n"
    )
