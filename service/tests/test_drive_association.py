"""Association per drive segment on real PostGIS: cell locks between workers, drives by time gaps,
re-runs that never double-count."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from service.db.drives import Drive, DriveFrame, Track, TrackObservation
from service.db.engine import make_engine, make_sessionmaker, transaction
from service.db.tables import DamageSite, Observation
from service.domain.ranking import DEFAULT_CONFIG
from service.domain.tracking import FrameInput, Sighting, from_local
from service.tests import test_pipeline
from service.worker.association import AssociationConfig, associate_segment, cell_keys
from service.worker.drives import associate_ready
from service.worker.pipeline import _process_frame, process_frame
from tests.fixtures import T0, gps_jpeg

ctx = test_pipeline.ctx  # the fixture: a worker context with the constant-head model
upload = test_pipeline.upload
LAT, LON = 52.0, 13.0
T = datetime(2026, 6, 1, 9, tzinfo=UTC)


@pytest.fixture
def sessions(clean_db: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(clean_db)
    yield make_sessionmaker(engine)
    engine.dispose()


def add_vehicle(sessions: sessionmaker[Session], name: str) -> int:
    with transaction(sessions) as s:
        return int(
            s.execute(
                text(
                    "INSERT INTO vehicle (name, token_hash, camera_height_m, camera_pitch_deg, camera_hfov_deg,"
                    " active) VALUES (:n, md5(random()::text), 1.4, 10, 100, true) RETURNING id"
                ),
                {"n": name},
            ).scalar_one()
        )


def drive_over(east: float, north: float, start: datetime, key0: int) -> list[FrameInput]:
    """Four frames that each see one crack at (east, north) metres from LAT, LON."""
    frames = []
    for k in range(4):
        lat, lon = from_local(east, north, (LAT, LON))
        s = Sighting(key0 + k, "D00", 0.8, lat, lon, 8.0, 0.5, True, (100.0, 500.0, 200.0, 560.0))
        cam_lat, cam_lon = from_local(east - 8.0, 0.0, (LAT, LON))
        frames.append(FrameInput(key0 + k, start + timedelta(seconds=k), cam_lat, cam_lon, 90.0, (s,)))
    return frames


def test_cell_keys_are_shared_by_nearby_segments_only() -> None:
    a = cell_keys([from_local(0, 0, (LAT, LON))], 20.0)
    b = cell_keys([from_local(30, 0, (LAT, LON))], 20.0)
    far = cell_keys([from_local(5000, 0, (LAT, LON))], 20.0)
    assert a == sorted(a) and set(a) & set(b) and not set(a) & set(far)


def test_two_workers_on_overlapping_segments_make_one_site(sessions: sessionmaker[Session]) -> None:
    """Worker A holds its cells while B associates a drive over the same crack: B must wait and join."""
    a_vehicle, b_vehicle = add_vehicle(sessions, "a"), add_vehicle(sessions, "b")
    a_locked, b_started = threading.Event(), threading.Event()
    finished: dict[str, float] = {}

    def hold() -> None:
        a_locked.set()
        b_started.wait(10)
        time.sleep(1.0)  # long enough for B to run to the end if nothing stopped it

    def run(name: str, vehicle: int, frames: list[FrameInput], hook: object) -> None:
        with transaction(sessions) as s:
            associate_segment(
                s,
                vehicle,
                frames,
                config=AssociationConfig(),
                model_version_id=None,
                before_write=hook,  # type: ignore[arg-type]
            )
        finished[name] = time.monotonic()

    a = threading.Thread(target=run, args=("a", a_vehicle, drive_over(0.0, 0.0, T, 100), hold))
    b = threading.Thread(
        target=run, args=("b", b_vehicle, drive_over(0.8, 0.3, T + timedelta(days=1), 200), None)
    )
    a.start()
    assert a_locked.wait(10)
    b.start()
    b_started.set()
    a.join(20)
    b.join(20)
    assert finished["b"] > finished["a"]  # B waited for A's cells
    with sessions() as s:
        sites = s.scalars(select(DamageSite)).all()
        assert len(sites) == 1 and sites[0].sightings == 8
        assert {t.site_id for t in s.scalars(select(Track))} == {sites[0].id}


def test_workers_in_other_parts_of_the_city_do_not_wait(sessions: sessionmaker[Session]) -> None:
    a_vehicle, b_vehicle = add_vehicle(sessions, "a"), add_vehicle(sessions, "b")
    a_locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        a_locked.set()
        release.wait(10)

    def run(vehicle: int, frames: list[FrameInput], hook: object) -> None:
        with transaction(sessions) as s:
            associate_segment(
                s,
                vehicle,
                frames,
                config=AssociationConfig(),
                model_version_id=None,
                before_write=hook,  # type: ignore[arg-type]
            )

    a = threading.Thread(target=run, args=(a_vehicle, drive_over(0.0, 0.0, T, 100), hold))
    a.start()
    assert a_locked.wait(10)
    start = time.monotonic()
    run(b_vehicle, drive_over(3000.0, 0.0, T, 200), None)  # 3 km away: other cells
    assert time.monotonic() - start < 5.0
    release.set()
    a.join(20)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(DamageSite)) == 2


def _counts(ctx) -> tuple[int, int, int, int, int]:  # type: ignore[no-untyped-def]
    with ctx.sessions() as s:
        return (
            s.scalar(select(func.count()).select_from(DamageSite)),
            s.scalar(select(func.coalesce(func.sum(DamageSite.sightings), 0))),
            s.scalar(select(func.coalesce(func.sum(DamageSite.n_observations), 0))),
            s.scalar(select(func.count()).select_from(Drive)),
            s.scalar(select(func.count()).select_from(TrackObservation)),
        )


def test_a_drive_waits_for_its_last_frame_and_rerunning_changes_nothing(client, vehicle_token, ctx) -> None:  # type: ignore[no-untyped-def]
    ids = [
        upload(
            client,
            vehicle_token,
            f"{k}.jpg",
            gps_jpeg(LAT, LON + k * 0.00005, T0 + timedelta(seconds=k), heading=90.0, seed=20 + k),
        )
        for k in range(3)
    ]
    for fid in ids[:2]:
        assert process_frame(ctx, fid) == "done"
    assert _counts(ctx)[0] == 0  # the third frame of the drive is not located yet
    # A crash after locating the last frame, before association: its retried job associates.
    assert _process_frame(ctx, ids[2])[0] == "done"
    assert _counts(ctx)[0] == 0
    assert process_frame(ctx, ids[2]) == "done"
    sites, sightings, n_obs, drives, linked = _counts(ctx)
    with ctx.sessions() as s:
        observations = s.scalar(select(func.count()).select_from(Observation))
        assert (
            s.scalar(select(func.count()).select_from(Observation).where(Observation.site_id.is_(None))) == 0
        )
        assert s.scalar(select(func.count()).select_from(DriveFrame)) == 3
    assert sites > 0 and drives == 1 and n_obs == observations == linked and sightings <= observations
    # Association again (any frame, any number of times): nothing changes.
    for fid in ids:
        assert process_frame(ctx, fid) == "done"
        assert (
            associate_ready(
                ctx.sessions, fid, config=AssociationConfig(), model_version_id=None, ranking=DEFAULT_CONFIG
            )
            == []
        )
    assert _counts(ctx) == (sites, sightings, n_obs, drives, linked)


def test_a_pause_starts_a_new_drive_and_a_late_batch_continues_its_drive(client, vehicle_token, ctx) -> None:  # type: ignore[no-untyped-def]
    first = upload(client, vehicle_token, "a.jpg", gps_jpeg(LAT, LON, T0, heading=90.0, seed=31))
    process_frame(ctx, first)
    later = upload(
        client, vehicle_token, "b.jpg", gps_jpeg(LAT, LON, T0 + timedelta(minutes=1), heading=90.0, seed=32)
    )
    process_frame(ctx, later)  # a minute later: the same drive, associated as its next window
    other = upload(
        client, vehicle_token, "c.jpg", gps_jpeg(LAT, LON, T0 + timedelta(hours=3), heading=90.0, seed=33)
    )
    process_frame(ctx, other)  # three hours later: a new drive
    with ctx.sessions() as s:
        drive_of = dict(s.execute(select(DriveFrame.frame_id, DriveFrame.drive_id)).all())
        assert drive_of[first] == drive_of[later] != drive_of[other]
        assert s.get(Drive, drive_of[first]).n_frames == 2
        # The same two defects each time: two sites, one sighting per frame, one track per window.
        sites = s.scalars(select(DamageSite).order_by(DamageSite.id)).all()
        assert [site.sightings for site in sites] == [3, 3]
        assert s.scalar(select(func.count()).select_from(Track)) == 6


def test_the_api_and_the_site_page_show_the_tracks_and_drives(client, vehicle_token, ctx, staff) -> None:  # type: ignore[no-untyped-def]
    first = upload(client, vehicle_token, "a.jpg", gps_jpeg(LAT, LON, T0, heading=90.0, seed=41))
    process_frame(ctx, first)
    # A day later, 1 m further west: the new drive registers against the first drive's two sites.
    second = upload(
        client,
        vehicle_token,
        "b.jpg",
        gps_jpeg(LAT, LON - 0.000015, T0 + timedelta(days=1), heading=90.0, seed=42),
    )
    process_frame(ctx, second)
    with ctx.sessions() as s:
        site = s.scalars(select(DamageSite).order_by(DamageSite.priority.desc())).first()
        public_id = str(site.public_id)
    r = client.get(f"/api/v1/sites/{public_id}", auth=staff["viewer"])
    assert r.status_code == 200, r.text
    tracks = r.json()["properties"]["tracks"]
    assert len(tracks) == 2 and [t["joined_known_site"] for t in tracks] == [False, True]
    first_drive, second_drive = tracks[0]["drive"], tracks[1]["drive"]
    assert first_drive["reference"] == "own" and first_drive["support"] == 0
    assert {"offset_e_m", "offset_n_m", "support", "candidates", "drift_m"} <= set(second_drive)
    assert tracks[1]["match_m"] is not None and tracks[1]["match_m"] < 2.0
    # The typed response model describes them (and validated them on the way out).
    openapi = client.get("/openapi.json").json()
    schemas = openapi["components"]["schemas"]
    detail = openapi["paths"]["/api/v1/sites/{site_id}"]["get"]["responses"]["200"]
    assert detail["content"]["application/json"]["schema"]["$ref"].endswith("/SiteDetail")
    assert schemas["SiteDetailProperties"]["properties"]["tracks"]["items"]["$ref"].endswith("/TrackOut")
    assert {"offset_e_m", "offset_n_m", "support"} <= set(schemas["DriveOut"]["properties"])
    page = client.get(f"/sites/{public_id}", auth=staff["viewer"])
    assert page.status_code == 200
    assert "How this site was formed" in page.text or "Wie diese Schadstelle entstand" in page.text
    assert "neue Schadstelle" in page.text or "new site" in page.text


def test_sites_of_a_drive_take_the_importance_of_their_road(client, vehicle_token, ctx, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from service.cli.admin import import_roads

    east = from_local(200.0, 0.0, (LAT, LON))
    roads = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "Hauptstraße", "importance": 1.0},
                "geometry": {"type": "LineString", "coordinates": [[LON, LAT], [east[1], east[0]]]},
            }
        ],
    }
    path = tmp_path / "roads.geojson"
    path.write_text(json.dumps(roads))
    assert import_roads(ctx.sessions, path) == 1
    frame_id = upload(client, vehicle_token, "a.jpg", gps_jpeg(LAT, LON, T0, heading=90.0, seed=51))
    process_frame(ctx, frame_id)
    with ctx.sessions() as s:
        sites = s.scalars(select(DamageSite)).all()
        assert sites and all(site.road_importance == 1.0 for site in sites)
        assert all("road" in site.score_components["components"] for site in sites)


def test_the_janitor_associates_drives_left_behind(client, vehicle_token, ctx) -> None:  # type: ignore[no-untyped-def]
    from service.worker.drives import associate_stale

    frame_id = upload(client, vehicle_token, "a.jpg", gps_jpeg(LAT, LON, T0, heading=90.0, seed=61))
    assert _process_frame(ctx, frame_id)[0] == "done"  # located; the worker was lost before associating
    kwargs = {"config": AssociationConfig(), "model_version_id": None, "ranking": DEFAULT_CONFIG}
    assert associate_stale(ctx.sessions, older_than_s=3600.0, **kwargs) == 0  # too recent to be stale
    assert associate_stale(ctx.sessions, older_than_s=0.0, **kwargs) == 1
    assert associate_stale(ctx.sessions, older_than_s=0.0, **kwargs) == 0
    with ctx.sessions() as s:
        assert (
            s.scalar(select(func.count()).select_from(Observation).where(Observation.site_id.is_(None))) == 0
        )
