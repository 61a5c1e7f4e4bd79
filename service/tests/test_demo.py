"""The demo drives (issue 20): placing the samples, EXIF and GPX written for them, the reserved demo names;
and end to end: ``demo load`` sends both drives with the uploader to a running API, a real worker
processes them into sites seen on both drives, the street photos are stored anonymized, the pages mark
the demo data, and ``demo remove`` leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from detector import decode_image
from geotag import haversine_m, parse_gpx, read_exif, with_exif
from service.cli.demo import EXTRAS, SAMPLES, demo_network, plan, sample_runs
from service.domain.demo import DEMO_PREFIX, gpx_document, is_demo_vehicle
from service.tests.browser import running_service

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 6, 1, 8, 0, 0, tzinfo=UTC)


# --- placing the samples (no database) ------------------------------------------------------------------


def test_samples_are_the_documented_runs() -> None:
    runs = sample_runs()
    assert [len(r) for r in runs] == [9, 13, 8, 8]
    numbers = [int(name[-10:-4]) for run in runs for name in run]
    assert max(numbers) <= 1299  # the training range only: the held-out block stays unseen
    size = sum(p.stat().st_size for p in SAMPLES.rglob("*.jpg"))
    assert size <= 3.1e6, size


def test_drives_follow_streets_a_few_metres_apart() -> None:
    first, second = plan(demo_network(), now=T0)
    assert [s.sample for s in first.shots[:2]] == list(EXTRAS)
    assert len(first.shots) == 40 and len(second.shots) == 38
    rdd = [s for s in first.shots if s.sample.startswith("rdd2022/")]
    again = {s.sample: s for s in second.shots}
    steps = [
        haversine_m(a.pose.lat, a.pose.lon, b.pose.lat, b.pose.lon)
        for a, b in zip(first.shots, first.shots[1:], strict=False)
        if (b.pose.time - a.pose.time) <= timedelta(seconds=2)
    ]
    assert len(steps) == 40 - 4 and all(3.9 < s < 4.1 for s in steps), steps
    # The second pass photographs the same spots with its own GPS error (1.8 m).
    for shot in rdd:
        other = again[shot.sample].pose
        assert 1.5 < haversine_m(shot.pose.lat, shot.pose.lon, other.lat, other.lon) < 2.1
        assert (other.time - shot.pose.time).days == 6
    assert len({round(s.pose.heading) for s in first.shots}) >= 4  # four streets, four directions


def test_exif_and_gpx_place_the_photos_where_planned() -> None:
    first, second = plan(demo_network(), now=T0)
    shot = first.shots[5]
    data = (SAMPLES / shot.sample).read_bytes()
    from geotag import Fix

    tagged = with_exif(
        data, shot.pose.time, Fix(shot.pose.lat, shot.pose.lon, shot.pose.time, shot.pose.heading)
    )
    info = read_exif(tagged)
    assert info.fix is not None and info.captured_at == shot.pose.time
    assert haversine_m(info.fix.lat, info.fix.lon, shot.pose.lat, shot.pose.lon) < 0.01
    assert info.fix.heading == pytest.approx(shot.pose.heading, abs=0.01)
    assert np.array_equal(decode_image(tagged), decode_image(data))  # not re-encoded
    track = parse_gpx(gpx_document(second.shots))
    assert len(track) == len(second.shots)
    assert read_exif(with_exif(data, T0)).fix is None


def test_demo_names_are_reserved(settings) -> None:  # type: ignore[no-untyped-def]
    from service.db.engine import make_engine, make_sessionmaker
    from service.db.vehicles import add_vehicle

    assert is_demo_vehicle("demo:x") and not is_demo_vehicle("demo") and not is_demo_vehicle(None)
    sessions = make_sessionmaker(make_engine(settings.database_url, pool_size=1))
    with sessions() as session:
        with pytest.raises(ValueError, match="reserved"):
            add_vehicle(session, DEMO_PREFIX + "truck")
        with pytest.raises(ValueError, match="starts with"):
            add_vehicle(session, "truck", demo=True)


# --- end to end -----------------------------------------------------------------------------------------


@pytest.fixture
def worker(settings) -> Iterator[subprocess.Popen[bytes]]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "DATABASE_URL": settings.database_url, "ROADWATCH_DATA_DIR": str(settings.data_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def demo_cli(settings, *args: str) -> dict:  # type: ignore[no-untyped-def]
    env = {**os.environ, "DATABASE_URL": settings.database_url, "ROADWATCH_DATA_DIR": str(settings.data_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "service", "demo", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def privacy_boxes(image: np.ndarray) -> list[tuple[str, float, tuple[int, int, int, int]]]:
    """What the service's privacy detection finds (the default file, both passes, its threshold): (class,
    confidence, box grown by 20 %, clipped)."""
    from service.domain.anonymize import (
        PRIVACY_MODEL_PATHS,
        PrivacyConfig,
        find_people_and_vehicles,
        grow_box,
        load_privacy_detector,
    )

    h, w = image.shape[:2]
    detector = load_privacy_detector(PRIVACY_MODEL_PATHS["int8"])
    found = find_people_and_vehicles(image, detector, PrivacyConfig())
    return [
        (d.class_name, d.confidence, tuple(int(v) for v in grow_box(d.box, 0.2, w, h)))  # type: ignore[misc]
        for d in found
    ]


def test_demo_end_to_end(settings, worker, client, staff) -> None:  # type: ignore[no-untyped-def]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    with running_service(settings.database_url, settings.data_dir) as base:
        assert demo_cli(settings, "status")["load_on_start"] is True
        result = demo_cli(settings, "load", "--server", base, "--wait", "300")
        assert result["loaded"] and result["processed"], result
        assert result["network_imported"]["road_sections"] > 1000  # Helsinki: no network existed
        assert [(d["located_by"], d["sent"]) for d in result["drives"]] == [("exif", 40), ("gpx", 38)]
        assert result["frames"] == {"done": 78}
        again = demo_cli(settings, "load", "--server", base)
        assert again["loaded"] is False and "demo remove" in again["reason"]

    with engine.connect() as conn:
        # Sites, and sightings of one site on both drives (a week apart): the second drive, 1.8 m off,
        # was aligned to the first one's sites.
        per_site = conn.execute(
            text(
                "SELECT o.site_id, count(DISTINCT date(f.captured_at)) AS days FROM observation o "
                "JOIN frame f ON f.id = o.frame_id WHERE o.site_id IS NOT NULL GROUP BY o.site_id"
            )
        ).all()
        both = [s for s, days in per_site if days == 2]
        assert len(per_site) >= 20 and len(both) >= len(per_site) // 2, (len(per_site), len(both))
        offsets = conn.execute(text("SELECT offset_e_m, offset_n_m FROM drive ORDER BY started_at")).all()
        assert len(offsets) == 2 and offsets[1][0] == pytest.approx(-1.5, abs=1.0)
        # Street names from the network (the sites' sections).
        named = conn.execute(
            text(
                "SELECT count(*) FROM site_survey s JOIN road_section r ON r.id = s.section_id "
                "WHERE r.name IS NOT NULL"
            )
        ).scalar_one()
        assert named >= len(per_site) // 2
        stored = dict(
            conn.execute(
                text(
                    "SELECT filename, image_key FROM frame WHERE filename LIKE '%bus.jpg' OR filename LIKE '%zidane.jpg'"
                )
            ).all()
        )
    # Privacy: the stored copies of the street photos have their persons pixelated, the rest kept.
    from service.db.store import ImageStore

    images = ImageStore(settings.image_dir)
    assert sorted(stored) == ["000-bus.jpg", "001-zidane.jpg"]
    for name, key in stored.items():
        original = decode_image((SAMPLES / "ultralytics" / name[4:]).read_bytes())
        copy = decode_image(images.get(key))
        assert read_exif(images.get(key)).fix is None
        found = privacy_boxes(original)
        persons = [box for cls, conf, box in found if cls == "person" and conf >= 0.5]
        assert persons, name
        for x1, y1, x2, y2 in persons:
            diff = np.abs(copy[y1:y2, x1:x2].astype(int) - original[y1:y2, x1:x2].astype(int)).mean()
            assert diff > 8, (name, (x1, y1, x2, y2), diff)
        changed = np.zeros(original.shape[:2], bool)
        for _, _, (x1, y1, x2, y2) in found:
            changed[y1:y2, x1:x2] = True
        if (~changed).any():  # outside every box the copy is the photo (JPEG noise only)
            rest = np.abs(copy.astype(int) - original.astype(int)).mean(axis=2)[~changed]
            assert np.median(rest) < 4, (name, np.median(rest))

    # Every page that shows demo data marks it.
    admin = staff["admin"]
    for path in ("/sites", "/admin/vehicles"):
        page = client.get(path, auth=admin)
        assert page.status_code == 200 and 'class="demo-badge"' in page.text, path
    markers = client.get("/sites/map.geojson", auth=admin).json()["features"]
    assert markers and all(m["properties"]["label"].startswith("Demo: ") for m in markers)
    site = client.get("/api/v1/sites?limit=1", auth=admin).json()["features"][0]["properties"]["id"]
    page = client.get(f"/sites/{site}", auth=admin)
    assert page.text.count('class="demo-badge"') >= 2  # the site and its photos

    removed = demo_cli(settings, "remove")
    assert removed["frames"] == 78 and removed["vehicles"] == 1 and removed["image_files"] >= 40
    with engine.connect() as conn:
        for table in (
            "vehicle",
            "frame",
            "observation",
            "damage_site",
            "upload_batch",
            "drive",
            "track",
            "site_survey",
        ):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0, table
    engine.dispose()
    left = [
        p
        for root in (settings.image_dir, settings.original_dir)
        if root.exists()
        for p in root.rglob("*")
        if p.is_file()
    ]
    assert left == []
    assert not (settings.data_dir / "demo").exists()
    status = demo_cli(settings, "status")
    assert status["frames"] == {} and status["load_on_start"] is False  # removed: make run loads no demo


def test_purge_keeps_what_real_vehicles_saw(settings) -> None:  # type: ignore[no-untyped-def]
    """A site seen by a demo and a real vehicle keeps the real sighting (counted and scored again); a site
    only the demo saw goes with its decision; the real vehicle and its frame stay."""
    from sqlalchemy import func, select

    from service.db.demo import demo_site_ids, purge_demo
    from service.db.engine import make_engine, make_sessionmaker, transaction
    from service.db.tables import DamageSite, Decision, Frame, Observation, UploadBatch, Vehicle, point
    from service.db.vehicles import add_vehicle
    from service.domain.ranking import RankingConfig

    sessions = make_sessionmaker(make_engine(settings.database_url, pool_size=1))
    with transaction(sessions) as session:
        demo, _ = add_vehicle(session, "demo:x", demo=True)
        real, _ = add_vehicle(session, "truck-9")
        frames = {}
        for name, vehicle, day in (("d1", demo, 0), ("d2", demo, 1), ("r1", real, 5)):
            batch = UploadBatch(vehicle_id=vehicle.id)
            session.add(batch)
            session.flush()
            frames[name] = Frame(
                sha256=name * 32, vehicle_id=vehicle.id, batch_id=batch.id, filename=f"{name}.jpg",
                captured_at=T0 + timedelta(days=day), position=point(60.17, 24.95), location_source="exif",
                width=512, height=512, status="done", image_key=name * 32,
            )  # fmt: skip
            session.add(frames[name])
        session.flush()
        shared = DamageSite(
            class_name="D40", position=point(60.17, 24.95), first_seen=T0, last_seen=T0 + timedelta(days=5),
            sightings=3, n_observations=3,
        )  # fmt: skip
        only_demo = DamageSite(
            class_name="D00", position=point(60.171, 24.95), first_seen=T0, last_seen=T0, sightings=1
        )
        session.add_all([shared, only_demo])
        session.flush()
        for name, site in (("d1", shared), ("d2", shared), ("r1", shared), ("d1", only_demo)):
            session.add(
                Observation(frame_id=frames[name].id, site_id=site.id, class_name=site.class_name,
                            confidence=0.8, x1=0, y1=0, x2=10, y2=10)
            )  # fmt: skip
        session.add(
            Decision(site_id=only_demo.id, user_name="anna", action="confirm", previous_status="open",
                     new_status="confirmed", previous_class="D00", new_class="D00", ranking_version="x")
        )  # fmt: skip
        ids = (shared.id, only_demo.id)
    with sessions() as session:
        assert demo_site_ids(session) == {ids[1]}
    with transaction(sessions) as session:
        purged = purge_demo(session, RankingConfig())
    assert (purged.vehicles, purged.frames, purged.observations, purged.sites) == (1, 2, 3, 1)
    assert purged.sites_rescored == 1 and purged.rows["decision"] == 1
    assert purged.image_keys == ["d1" * 32, "d2" * 32]
    with sessions() as session:
        assert session.scalars(select(Vehicle.name)).all() == ["truck-9"]
        assert session.scalars(select(Frame.filename)).all() == ["r1.jpg"]
        site = session.get(DamageSite, ids[0])
        assert site is not None and session.get(DamageSite, ids[1]) is None
        assert (site.sightings, site.n_observations) == (1, 1)
        assert site.first_seen == site.last_seen == T0 + timedelta(days=5)
        assert session.scalar(select(func.count()).select_from(Decision)) == 0
    with transaction(sessions) as session:
        assert purge_demo(session, RankingConfig()).vehicles == 0  # nothing left: a no-op
