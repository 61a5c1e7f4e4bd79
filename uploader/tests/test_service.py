"""Against the real service and PostGIS (in-process): resume, injected network faults, crashes, 413,
corrupt photos, tracks, dry runs and the watch loop. Faults are injected in the client's transport."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from service.db.tables import Frame, UploadBatch
from tests.fixtures import gps_jpeg
from uploader.cli import main
from uploader.journal import Journal
from uploader.sync import Options, Uploader
from uploader.tests.helpers import (
    Crash,
    FaultyTransport,
    api_for,
    drive,
    fast_retrier,
    gpx,
    metres,
    write_photos,
)


def frames(app) -> Counter[str]:  # type: ignore[no-untyped-def]
    with app.state.sessions() as s:
        return Counter(s.scalars(select(Frame.sha256)))


def batch_counts(app) -> Counter[str]:  # type: ignore[no-untyped-def]
    """What the server recorded per batch, summed: 'duplicate' means bytes were sent twice."""
    total: Counter[str] = Counter()
    with app.state.sessions() as s:
        for counts in s.scalars(select(UploadBatch.counts)):
            total.update(counts or {})
    return total


def run_cli(argv: list[str], transport, capsys) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    status = main(
        [*argv, "--server", "http://testserver", "--insecure", "--settle-s", "0", "--no-progress"], transport
    )
    return status, json.loads(capsys.readouterr().out)


def test_send_everything_once_then_nothing(client, app, vehicle_token, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write_photos(tmp_path / "DCIM" / "100MEDIA", drive(22))
    (tmp_path / "DCIM" / "nogps.jpg").write_bytes(gps_jpeg(None, None, None, seed=99, size=(64, 48)))
    (tmp_path / "corrupt.jpg").write_bytes(gps_jpeg(1.0, 1.0, None, seed=98, size=(96, 64))[:700])
    monkeypatch.setenv("ROADWATCH_TOKEN", vehicle_token)
    transport = FaultyTransport(client._transport)
    # 25 per batch, the server takes 10 (413): the uploader halves its batches and goes on.
    status, out = run_cli(["send", str(tmp_path), "--batch-size", "25"], transport, capsys)
    assert status == 1  # one photo failed
    assert (out["sent"], out["no_location"], out["duplicates"], out["failed"], out["pending"]) == (
        23,
        1,
        0,
        1,
        0,
    )
    assert out["failures"][0]["file"] == "corrupt.jpg" and out["failures"][0]["reason"]
    assert out["journal"] == {
        "pending": 0,
        "sent": 23,
        "duplicate": 0,
        "skipped": 0,
        "failed": 1,
        "no_location": 1,
    }
    stored = frames(app)
    assert len(stored) == 23 and set(stored.values()) == {1}
    assert batch_counts(app)["duplicate"] == 0
    with app.state.sessions() as s:  # file names keep their folders, and photos went in capture order
        names = list(s.scalars(select(Frame.filename).where(Frame.status == "queued").order_by(Frame.id)))
    assert names == [f"DCIM/100MEDIA/IMG_{i:04d}.jpg" for i in range(22)]
    # Again: nothing to send, nothing asked, the corrupt photo is not retried.
    transport.calls.clear()
    status, out = run_cli(["send", str(tmp_path)], transport, capsys)
    assert status == 0 and transport.calls == [] and out["sent"] == out["failed"] == 0
    assert out["journal"]["sent"] == 23
    # ... unless asked to.
    status, out = run_cli(["send", str(tmp_path), "--retry-failed"], transport, capsys)
    assert status == 1 and out["failed"] == 1 and transport.calls.count("/api/v1/batches") == 1


def test_network_errors_are_retried_without_sending_twice(client, app, vehicle_token, tmp_path) -> None:  # type: ignore[no-untyped-def]
    write_photos(tmp_path, drive(25))
    transport = FaultyTransport(
        client._transport,
        {
            "/api/v1/frames/missing": ["connect", (503, 2)],
            # 1st batch: the answer is lost after the server stored it; 2nd: refused, then rate limited.
            "/api/v1/batches": ["lost", None, "connect", (429, 5), None],
        },
    )
    sleeps: list[float] = []
    with Journal(tmp_path / "j.sqlite") as journal:
        up = Uploader(
            tmp_path, journal, api_for(transport, vehicle_token), Options(batch_size=10), fast_retrier(sleeps)
        )
        up.send_once(settle_s=0)
        summary = up.summary()
    assert (summary["sent"], summary["duplicates"], summary["pending"], summary["failed"]) == (25, 0, 0, 0)
    assert summary["journal"]["sent"] == 25
    stored = frames(app)
    assert len(stored) == 25 and set(stored.values()) == {1}
    assert batch_counts(app) == Counter({"queued": 25})  # no photo's bytes reached the server twice
    assert any(2.0 <= s <= 2.2 for s in sleeps) and any(5.0 <= s <= 5.5 for s in sleeps)  # Retry-After
    assert len(sleeps) == 5


def test_crash_after_the_server_stored_a_batch_resumes_without_duplicates(
    client, app, vehicle_token, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    write_photos(tmp_path, drive(18))
    crashing = FaultyTransport(client._transport, {"/api/v1/batches": [None, "crash"]})
    with pytest.raises(Crash), Journal(tmp_path / "j.sqlite") as journal:
        Uploader(
            tmp_path, journal, api_for(crashing, vehicle_token), Options(batch_size=6), fast_retrier()
        ).send_once(0)
    assert len(frames(app)) == 12  # two batches stored, the second one never acknowledged
    with Journal(tmp_path / "j.sqlite") as journal:
        assert journal.counts()["pending"] == 12
        transport = FaultyTransport(client._transport)
        up = Uploader(
            tmp_path, journal, api_for(transport, vehicle_token), Options(batch_size=6), fast_retrier()
        )
        up.send_once(settle_s=0)
        summary = up.summary()
        resumed = journal.db.execute("SELECT count(*) FROM photos WHERE server_status = 'stored'").fetchone()[
            0
        ]
    assert (summary["sent"], summary["duplicates"], summary["journal"]["sent"]) == (12, 0, 18)
    assert resumed == 6 and transport.calls.count("/api/v1/batches") == 1
    assert set(frames(app).values()) == {1} and len(frames(app)) == 18
    assert batch_counts(app)["duplicate"] == 0


def test_photos_the_server_already_has_are_duplicates_and_not_sent(
    client, app, vehicle_token, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    paths = write_photos(tmp_path, drive(5))
    r = client.post(
        "/api/v1/batches",
        files=[("images", (p.name, p.read_bytes(), "image/jpeg")) for p in paths[:3]],
        headers={"Authorization": f"Bearer {vehicle_token}"},
    )
    assert r.status_code == 202
    transport = FaultyTransport(client._transport)
    with Journal(tmp_path / "j.sqlite") as journal:
        up = Uploader(tmp_path, journal, api_for(transport, vehicle_token), retrier=fast_retrier())
        up.send_once(settle_s=0)
    assert (up.stats.sent, up.stats.duplicates) == (2, 3)
    assert batch_counts(app) == Counter({"queued": 5})


def test_track_positions_and_sampling_agree_with_the_server(client, app, vehicle_token, tmp_path) -> None:  # type: ignore[no-untyped-def]
    points = drive(30, [3.0] * 30)
    write_photos(tmp_path, points, exif_gps=False, camera_offset_s=-12.0)  # camera 12 s ahead
    (tmp_path / "track.gpx").write_text(gpx(points))
    options = Options(every_m=10.0, clock_offset_s=-12.0)
    with Journal(tmp_path / "j.sqlite") as journal:
        up = Uploader(tmp_path, journal, api_for(client._transport, vehicle_token), options, fast_retrier())
        up.send_once(settle_s=0)
        sent = {
            r[0]: (r[1], r[2])
            for r in journal.db.execute("SELECT sha256, lat, lon FROM photos WHERE state = 'sent'")
        }
    assert up.stats.sent == 8 and up.stats.skipped == 22  # every 4th photo: 12 m apart, 3 m/s at 1 Hz
    with app.state.sessions() as s:
        rows = s.execute(
            select(Frame.sha256, Frame.location_source, func.ST_Y(Frame.position), func.ST_X(Frame.position))
        ).all()
    assert len(rows) == 8
    for sha, source, lat, lon in rows:
        assert source == "metadata" and metres((lat, lon), sent[sha]) < 0.01


def test_dry_run_sends_and_records_nothing(client, vehicle_token, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    write_photos(tmp_path, drive(4))
    transport = FaultyTransport(client._transport)
    status, out = run_cli(["send", str(tmp_path), "--dry-run", "--every-m", "8"], transport, capsys)
    assert status == 0 and transport.calls == [] and out["dry_run"] is True
    assert (out["would_send"], out["skipped"]) == (2, 2)
    assert not (tmp_path / ".roadwatch-journal.sqlite").exists()


def test_watch_sends_new_photos_as_they_arrive(client, app, vehicle_token, tmp_path) -> None:  # type: ignore[no-untyped-def]
    stop = threading.Event()
    with Journal(tmp_path / ".j.sqlite") as journal:
        up = Uploader(
            tmp_path, journal, api_for(client._transport, vehicle_token), retrier=fast_retrier(), stop=stop
        )
        thread = threading.Thread(target=up.watch, args=(0.1,), daemon=True)
        thread.start()
        try:
            points = drive(8)
            write_photos(tmp_path, points[:4])
            deadline = time.monotonic() + 20
            while up.stats.sent < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            write_photos(tmp_path, points[4:], prefix="LATER", seed=50)
            while up.stats.sent < 8 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(10)
        assert not thread.is_alive()
        assert up.summary()["journal"]["sent"] == 8
    assert len(frames(app)) == 8
