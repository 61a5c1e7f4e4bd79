"""Sectioning of the road network (pure, hand-checked numbers) and matching frames to sections."""

from __future__ import annotations

import math

import pytest

from service.domain.geo import Camera
from service.domain.matching import Candidate, footprint, footprint_local, match_frame, seen_interval
from service.domain.roads import (
    Way,
    build_sections,
    class_importance,
    is_oneway,
    line_length_m,
    section_label,
)

# On the equator one degree of latitude is pi/180 x 6 371 008.8 m = 111 195.08 m, so 0.001 degrees is
# 111.195 m (haversine, the earth model of geotag).
M_PER_MILLIDEG = math.pi / 180 * 6_371_008.8 / 1000


def way(way_id: str, name: str | None, *points: tuple[float, float], highway: str = "residential") -> Way:
    return Way(
        way_id=way_id,
        coords=points,
        node_keys=tuple(points),
        name=name,
        highway=highway,
    )


def test_a_straight_way_is_cut_into_equal_sections_of_at_most_50_m() -> None:
    (s0, s1, s2) = build_sections([way("w1", "Hauptstraße", (0.0, 0.0), (0.0, 0.001))])
    assert pytest.approx(111.195, abs=1e-3) == M_PER_MILLIDEG
    # ceil(111.195 / 50) = 3 sections of 37.065 m
    assert [s.id for s in (s0, s1, s2)] == ["w1:0", "w1:1", "w1:2"]
    for s in (s0, s1, s2):
        assert s.length_m == pytest.approx(M_PER_MILLIDEG / 3, abs=1e-6)
    assert s0.coords[0] == (0.0, 0.0) and s2.coords[-1] == (0.0, 0.001)
    assert s0.coords[-1] == s1.coords[0] == pytest.approx((0.0, 0.001 / 3))
    assert build_sections([way("w1", None, (0.0, 0.0), (0.0, 0.001))], max_length_m=120.0)[0].length_m == (
        pytest.approx(M_PER_MILLIDEG)
    )


def test_a_way_is_split_at_junctions_and_named_between_its_cross_streets() -> None:
    haupt = way("w1", "Hauptstraße", (0.0, 0.0), (0.0, 0.0005), (0.0, 0.001), highway="primary")
    garten = way("w2", "Gartenweg", (-0.0005, 0.0005), (0.0, 0.0005), (0.0005, 0.0005))
    ring = way("w3", "Ringstraße", (-0.0005, 0.001), (0.0, 0.001), (0.0005, 0.001), highway="secondary")
    sections = {s.id: s for s in build_sections([haupt, garten, ring])}
    main = [sections[f"w1:{k}"] for k in range(4)]  # 2 pieces of 55.6 m, each cut in 2 of 27.8 m
    for s in main:
        assert s.length_m == pytest.approx(M_PER_MILLIDEG / 4, abs=1e-6)
    assert main[1].coords[-1] == (0.0, 0.0005)  # the junction is a cut point
    assert main[0].label == "Hauptstraße, at Gartenweg"  # dead end at the start
    assert main[2].label == "Hauptstraße, between Gartenweg and Ringstraße"
    assert main[3].from_name == "Gartenweg" and main[3].to_name == "Ringstraße"
    assert sections["w2:0"].label == "Gartenweg, at Hauptstraße"
    assert main[0].importance == 0.8 and main[0].importance_source == "osm-highway-1"
    assert sections["w3:0"].importance == 0.65 and sections["w2:0"].importance == 0.3
    assert len(sections) == 4 + 4 + 4


def test_between_names_follow_the_same_street_over_several_ways() -> None:
    # Hauptstraße drawn as two ways meeting at (0, 0.0005), crossed by Gartenweg at the far end only
    a = way("w1", "Hauptstraße", (0.0, 0.0), (0.0, 0.0005))
    b = way("w2", "Hauptstraße", (0.0, 0.0005), (0.0, 0.001))
    c = way("w3", "Gartenweg", (-0.0005, 0.001), (0.0, 0.001), (0.0005, 0.001))
    d = way("w4", "Ringstraße", (-0.0005, 0.0), (0.0, 0.0), (0.0005, 0.0))
    sections = {s.id: s for s in build_sections([a, b, c, d])}
    assert sections["w1:0"].label == "Hauptstraße, between Ringstraße and Gartenweg"
    assert sections["w2:1"].label == "Hauptstraße, between Ringstraße and Gartenweg"


def test_section_ids_are_stable_and_way_values_win() -> None:
    ways = [
        way("w7", "A", (10.0, 50.0), (10.001, 50.0)),
        Way("w8", ((10.0, 50.0), (10.0, 50.001)), ((10.0, 50.0), (10.0, 50.001)), "B", None, importance=0.95),
    ]
    first, second = build_sections(ways), build_sections(list(ways))
    assert [s.id for s in first] == [s.id for s in second]
    b = [s for s in first if s.way_id == "w8"]
    assert {s.importance for s in b} == {0.95} and {s.importance_source for s in b} == {"input"}
    assert next(s for s in first if s.way_id == "w7").importance_source == "osm-highway-1"
    with pytest.raises(ValueError, match="unique"):
        build_sections([ways[0], ways[0]])


def test_importance_mapping_and_oneway_rules() -> None:
    order = ["motorway", "primary", "secondary", "tertiary", "residential", "service"]
    values = [class_importance(c) for c in order]
    assert values == sorted(values, reverse=True) and len(set(values)) == len(values)
    assert class_importance("primary_link") == class_importance("primary")
    assert class_importance(None) == class_importance("no-such-class") == 0.3
    with pytest.raises(ValueError, match="importance mapping"):
        class_importance("primary", "v0")
    assert is_oneway({"oneway": "yes"}) == 1 and is_oneway({"oneway": "-1"}) == -1
    assert is_oneway({"junction": "roundabout"}) == 1 and is_oneway({"highway": "residential"}) == 0
    assert section_label(None, None, None) == "unnamed road"


