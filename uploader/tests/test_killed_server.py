"""The real API as a process, killed with SIGKILL while the uploader (also a process) is sending."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from uploader.tests.helpers import drive, write_photos

ROOT = Path(__file__).resolve().parents[2]
N, BATCH = 30, 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def start_server(settings) -> Iterator[Callable[[], tuple[subprocess.Popen[bytes], str]]]:  # type: ignore[no-untyped-def]
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "ROADWATCH_DATA_DIR": str(settings.data_dir),
        }
        cmd = [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the server exited at start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return proc, f"http://127.0.0.1:{port}"
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the server did not start within 40 s")

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(10)


def uploader(folder: Path, url: str, token: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "uploader", "send", str(folder), "--server", url, "--batch-size", str(BATCH)]
    cmd += ["--retries", "3", "--backoff-s", "0.05", "--settle-s", "0", "--no-progress", "--timeout-s", "20"]
    env = {**os.environ, "ROADWATCH_TOKEN": token}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_server_killed_mid_batch_then_resumed(settings, vehicle_token, start_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "card"
    write_photos(folder, drive(N), size=(320, 240))
    engine = create_engine(settings.database_url)

    def stored() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM frame")).scalar_one())

    server, url = start_server()
    first = uploader(folder, url, vehicle_token)
    deadline = time.monotonic() + 40
    while stored() < BATCH + 3:  # the second batch is being stored photo by photo
        assert time.monotonic() < deadline and first.poll() is None, "the upload never got going"
        time.sleep(0.002)
    server.kill()
    server.wait(10)
    at_kill = stored()
    stdout, stderr = first.communicate(timeout=60)
    assert first.returncode == 1, stderr
    out1 = json.loads(stdout)
    assert out1["error"].startswith("TransientError") and out1["pending"] == N - out1["sent"]
    assert BATCH <= out1["sent"] < at_kill < N  # stored but never acknowledged: the batch in flight

    _, url = start_server()
    second = uploader(folder, url, vehicle_token)
    stdout, stderr = second.communicate(timeout=60)
    assert second.returncode == 0, stderr
    out2 = json.loads(stdout)
    assert out1["sent"] + out2["sent"] == N and out2["duplicates"] == 0 and out2["failed"] == 0
    assert out2["journal"] == {
        "pending": 0,
        "sent": N,
        "duplicate": 0,
        "skipped": 0,
        "failed": 0,
        "no_location": 0,
    }
    with engine.connect() as conn:
        per_sha = conn.execute(text("SELECT count(*) FROM frame GROUP BY sha256")).scalars().all()
        dup_sent = conn.execute(
            text("SELECT coalesce(sum((counts->>'duplicate')::int), 0) FROM upload_batch")
        ).scalar_one()
    engine.dispose()
    assert len(per_sha) == N and set(per_sha) == {1}  # every photo exactly once
    assert dup_sent == 0  # and no photo the server had was sent again
