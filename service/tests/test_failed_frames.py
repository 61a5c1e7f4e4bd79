"""Frames that kill their worker end failed after N stalls (issue 18): the janitor counts, the upload is kept
for inspection, admins see and retry them, a vehicle may send the bytes again; duplicates per vehicle; EXIF
GPS without a time; the retry schedule."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from service.db.tables import AuditEvent, Frame
from service.tests.conftest import PASSWORD
from service.tests.web_seed import csrf_of, login
from tests.fixtures import T0, gps_jpeg

LAT, LON = 52.52, 13.405


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(client, token: str, name: str, data: bytes, metadata: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    r = client.post(
        "/api/v1/batches",
        files=[("images", (name, data, "image/jpeg"))],
        data={"metadata": metadata} if metadata else None,
        headers=auth(token),
    )
    assert r.status_code in (202, 422), r.text
    return r.json()["images"][0]  # type: ignore[no-any-return]


def job_status(app, frame_id: int) -> str | None:  # type: ignore[no-untyped-def]
    with app.state.sessions() as s:
        return s.scalar(  # type: ignore[no-any-return]
            text("SELECT status::text FROM procrastinate_jobs WHERE args->>'frame_id' = :f ORDER BY id DESC"),
            {"f": str(frame_id)},
        )


def stall(app, frame_id: int) -> None:  # type: ignore[no-untyped-def]
    """The frame's job is running on a worker that died (no worker row: no heartbeat at all)."""
    with app.state.sessions() as s, s.begin():
        s.execute(
            text(
                "UPDATE procrastinate_jobs SET status = 'doing', worker_id = NULL "
                "WHERE args->>'frame_id' = :f AND status = 'todo'"
            ),
            {"f": str(frame_id)},
        )


def janitor_pass(app) -> None:  # type: ignore[no-untyped-def]
    from service.worker.janitor import janitor_pass as one_pass
    from service.worker.jobs import make_app

    settings = app.state.settings

    async def run() -> None:
        jobs = make_app(settings)
        async with jobs.open_async():
            await one_pass(jobs, settings, app.state.sessions, app.state.originals)

    asyncio.run(run())


def test_frame_that_kills_its_worker_fails_after_n_stalls(client, app, vehicle_token, staff) -> None:  # type: ignore[no-untyped-def]
    assert app.state.settings.max_frame_stalls == 3
    data = gps_jpeg(LAT, LON, T0, seed=41)
    image = upload(client, vehicle_token, "killer.jpg", data)
    frame_id, sha = image["frame_id"], image["sha256"]
    for n in (1, 2):
        stall(app, frame_id)
        janitor_pass(app)
        with app.state.sessions() as s:
            frame = s.get(Frame, frame_id)
            assert (frame.status, frame.stall_count) == ("queued", n)
        assert job_status(app, frame_id) == "todo"  # retried
    stall(app, frame_id)
    janitor_pass(app)
    with app.state.sessions() as s:
        frame = s.get(Frame, frame_id)
        assert frame.status == "failed" and frame.stall_count == 3 and frame.failed_at is not None
        assert "stopped 3 times" in frame.error
    assert job_status(app, frame_id) == "failed"  # not retried again
    janitor_pass(app)  # nothing brings it back, and the upload is kept for inspection
    assert job_status(app, frame_id) == "failed"
    assert app.state.originals.get(sha) == data

    # Admins see it: the count in the navigation, the list with the reason, a retry.
    client.cookies.set("lang", "en")
    login(client, "admin", PASSWORD)
    start = client.get("/sites")
    assert "Failed frames (1)" in start.text
    listing = client.get("/admin/frames")
    assert listing.status_code == 200 and "killer.jpg" in listing.text and "stopped 3 times" in listing.text
    r = client.post(f"/admin/frames/{frame_id}/retry", data={"csrf_token": csrf_of(listing.text)})
    assert r.status_code == 200 and "queued again" in r.text
    with app.state.sessions() as s:
        frame = s.get(Frame, frame_id)
        assert (frame.status, frame.stall_count, frame.error) == ("queued", 0, None)
        events = s.scalars(select(AuditEvent.action).where(AuditEvent.frame_id == frame_id)).all()
    assert events == ["frame_retried"]
    assert job_status(app, frame_id) == "todo"
    assert "Failed frames (0)" in client.get("/sites").text
    # A frame that has not failed cannot be "retried".
    again = client.post(f"/admin/frames/{frame_id}/retry", data={"csrf_token": csrf_of(listing.text)})
    assert again.status_code == 409
    # Viewers see neither.
    client.cookies.clear()
    login(client, "viewer", PASSWORD)
    assert client.get("/admin/frames").status_code == 403


