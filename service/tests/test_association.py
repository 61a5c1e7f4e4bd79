"""Frame-level association on real PostGIS: side-by-side defects, split boxes, drive offsets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from service.db.engine import make_engine, make_sessionmaker
from service.domain.ranking import DEFAULT_CONFIG
from service.worker.frame_association import (
    Located,
    acquire_offset,
    associate_frame,
    combine_offsets,
    residual_m,
    shift,
)

T = datetime(2026, 6, 1, tzinfo=UTC)
LAT, LON = 52.0, 13.0


@pytest.fixture
def session(clean_db: str) -> Iterator[Session]:
    engine = make_engine(clean_db)
    with make_sessionmaker(engine)() as s:
        yield s
        s.rollback()
    engine.dispose()


def det(
    east: float, north: float, box: tuple[float, float, float, float], cls: str = "D00", conf: float = 0.8
) -> Located:
    lat, lon = shift(LAT, LON, east, north)
    return Located(cls, conf, lat, lon, 8.0, 0.5, box)


def frame(session: Session, dets: list[Located], prior=None):  # type: ignore[no-untyped-def]
    return associate_frame(
        session,
        dets,
        prior=prior,
        radius_m=4.0,
        search_m=8.0,
        seen_at=T,
        model_version_id=None,
        ranking=DEFAULT_CONFIG,
    )


def test_side_by_side_defects_in_one_frame_stay_two_sites(session: Session) -> None:
    result = frame(session, [det(0, 0, (100, 500, 200, 560)), det(2.0, 0, (600, 500, 700, 560))])
    assert result.sites[0].id != result.sites[1].id
    assert all(site.sightings == 1 for site in result.sites)


def test_touching_boxes_are_one_defect_seen_once(session: Session) -> None:
    result = frame(session, [det(0, 0, (100, 500, 200, 560)), det(0.8, 0, (205, 500, 300, 560), conf=0.6)])
    assert result.sites[0].id == result.sites[1].id
    assert result.sites[0].sightings == 1 and result.sites[0].n_observations == 2


def test_a_later_drive_is_aligned_by_its_offset(session: Session) -> None:
    # Drive 1 maps two defects 5 m apart. Drive 2's GPS is 4 m off to the east.
    first = frame(session, [det(0, 0, (100, 500, 200, 560)), det(0, 5, (600, 300, 700, 360))])
    a, b = first.sites
    second = frame(session, [det(4, 0, (100, 500, 200, 560)), det(4, 5, (600, 300, 700, 360))])
    assert [s.id for s in second.sites] == [a.id, b.id]  # wide search without a prior
    east, north = second.offset
    assert east == pytest.approx(-4.0, abs=0.05) and north == pytest.approx(0.0, abs=0.05)
    # The next frame of drive 2 uses that offset and matches within the tight radius.
    third = frame(session, [det(4.3, 5.2, (600, 300, 700, 360))], prior=combine_offsets([second.offset]))
    assert third.sites[0].id == b.id
    lat, lon = third.positions[0]
    assert max(abs(v) for v in residual_m(lat, lon, *shift(LAT, LON, 0.3, 5.2))) < 0.05


def test_a_first_offset_is_the_shift_most_detections_agree_on(session: Session) -> None:
    # Drive 1 maps A (0,0), B (0,5) and, 10 m east of A, another crack C.
    a, b = frame(session, [det(0, 0, (100, 500, 200, 560)), det(0, 5, (600, 300, 700, 360))]).sites
    (c,) = frame(session, [det(10, 0, (100, 500, 200, 560))], prior=(0.0, 0.0)).sites
    # Drive 2 is 7 m east. Nearest-site matching would take C for the first detection (3 m away);
    # both detections agree on a 7 m west shift (A and B), only one on the 3 m east shift (C).
    dets = [det(7, 0, (100, 500, 200, 560)), det(7.2, 5, (600, 300, 700, 360))]
    east, north = acquire_offset(session, dets, 8.0)
    assert east == pytest.approx(-7.1, abs=0.15) and north == pytest.approx(0.0, abs=0.05)
    second = frame(session, dets)
    assert [s.id for s in second.sites] == [a.id, b.id] and c.n_observations == 1
    assert acquire_offset(session, [det(100, 100, (0, 0, 9, 9))], 8.0) is None  # nothing known nearby


def test_without_alignment_far_sightings_make_a_new_site(session: Session) -> None:
    first = frame(session, [det(0, 0, (100, 500, 200, 560))])
    far = frame(session, [det(9, 0, (100, 500, 200, 560))])
    assert far.sites[0].id != first.sites[0].id and far.offset is None


def test_rescore_all_lowers_priority_of_sites_that_covering_passes_missed(
    session: Session, clean_db: str
) -> None:
    from service.db.history import SiteVerification
    from service.db.sites import rescore_all

    result = frame(session, [det(0, 0, (100, 500, 200, 560))])
    site = result.sites[0]
    site.last_seen = datetime(2025, 1, 1, tzinfo=UTC)  # long unseen: its age alone does not lower it
    before = site.priority
    session.commit()
    assert rescore_all(make_sessionmaker(make_engine(clean_db)), DEFAULT_CONFIG) == 1
    session.expire_all()
    assert session.get(type(site), site.id).priority == pytest.approx(before)
    # Two usable passes covered its spot since and did not see it (as the drives' verification counted).
    now = datetime.now(UTC)
    session.add(
        SiteVerification(
            site_id=site.id, state="still_there", passes_since=2, since=site.last_seen, changed_at=now,
            checked_at=now,
        )
    )  # fmt: skip
    session.commit()
    assert rescore_all(make_sessionmaker(make_engine(clean_db)), DEFAULT_CONFIG) == 1
    session.expire_all()
    assert session.get(type(site), site.id).priority < before


def test_imported_road_importance_raises_priority(session: Session, clean_db: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from service.cli.admin import import_roads

    lat2, lon2 = shift(LAT, LON, 200, 0)
    roads = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "Hauptstraße", "importance": 1.0},
                "geometry": {"type": "LineString", "coordinates": [[LON, LAT], [lon2, lat2]]},
            },
        ],
    }
    path = tmp_path / "roads.geojson"
    path.write_text(json.dumps(roads))
    quiet = frame(session, [det(0, 40, (100, 500, 200, 560))]).sites[0]  # 40 m off the road
    session.commit()
    assert quiet.road_importance is None
    assert import_roads(make_sessionmaker(make_engine(clean_db)), path) == 1
    busy = frame(session, [det(50, 2, (100, 500, 200, 560))]).sites[0]  # 2 m from the road
    assert busy.road_importance == 1.0
    assert "road" in busy.score_components["components"]
    assert busy.priority > quiet.priority
    bad = tmp_path / "bad.geojson"
    bad.write_text(
        json.dumps(
            {"features": [{"properties": {"importance": 3}, "geometry": roads["features"][0]["geometry"]}]}
        )
    )
    with pytest.raises(ValueError, match=r"importance must be in 0\.\.1"):
        import_roads(make_sessionmaker(make_engine(clean_db)), bad)
