"""The coverage tables (section_pass, section_coverage; migration 0014) on real PostGIS: kept as frames are
recorded, counted once however often a frame is recorded, equal to a rebuild from the frames, in step when a
vehicle is removed or the network re-imported, and the grades' surveys the same as from the frames."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session, sessionmaker

from service.db.coverage import rebuild_coverage, section_coverage
from service.db.engine import make_engine, make_sessionmaker, transaction
from service.db.grades import section_refs, section_surveys
from service.db.road_tables import RoadSection
from service.db.survey import record_frame
from service.db.tables import Frame, UploadBatch, Vehicle
from service.domain.geo import Camera
from service.domain.grades import load_grading
from service.domain.quality import Verdict
from service.domain.roads import from_local
from service.tests.test_coverage import _network, _vehicle
from service.tests.test_coverage import drive_frames as _drive

CAM = Camera(1.4, 10.0, 100.0)
LAT0, LON0 = 60.2, 24.9
DAY1 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = DAY1 + timedelta(days=30)
USABLE, BLURRED = Verdict(True, ()), Verdict(False, ("blurred",))


@pytest.fixture
def sessions(clean_db: str, tmp_path: Path) -> sessionmaker[Session]:
    factory = make_sessionmaker(make_engine(clean_db))
    _network(factory, tmp_path)
    return factory


def _tables(session: Session) -> tuple[list[Any], list[Any]]:
    passes = session.execute(
        text(
            "SELECT section_id, vehicle_id, day, frames, unusable_frames, last_at, last_usable_at, last_seen_at,"
            " (SELECT string_agg(round(lower(r), 3) || '..' || round(upper(r), 3), ',' ORDER BY lower(r))"
            "  FROM unnest(seen) r) FROM section_pass ORDER BY 1, 2, 3"
        )
    ).all()
    sections = session.execute(
        text("SELECT section_id, last_at, last_usable_at FROM section_coverage ORDER BY 1")
    ).all()
    return [tuple(r) for r in passes], [tuple(r) for r in sections]


def _three_drives(sessions: sessionmaker[Session]) -> tuple[Vehicle, Vehicle, list[Frame]]:
    """West twice (half, then whole, every fourth frame of the second blurred), East once, all blurred."""
    with transaction(sessions) as s:
        a, b = _vehicle(s), _vehicle(s)
        _drive(s, a, 0.0, 150.0, DAY1, lambda i: USABLE)
        second = _drive(
            s, a, 0.0, 300.0, DAY1 + timedelta(days=1), lambda i: BLURRED if i % 4 == 3 else USABLE
        )
        _drive(s, b, 15.0, 300.0, DAY1 + timedelta(days=1), lambda i: BLURRED)
        s.expunge_all()
    return a, b, second


def test_passes_are_counted_as_frames_are_recorded(sessions: sessionmaker[Session]) -> None:
    a, b, _ = _three_drives(sessions)
    with sessions() as s:
        passes, sections = _tables(s)
        lengths = [(r.id, r.length_m) for r in s.scalars(select(RoadSection).order_by(RoadSection.id))]
        cov = section_coverage(s, lengths, period_days=182, now=NOW)
    west0 = [p for p in passes if p[0] == "fWest:0"]
    assert [(p[1], p[2].isoformat(), p[3]) for p in west0] == [
        (a.id, "2026-03-02", 11),
        (a.id, "2026-03-03", 11),
    ]
    assert west0[1][4] == 2  # frames 3 and 7 of the second drive (0 to 50 m) were blurred ...
    east = [p for p in passes if p[0] == "fEast:2"]
    assert len(east) == 1 and east[0][1] == b.id and east[0][4] == east[0][3]  # ... and every one on East
    assert east[0][6] is None and east[0][8] is None  # no usable frame: nothing seen
    assert dict((sid, usable) for sid, _, usable in sections)["fEast:2"] is None
    assert cov["fWest:0"]["passes"] == 2 and cov["fWest:0"]["frames"] == 22
    assert cov["fWest:0"]["unusable_share"] == pytest.approx(2 / 22, abs=1e-4)
    assert cov["fEast:2"]["passes"] == 0 and cov["fEast:2"]["last_pass"].startswith("2026-03-03")


def test_recording_a_frame_again_counts_it_once(sessions: sessionmaker[Session]) -> None:
    _, _, second = _three_drives(sessions)
    with sessions() as s:
        before = _tables(s)
    with transaction(sessions) as s:  # the worker re-runs every frame of a drive (a retried job, a reprocess)
        for i, f in enumerate(second):
            frame = s.get(Frame, f.id)
            assert frame is not None
            lon, lat = from_local(LAT0, LON0, 0.0, 5.0 * i)
            record_frame(s, frame, lat, lon, 0.0, CAM, BLURRED if i % 4 == 3 else USABLE)
    with sessions() as s:
        assert _tables(s) == before
    # the quality verdict of one frame changes: its pass is recounted, as a rebuild would count it
    with transaction(sessions) as s:
        frame = s.get(Frame, second[0].id)
        assert frame is not None
        lon, lat = from_local(LAT0, LON0, 0.0, 0.0)
        record_frame(s, frame, lat, lon, 0.0, CAM, BLURRED)
    with sessions() as s:
        changed = _tables(s)
        row = next(p for p in changed[0] if p[0] == "fWest:0" and p[2].isoformat() == "2026-03-03")
        assert row[4] == 3 and changed != before
    with transaction(sessions) as s:
        assert rebuild_coverage(s) == {"passes_fixed": 0, "sections_fixed": 0}
    with sessions() as s:
        assert _tables(s) == changed


def test_a_frame_rolled_back_leaves_no_pass(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError), transaction(sessions) as s:  # a worker killed before its commit
        _drive(s, _vehicle(s), 0.0, 50.0, DAY1, lambda i: USABLE)
        raise RuntimeError("killed")
    with sessions() as s:
        assert _tables(s) == ([], [])


def test_rebuild_equals_incremental_and_fixes_what_differs(sessions: sessionmaker[Session]) -> None:
    _three_drives(sessions)
    with sessions() as s:
        kept = _tables(s)
    with transaction(sessions) as s:
        assert rebuild_coverage(s) == {"passes_fixed": 0, "sections_fixed": 0}
    with transaction(sessions) as s:  # drift: a lost update, a row too many, a section forgotten
        s.execute(text("UPDATE section_pass SET frames = 99 WHERE section_id = 'fWest:1'"))
        s.execute(text("DELETE FROM section_coverage WHERE section_id = 'fEast:0'"))
        s.execute(
            text(
                "INSERT INTO section_pass (section_id, vehicle_id, day, frames, unusable_frames, last_at) "
                "SELECT 'fEast:5', vehicle_id, day + 40, 1, 0, last_at + interval '40 days' FROM section_pass "
                "WHERE section_id = 'fWest:0' LIMIT 1"
            )
        )
    with transaction(sessions) as s:
        fixed = rebuild_coverage(s)
    assert fixed == {"passes_fixed": 3, "sections_fixed": 1}  # both fWest:1 passes, the extra one; fEast:0
    with sessions() as s:
        assert _tables(s) == kept


def test_removing_a_vehicle_or_reimporting_keeps_the_tables_in_step(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    _, b, _ = _three_drives(sessions)
    with transaction(sessions) as s:
        kept = _tables(s)
        s.execute(delete(Frame).where(Frame.vehicle_id == b.id))  # as the demo's removal does
        s.execute(delete(UploadBatch).where(UploadBatch.vehicle_id == b.id))
        s.execute(delete(Vehicle).where(Vehicle.id == b.id))
    with sessions() as s:
        passes, sections = _tables(s)
    assert {p[0] for p in passes} == {p[0] for p in kept[0] if p[0].startswith("fWest")}
    assert [c[0] for c in sections] == [f"fWest:{k}" for k in range(6)]
    _network(sessions, tmp_path)  # the same network again: frames re-attached, passes counted again
    with sessions() as s:
        again = _tables(s)
    # re-matched from the stored footprints (1 mm of rounding): the same passes, the same stretches
    assert [p[:-1] for p in again[0]] == [p[:-1] for p in passes] and again[1] == sections
    for x, y in zip(again[0], passes, strict=True):
        assert _spans(x[-1]) == pytest.approx(_spans(y[-1]), abs=0.005)


def _spans(seen: str | None) -> list[float]:
    return [float(v) for part in (seen or "").split(",") if part for v in part.split("..")]


# The surveys as the grades computed them from the frames before migration 0014 (service/db/grades.py).
_FROM_FRAMES = text(
    """
    SELECT fr.section_id,
           range_agg(numrange(LEAST(fr.seen_from_m, fr.seen_to_m)::numeric,
                              GREATEST(fr.seen_from_m, fr.seen_to_m)::numeric, '[]')) AS seen,
           count(DISTINCT (f.vehicle_id, (f.captured_at AT TIME ZONE 'UTC')::date)) AS passes,
           max(f.captured_at) AS last_pass
    FROM frame_road fr JOIN frame f ON f.id = fr.frame_id LEFT JOIN frame_quality q ON q.frame_id = fr.frame_id
    WHERE fr.seen_from_m IS NOT NULL AND fr.seen_to_m IS NOT NULL AND COALESCE(q.usable, true)
      AND f.captured_at >= :since AND f.captured_at <= :until
    GROUP BY fr.section_id
    """
)


def test_grades_see_the_same_surveys_as_from_the_frames(sessions: sessionmaker[Session]) -> None:
    from service.domain.grades import covered_share

    _three_drives(sessions)
    config = load_grading()
    with sessions() as s:
        refs = section_refs(s, list(s.scalars(select(RoadSection.id))))
        surveys = section_surveys(s, refs, config, NOW)
        since = NOW - timedelta(days=config.max_age_days)
        reference = {r.section_id: r for r in s.execute(_FROM_FRAMES, {"since": since, "until": NOW})}
    assert len(reference) == 6  # West: both passes saw it; East: blurred
    for ref in refs:
        got, want = surveys[ref.id], reference.get(ref.id)
        spans = [(float(r.lower), float(r.upper)) for r in want.seen] if want else []
        assert got.surveyed_share == pytest.approx(covered_share(spans, ref.length_m), abs=1e-9)
        assert got.passes == (want.passes if want else 0)
        assert got.last_pass == (want.last_pass if want else None)
