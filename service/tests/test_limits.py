"""Request-body limits and the upload's vehicle token, checked before the body is read
(service/access/limits.py), against the real app: declared lengths, chunked bodies, with and without auth."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from service.settings import Settings

CHUNK = 64 * 1024


@pytest.fixture
def small_settings(clean_db: str, tmp_path: Path) -> Settings:
    # A batch may have at most 2 MB; everything else 64 KiB.
    return Settings(
        database_url=clean_db,
        data_dir=tmp_path / "var",
        max_body_bytes=64 * 1024,
        max_batch_bytes=2 * 1024 * 1024,
    )


@pytest.fixture
def small_app(small_settings: Settings):  # type: ignore[no-untyped-def]
    from service.app import create_app

    return create_app(small_settings)


@pytest.fixture
def small_token(small_app) -> str:  # type: ignore[no-untyped-def]
    from service.db.engine import transaction
    from service.db.vehicles import add_vehicle

    with transaction(small_app.state.sessions) as session:
        _, token = add_vehicle(session, "truck-1")
    return token


def call(
    app: Any,
    method: str,
    path: str,
    headers: dict[str, str],
    chunks: int,
    head: bytes = b"",
) -> tuple[int, dict[str, Any], int]:
    """Drive the ASGI app with a body of ``chunks`` chunks streamed one by one (as a server would):
    (status, JSON body, chunks the app read)."""
    read = 0
    answer: dict[str, Any] = {"status": None, "body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read >= chunks:
            await asyncio.sleep(3600)  # the client would wait for an answer
        read += 1
        chunk = (head + b"x" * CHUNK)[:CHUNK] if read == 1 else b"x" * CHUNK
        return {"type": "http.request", "body": chunk, "more_body": read < chunks}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def run() -> None:
        await asyncio.wait_for(app(scope, receive, send), 30)

    asyncio.run(run())
    return answer["status"], json.loads(answer["body"] or b"{}"), read


MULTIPART = {"Content-Type": "multipart/form-data; boundary=XyZ"}
# The start of a batch whose one image never ends.
IMAGE_PART = b'--XyZ\r\nContent-Disposition: form-data; name="images"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'


def test_oversized_declared_upload_without_auth_is_refused_unread(small_app) -> None:  # type: ignore[no-untyped-def]
    headers = {**MULTIPART, "Content-Length": str(1_500_000_000)}
    status, body, read = call(small_app, "POST", "/api/v1/batches", headers, chunks=100)
    assert status == 413 and "limit" in body["detail"]
    assert read == 0


def test_chunked_upload_without_token_is_401_before_a_byte_is_read(small_app) -> None:  # type: ignore[no-untyped-def]
    status, body, read = call(small_app, "POST", "/api/v1/batches", MULTIPART, chunks=10_000)
    assert status == 401 and "vehicle token" in body["detail"]
    assert read == 0  # nothing parsed, nothing spooled to temporary files
    bad = {**MULTIPART, "Authorization": "Bearer rw_not-a-token"}
    status, body, read = call(small_app, "POST", "/api/v1/batches", bad, chunks=10_000)
    assert (status, read) == (401, 0) and "unknown" in body["detail"]


def test_chunked_upload_with_auth_stops_at_the_batch_limit(small_app, small_token) -> None:  # type: ignore[no-untyped-def]
    headers = {**MULTIPART, "Authorization": f"Bearer {small_token}"}
    status, body, read = call(small_app, "POST", "/api/v1/batches", headers, chunks=10_000, head=IMAGE_PART)
    assert status == 413 and "larger than" in body["detail"]
    assert read == 2 * 1024 * 1024 // CHUNK + 1  # stopped at the first chunk past 2 MB


def test_declared_upload_over_the_limit_with_auth_is_413(small_app, small_token) -> None:  # type: ignore[no-untyped-def]
    headers = {**MULTIPART, "Authorization": f"Bearer {small_token}", "Content-Length": str(3 * 1024 * 1024)}
    status, _body, read = call(small_app, "POST", "/api/v1/batches", headers, chunks=48)
    assert (status, read) == (413, 0)


def test_other_routes_take_small_bodies_only(small_app, small_token) -> None:  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {small_token}"}
    # Chunked JSON without a length: stopped after 64 KiB, never parsed.
    status, _body, read = call(small_app, "POST", "/api/v1/frames/missing", headers, chunks=5000)
    assert status == 413 and read == 2
    status, _body, read = call(
        small_app, "POST", "/api/v1/frames/missing", {**headers, "Content-Length": "300000000"}, chunks=5000
    )
    assert (status, read) == (413, 0)
    # Web forms too (the login form needs no account to be reached).
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _body, read = call(small_app, "POST", "/login", form, chunks=5000)
    assert status == 413 and read == 2


def test_requests_within_the_limits_still_work(small_app, small_token) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(small_app) as client:
        r = client.post(
            "/api/v1/frames/missing",
            json={"sha256": ["0" * 64]},
            headers={"Authorization": f"Bearer {small_token}"},
        )
        assert r.status_code == 200 and r.json() == {"missing": ["0" * 64]}
        r = client.post("/api/v1/batches", files=[("images", ("a.jpg", b"x" * 100, "image/jpeg"))])
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        r = client.post(
            "/api/v1/frames/missing", content=b"{" * 70_000, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 413


def test_default_limits_follow_the_upload_settings() -> None:
    s = Settings(database_url="postgresql+psycopg://x/y")
    assert s.max_body_bytes == 1024 * 1024 and s.max_track_bytes == 5 * 1024 * 1024
    assert s.upload_body_bytes >= s.max_images_per_batch * s.max_image_bytes + s.max_track_bytes
    assert (
        s.upload_body_bytes < s.max_images_per_batch * s.max_image_bytes + s.max_track_bytes + 2 * 1024 * 1024
    )
    assert Settings(database_url="postgresql+psycopg://x/y", max_batch_bytes=5000).upload_body_bytes == 5000
