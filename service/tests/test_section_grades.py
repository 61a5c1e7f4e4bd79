"""Section grades on PostGIS: coverage from usable frames, grades with their inputs, history, config change."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from service.db.coverage import recount_passes
from service.db.engine import make_engine, make_sessionmaker, transaction
from service.db.grades import (
    SectionGrade,
    recompute,
    recompute_all,
    section_refs,
    section_surveys,
    sections_of_sites,
)
from service.db.road_tables import FrameQuality, FrameRoad, RoadSection, SiteSurvey
from service.db.tables import DamageSite, Frame, UploadBatch, point
from service.db.vehicles import add_vehicle
from service.domain.grades import GRADED, INSUFFICIENT, load_grading

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
CONFIG = load_grading()
LAT, LON = 60.17, 24.94


@pytest.fixture
def sessions(clean_db: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(clean_db)
    factory = make_sessionmaker(engine)
    with transaction(factory) as s:
        s.execute(delete(SectionGrade))
        for i in range(3):
            s.add(
                RoadSection(
                    id=f"w1:{i}",
                    way_id="w1",
                    ordinal=i,
                    name="Mannerheimintie",
                    highway="residential",
                    oneway=False,
                    importance=0.5,
                    importance_source="test",
                    length_m=50.0,
                    geom=f"SRID=4326;LINESTRING({LON + i * 0.001} {LAT}, {LON + (i + 1) * 0.001} {LAT})",
                )
            )
    yield factory
    engine.dispose()


def _frames(
    s: Session, section: str, spans: list[tuple[float, float]], day: int, usable: bool = True
) -> None:
    vehicle = s.scalar(select(Frame.vehicle_id).limit(1))
    if vehicle is None:
        vehicle = add_vehicle(s, "grader")[0].id
    batch = UploadBatch(vehicle_id=vehicle)
    s.add(batch)
    s.flush()
    ids = []
    for k, (a, b) in enumerate(spans):
        f = Frame(
            sha256=f"{section}-{day}-{k}-{usable}".ljust(64, "0")[:64],
            vehicle_id=vehicle,
            batch_id=batch.id,
            filename="x.jpg",
            captured_at=NOW - timedelta(days=day, seconds=-k),
            position=point(LAT, LON),
            location_source="exif",
            width=1280,
            height=720,
            status="done",
        )
        s.add(f)
        s.flush()
        s.add(FrameRoad(frame_id=f.id, section_id=section, distance_m=1.0, seen_from_m=a, seen_to_m=b))
        s.add(
            FrameQuality(
                frame_id=f.id, usable=usable, reasons=[] if usable else ["blurred"], metrics={}, version="t"
            )
        )
        ids.append(f.id)
    s.flush()
    recount_passes(s, [], ids)  # what record_frame does as the worker records each frame


def _site(s: Session, section: str, cls: str, size: float | None, status: str = "open") -> int:
    site = DamageSite(
        position=point(LAT, LON),
        class_name=cls,
        status=status,
        size_m=size,
        max_confidence=0.8,
        priority=50.0,
        score_components={},
        ranking_version="t",
        severity="medium",
        sightings=2,
        n_observations=2,
        first_seen=NOW - timedelta(days=5),
        last_seen=NOW - timedelta(days=1),
    )
    s.add(site)
    s.flush()
    s.add(SiteSurvey(site_id=site.id, section_id=section, usable_sightings=2, unusable_sightings=0))
    return site.id


def test_coverage_is_the_union_of_usable_frames_and_passes_are_vehicle_days(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as s:
        _frames(s, "w1:0", [(0, 20), (15, 35)], day=3)  # 35 m of 50 seen on one pass
        _frames(s, "w1:0", [(30, 45)], day=10)  # a second pass adds 35..45
        _frames(s, "w1:0", [(45, 50)], day=2, usable=False)  # blurred: driven, not usable
        surveys = section_surveys(s, section_refs(s, ["w1:0", "w1:1", "w1:2"]), CONFIG, NOW)
    w0 = surveys["w1:0"]
    assert w0.surveyed_share == pytest.approx(45 / 50)
    assert w0.passes == 2 and w0.last_pass == NOW - timedelta(days=3, seconds=-1)
    assert surveys["w1:1"].surveyed_share == 0.0 and surveys["w1:1"].passes == 0  # never driven


def test_grades_from_sites_and_coverage_with_history_and_config_version(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as s:
        _frames(s, "w1:0", [(0, 50)], day=3)
        _frames(s, "w1:1", [(0, 10)], day=3)  # 20 %: too little to grade
        pothole = _site(s, "w1:0", "D40", 0.6)
        _site(s, "w1:0", "D40", 2.0, status="repaired")  # repaired: does not count
        _site(s, "w1:1", "D40", 2.0)
    counts = recompute_all(sessions, CONFIG, NOW)
    assert counts == {"sections": 3, "changed": 3}
    with sessions() as s:
        current = {g.section_id: g for g in s.scalars(select(SectionGrade).where(SectionGrade.current))}
    w0 = current["w1:0"]
    # 0.36 m2 of 50 m x 6 m: 0.12 % -> 2.7 (test_grades.py works it out by hand)
    assert (w0.status, w0.grade, w0.config_version) == (GRADED, 2.7, CONFIG.version)
    potholes = next(c for c in w0.inputs["components"] if c["group"] == "potholes")
    assert potholes["sites"] == [pothole]  # one click from the grade to the site and its photos
    assert (current["w1:1"].status, current["w1:1"].grade) == (INSUFFICIENT, None)
    assert "surveyed share" in current["w1:1"].inputs["reason"]
    assert current["w1:2"].inputs["reason"] == "never surveyed by a usable pass"

    # Unchanged inputs write nothing; a new sighting regrades one section and keeps the old grade as history.
    assert recompute_all(sessions, CONFIG, NOW)["changed"] == 0
    with transaction(sessions) as s:
        grown = s.get(DamageSite, pothole)
        assert grown is not None
        grown.size_m = 1.2
        assert sections_of_sites(s, [pothole]) == ["w1:0"]
        assert recompute(s, CONFIG, NOW, ["w1:0"]) == 1
    with sessions() as s:
        rows = list(
            s.scalars(select(SectionGrade).where(SectionGrade.section_id == "w1:0").order_by(SectionGrade.id))
        )
    assert (
        [r.current for r in rows] == [False, True]
        and rows[1].grade is not None
        and rows[1].grade > rows[0].grade
    )

    # A new config version regrades every section and every current grade carries it.
    new = dataclasses.replace(CONFIG, version="test-2")
    assert recompute_all(sessions, new, NOW)["changed"] == 3
    with sessions() as s:
        versions = set(s.scalars(select(SectionGrade.config_version).where(SectionGrade.current)))
    assert versions == {"test-2"}


def test_an_old_survey_is_not_a_grade(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        _frames(s, "w1:0", [(0, 50)], day=800)  # older than max_age_days (730): not in the period at all
        _site(s, "w1:0", "D00", 1.0)
        assert recompute(s, CONFIG, NOW, ["w1:0"]) == 1
        row = s.scalar(select(SectionGrade).where(SectionGrade.current, SectionGrade.section_id == "w1:0"))
    assert row is not None and row.grade is None and row.status == INSUFFICIENT


def test_sections_api_lists_worst_first_and_shows_components_sites_history(
    sessions: sessionmaker[Session],
    client,
    staff,  # type: ignore[no-untyped-def]
) -> None:
    with transaction(sessions) as s:
        _frames(s, "w1:0", [(0, 50)], day=3)
        _frames(s, "w1:1", [(0, 50)], day=3)
        pothole = _site(s, "w1:0", "D40", 0.6)
    recompute_all(sessions, CONFIG, NOW)
    viewer = staff["viewer"]
    listed = client.get("/api/v1/sections", auth=viewer).json()
    assert [f["properties"]["id"] for f in listed["features"]] == ["w1:0", "w1:1", "w1:2"]  # worst first
    assert (
        listed["features"][0]["properties"]["grade"] == 2.7
        and "not a certified survey" in listed["disclaimer"]
    )
    assert listed["features"][0]["geometry"]["type"] == "LineString"
    only_bad = client.get("/api/v1/sections?grade_min=2.5", auth=viewer).json()
    assert only_bad["total"] == 1
    assert client.get("/api/v1/sections?insufficient=true", auth=viewer).json()["total"] == 1  # never driven
    assert (
        client.get("/api/v1/sections?colour=1.0-1.5&street=mannerheimintie", auth=viewer).json()["total"] == 1
    )
    assert client.get("/api/v1/sections?grade_min=7", auth=viewer).status_code == 422

    detail = client.get("/api/v1/sections/w1:0", auth=viewer).json()["properties"]
    potholes = next(c for c in detail["components"] if c["group"] == "potholes")
    assert potholes["sites"] == [pothole] and len(detail["sites"]) == 1 and len(detail["history"]) == 1
    assert client.get("/api/v1/sections/nope", auth=viewer).status_code == 404

    summary = client.get("/api/v1/sections/summary", auth=viewer).json()
    assert summary["km_by_colour_class"]["2.5-3.0"] == 0.05 and summary["km_insufficient_data"] == 0.05
    csv = client.get("/api/v1/sections.csv", auth=viewer).text.splitlines()
    assert csv[0].startswith("id,name,from_name") and len(csv) == 4
    assert client.get("/api/v1/sections").status_code == 401


def test_only_changed_sections_are_regraded(sessions: sessionmaker[Session]) -> None:
    from service.db.grades import dirty_sections, regrade_dirty

    with transaction(sessions) as s:
        _frames(s, "w1:0", [(0, 50)], day=3)
        pothole = _site(s, "w1:0", "D40", 0.6)
        assert dirty_sections(s) == ["w1:0"]  # never graded, has a site and frames (w1:1, w1:2 have none)
    assert regrade_dirty(sessions, CONFIG, datetime.now(UTC)) == 1  # checked_at against the server's clock
    with sessions() as s:
        assert dirty_sections(s) == []  # checked now: nothing to do
    with transaction(sessions) as s:  # a decision on the site (its updated_at moves)
        site = s.get(DamageSite, pothole)
        assert site is not None
        site.status = "repaired"
    with sessions() as s:
        assert dirty_sections(s) == ["w1:0"]
    later = datetime.now(UTC)
    assert regrade_dirty(sessions, CONFIG, later) == 1
    with sessions() as s:
        row = s.scalar(select(SectionGrade).where(SectionGrade.current, SectionGrade.section_id == "w1:0"))
        assert row is not None and row.grade == 1.0  # the repaired pothole no longer counts
        assert dirty_sections(s) == []


def test_streets_pages_show_grades_components_history_and_the_report(
    sessions: sessionmaker[Session],
    client,
    staff,  # type: ignore[no-untyped-def]
) -> None:
    with transaction(sessions) as s:
        _frames(s, "w1:0", [(0, 50)], day=3)
        _frames(s, "w1:1", [(0, 10)], day=3)
        _site(s, "w1:0", "D40", 0.6)
    recompute_all(sessions, CONFIG, NOW)
    viewer = staff["viewer"]
    listing = client.get("/streets?lang=en", auth=viewer)
    assert listing.status_code == 200 and "not a certified survey" in listing.text
    assert listing.text.index('data-section="w1:0"') < listing.text.index(
        'data-section="w1:1"'
    )  # worst first
    assert "insufficient data" in listing.text and "Mannerheimintie" in listing.text
    compared = client.get(f"/streets?compare={(NOW - timedelta(days=400)).date().isoformat()}", auth=viewer)
    assert compared.status_code == 200 and "Grade on" in compared.text  # the language cookie stays English
    lines = client.get("/streets/map.geojson?colour=2.5-3.0", auth=viewer).json()["features"]
    assert [f["properties"]["id"] for f in lines] == ["w1:0"] and lines[0]["properties"][
        "url"
    ] == "/streets/w1:0"
    section = client.get("/streets/w1:0?lang=en", auth=viewer)
    assert (
        section.status_code == 200 and "Potholes and break-outs" in section.text and "/sites/" in section.text
    )
    assert client.get("/streets/none", auth=viewer).status_code == 404
    report = client.get("/streets/report?lang=en", auth=viewer)
    assert report.status_code == 200 and "The 1 sections in the worst condition" in report.text
    assert client.get("/streets?colour=9-10", auth=viewer).status_code == 422