def test_bad_ways_are_refused_with_what_was_expected() -> None:
    with pytest.raises(ValueError, match="at least 2 points"):
        Way("w1", ((0.0, 0.0),), (1,))
    with pytest.raises(ValueError, match=r"lon/lat in degrees \(EPSG:4326\), got \(500000.0"):
        Way("w1", ((500000.0, 5800000.0), (500010.0, 5800000.0)), (1, 2))
    with pytest.raises(ValueError, match=r"0\.\.1"):
        Way("w1", ((0.0, 0.0), (0.0, 0.001)), (1, 2), importance=2.0)
    with pytest.raises(ValueError, match=">= 1 m"):
        build_sections([], max_length_m=0.0)


# --- matching -------------------------------------------------------------------------------------------

NS = Candidate("ns", ((0.0, -0.001), (0.0, 0.001)))  # north-south street through the origin
EW = Candidate("ew", ((-0.001, 0.0), (0.001, 0.0)))  # east-west street crossing it
PARALLEL = Candidate("par", ((0.000135, -0.001), (0.000135, 0.001)))  # 15 m east of NS


def test_nearest_section_consistent_with_heading_wins() -> None:
    north_of_junction = 10 / 111_195.08
    # 10 m north of the junction, 4 m from EW is far less likely than NS when driving north
    m = match_frame(north_of_junction / 2.5, 0.0, 0.0, [NS, EW])
    assert m is not None and m.section_id == "ns" and m.angle_deg == pytest.approx(0.0, abs=1e-6)
    # at the junction, heading east: the street turned into wins (NS is 90 degrees off, not a candidate)
    m = match_frame(0.00001, 0.00002, 90.0, [NS, EW])
    assert m is not None and m.section_id == "ew"
    # driving south on a two-way street is as good as north
    assert match_frame(0.0, 0.0, 180.0, [NS, PARALLEL]).section_id == "ns"  # type: ignore[union-attr]
    assert match_frame(0.0, 0.00005, None, [NS, PARALLEL]).section_id == "ns"  # type: ignore[union-attr]
    assert match_frame(0.0, 0.0, 0.0, [Candidate("far", ((0.01, 0.0), (0.01, 0.001)))]) is None


def test_parallel_street_15_m_away_is_not_confused_by_gps_noise() -> None:
    east_6m = 6 / 111_195.08  # 6 m east of NS, 9 m from the parallel street
    m = match_frame(0.0, east_6m, 5.0, [NS, PARALLEL])
    assert m is not None and m.section_id == "ns" and m.distance_m == pytest.approx(6.0, abs=0.01)
    # 8.5 m east: nearer the parallel street (6.5 m), but the drive's previous frame was on NS
    east = 8.5 / 111_195.08
    assert match_frame(0.0, east, 0.0, [NS, PARALLEL]).section_id == "par"  # type: ignore[union-attr]
    assert match_frame(0.0, east, 0.0, [NS, PARALLEL], previous=NS).section_id == "ns"  # type: ignore[union-attr]


def test_one_way_against_its_direction_costs_more() -> None:
    one = Candidate("one", ((0.0, -0.001), (0.0, 0.001)), oneway=True)  # northbound
    two = Candidate("two", ((0.00005, -0.001), (0.00005, 0.001)))  # 5.6 m east, two-way
    assert match_frame(0.0, 0.0, 0.0, [one, two]).section_id == "one"  # type: ignore[union-attr]
    assert match_frame(0.0, 0.0, 180.0, [one, two]).section_id == "two"  # type: ignore[union-attr]


def test_footprint_from_camera_geometry() -> None:
    cam = Camera(height_m=1.5, pitch_deg=10.0, hfov_deg=90.0)
    corners = footprint_local(cam, 1280, 720, clear_range_m=20.0)
    assert corners is not None
    near, far = corners[0][0], corners[1][0]
    # bottom row: vfov/2 = atan(360/640) = 29.36 deg; ray 39.36 deg below horizontal: 1.5 / tan(39.36) = 1.83 m
    assert near == pytest.approx(
        1.5 / math.tan(math.radians(10 + math.degrees(math.atan(360 / 640)))), abs=1e-6
    )
    assert near == pytest.approx(1.83, abs=0.01) and far == 20.0
    # half-width at 20 m = tan(45) x (20 cos 10 + 1.5 sin 10) = 19.96 m
    assert corners[2][1] == pytest.approx(20 * math.cos(math.radians(10)) + 1.5 * math.sin(math.radians(10)))
    assert footprint_local(Camera(1.5, 0.0, 90.0), 1280, 720, clear_range_m=2.0) is None  # bottom beyond 2 m
    ring = footprint(0.0, 0.0, 0.0, cam, 1280, 720)
    assert ring is not None and len(ring) == 5 and ring[0] == ring[-1]
    seen = seen_interval(NS, ring)  # NS starts 111.2 m south: the photo shows 1.83..20 m ahead of 111.2
    assert seen is not None
    assert seen[0] == pytest.approx(111.195 + 1.83, abs=0.02) and seen[1] == pytest.approx(131.195, abs=0.02)
    assert seen_interval(Candidate("s", ((0.0, -0.001), (0.0, -0.0005))), ring) is None  # behind the camera


def test_line_length_is_haversine() -> None:
    assert line_length_m([(0.0, 0.0), (0.0, 0.001), (0.0, 0.002)]) == pytest.approx(2 * M_PER_MILLIDEG)
