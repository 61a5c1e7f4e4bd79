"""Tracking, registration and assignment on hand-built drives (pure: no database):
service/domain/tracking.py, registration.py, hungarian.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from service.domain.classes import COMPATIBLE
from service.domain.geo import Camera
from service.domain.hungarian import gated_assignment, min_cost_assignment
from service.domain.registration import assign_tracks, plan_drive, register_drive
from service.domain.tracking import (
    Config,
    FrameInput,
    KnownSite,
    Registration,
    Sighting,
    Track,
    from_local,
    revisit_groups,
    to_local,
    track_drive,
)

ORIGIN = (52.0, 13.0)
T0 = datetime(2026, 6, 1, 9, tzinfo=UTC)
CFG = Config(compatible=COMPATIBLE)
_keys = iter(range(1, 1_000_000))


def sighting(
    east: float,
    north: float,
    cls: str = "D00",
    *,
    distance: float | None = 8.0,
    size: float | None = 0.5,
    sizeable: bool = True,
    box: tuple[float, float, float, float] | None = None,
    conf: float = 0.8,
) -> Sighting:
    key = next(_keys)
    lat, lon = from_local(east, north, ORIGIN)
    x = float(key % 50) * 30.0  # boxes far apart in the image unless a test says otherwise
    return Sighting(key, cls, conf, lat, lon, distance, size, sizeable, box or (x, 500.0, x + 20.0, 540.0))


def frame(k: int, *sightings: Sighting, east: float = 0.0, seconds: float | None = None) -> FrameInput:
    lat, lon = from_local(east, 0.0, ORIGIN)
    when = T0 + timedelta(seconds=k if seconds is None else seconds)
    return FrameInput(k, when, lat, lon, 90.0, tuple(sightings))


def track_at(
    east: float, north: float, frames: tuple[int, ...], cls: str = "D00", along: float = 0.0
) -> Track:
    return Track(
        sighting_keys=tuple(next(_keys) for _ in frames),
        frame_keys=frames,
        class_name=cls,
        class_votes={cls: 1.0},
        east=east,
        north=north,
        size_m=None,
        max_confidence=0.8,
        first_seen=T0,
        last_seen=T0,
        along_m=along,
        weights={},
    )


def site_at(key: int, east: float, north: float, cls: str = "D00") -> KnownSite:
    return KnownSite(key, cls, *from_local(east, north, ORIGIN), 3)


def no_offset(n: int) -> Registration:
    return Registration(0.0, 0.0, 0, 0, 0.0, tuple((0.0, 0.0) for _ in range(n)))


# --- assignment primitives ------------------------------------------------------------------


def test_min_cost_assignment_finds_the_optimum_not_the_greedy_choice() -> None:
    # Greedy takes row 0 -> column 1 (cost 1) first and must then pay 9 for row 1; the optimum is 2 + 2.
    assert min_cost_assignment([[2.0, 1.0], [9.0, 2.0]]) == [0, 1]
    assert min_cost_assignment([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]]) == [1, 0, 2]
    assert min_cost_assignment([[1e18, 1.0], [1e18, 2.0]]) in ([-1, 1], [1, -1])  # column 0 is forbidden
    with pytest.raises(ValueError, match="rows <= columns"):
        min_cost_assignment([[1.0], [2.0]])


def test_gated_assignment_leaves_rows_unassigned_when_that_is_cheaper() -> None:
    assert gated_assignment([[5.0, 1.0], [1.0, 9.0]], [4.0, 4.0]) == [1, 0]
    assert gated_assignment([[5.0], [1.0]], [4.0, 4.0]) == [-1, 0]
    assert gated_assignment([], []) == []


def test_local_coordinates_round_trip() -> None:
    lat, lon = from_local(120.0, -35.0, ORIGIN)
    assert to_local(lat, lon, ORIGIN) == pytest.approx((120.0, -35.0), abs=1e-6)


# --- tracking ---------------------------------------------------------------------------------


def test_one_defect_seen_in_consecutive_frames_is_one_track() -> None:
    frames = [
        frame(k, sighting(10.0 + dx, 2.0 + dy))
        for k, (dx, dy) in enumerate([(0.3, 0), (-0.3, 0.2), (0, -0.2)])
    ]
    (track,) = track_drive(frames, CFG, ORIGIN)
    assert track.sightings == 3 and len(track.sighting_keys) == 3
    assert (track.east, track.north) == pytest.approx((10.0, 2.0), abs=0.05)


def test_two_defects_side_by_side_stay_two_tracks() -> None:
    # 1.6 m apart, both within the gate of either: one detection per track and frame keeps them apart.
    frames = [frame(k, sighting(10.0, 0.0), sighting(11.6, 0.0)) for k in range(4)]
    tracks = track_drive(frames, CFG, ORIGIN)
    assert sorted(round(t.east, 1) for t in tracks) == [10.0, 11.6]
    assert all(t.sightings == 4 for t in tracks)


def test_a_missed_frame_does_not_break_the_track_but_a_long_gap_does() -> None:
    frames = [frame(0, sighting(5, 0)), frame(1), frame(2), frame(3, sighting(5.2, 0))]
    assert len(track_drive(frames, CFG, ORIGIN)) == 1
    far = [frame(0, sighting(5, 0)), *(frame(k) for k in range(1, 5)), frame(5, sighting(5.2, 0))]
    # A gap of 4 frames ends the track; the later sighting is merged back (no shared frame, 0.2 m).
    (merged,) = track_drive(far, CFG, ORIGIN)
    assert merged.sightings == 2


def test_class_is_the_vote_and_incompatible_classes_never_link() -> None:
    frames = [
        frame(0, sighting(5, 0, "D00", conf=0.9), sighting(5.1, 0.1, "D40")),
        frame(1, sighting(5.1, 0, "D20", conf=0.5), sighting(5.0, 0.1, "D40")),
        frame(2, sighting(4.9, 0, "D00", conf=0.7)),
    ]
    tracks = {t.class_name: t for t in track_drive(frames, CFG, ORIGIN)}
    assert set(tracks) == {"D00", "D40"}
    assert tracks["D00"].sightings == 3 and tracks["D00"].class_votes == pytest.approx(
        {"D00": 1.6, "D20": 0.5}
    )
    assert tracks["D40"].sightings == 2


def test_size_comes_only_from_near_sightings_wholly_on_the_road() -> None:
    frames = [
        frame(0, sighting(5, 0, distance=30.0, size=9.0)),  # far: no size
        frame(1, sighting(5, 0, distance=10.0, size=37.0, sizeable=False)),  # its top reaches the horizon
        frame(2, sighting(5, 0, distance=8.0, size=0.6)),
        frame(3, sighting(5, 0, distance=6.0, size=0.8)),
        frame(4, sighting(5, 0, distance=5.0, size=0.7)),
    ]
    (track,) = track_drive(frames, CFG, ORIGIN)
    assert track.size_m == pytest.approx(0.7)
    (far_only,) = track_drive(frames[:2], CFG, ORIGIN)
    assert far_only.size_m is None


def test_a_far_outlier_does_not_move_the_track() -> None:
    # Seen first from 20 m, 3.6 m beyond along the line of sight (a far range error: linked, as the
    # gate along the line of sight grows with the distance squared), then dropped from the mean.
    frames = [frame(0, sighting(8.6, 0.0, distance=20.0))]
    frames += [frame(k, sighting(5.0, 0.0, distance=6.0)) for k in range(1, 5)]
    (track,) = track_drive(frames, CFG, ORIGIN)
    assert track.sightings == 5 and track.east == pytest.approx(5.0, abs=0.01)


def test_touching_boxes_of_one_crack_are_one_sighting_frame() -> None:
    left, right = (100.0, 500.0, 200.0, 560.0), (205.0, 500.0, 300.0, 560.0)
    frames = [frame(k, sighting(5.0, 0.0, box=left), sighting(5.5, 0.0, box=right)) for k in range(2)]
    (track,) = track_drive(frames, CFG, ORIGIN)
    assert track.sightings == 2 and len(track.sighting_keys) == 4
    # Touching boxes 2 m apart on the ground are two defects.
    apart = [frame(k, sighting(5.0, 0.0, box=left), sighting(7.0, 0.0, box=right)) for k in range(2)]
    assert len(track_drive(apart, CFG, ORIGIN)) == 2


def test_a_spot_driven_again_later_in_the_drive_is_one_new_site() -> None:
    first = [frame(k, sighting(50.0, 1.0), east=k * 4.0) for k in range(3)]
    gap = [frame(k, east=60.0 + k * 40, seconds=100 + k) for k in range(3, 10)]  # 300 m driven in between
    later = [frame(k, sighting(52.5, 2.0), east=400.0 - k * 4.0, seconds=300 + k) for k in range(10, 13)]
    tracks = track_drive([*first, *gap, *later], CFG, ORIGIN)
    assert len(tracks) == 2  # the GPS drifted in between: decided after registration, not here
    out = assign_tracks(tracks, [], no_offset(2), ORIGIN, CFG)
    assert out.founders == (0, 0)  # 2.7 m apart, no shared frame, far apart in the drive: one site
    near = [frame(k, sighting(50.0, 1.0)) for k in range(3)] + [
        frame(k, sighting(52.5, 2.0)) for k in range(8, 11)
    ]
    close = track_drive(near, CFG, ORIGIN)
    assert len(close) == 2  # 2.7 m apart without driving away: two defects
    assert assign_tracks(close, [], no_offset(2), ORIGIN, CFG).founders == (0, 1)


def test_a_sighting_never_moves_to_the_track_of_another_visit() -> None:
    # A defect seen from afar on a first visit, and again 300 m later in the drive, where a false
    # detection of a compatible class lies 1.3 m from it in the second visit's first frame. Relinking
    # must not move that detection into the first visit's track: the two visits would share a frame
    # and never become one site.
    first = [frame(k, sighting(50.0, 1.0, distance=20.0), east=30.0 + k * 4.0) for k in range(2)]
    gap = [frame(k, east=60.0 + k * 40, seconds=100 + k) for k in range(2, 9)]
    false = sighting(51.3, 1.2, "D20", conf=0.3, box=(900.0, 500.0, 920.0, 540.0))
    later = [frame(k, sighting(50.5, 1.0), east=42.0, seconds=300 + k) for k in range(9, 13)]
    later[0] = replace(later[0], sightings=(*later[0].sightings, false))
    tracks = track_drive([*first, *gap, *later], CFG, ORIGIN)
    assert sorted(sorted(t.frame_keys) for t in tracks) == [[0, 1], [9], [9, 10, 11, 12]]
    founders = assign_tracks(tracks, [], no_offset(3), ORIGIN, CFG).founders
    visits = [i for i, t in enumerate(tracks) if t.sightings >= 2]
    assert founders[visits[0]] == founders[visits[1]]  # both visits: one site
    assert len(set(founders)) == 2  # the false detection: a site of its own


def test_a_lone_sighting_nearer_than_the_other_visit_does_not_take_it() -> None:
    # The first visit's track, a false detection 0.3 m from it on the second visit, and the second
    # visit's own track 2.7 m away (the GPS drifted). Tracks seen twice are matched first.
    tracks = [
        track_at(50.0, 1.0, (1, 2)),
        track_at(50.3, 1.1, (40,), along=500.0),
        track_at(52.5, 2.0, (40, 41, 42, 43), along=500.0),
    ]
    assert revisit_groups(tracks, CFG) == [[0, 2], [1]]
    assert assign_tracks(tracks, [], no_offset(3), ORIGIN, CFG).founders == (2, 1, 2)
    # A lone sighting on the second visit, 0.7 m from a lone sighting of the first and 3.5 m from a
    # track seen three times there: it joins the track seen three times.
    lone = [
        track_at(0.0, 0.0, (1, 2, 3)),
        track_at(0.0, -3.0, (5,), along=10.0),
        track_at(0.5, -3.5, (40,), along=500.0),
    ]
    assert revisit_groups(lone, CFG) == [[0, 2], [1]]


# --- registration -----------------------------------------------------------------------------


def test_registration_finds_the_shift_most_tracks_agree_on() -> None:
    sites = [site_at(1, 0, 0), site_at(2, 30, 5), site_at(3, 60, -2), site_at(4, 64, -2)]
    # The drive's GPS is 4 m east and 3 m south of the map; one extra track lies 4 m from site 4.
    tracks = [
        track_at(4.2, -3.0, (1, 2)),
        track_at(34.0, 2.1, (5, 6)),
        track_at(64.1, -5.0, (9, 10)),
        track_at(70.0, -2.0, (11, 12)),
    ]
    reg = register_drive(tracks, sites, ORIGIN, CFG)
    assert (reg.offset_e_m, reg.offset_n_m) == pytest.approx((-4.1, 3.0), abs=0.15)
    assert reg.support == 3 and reg.candidates == 4 and reg.reference == "map"
    assert all(o == pytest.approx((-4.1, 3.0), abs=0.3) for o in reg.local)


def test_a_stretch_whose_map_offset_differs_follows_its_own_tracks() -> None:
    # The map was built by a drive whose GPS drifted: near 730 m along this drive it lies 1.9 m west
    # of where it lies elsewhere. There, a crack pair 1.9 m apart could be swapped (the first crack to
    # the second one's site) to agree with the neighbours 50-150 m away; the three tracks at the spot
    # agree on their own offset, and that is the one they take.
    far, here = (5.0, -2.0), (3.1, -2.0)
    spots = [(float(a), 0.0, a, "D00", far) for a in range(100, 600, 80)]
    spots += [(679.0, 1.0, 679, "D00", far), (681.0, -2.0, 679, "D40", far)]
    spots += [(727.0, 0.0, 727, "D00", here), (728.9, 0.0, 727, "D00", here), (735.0, -2.0, 731, "D40", here)]
    tracks = [
        track_at(e, n, (3 * k, 3 * k + 1, 3 * k + 2), c, along=a) for k, (e, n, a, c, _) in enumerate(spots)
    ]
    sites = [site_at(k + 1, e + o[0], n + o[1], c) for k, (e, n, _, c, o) in enumerate(spots)]
    reg = register_drive(tracks, sites, ORIGIN, CFG)
    assert (reg.offset_e_m, reg.offset_n_m) == pytest.approx(far, abs=0.2)
    for k in (-3, -2, -1):
        assert reg.local[k] == pytest.approx(here, abs=0.3)


def test_a_drive_over_unknown_roads_keeps_its_own_reference() -> None:
    reg = register_drive([track_at(0, 0, (1, 2))], [site_at(1, 500, 500)], ORIGIN, CFG)
    assert (reg.offset_e_m, reg.offset_n_m, reg.support, reg.reference) == (0.0, 0.0, 0, "own")


def test_a_lone_pair_is_accepted_only_when_it_is_the_only_candidate() -> None:
    lone = register_drive([track_at(3, 0, (1, 2))], [site_at(1, 0, 0)], ORIGIN, CFG)
    assert lone.offset_e_m == pytest.approx(-3.0) and lone.support == 1
    # One track between two sites: either shift is possible, so neither is taken.
    two = register_drive([track_at(3, 0, (1, 2))], [site_at(1, 0, 0), site_at(2, 6, 0)], ORIGIN, CFG)
    assert two.reference == "own"


def test_incompatible_classes_do_not_register() -> None:
    reg = register_drive(
        [track_at(3, 0, (1, 2), "D40"), track_at(13, 0, (3, 4), "D40")],
        [site_at(1, 0, 0, "D00"), site_at(2, 10, 0, "D10")],
        ORIGIN,
        CFG,
    )
    assert reg.reference == "own" and reg.candidates == 0


# --- assignment -------------------------------------------------------------------------------


def test_side_by_side_tracks_take_one_site_each_at_the_least_total_distance() -> None:
    # Greedy nearest-first gives track a (1.1) the site q (0.9 away) and leaves b 2.9 m from p.
    tracks = [track_at(1.1, 0, (1, 2)), track_at(2.9, 0, (1, 2))]
    out = assign_tracks(tracks, [site_at(10, 0, 0), site_at(11, 2, 0)], no_offset(2), ORIGIN, CFG)
    assert out.sites == (10, 11)
    assert out.match_m == pytest.approx((1.1, 0.9), abs=0.01)


def test_one_defect_seen_from_two_directions_joins_one_site() -> None:
    tracks = [track_at(0.5, 0, (1, 2)), track_at(-0.6, 0.3, (40, 41))]  # no shared frame
    out = assign_tracks(tracks, [site_at(7, 0, 0)], no_offset(2), ORIGIN, CFG)
    assert out.sites == (7, 7)


def test_tracks_without_a_site_form_new_ones_shared_only_without_a_common_frame() -> None:
    tracks = [
        track_at(0, 0, (1, 2, 3)),
        track_at(0.8, 0, (20, 21)),  # the same defect later: joins track 0's new site
        track_at(1.0, 0.5, (2, 3)),  # seen in the same frames as track 0: another defect
        track_at(0, 0, (4, 5), "D40"),  # a pothole there: never a crack's site
        track_at(9.5, 0, (6, 7)),  # too far from the known site
    ]
    out = assign_tracks(tracks, [site_at(7, 5, 0)], no_offset(5), ORIGIN, CFG)
    assert out.sites == (None, None, None, None, None)
    assert out.founders == (0, 0, 2, 3, 4)


def test_a_close_pair_driven_again_in_one_drive_stays_two_new_sites() -> None:
    # A crack pair 1.8 m apart, seen on the first visit and again 500 m later in the drive, when the GPS
    # had drifted 3 m east and 1 m north: the second visit's first crack lies nearer the first visit's
    # second one (1.7 m) than its own (3.2 m). Matched jointly, each keeps its own earlier track.
    tracks = [
        track_at(0.0, 0.0, (1, 2, 3)),
        track_at(1.8, 0.0, (2, 3, 4)),
        track_at(3.0, 1.0, (40, 41, 42), along=500.0),
        track_at(4.8, 1.0, (41, 42, 43), along=500.0),
    ]
    out = assign_tracks(tracks, [], no_offset(4), ORIGIN, CFG)
    assert out.founders == (0, 1, 0, 1)


def test_plan_drive_aligns_a_second_drive_and_keeps_close_pairs_apart() -> None:
    # The map: a close pair (1.5 m) and two lone defects. The drive is 5 m west, 2 m north of it.
    truth = [(20.0, 0.0), (21.5, 0.0), (60.0, 1.0), (100.0, -1.0)]
    sites = [site_at(k + 1, e, n) for k, (e, n) in enumerate(truth)]
    frames = []
    for k in range(30):
        cam = k * 4.0
        seen = [sighting(e - 5.0, n + 2.0) for e, n in truth if 4.0 <= e - cam <= 16.0]
        frames.append(frame(k, *seen, east=cam - 5.0))
    plan = plan_drive(frames, sites, CFG)
    assert plan.registration.support >= 3
    assert (plan.registration.offset_e_m, plan.registration.offset_n_m) == pytest.approx((5.0, -2.0), abs=0.2)
    assert sorted(s for s in plan.assignment.sites if s is not None) == [1, 2, 3, 4]
    lat, lon = plan.corrected(0)
    assert to_local(lat, lon, ORIGIN) == pytest.approx(truth[0], abs=0.3)


def test_sighting_locate_marks_boxes_reaching_the_horizon_as_unsizeable() -> None:
    cam = Camera(1.4, 10.0, 100.0)
    near = Sighting.locate(1, "D00", 0.8, (900.0, 800.0, 1000.0, 900.0), 52.0, 13.0, 90.0, 1920, 1080, cam)
    tall = Sighting.locate(2, "D00", 0.8, (900.0, 100.0, 1000.0, 900.0), 52.0, 13.0, 90.0, 1920, 1080, cam)
    above = Sighting.locate(3, "D00", 0.8, (900.0, 50.0, 1000.0, 120.0), 52.0, 13.0, 90.0, 1920, 1080, cam)
    assert near is not None and near.sizeable and near.size_m is not None
    assert tall is not None and not tall.sizeable
    assert above is None


def test_split_drives_by_pauses() -> None:
    from service.domain.tracking import split_drives

    times = [T0, T0 + timedelta(seconds=2), T0 + timedelta(minutes=30), None, T0 + timedelta(minutes=31)]
    assert split_drives(times, 300.0) == [[0, 1], [2, 4], [3]]
    assert split_drives([], 300.0) == []


def test_far_sightings_may_be_off_along_the_line_of_sight_more_than_across_it() -> None:
    near = [frame(k, sighting(5.0, 0.0, distance=6.0)) for k in range(1, 4)]
    along = [frame(0, sighting(8.5, 0.0, distance=20.0)), *near]  # camera at east 0: 3.5 m further away
    across = [frame(0, sighting(5.0, 3.5, distance=20.0)), *near]  # 3.5 m to the side
    assert len(track_drive(along, CFG, ORIGIN)) == 1
    assert len(track_drive(across, CFG, ORIGIN)) == 2


def test_a_track_whose_offset_no_neighbour_confirmed_looks_farther() -> None:
    tracks = [track_at(6.0, 0.0, (1, 2))]
    site = [site_at(9, 0, 0)]
    confirmed = Registration(0.0, 0.0, 3, 3, 0.0, ((0.0, 0.0),), (True,))
    unconfirmed = Registration(0.0, 0.0, 3, 3, 0.0, ((0.0, 0.0),), (False,))
    assert assign_tracks(tracks, site, confirmed, ORIGIN, CFG).sites == (None,)  # 6 m > 5 m
    assert assign_tracks(tracks, site, unconfirmed, ORIGIN, CFG).sites == (9,)  # within 7 m
