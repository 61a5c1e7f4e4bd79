"""Open311 citizen photos: a multipart ``media`` file anonymized with the real privacy model before anything
is stored, served as the request's ``media_url``, shown to staff on the site page; bad photos refused in the
spec's error format with nothing stored; retention deletes the photo with the contact details."""

from __future__ import annotations

import io
import struct
import uuid
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select, text

from detector import Detector, decode_image
from detector.manifest import default_model_path
from geotag.exif import read_exif
from service.db.engine import transaction
from service.db.open311 import CitizenReport, CitizenReportContact, add_client
from service.db.tables import DamageSite
from service.domain.anonymize import load_privacy_detector
from service.settings import Settings
from tests.fixtures import T0, gps_jpeg

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
CONTACT = {"email": "erika@example.org", "first_name": "Erika"}
WHERE = {"service_code": "pothole", "lat": "52.5", "long": "13.4"}
MAX_BYTES = 400_000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A small photo limit (the default is 10 MB), so that a too large file is cheap to make."""
    return settings.model_copy(update={"open311_media_max_bytes": MAX_BYTES})


@pytest.fixture
def api_key(app) -> str:  # type: ignore[no-untyped-def]
    with transaction(app.state.sessions) as s:
        _, key = add_client(s, f"portal-{uuid.uuid4().hex[:8]}")
    return key


def street_photo() -> np.ndarray:
    """A street with a bus and three pedestrians (samples/ultralytics/bus.jpg, 810 x 1080)."""
    return decode_image((SAMPLES / "ultralytics" / "bus.jpg").read_bytes())


def phone_jpeg(image: np.ndarray | None = None) -> bytes:
    """A citizen's photo as a phone sends it: JPEG with EXIF time and GPS."""
    return gps_jpeg(52.5, 13.4, T0, image=street_photo() if image is None else image)


def png_bytes(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image[..., ::-1]).save(out, format="PNG")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's trick)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def post_photo(client, key: str | None, media: bytes | None, fmt: str = "json", name: str = "photo.jpg", field: str = "media", **fields: str):  # type: ignore[no-untyped-def]  # fmt: skip
    data = {**({"api_key": key} if key else {}), **fields}
    files = {field: (name, media, "image/jpeg")} if media is not None else None
    return client.post(f"/open311/v2/requests.{fmt}", data=data, files=files)


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def stored(app) -> tuple[int, int, int, list[Path], list[Path]]:  # type: ignore[no-untyped-def]
    """Rows (reports, contacts, sites) and the files in the image store and among the originals."""
    settings = app.state.settings
    with app.state.sessions() as s:
        return (
            s.scalar(select(func.count()).select_from(CitizenReport)),
            s.scalar(select(func.count()).select_from(CitizenReportContact)),
            s.scalar(select(func.count()).select_from(DamageSite)),
            files_under(settings.image_dir),
            files_under(settings.original_dir),
        )