def test_failed_upload_is_kept_for_the_configured_time(client, app, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    from service.worker.janitor import sweep_originals

    image = upload(client, vehicle_token, "a.jpg", gps_jpeg(LAT, LON, T0, seed=42))
    with app.state.sessions() as s, s.begin():
        s.execute(
            text("UPDATE frame SET status = 'failed', failed_at = :t WHERE id = :f"),
            {"t": datetime.now(UTC) - timedelta(days=2), "f": image["frame_id"]},
        )
    originals = app.state.originals
    assert sweep_originals(app.state.sessions, originals, failed_keep_s=3 * 86400) == 0
    assert originals.path(image["sha256"]).exists()
    assert sweep_originals(app.state.sessions, originals, failed_keep_s=1 * 86400) == 1
    assert not originals.path(image["sha256"]).exists()


def test_a_frame_that_failed_for_good_may_be_sent_again(client, app, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    data = gps_jpeg(LAT, LON, T0, seed=43)
    first = upload(client, vehicle_token, "a.jpg", data)
    with app.state.sessions() as s, s.begin():
        s.execute(
            text(
                "UPDATE frame SET status = 'failed', failed_at = now(), error = 'x', stall_count = 3 WHERE id = :f"
            ),
            {"f": first["frame_id"]},
        )
        s.execute(text("UPDATE procrastinate_jobs SET status = 'failed'"))
    missing = client.post(
        "/api/v1/frames/missing", json={"sha256": [first["sha256"]]}, headers=auth(vehicle_token)
    )
    assert missing.json() == {"missing": [first["sha256"]]}
    again = upload(client, vehicle_token, "a.jpg", data)
    assert again["status"] == "queued" and again["frame_id"] == first["frame_id"]
    with app.state.sessions() as s:
        frame = s.get(Frame, first["frame_id"])
        assert (frame.status, frame.stall_count, frame.error, frame.failed_at) == ("queued", 0, None, None)
    assert job_status(app, first["frame_id"]) == "todo"
    assert upload(client, vehicle_token, "a.jpg", data)["status"] == "duplicate"  # now it is known again


def test_duplicates_are_answered_per_vehicle(client, app, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    from service.db.engine import transaction
    from service.db.vehicles import add_vehicle

    with transaction(app.state.sessions) as session:
        _, other = add_vehicle(session, "truck-2")
    data = gps_jpeg(LAT, LON, T0, seed=44)
    mine = upload(client, vehicle_token, "a.jpg", data)
    assert mine["status"] == "queued"
    # Another vehicle learns nothing: the hash is "missing" for it, and sending it looks like a new upload
    # without the first vehicle's frame id.
    r = client.post("/api/v1/frames/missing", json={"sha256": [mine["sha256"]]}, headers=auth(other))
    assert r.json() == {"missing": [mine["sha256"]]}
    theirs = upload(client, other, "b.jpg", data)
    assert theirs["status"] == "queued" and "frame_id" not in theirs
    assert set(theirs) == {"filename", "status", "sha256", "location_source"}
    with app.state.sessions() as s:
        assert s.scalars(select(Frame.vehicle_id)).all() == [s.get(Frame, mine["frame_id"]).vehicle_id]
    # The vehicle that sent it gets "duplicate" with its frame.
    dup = upload(client, vehicle_token, "a.jpg", data)
    assert dup["status"] == "duplicate" and dup["frame_id"] == mine["frame_id"]
    r = client.post("/api/v1/frames/missing", json={"sha256": [mine["sha256"]]}, headers=auth(vehicle_token))
    assert r.json() == {"missing": []}


def test_exif_gps_without_time_takes_metadata_time_else_upload_time(client, app, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    import json

    from geotag import read_exif

    untimed = gps_jpeg(LAT, LON, None, seed=45)
    assert read_exif(untimed).fix is None and read_exif(untimed).position is not None
    meta = json.dumps({"images": {"a.jpg": {"captured_at": "2024-05-01T10:00:00Z"}}})
    a = upload(client, vehicle_token, "a.jpg", untimed, meta)
    assert (a["status"], a["location_source"]) == ("queued", "exif")
    before = datetime.now(UTC)
    b = upload(client, vehicle_token, "b.jpg", gps_jpeg(LAT, LON + 0.001, None, seed=46))
    assert (b["status"], b["location_source"]) == ("queued", "exif")
    with app.state.sessions() as s:
        fa, fb = s.get(Frame, a["frame_id"]), s.get(Frame, b["frame_id"])
        assert fa.captured_at == datetime(2024, 5, 1, 10, tzinfo=UTC) and fa.time_source == "metadata"
        assert fb.time_source == "upload" and abs(fb.captured_at - before) < timedelta(minutes=1)
        timed = s.get(
            Frame, upload(client, vehicle_token, "c.jpg", gps_jpeg(LAT, LON, T0, seed=47))["frame_id"]
        )
        assert timed.time_source == "exif"


def test_retry_schedule_outlasts_a_database_restart_of_minutes() -> None:
    from procrastinate.jobs import Job

    from service.worker.jobs import FRAME_RETRY, TASK

    waits = []
    for attempts in range(20):
        job = Job(id=1, queue="frames", lock=None, queueing_lock=None, task_name=TASK, attempts=attempts)
        decision = FRAME_RETRY.get_retry_decision(exception=RuntimeError("db down"), job=job)
        if decision is None:
            break
        assert decision.retry_at is not None
        waits.append((decision.retry_at - datetime.now(UTC)).total_seconds())
    assert sum(waits) > 5 * 60  # keeps trying for more than five minutes
    assert max(waits) < 10 * 60 and len(waits) <= 10  # but gives up within the hour
