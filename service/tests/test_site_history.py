"""A site across surveys on PostGIS: passes whose footprint covered its spot, growth, repairs verified."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import make_engine, make_sessionmaker, transaction
from service.db.history import SiteVerification, site_passes, timeline, verify_changed
from service.db.road_tables import FrameRoad
from service.db.tables import DamageSite, Decision, Frame, Observation, UploadBatch, User, point
from service.db.vehicles import add_vehicle
from service.domain.history import CONFIRMED, NOT_SEEN_AGAIN, REAPPEARED

T0 = datetime(2026, 9, 1, 8, tzinfo=UTC)
LAT, LON = 60.17, 24.94
# A footprint of about 20 m x 11 m around the site, and one 100 m away that does not cover it.
NEAR = f"SRID=4326;POLYGON(({LON - 0.0001} {LAT - 0.0001}, {LON + 0.0001} {LAT - 0.0001}, {LON + 0.0001} {LAT + 0.0001}, {LON - 0.0001} {LAT + 0.0001}, {LON - 0.0001} {LAT - 0.0001}))"
FAR = NEAR.replace(f"{LAT - 0.0001}", f"{LAT + 0.0008}").replace(f"{LAT + 0.0001}", f"{LAT + 0.001}")


@pytest.fixture
def sessions(clean_db: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(clean_db)
    yield make_sessionmaker(engine)
    engine.dispose()


def _site(s: Session, status: str = "open") -> DamageSite:
    site = DamageSite(
        position=point(LAT, LON), class_name="D40", status=status, size_m=0.4, max_confidence=0.8,
        priority=50.0, score_components={}, ranking_version="t", severity="medium", sightings=1,
        n_observations=1, first_seen=T0, last_seen=T0,
    )  # fmt: skip
    s.add(site)
    s.flush()
    return site


def _pass(
    s: Session, site: DamageSite | None, day: int, seen: bool, size: float = 0.4, footprint: str = NEAR
) -> int:
    vehicle = s.scalar(select(Frame.vehicle_id).limit(1)) or add_vehicle(s, "sweeper")[0].id
    batch = UploadBatch(vehicle_id=vehicle)
    s.add(batch)
    s.flush()
    f = Frame(
        sha256=uuid.uuid4().hex * 2, vehicle_id=vehicle, batch_id=batch.id,
        filename="x.jpg", captured_at=T0 + timedelta(days=day), position=point(LAT - 0.0001, LON),
        location_source="exif", width=1280, height=720, status="done",
    )  # fmt: skip
    s.add(f)
    s.flush()
    s.add(FrameRoad(frame_id=f.id, section_id=None, footprint=footprint))
    if seen:
        s.add(
            Observation(
                frame_id=f.id, site_id=site.id if site else None, class_name="D40", confidence=0.7,
                x1=1, y1=1, x2=2, y2=2, position=point(LAT + 0.00001, LON), size_m=size,
            )
        )  # fmt: skip
    return f.id


def test_passes_covering_the_spot_with_seen_or_not_and_growth(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        site = _site(s)
        _pass(s, site, 0, True, 0.4)
        _pass(s, site, 30, True, 0.5)
        _pass(s, site, 45, False)  # covered the spot, saw nothing
        _pass(s, site, 50, False, footprint=FAR)  # did not cover the spot: not a pass for this site
        _pass(s, site, 60, True, 0.6)
        passes = site_passes(s, site)
        line = timeline(s, site, k=3)
    assert [(p.day, p.seen) for p in passes] == [
        ("2026-09-01", True), ("2026-10-01", True), ("2026-10-16", False), ("2026-10-31", True)
    ]  # fmt: skip
    assert line["growth_m_per_30d"] == pytest.approx(0.1, abs=1e-6)
    assert line["still_there_at"] == (T0 + timedelta(days=60)).isoformat()


def test_damage_seen_again_at_a_repaired_spot_has_reappeared(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        held, failed, gone = _site(s, "repaired"), _site(s, "repaired"), _site(s, "open")
        for site in (held, failed):
            s.add(
                Decision(
                    site_id=site.id, user_name="anna", action="repair", previous_status="scheduled",
                    new_status="repaired", previous_class="D40", new_class="D40", ranking_version="t",
                    at=T0 + timedelta(days=5),
                )
            )  # fmt: skip
    with transaction(sessions) as s:
        _pass(s, held, 0, True)
        for day in (10, 20, 30):
            _pass(s, None, day, False)  # three routine drives over the spot, nothing seen
        # Damage at the failed repair's spot again: association files it as a new site (site_id None here)
        _pass(s, None, 40, True)
    counts = verify_changed(sessions, k=3, now=datetime.now(UTC))
    with sessions() as s:
        states = {v.site_id: v.state for v in s.scalars(select(SiteVerification))}
    # All three share the spot: the drives at days 10-30 saw nothing, day 40 saw damage again.
    assert states[held.id] == REAPPEARED and states[failed.id] == REAPPEARED
    assert states[gone.id] not in (NOT_SEEN_AGAIN,)  # seen on the latest pass: still there
    assert sum(counts.values()) == 3


def test_a_repair_holds_after_k_passes_and_an_open_site_is_queued_not_closed(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as s:
        held, gone = _site(s, "repaired"), _site(s, "open")
        s.add(
            Decision(
                site_id=held.id, user_name="anna", action="repair", previous_status="scheduled",
                new_status="repaired", previous_class="D40", new_class="D40", ranking_version="t",
                at=T0 + timedelta(days=5),
            )
        )  # fmt: skip
        _pass(s, gone, 0, True)
        for day in (10, 20, 30):
            _pass(s, None, day, False)
    verify_changed(sessions, k=3, now=datetime.now(UTC))
    with sessions() as s:
        states = {v.site_id: (v.state, v.passes_since) for v in s.scalars(select(SiteVerification))}
        status = s.get(DamageSite, gone.id)
    assert states[held.id] == (CONFIRMED, 3)
    assert states[gone.id] == (NOT_SEEN_AGAIN, 3)
    assert status is not None and status.status == "open"  # staff decide: nothing is closed
    # Nothing new covered the spot since: nothing to check on the next run.
    assert verify_changed(sessions, k=3, now=datetime.now(UTC)) == {}


def test_the_api_shows_the_timeline_and_the_queue(sessions: sessionmaker[Session], client, staff) -> None:  # type: ignore[no-untyped-def]
    with transaction(sessions) as s:
        gone = _site(s, "open")
        _pass(s, gone, 0, True)
        for day in (10, 20, 30):
            _pass(s, None, day, False)
    verify_changed(sessions, k=3, now=datetime.now(UTC))
    viewer = staff["viewer"]
    line = client.get(f"/api/v1/sites/{gone.public_id}/timeline", auth=viewer).json()
    assert [p["seen"] for p in line["passes"]] == [True, False, False, False]
    assert line["verification"] == {
        "state": "not_seen_again",
        "passes_since": 3,
        "since": T0.isoformat(),
        "k": 3,
    }
    queue = client.get("/api/v1/verification", auth=viewer).json()
    assert [f["properties"]["id"] for f in queue["sites"]] == [str(gone.public_id)]
    assert client.get("/api/v1/verification?state=bogus", auth=viewer).status_code == 422
    assert client.get(f"/api/v1/sites/{gone.public_id}/timeline").status_code == 401


def test_the_site_page_shows_passes_growth_and_verification(
    sessions: sessionmaker[Session], client, staff
) -> None:  # type: ignore[no-untyped-def]
    with transaction(sessions) as s:
        site = _site(s)
        _pass(s, site, 0, True, 0.4)
        _pass(s, site, 30, True, 0.5)
        _pass(s, site, 60, True, 0.6)
    page = client.get(f"/sites/{site.public_id}?lang=en", auth=staff["viewer"])
    assert page.status_code == 200
    assert "Still there on the latest pass" in page.text and "grows by 10 cm per 30 days" in page.text
    assert 'class="sparkline"' in page.text and page.text.count("<td>yes</td>") == 3


def test_a_done_order_shows_how_many_repairs_the_drives_confirmed(
    sessions: sessionmaker[Session], client, staff
) -> None:  # type: ignore[no-untyped-def]
    from service.db.users import add_user
    from service.db.work_orders import create_work_order, update_work_order

    with transaction(sessions) as s:
        crew_lead = s.scalar(select(User).where(User.username == "reviewer")) or add_user(
            s, "lead", "a-long-password", "reviewer"
        )
        site = _site(s, "confirmed")
        order = create_work_order(s, crew_lead, "Potholes north", [site], crew="Kolonne Nord")
        update_work_order(s, order, crew_lead, status="done")  # the crew says: repaired
        order_id = order.id
        s.execute(
            Decision.__table__.update().where(Decision.site_id == site.id).values(at=T0 + timedelta(days=5))
        )
        for day in (10, 20, 30):
            _pass(s, None, day, False)
    verify_changed(sessions, k=3, now=datetime.now(UTC))
    page = client.get(f"/orders/{order_id}?lang=en", auth=staff["viewer"])
    assert "Repairs confirmed by routine drives: 1 of 1" in page.text


def test_a_growing_pothole_ranks_higher_than_the_same_one_not_growing(
    sessions: sessionmaker[Session],
) -> None:
    from service.db.sites import rescore
    from service.domain.ranking import DEFAULT_CONFIG

    with transaction(sessions) as s:
        growing, steady = _site(s), _site(s)
        for day, size in ((0, 0.3), (30, 0.45), (60, 0.6)):
            _pass(s, growing, day, True, size)
        for day in (0, 30, 60):
            _pass(s, steady, day, True, 0.6)
        for site in (growing, steady):
            site.size_m, site.sightings, site.last_seen = 0.6, 3, T0 + timedelta(days=60)
            rescore(site, DEFAULT_CONFIG, now=T0 + timedelta(days=61))
    assert growing.priority > steady.priority
    assert growing.score_components["components"]["growth"] > 0
    assert "growth" not in steady.score_components["components"]


def test_a_spot_no_pass_covered_gets_no_verdict_and_the_queue_page_lists_the_rest(
    sessions: sessionmaker[Session],
    client,
    staff,  # type: ignore[no-untyped-def]
) -> None:
    from service.domain.history import AWAITING

    with transaction(sessions) as s:
        far = _site(s, "repaired")  # repaired, but no pass has covered it since: no verdict yet
        s.add(
            Decision(
                site_id=far.id, user_name="anna", action="repair", previous_status="scheduled",
                new_status="repaired", previous_class="D40", new_class="D40", ranking_version="t", at=T0,
            )
        )  # fmt: skip
        _pass(s, None, 10, False, footprint=FAR)  # a drive nearby, its view not on the spot
        line = timeline(s, far, k=3)
    assert line["passes"] == [] and line["verification"]["state"] == AWAITING
    with transaction(sessions) as s:
        gone = _site(s, "open")
        _pass(s, gone, 0, True)
        for day in (10, 20, 30):
            _pass(s, None, day, False)
    verify_changed(sessions, k=3, now=datetime.now(UTC))
    page = client.get("/verification?lang=en", auth=staff["viewer"])
    assert page.status_code == 200 and f'data-site="{gone.public_id}"' in page.text
    assert (
        "Not seen again" in page.text and "Repair confirmed by drives" in page.text
    )  # same spot: far now too


def test_recency_is_still_there_on_the_latest_covering_pass_not_seen_recently(
    sessions: sessionmaker[Session],
) -> None:
    from service.db.sites import rescore
    from service.domain.ranking import DEFAULT_CONFIG

    later = T0 + timedelta(days=400)  # a year after anyone last looked: neither sinks for its age
    with transaction(sessions) as s:
        old = _site(s)  # an old pothole that every drive still sees
        for day in (0, 30, 60):
            _pass(s, old, day, True)
        missed = _site(s)  # a pothole 100 m away that two covering passes no longer saw
        missed.position = point(LAT + 0.0009, LON)
        seen = _pass(s, None, 0, False, footprint=FAR)
        s.add(
            Observation(
                frame_id=seen, site_id=missed.id, class_name="D40", confidence=0.7,
                x1=1, y1=1, x2=2, y2=2, position=point(LAT + 0.0009, LON), size_m=0.4,
            )
        )  # fmt: skip
        for day in (10, 20):
            _pass(s, None, day, False, footprint=FAR)
        for site in (old, missed):
            site.sightings = 3
        old.last_seen, missed.last_seen = T0 + timedelta(days=60), T0
    verify_changed(sessions, k=3, now=later, rescore=lambda site: rescore(site, DEFAULT_CONFIG, now=later))
    with sessions() as s:
        got = {x.id: x for x in s.scalars(select(DamageSite))}
        states = {v.site_id: (v.state, v.passes_since) for v in s.scalars(select(SiteVerification))}
    assert states[old.id] == ("still_there", 0) and states[missed.id] == ("still_there", 2)
    assert got[old.id].score_components["terms"]["recency"] == 1.0
    assert got[missed.id].score_components["terms"]["recency"] == 0.25
    assert got[old.id].priority > got[missed.id].priority
    assert got[old.id].ranking_version == DEFAULT_CONFIG.version
    # Seen again: the misses no longer count, before the next check has run.
    with transaction(sessions) as s:
        site = s.get(DamageSite, missed.id)
        assert site is not None
        site.last_seen = T0 + timedelta(days=30)
        rescore(site, DEFAULT_CONFIG, now=later)
        assert site.score_components["terms"]["recency"] == 1.0
