"""Upload API against the real service and PostGIS: statuses, idempotency, bad input, tracks."""

from __future__ import annotations

import json
import zlib
from datetime import timedelta

import cv2
import numpy as np
from sqlalchemy import func, select

from service.db.tables import Frame, UploadBatch
from tests.fixtures import T0, gps_jpeg

LAT, LON = 52.52, 13.405


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def files(*parts: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (name, data, "image/jpeg")) for name, data in parts]


def test_upload_stores_and_queues_then_dedupes(client, app, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    a = gps_jpeg(LAT, LON, T0, heading=90, seed=1)
    b = gps_jpeg(LAT + 0.0001, LON, T0 + timedelta(seconds=2), heading=90, seed=2)
    r = client.post("/api/v1/batches", files=files(("a.jpg", a), ("b.jpg", b)), headers=auth(vehicle_token))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["counts"] == {"queued": 2}
    assert [i["location_source"] for i in body["images"]] == ["exif", "exif"]
    with app.state.sessions() as s:
        frames = s.scalars(select(Frame).order_by(Frame.id)).all()
        assert [f.status for f in frames] == ["queued", "queued"]
        assert frames[0].heading == 90 and abs(frames[0].captured_at - T0) < timedelta(seconds=1)
        assert s.scalar(select(func.count()).select_from(UploadBatch)) == 1
        for f in frames:  # durably stored, content-addressed, until a worker anonymizes it
            assert f.image_key is None  # shown only once anonymized
            assert app.state.originals.get(f.sha256) in (a, b)
    # The same bytes again: stored once, reported as duplicate.
    r2 = client.post("/api/v1/batches", files=files(("a-again.jpg", a)), headers=auth(vehicle_token))
    assert r2.status_code == 202 and r2.json()["images"][0]["status"] == "duplicate"
    with app.state.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Frame)) == 2
    # The resume helper says which hashes are missing.
    known = body["images"][0]["sha256"]
    r3 = client.post(
        "/api/v1/frames/missing", json={"sha256": [known, "0" * 64]}, headers=auth(vehicle_token)
    )
    assert r3.json() == {"missing": ["0" * 64]}


