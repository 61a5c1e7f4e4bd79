"""Real worker processes (``python -m service worker``) with the shipped ONNX model: the whole loop,
and a worker killed with SIGKILL in the middle of a frame."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from detector import Detector, decode_image
from detector.manifest import default_model_path
from service.db.tables import DamageSite, Frame, Observation
from tests.fixtures import T0, gps_jpeg

ROOT = Path(__file__).resolve().parents[2]
LAT, LON = 48.137, 11.575
CONF = 0.01  # generated images are not roads: a low threshold gives the model something to find


@pytest.fixture
def start_worker(settings) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:  # type: ignore[no-untyped-def]
    procs: list[subprocess.Popen[bytes]] = []

    def start(**extra: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "ROADWATCH_DATA_DIR": str(settings.data_dir),
            "ROADWATCH_DETECT_CONF": str(CONF),
            "ROADWATCH_HEARTBEAT_INTERVAL_S": "0.5",
            "ROADWATCH_STALLED_AFTER_S": "3",
            **extra,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "service", "worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def upload(client, token: str, parts: list[tuple[str, bytes]]) -> list[int]:  # type: ignore[no-untyped-def]
    r = client.post(
        "/api/v1/batches",
        files=[("images", (n, d, "image/jpeg")) for n, d in parts],
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 202, r.text
    return [i["frame_id"] for i in r.json()["images"]]


def uploads_left(app) -> list[Path]:  # type: ignore[no-untyped-def]
    root = app.state.originals.root
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def frame_statuses(app) -> list[str]:  # type: ignore[no-untyped-def]
    with app.state.sessions() as s:
        return list(s.scalars(select(Frame.status).order_by(Frame.id)))


def test_upload_to_ranked_sites_end_to_end(client, app, vehicle_token, staff, start_worker) -> None:  # type: ignore[no-untyped-def]
    parts = [
        (f"{i}.jpg", gps_jpeg(LAT + i * 0.0002, LON, T0 + timedelta(seconds=3 * i), heading=0.0, seed=i))
        for i in range(4)
    ]
    upload(client, vehicle_token, parts)
    worker = start_worker()
    wait_for(lambda: set(frame_statuses(app)) == {"done"}, 120, "the worker to process 4 frames")
    # Our detector, run here on the same images, says how many observations there must be.
    detector = Detector.from_path(default_model_path())
    expected = sum(len(detector.predict(decode_image(d), conf=CONF)) for _, d in parts)
    with app.state.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Observation)) == expected
        n_sites = s.scalar(select(func.count()).select_from(DamageSite))
    assert expected > 0 and n_sites > 0
    r = client.get("/api/v1/sites?limit=1000", auth=staff["viewer"])
    assert r.status_code == 200
    priorities = [f["properties"]["priority"] for f in r.json()["features"]]
    assert len(priorities) == n_sites and priorities == sorted(priorities, reverse=True)
    assert worker.poll() is None
    assert uploads_left(app) == []


def test_worker_killed_mid_frame_is_retried_and_counts_once(client, app, vehicle_token, start_worker) -> None:  # type: ignore[no-untyped-def]
    data = gps_jpeg(LAT, LON, T0, heading=0.0, seed=11)
    (frame_id,) = upload(client, vehicle_token, [("a.jpg", data)])
    doomed = start_worker(ROADWATCH_DEBUG_PAUSE_S="60")

    def job_status() -> str | None:
        with app.state.sessions() as s:
            return s.scalar(
                text("SELECT status::text FROM procrastinate_jobs WHERE args->>'frame_id' = :f"),
                {"f": str(frame_id)},
            )

    def observations_in_flight() -> bool:
        # Inside the final transaction, whose uncommitted observations hold the frame row lock (the
        # anonymized copy is stored by then; the frame points at it only once this commits).
        with app.state.sessions() as s:
            locked = s.execute(
                text("SELECT 1 FROM frame WHERE id = :f FOR UPDATE SKIP LOCKED"), {"f": frame_id}
            ).first()
            s.rollback()
        return locked is None

    wait_for(
        lambda: job_status() == "doing" and observations_in_flight(), 60, "the worker to be inside the frame"
    )
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    with app.state.sessions() as s:  # the killed transaction left nothing behind
        assert s.get(Frame, frame_id).status == "queued"
        assert s.scalar(select(func.count()).select_from(Observation)) == 0
        # Not even the pointer to the anonymized copy; the upload is kept until detection commits.
        image_key = s.get(Frame, frame_id).image_key
    assert image_key is None and len(uploads_left(app)) == 1
    start_worker()  # a fresh worker notices the stalled job (no heartbeat) and retries it
    wait_for(lambda: frame_statuses(app) == ["done"], 90, "the retried job to finish")
    # The retry detects on the original, as the first try did (not on the blurred copy).
    expected = len(Detector.from_path(default_model_path()).predict(decode_image(data), conf=CONF))
    wait_for(lambda: uploads_left(app) == [], 10, "the upload to be deleted after detection committed")
    with app.state.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Observation)) == expected
        located = s.scalar(
            select(func.count()).select_from(Observation).where(Observation.position.is_not(None))
        )

    def counted() -> int:
        with app.state.sessions() as s:
            return int(s.scalar(select(func.coalesce(func.sum(DamageSite.n_observations), 0))) or 0)

    # Every observation on the road counts once in the sites (association runs after the frame is done;
    # detections above the horizon are not on the road plane).
    wait_for(lambda: counted() == located, 30, "the association")
    with app.state.sessions() as s:
        attempts = s.scalar(
            text("SELECT attempts FROM procrastinate_jobs WHERE args->>'frame_id' = :f"), {"f": str(frame_id)}
        )
        stalls = s.get(Frame, frame_id).stall_count
        assert s.get(Frame, frame_id).image_key is not None  # the retry stored and pointed at the copy
    assert attempts >= 1 and stalls == 1  # counted by the janitor, far from the limit
