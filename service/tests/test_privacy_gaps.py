"""Privacy gaps closed (issue 18): Label Studio sees only anonymized images, the band follows each camera's
horizon, retention covers the corrections, owner-only files, no object reprs in rejection reasons."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from service.domain.anonymize import PrivacyConfig, band_for
from service.domain.geo import Camera, focal_px, horizon_fraction
from service.settings import PROJECT_ROOT, Settings
from tests.fixtures import T0, gps_jpeg

URL = "postgresql+psycopg://x/y"


def test_label_studio_root_holds_only_anonymized_images(tmp_path: Path) -> None:
    from service.labelstudio.client import LabelStudioError, document_root

    data = tmp_path / "var"
    default = Settings(database_url=URL, data_dir=data)
    assert document_root(default) == default.image_dir.resolve()  # the images, nothing else
    for root, exposed in [
        (data, "uploads before anonymization"),
        (tmp_path, "uploads before anonymization"),
        (data / "originals", "uploads before anonymization"),
        (data / "corrections", "corrections"),
    ]:
        with pytest.raises(LabelStudioError, match=exposed):
            document_root(Settings(database_url=URL, data_dir=data, labelstudio_document_root=root))
    # A dedicated root elsewhere holding the image folder is fine.
    images = tmp_path / "labelstudio-root" / "images"
    moved = Settings(
        database_url=URL, data_dir=data, image_root=images, labelstudio_document_root=images.parent
    )
    assert document_root(moved) == images.parent.resolve() and moved.image_dir == images


def test_horizon_fraction_is_the_pinhole_horizon_row() -> None:
    cam = Camera(pitch_deg=10.0, hfov_deg=100.0)
    expected = (240 - focal_px(640, cam) * math.tan(math.radians(10.0))) / 480
    assert horizon_fraction(640, 480, cam) == pytest.approx(expected)
    assert horizon_fraction(640, 480, cam) == pytest.approx(0.4014, abs=1e-3)  # 0.5 - 268.5 * 0.1763 / 480
    assert horizon_fraction(640, 480, Camera(pitch_deg=0.0)) == pytest.approx(0.5)  # level: the centre
    assert horizon_fraction(640, 480, Camera(pitch_deg=60.0, hfov_deg=40.0)) == 0.0  # above the image


def test_band_per_vehicle_from_its_camera_with_override() -> None:
    derived = PrivacyConfig(horizon=None, horizon_margin=0.05)
    steep, flat = Camera(pitch_deg=20.0), Camera(pitch_deg=2.0)
    assert band_for(derived, None, steep, 640, 480) == pytest.approx(horizon_fraction(640, 480, steep) + 0.05)
    assert band_for(derived, None, steep, 640, 480) < band_for(derived, None, flat, 640, 480)  # type: ignore[operator]
    assert band_for(derived, 0.2, steep, 640, 480) == 0.2  # the vehicle's own band wins
    assert band_for(derived, 0.0, steep, 640, 480) == 0.0  # 0: no band for this camera
    assert band_for(PrivacyConfig(horizon=0.35, horizon_margin=0.05), None, steep, 640, 480) == 0.35
    assert band_for(PrivacyConfig(horizon=None), None, steep, 640, 480) is None  # off
    from service.worker.context import privacy_config

    config = privacy_config(Settings(database_url=URL))
    assert config.horizon is None and config.horizon_margin == 0.05  # derived by default


def test_retention_removes_the_corrections_of_deleted_images(client, app, vehicle_token, staff) -> None:  # type: ignore[no-untyped-def]
    from service.worker.retention import prune_corrections

    r = client.post(
        "/api/v1/batches",
        files=[
            ("images", (f"{i}.jpg", gps_jpeg(52.5, 13.4 + i * 0.001, T0, seed=60 + i), "image/jpeg"))
            for i in range(2)
        ],
        headers={"Authorization": f"Bearer {vehicle_token}"},
    )
    gone, kept = (i["sha256"] for i in r.json()["images"])
    with app.state.sessions() as s, s.begin():
        s.execute(text("UPDATE frame SET image_deleted_at = now() WHERE sha256 = :s"), {"s": gone})
    folder = app.state.settings.corrections_dir
    orphan = "f" * 64
    for split, sha in (("train", gone), ("valid", kept), ("train", orphan)):
        (folder / split / "images").mkdir(parents=True, exist_ok=True)
        (folder / split / "labels").mkdir(parents=True, exist_ok=True)
        (folder / split / "images" / f"{sha}.jpg").write_bytes(b"jpeg")
        (folder / split / "labels" / f"{sha}.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    assert prune_corrections(app.state.sessions, folder) == 2
    assert sorted(p.name for p in folder.glob("*/*/*")) == [f"{kept}.jpg", f"{kept}.txt"]
    record = client.get("/api/v1/transparency", auth=staff["viewer"]).json()

    def find(node):  # type: ignore[no-untyped-def]
        if isinstance(node, dict):
            if "retention" in node and isinstance(node["retention"], dict):
                return node["retention"]
            for value in node.values():
                if (found := find(value)) is not None:
                    return found
        return None

    retention = find(record)
    assert (
        retention is not None and "corrections" in retention["rule"] and "corrections" in retention["covers"]
    )


def test_images_and_uploads_are_owner_only(tmp_path: Path) -> None:
    from service.db.store import ImageStore

    root = tmp_path / "var" / "originals"
    root.mkdir(parents=True, mode=0o755)
    os.chmod(root, 0o755)
    store = ImageStore(root)
    path = store.put("ab" * 32, b"photo")
    for folder in (root, path.parent, path.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_demo_credentials_are_not_written_to_tmp() -> None:
    script = (PROJECT_ROOT / "scripts" / "run.sh").read_text()
    assert "/tmp/" not in script and "umask 077" in script and "var/demo-credentials.json" in script


def test_rejection_reasons_carry_no_object_reprs(client, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    r = client.post(
        "/api/v1/batches",
        files=[("images", ("a.jpg", b"just some text pretending to be a photo", "image/jpeg"))],
        headers={"Authorization": f"Bearer {vehicle_token}"},
    )
    reason = r.json()["images"][0]["reason"]
    # (Pillow's own words; "cannot identify image file" unless another test registered more openers.)
    assert reason.startswith("not a readable image: ")
    assert "0x" not in reason and "<" not in reason and "BytesIO" not in reason


def test_object_reprs_are_cut_from_decoder_messages() -> None:
    from detector.preprocess import _words

    assert _words(OSError("cannot identify image file <_io.BytesIO object at 0x7f3a2b1c0d90>")) == (
        "cannot identify image file"
    )
    assert _words(ValueError("<PIL.Image object at 0xdeadbeef>")) == "ValueError"
    assert _words(ValueError("plain words")) == "plain words"