def test_jobs_are_queued_in_postgres(client, app, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    r = client.post(
        "/api/v1/batches", files=files(("a.jpg", gps_jpeg(LAT, LON, T0, seed=3))), headers=auth(vehicle_token)
    )
    frame_id = r.json()["images"][0]["frame_id"]
    with app.state.sessions() as s:
        rows = s.execute(text("SELECT task_name, args, status FROM procrastinate_jobs")).all()
    assert rows == [("process_frame", {"frame_id": frame_id}, "todo")]


def _huge_png_header() -> bytes:
    _ok, png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    raw = bytearray(png.tobytes())
    raw[16:24] = (20000).to_bytes(4, "big") + (20000).to_bytes(4, "big")
    raw[29:33] = zlib.crc32(bytes(raw[12:29])).to_bytes(4, "big")
    return bytes(raw)


def test_bad_images_are_rejected_with_reasons_and_good_ones_kept(client, app, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    good = gps_jpeg(LAT, LON, T0, seed=4)
    truncated = gps_jpeg(LAT, LON, T0, seed=5)[:3000]
    corrupt_exif = bytearray(gps_jpeg(None, None, None, seed=6, size=(64, 48)))
    no_gps = gps_jpeg(None, None, T0, seed=7)
    parts = [
        ("good.jpg", good),
        ("truncated.jpg", truncated),
        ("text.jpg", b"just some text pretending to be a photo"),
        ("bomb.jpg", _huge_png_header()),
        ("no-gps.jpg", no_gps),
    ]
    # A JPEG whose APP1 EXIF payload is garbage: accepted, EXIF ignored with no crash.
    exif_bad = bytes(corrupt_exif[:2]) + b"\xff\xe1\x00\x10Exif\x00\x00GARBAGE!" + bytes(corrupt_exif[2:])
    parts.append(("bad-exif.jpg", exif_bad))
    r = client.post("/api/v1/batches", files=files(*parts), headers=auth(vehicle_token))
    assert r.status_code == 202, r.text
    by_name = {i["filename"]: i for i in r.json()["images"]}
    assert by_name["good.jpg"]["status"] == "queued"
    assert (
        by_name["truncated.jpg"]["status"] == "rejected"
        and "corrupt or truncated" in by_name["truncated.jpg"]["reason"]
    )
    assert (
        by_name["text.jpg"]["status"] == "rejected"
        and "not a readable image" in by_name["text.jpg"]["reason"]
    )
    assert by_name["bomb.jpg"]["status"] == "rejected" and "too large" in by_name["bomb.jpg"]["reason"]
    assert by_name["no-gps.jpg"]["status"] == "no_location"
    assert by_name["bad-exif.jpg"]["status"] == "no_location"
    assert r.json()["counts"] == {"queued": 1, "rejected": 3, "no_location": 2}
    with app.state.sessions() as s:
        statuses = sorted(s.scalars(select(Frame.status)))
    assert statuses == ["no_location", "no_location", "queued"]  # nothing accepted is lost


def test_only_bad_images_is_422(client, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/batches", files=files(("x.jpg", b"nope")), headers=auth(vehicle_token))
    assert r.status_code == 422
    assert "no image in this batch was accepted" in r.json()["detail"]


def test_token_is_required_and_checked(client, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    data = files(("a.jpg", gps_jpeg(LAT, LON, T0)))
    r = client.post("/api/v1/batches", files=data)
    assert r.status_code == 401 and "missing vehicle token" in r.json()["detail"]
    r = client.post("/api/v1/batches", files=data, headers=auth("rwv_wrong"))
    assert r.status_code == 401 and "unknown or revoked" in r.json()["detail"]


def test_limits_and_wrong_types(client, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    many = files(*[(f"{i}.jpg", b"x") for i in range(11)])
    r = client.post("/api/v1/batches", files=many, headers=auth(vehicle_token))
    assert r.status_code == 413 and "too many images" in r.json()["detail"]
    r = client.post(
        "/api/v1/batches",
        data={"metadata": "{not json"},
        files=files(("a.jpg", gps_jpeg(LAT, LON, T0))),
        headers=auth(vehicle_token),
    )
    assert r.status_code == 422 and "metadata is not valid JSON" in r.json()["detail"]
    r = client.post("/api/v1/batches", headers=auth(vehicle_token))
    assert r.status_code == 422 and "images" in r.json()["detail"]
    r = client.post("/api/v1/frames/missing", json={"sha256": ["xyz"]}, headers=auth(vehicle_token))
    assert r.status_code == 422


def _gpx(points: list[tuple[float, float, str]]) -> bytes:
    pts = "".join(f'<trkpt lat="{la}" lon="{lo}"><time>{t}</time></trkpt>' for la, lo, t in points)
    return (
        f'<?xml version="1.0"?><gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">'
        f"<trk><trkseg>{pts}</trkseg></trk></gpx>"
    ).encode()


def test_position_from_track_with_clock_offset(client, app, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    # The camera clock is 5 s behind GPS time: photo at T0+5 (camera) is at GPS time T0+10.
    track = _gpx([(52.0, 13.0, "2026-09-01T08:00:00Z"), (52.001, 13.0, "2026-09-01T08:00:20Z")])
    photo = gps_jpeg(None, None, T0 + timedelta(seconds=5), seed=8)
    r = client.post(
        "/api/v1/batches",
        files=[*files(("p.jpg", photo)), ("track", ("drive.gpx", track, "application/gpx+xml"))],
        data={"metadata": json.dumps({"clock_offset_s": 5})},
        headers=auth(vehicle_token),
    )
    assert r.status_code == 202, r.text
    image = r.json()["images"][0]
    assert image["status"] == "queued" and image["location_source"] == "track"
    with app.state.sessions() as s:
        lat = s.scalar(select(func.ST_Y(Frame.position)))
        heading = s.scalar(select(Frame.heading))
    assert abs(lat - 52.0005) < 1e-6  # halfway between the two fixes
    assert heading is not None and abs(heading) < 1  # driving north


def test_bad_track_is_a_clear_error(client, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    r = client.post(
        "/api/v1/batches",
        files=[*files(("p.jpg", gps_jpeg(LAT, LON, T0))), ("track", ("t.gpx", b"hello", "text/plain"))],
        headers=auth(vehicle_token),
    )
    assert r.status_code == 422 and r.json()["detail"].startswith("track:")


def test_out_of_range_metadata_is_refused_not_a_server_error(client, app, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    # NaN/Infinity are not JSON: the batch's metadata could not be stored (was a 500).
    nan = client.post(
        "/api/v1/batches",
        files=files(("a.jpg", gps_jpeg(None, None, None, seed=40))),
        data={"metadata": '{"clock_offset_s": NaN}'},
        headers=auth(vehicle_token),
    )
    assert nan.status_code == 422 and "NaN" in nan.json()["detail"]
    huge = client.post(
        "/api/v1/batches",
        files=files(("a.jpg", gps_jpeg(None, None, None, seed=40))),
        data={"metadata": '{"odometer": 1e400}'},
        headers=auth(vehicle_token),
    )
    assert huge.status_code == 422 and "out of range" in huge.json()["detail"]
    inf = client.post(
        "/api/v1/batches",
        files=files(("a.jpg", gps_jpeg(None, None, None, seed=40))),
        data={"metadata": json.dumps({"clock_offset_s": "inf"})},
        headers=auth(vehicle_token),
    )
    assert inf.status_code == 422 and "clock_offset_s" in inf.json()["detail"]
    # Times or offsets beyond year 1..9999 reject the image (were an OverflowError, 500).
    track = (
        b'<?xml version="1.0"?><gpx version="1.1" creator="t"><trk><trkseg>'
        b'<trkpt lat="52.5" lon="13.4"><time>2024-01-01T00:00:00Z</time></trkpt>'
        b'<trkpt lat="52.5001" lon="13.4"><time>2024-01-01T00:00:10Z</time></trkpt>'
        b"</trkseg></trk></gpx>"
    )
    meta = {
        "clock_offset_s": 1e300,
        "images": {
            "far.jpg": {"captured_at": "2024-01-01T00:00:05Z"},
            "late.jpg": {"captured_at": "9999-12-31T23:59:59-23:59", "lat": LAT, "lon": LON},
        },
    }
    r = client.post(
        "/api/v1/batches",
        files=[
            *files(
                ("far.jpg", gps_jpeg(None, None, None, seed=41)),
                ("late.jpg", gps_jpeg(None, None, None, seed=42)),
            ),
            ("track", ("t.gpx", track, "application/gpx+xml")),
        ],
        data={"metadata": json.dumps(meta)},
        headers=auth(vehicle_token),
    )
    assert r.status_code == 422, r.text
    assert [(i["status"], "invalid metadata" in i["reason"]) for i in r.json()["images"]] == [
        ("rejected", True),
        ("rejected", True),
    ]


def test_nul_in_a_file_name_is_stored_replaced(client, app, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    # PostgreSQL text cannot hold NUL: the insert failed (500) and left the upload on disk with no frame.
    body = (
        b'--XX\r\nContent-Disposition: form-data; name="images"; filename="a\x00b.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + gps_jpeg(LAT, LON, T0, seed=43) + b"\r\n--XX--\r\n"
    )
    r = client.post(
        "/api/v1/batches",
        content=body,
        headers={**auth(vehicle_token), "Content-Type": "multipart/form-data; boundary=XX"},
    )
    assert r.status_code == 202, r.text
    with app.state.sessions() as s:
        assert s.scalar(select(Frame.filename)) == "a\ufffdb.jpg"