def person_boxes(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The persons the privacy model finds with some confidence (tight boxes)."""
    found = load_privacy_detector().predict(image, conf=0.5, multi_label=True)
    return [tuple(int(v) for v in d.box) for d in found if d.class_name == "person"]  # type: ignore[misc]


def test_photo_is_anonymized_stored_and_served(client, app, staff, api_key) -> None:  # type: ignore[no-untyped-def]
    original = street_photo()
    upload = phone_jpeg(original)
    assert read_exif(upload).fix is not None  # the phone's GPS is in the upload
    r = post_photo(client, api_key, upload, description="Schlagloch an der Haltestelle", **WHERE, **CONTACT)
    assert r.status_code == 201, r.text
    rid = r.json()[0]["service_request_id"]

    # Only the anonymized copy is stored: one file in the image store, nothing among the originals.
    with app.state.sessions() as s:
        report = s.get(CitizenReport, int(rid))
        assert report is not None and report.media_key and report.media_url is None
        assert (report.media_width, report.media_height) == (810, 1080)
        key = report.media_key
    _, _, _, images, originals = stored(app)
    assert images == [app.state.store.path(key)] and originals == []
    copy_bytes = app.state.store.get(key)
    assert copy_bytes != upload and read_exif(copy_bytes).fix is None  # no GPS, no camera details
    copy = decode_image(copy_bytes)
    assert copy.shape == original.shape

    # The persons are destroyed (also below the band blurred at the top), the road below is kept.
    band = int(np.ceil(app.state.settings.open311_media_horizon * original.shape[0]))
    persons = person_boxes(original)
    assert len(persons) >= 2
    for x1, y1, x2, y2 in persons:
        y1 = max(y1, band)
        before, after = original[y1:y2, x1:x2].astype(float), copy[y1:y2, x1:x2].astype(float)
        assert np.abs(after - before).mean() > 8, (x1, y1, x2, y2)
        assert after.var(axis=(0, 1)).mean() < 0.5 * before.var(axis=(0, 1)).mean(), (x1, y1, x2, y2)
    top = np.abs(copy[:band].astype(float) - original[:band].astype(float)).mean()
    assert top > 8
    road = (slice(1000, 1080), slice(380, 640))  # below the bus, between the pedestrians' boxes
    assert np.abs(copy[road].astype(float) - original[road].astype(float)).mean() < 2

    # Public answers point at it; it serves the anonymized bytes, never the original.
    (one,) = client.get(f"/open311/v2/requests/{rid}.json").json()
    assert one["media_url"] == f"http://testserver/open311/v2/media/{rid}.jpg"
    (listed,) = client.get("/open311/v2/requests.json").json()
    assert listed["media_url"] == one["media_url"]
    xml = ET.fromstring(client.get(f"/open311/v2/requests/{rid}.xml").content)
    assert xml[0].findtext("media_url") == one["media_url"]
    served = client.get(f"/open311/v2/media/{rid}.jpg")
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert served.content == copy_bytes

    # Staff: the reviewer's API names the photo; the site page shows it with the report.
    with app.state.sessions() as s:
        site = s.get(DamageSite, report.site_id)
        assert site is not None
    (full,) = client.get(f"/api/v1/sites/{site.public_id}/citizen-reports", auth=staff["reviewer"]).json()
    assert full["photo_url"] == f"/open311/v2/media/{rid}.jpg" and full["media_url"] is None
    from service.tests.web_seed import login

    login(client, *staff["viewer"])
    page = client.get(f"/sites/{site.public_id}").text
    assert f'<img src="/open311/v2/media/{rid}.jpg" width="810" height="1080"' in page
    assert "Bürgermeldungen (1)" in page and "Schlagloch an der Haltestelle" in page
    assert CONTACT["email"] not in page


def test_png_and_media_url_string(client, app, staff, api_key) -> None:  # type: ignore[no-untyped-def]
    # A PNG (sent as .xml) is stored as an anonymized JPEG; a media_url string stays as it was: kept for
    # staff, never shown publicly (nobody checked that photo).
    small = street_photo()[::3, ::3].copy()
    r = post_photo(client, api_key, png_bytes(small), fmt="xml", name="foto.png", **WHERE)
    assert r.status_code == 201, r.text
    rid = ET.fromstring(r.content)[0].findtext("service_request_id")
    served = client.get(f"/open311/v2/media/{rid}.jpg")
    assert served.status_code == 200 and served.content[:3] == b"\xff\xd8\xff"
    assert decode_image(served.content).shape == small.shape
    # (An HTML form's file input left empty sends a part without name or bytes: no photo.)
    given = post_photo(client, api_key, b"", name="", media_url="https://portal.example/p/1.jpg", **WHERE)
    assert given.status_code == 201, given.text
    gid = given.json()[0]["service_request_id"]
    assert client.get(f"/open311/v2/requests/{gid}.json").json()[0]["media_url"] is None
    missing = client.get(f"/open311/v2/media/{gid}.jpg")
    assert missing.status_code == 404 and "no photo" in missing.json()[0]["description"]
    with app.state.sessions() as s:
        site_id = s.get(CitizenReport, int(gid)).site_id  # type: ignore[union-attr]
        public_id = s.get(DamageSite, site_id).public_id  # type: ignore[union-attr]
    reports = client.get(f"/api/v1/sites/{public_id}/citizen-reports", auth=staff["reviewer"]).json()
    by_id = {x["service_request_id"]: x for x in reports}
    assert by_id[gid]["media_url"] == "https://portal.example/p/1.jpg" and by_id[gid]["photo_url"] is None
    assert by_id[rid]["photo_url"] == f"/open311/v2/media/{rid}.jpg"


def test_bad_photos_are_spec_errors_and_store_nothing(client, app, api_key) -> None:  # type: ignore[no-untyped-def]
    good = phone_jpeg(street_photo()[::2, ::2].copy())
    assert len(good) < MAX_BYTES
    noisy = np.random.default_rng(1).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    too_big = phone_jpeg(noisy)
    assert len(too_big) > MAX_BYTES
    big = io.BytesIO()
    Image.new("L", (6000, 5100)).save(big, format="PNG")  # 30.6 million pixels, a small file
    assert len(big.getvalue()) < MAX_BYTES
    before = stored(app)
    cases = [
        (api_key, good[: len(good) // 3], {}, 400, "media: image data is corrupt or truncated"),
        (api_key, b"\xff\xd8\xff\xe0" + b"\x00" * 500, {}, 400, "media: not a readable image"),
        (api_key, b"Schlagloch, bitte reparieren\n" * 20, {}, 400, "JPEG or PNG image (judged by its content"),
        (api_key, b"", {}, 400, "media is an empty file"),
        (api_key, too_big, {}, 400, f"media must be at most {MAX_BYTES:,} bytes"),
        (api_key, png_claiming(8000, 8000), {}, 400, "media: image too large: 8000x8000 pixels"),
        (api_key, png_claiming(100_000, 100_000), {}, 400, "media: image too large"),
        (api_key, big.getvalue(), {}, 400, "media: image too large: 6000x5100 pixels"),
        (api_key, good, {"field": "photo"}, 400, "the only file accepted is the photo, as media"),
        (None, good, {}, 403, "api_key is required"),
        ("rw311_wrong", good, {}, 403, "api_key is not valid"),
        (api_key, good, {"lat": "abc"}, 400, "lat must be a number"),
        (api_key, good, {"service_code": "graffiti"}, 400, "service_code must be one of"),
        (api_key, good, {"lat": "", "long": "", "address_string": "Nirgendweg 1"}, 400, "Nirgendweg"),
    ]  # fmt: skip
    for key, media, extra, code, words in cases:
        field = extra.pop("field", "media")
        fields = {**WHERE, **CONTACT, **extra}
        r = post_photo(client, key, media, field=field, **fields)
        assert r.status_code == code, (words, r.text)
        (err,) = r.json()
        assert err["code"] == code and words in err["description"], (words, err)
        x = post_photo(client, key, media, fmt="xml", field=field, **fields)
        root = ET.fromstring(x.content)
        assert (
            x.status_code == code
            and root.tag == "errors"
            and words in (root[0].findtext("description") or "")
        )
    two = client.post(
        "/open311/v2/requests.json",
        data={"api_key": api_key, **WHERE},
        files=[("media", ("a.jpg", good, "image/jpeg")), ("media", ("b.jpg", good, "image/jpeg"))],
    )
    assert two.status_code == 400 and "one photo per request" in two.json()[0]["description"]
    assert stored(app) == before

    # The privacy model fails (here: the damage model in its place): 500 in the spec's format, nothing kept.
    app.state.open311_privacy = Detector.from_path(default_model_path())
    failed = post_photo(client, api_key, good, **WHERE, **CONTACT)
    assert failed.status_code == 500, failed.text
    (err,) = failed.json()
    assert err["code"] == 500 and "could not be anonymized" in err["description"]
    assert "nothing was stored" in err["description"]
    assert stored(app) == before
    del app.state.open311_privacy
    assert post_photo(client, api_key, good, **WHERE).status_code == 201  # the same photo, now accepted
    after = stored(app)
    assert after[0] == before[0] + 1 and len(after[3]) == len(before[3]) + 1


def test_retention_deletes_the_photo_with_the_contact_details(client, app, api_key) -> None:  # type: ignore[no-untyped-def]
    from service.worker.retention import enforce_retention

    photo = street_photo()[::2, ::2].copy()
    a, b = phone_jpeg(photo), phone_jpeg(photo[:, ::-1].copy())
    ids = []
    for media, lat in ((a, "52.1"), (b, "52.2"), (b, "52.3")):  # the last two: the same photo
        r = post_photo(client, api_key, media, service_code="crack", lat=lat, long="13.4", **CONTACT)
        assert r.status_code == 201, r.text
        ids.append(int(r.json()[0]["service_request_id"]))
    old_a, old_b, new_b = ids
    with app.state.sessions() as s:
        keys = dict(s.execute(select(CitizenReport.id, CitizenReport.media_key)).all())
    assert keys[old_b] == keys[new_b] != keys[old_a]
    with transaction(app.state.sessions) as s:
        s.execute(
            text("UPDATE citizen_report SET requested_at = now() - interval '400 days' WHERE id IN (:a, :b)"),
            {"a": old_a, "b": old_b},
        )
    enforce_retention(app.state.sessions, app.state.store, 365)

    store = app.state.store
    assert not store.path(keys[old_a]).exists()  # gone with its report's retention
    assert store.path(keys[new_b]).exists()  # the same bytes are still a younger report's photo
    with app.state.sessions() as s:
        rows = {r.id: r for r in s.scalars(select(CitizenReport))}
        assert len(rows) == 3  # the reports stay
        assert rows[old_a].media_key is None and rows[old_a].media_deleted_at is not None
        assert rows[old_b].media_key is None and rows[new_b].media_key == keys[new_b]
        assert s.scalars(select(CitizenReportContact.report_id)).all() == [new_b]
    gone = client.get(f"/open311/v2/media/{old_a}.jpg")
    assert gone.status_code == 410 and gone.json()[0]["code"] == 410
    assert "retention" in gone.json()[0]["description"]
    assert client.get(f"/open311/v2/requests/{old_a}.json").json()[0]["media_url"] is None
    assert client.get(f"/open311/v2/media/{new_b}.jpg").status_code == 200

    # Once the younger report's period ends too, its file goes.
    with transaction(app.state.sessions) as s:
        s.execute(
            text("UPDATE citizen_report SET requested_at = now() - interval '400 days' WHERE id = :i"),
            {"i": new_b},
        )
    enforce_retention(app.state.sessions, app.state.store, 365)
    assert files_under(app.state.settings.image_dir) == []
    assert client.get("/open311/v2/media/abc.jpg").status_code == 404


def test_photo_body_limit_is_the_photo_limit_not_the_api_default(settings: Settings) -> None:
    """A phone photo is larger than the API's 1 MB body limit: the report route allows the photo limit
    (plus the form fields); a body past that is refused before it is read, in the spec's format."""
    from fastapi.testclient import TestClient

    from service.app import create_app

    small_default = settings.model_copy(update={"max_body_bytes": 50_000})
    app = create_app(small_default)
    with transaction(app.state.sessions) as s:
        _, key = add_client(s, f"portal-{uuid.uuid4().hex[:8]}")
    with TestClient(app) as client:
        photo = phone_jpeg()
        assert 50_000 < len(photo) < MAX_BYTES  # above the API's default, below the photo limit
        accepted = post_photo(client, key, photo, **WHERE)
        assert accepted.status_code == 201, accepted.text
        before = stored(app)
        huge = b"\xff\xd8" + bytes(MAX_BYTES + 60_000)
        for fmt in ("json", "xml"):
            r = post_photo(client, key, huge, fmt=fmt, **WHERE)
            assert r.status_code == 413
            if fmt == "json":
                (err,) = r.json()
                assert err["code"] == 413 and "the limit is" in err["description"]
            else:
                root = ET.fromstring(r.content)
                assert root.tag == "errors" and root[0].findtext("code") == "413"
        assert stored(app) == before
        # Elsewhere the API's default stays.
        assert client.post("/api/v1/decisions", content=b"x" * 60_000).status_code == 413
