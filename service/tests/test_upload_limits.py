"""Upload hardening (issue 18): deep metadata, tracks parsed off the event loop, the project's own pixel
limit through the API (not Pillow's guard)."""

from __future__ import annotations

import asyncio
import io
import json
import time

from PIL import Image

from service.api.upload import MAX_METADATA_DEPTH, _nesting_depth
from tests.fixtures import T0, gps_jpeg

LAT, LON = 52.52, 13.405


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _declaring(width: int, height: int) -> bytes:
    """A tiny JPEG whose frame header (SOF0) declares ``width`` x ``height``."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 90, 90)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def test_nesting_depth_counts_brackets_outside_strings() -> None:
    assert _nesting_depth('{"a": [1, {"b": []}]}', 32) == 4
    assert _nesting_depth('{"a": "[[[[[[{{{{"}', 32) == 1
    assert _nesting_depth('{"a": "\\"[[[["}', 32) == 1
    assert _nesting_depth("[" * 100_000, 32) == 33  # stops counting past the limit
    assert _nesting_depth("", 32) == 0


def test_metadata_nested_100000_levels_is_422_not_500(client, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    for deep in (
        '{"images": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"a":' * 100_000 + "1" + "}" * 100_000,
    ):
        r = client.post(
            "/api/v1/batches",
            data={"metadata": deep},
            files=[("images", ("a.jpg", gps_jpeg(LAT, LON, T0), "image/jpeg"))],
            headers=auth(vehicle_token),
        )
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == f"metadata nests deeper than {MAX_METADATA_DEPTH} levels"
    ok = json.dumps({"images": {"a.jpg": {"extra": [[{"x": 1}]]}}})
    r = client.post(
        "/api/v1/batches",
        data={"metadata": ok},
        files=[("images", ("a.jpg", gps_jpeg(LAT, LON, T0), "image/jpeg"))],
        headers=auth(vehicle_token),
    )
    assert r.status_code == 202, r.text


def test_small_jpeg_declaring_huge_dimensions_is_refused_by_our_limit(client, app, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    limit = app.state.settings.max_pixels
    bomb = _declaring(6000, 6000)  # 36 MP: under Pillow's own guard (89 MP), over ours
    pixels = 6000 * 6000
    guard = Image.MAX_IMAGE_PIXELS or 0
    assert len(bomb) < 1000 and limit < pixels < guard
    r = client.post(
        "/api/v1/batches", files=[("images", ("bomb.jpg", bomb, "image/jpeg"))], headers=auth(vehicle_token)
    )
    assert r.status_code == 422
    reason = r.json()["images"][0]["reason"]
    assert reason == f"image too large: 6000x6000 pixels, the limit is {limit:,}"


def test_default_pixel_limit_fits_a_20_mp_camera() -> None:
    from service.settings import Settings

    limit = Settings(database_url="postgresql+psycopg://x/y").max_pixels
    assert 5000 * 4000 <= limit < 6000 * 6000


def test_track_is_parsed_off_the_event_loop(client, vehicle_token, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import service.api.upload as upload

    seen: list[bool] = []
    real = upload.parse_track

    def parse(raw: bytes, name: str):  # type: ignore[no-untyped-def]
        try:
            asyncio.get_running_loop()
            seen.append(True)  # on the event loop
        except RuntimeError:
            seen.append(False)
        time.sleep(0.05)
        return real(raw, name)

    monkeypatch.setattr(upload, "parse_track", parse)
    gpx = (
        b'<?xml version="1.0"?><gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>'
        b'<trkpt lat="52.52" lon="13.405"><time>2024-05-01T10:00:00Z</time></trkpt>'
        b'<trkpt lat="52.521" lon="13.405"><time>2024-05-01T10:00:10Z</time></trkpt>'
        b"</trkseg></trk></gpx>"
    )
    r = client.post(
        "/api/v1/batches",
        files=[
            ("images", ("a.jpg", gps_jpeg(LAT, LON, T0), "image/jpeg")),
            ("track", ("drive.gpx", gpx, "application/gpx+xml")),
        ],
        headers=auth(vehicle_token),
    )
    assert r.status_code == 202, r.text
    assert seen == [False]


def test_track_over_the_limit_is_413(client, app, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    limit = app.state.settings.max_track_bytes
    r = client.post(
        "/api/v1/batches",
        files=[
            ("images", ("a.jpg", gps_jpeg(LAT, LON, T0), "image/jpeg")),
            ("track", ("drive.nmea", b"$" * (limit + 1), "text/plain")),
        ],
        headers=auth(vehicle_token),
    )
    assert r.status_code == 413 and f"track larger than {limit} bytes" in r.json()["detail"]


def test_an_upload_holds_no_database_connection_while_it_stores_images(
    client, app, vehicle_token, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """20 concurrent uploads each holding the vehicle lookup's connection exhausted the pool
    (bench/soak.py): the connection goes back as soon as the vehicle is known."""
    import service.api.upload as upload

    checked_out: list[int] = []
    real = upload.ingest_image

    def ingest(*args, **kwargs):  # type: ignore[no-untyped-def]
        checked_out.append(app.state.engine.pool.checkedout())
        return real(*args, **kwargs)

    monkeypatch.setattr(upload, "ingest_image", ingest)
    files = [("images", (f"{i}.jpg", gps_jpeg(LAT, LON, T0, seed=70 + i), "image/jpeg")) for i in range(2)]
    r = client.post("/api/v1/batches", files=files, headers=auth(vehicle_token))
    assert r.status_code == 202, r.text
    assert checked_out == [0, 0]
