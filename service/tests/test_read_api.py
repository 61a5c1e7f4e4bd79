"""Read API: ranked GeoJSON with filters, site detail, exports, frame images, and who may read."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from service.db.engine import transaction
from service.db.tables import DamageSite, Frame, Observation, UploadBatch, Vehicle, point
from tests.fixtures import T0, gps_jpeg


@pytest.fixture
def sites(app, vehicle_token) -> list[DamageSite]:  # type: ignore[no-untyped-def]
    """Three sites in Berlin and one in Munich, with one observed frame."""
    now = datetime.now(UTC)
    data = gps_jpeg(52.5, 13.4, T0, seed=1)
    app.state.store.put("f" * 64, data)
    with transaction(app.state.sessions) as s:
        vehicle = s.query(Vehicle).one()
        batch = UploadBatch(vehicle_id=vehicle.id)
        s.add(batch)
        s.flush()
        frame = Frame(
            sha256="f" * 64,
            vehicle_id=vehicle.id,
            batch_id=batch.id,
            filename="x.jpg",
            captured_at=T0,
            position=point(52.5, 13.4),
            location_source="exif",
            width=640,
            height=480,
            status="done",
            image_key="f" * 64,
        )
        s.add(frame)
        rows = []
        for cls, prio, status, (lat, lon) in [
            ("D40", 80.0, "open", (52.5, 13.4)),
            ("D00", 30.0, "open", (52.501, 13.401)),
            ("D20", 55.0, "confirmed", (52.502, 13.402)),
            ("D10", 90.0, "open", (48.1, 11.5)),
        ]:
            site = DamageSite(
                class_name=cls,
                position=point(lat, lon),
                priority=prio,
                status=status,
                first_seen=now,
                last_seen=now,
                sightings=1,
                n_observations=1,
                score_components={"components": {"class": prio}},
                ranking_version="t",
            )
            s.add(site)
            rows.append(site)
        s.flush()
        s.add(
            Observation(
                frame_id=frame.id,
                site_id=rows[0].id,
                class_name="D40",
                confidence=0.8,
                x1=100,
                y1=200,
                x2=300,
                y2=400,
            )
        )
    return rows


def test_sites_ranked_and_filtered(client, staff, sites) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/api/v1/sites", auth=staff["viewer"])
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "FeatureCollection" and body["total"] == 4
    assert [f["properties"]["class"] for f in body["features"]] == ["D10", "D40", "D20", "D00"]
    assert body["features"][1]["geometry"] == {"type": "Point", "coordinates": [13.4, 52.5]}
    berlin = client.get("/api/v1/sites?bbox=13.3,52.4,13.5,52.6", auth=staff["viewer"]).json()
    assert [f["properties"]["class"] for f in berlin["features"]] == ["D40", "D20", "D00"]
    open_cracks = client.get("/api/v1/sites?status=open&class=D00,D10", auth=staff["viewer"]).json()
    assert [f["properties"]["class"] for f in open_cracks["features"]] == ["D10", "D00"]
    page = client.get("/api/v1/sites?limit=2&offset=2", auth=staff["viewer"]).json()
    assert [f["properties"]["class"] for f in page["features"]] == ["D20", "D00"]
    assert page["features"][0]["properties"]["proposed_by_model"] is False


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("bbox=1,2,3", "bbox must be"),
        ("bbox=5,5,1,1", "min < max"),
        ("status=gone", "status must be among"),
        ("class=D99", "class must be among"),
        ("limit=0", "limit"),
    ],
)
def test_bad_filters_are_clear_422(client, staff, query: str, message: str) -> None:  # type: ignore[no-untyped-def]
    r = client.get(f"/api/v1/sites?{query}", auth=staff["viewer"])
    assert r.status_code == 422 and message in r.json()["detail"]


def test_site_detail_and_frame_image(client, staff, sites) -> None:  # type: ignore[no-untyped-def]
    site_id = str(sites[0].public_id)
    detail = client.get(f"/api/v1/sites/{site_id}", auth=staff["viewer"]).json()
    (obs,) = detail["properties"]["observation_list"]
    assert obs["class"] == "D40" and obs["box"] == [100, 200, 300, 400]
    plain = client.get(obs["frame"]["image"], auth=staff["viewer"])
    assert plain.status_code == 200 and plain.headers["content-type"] == "image/jpeg"
    drawn = client.get(obs["frame"]["image"] + "?boxes=true", auth=staff["viewer"])
    image = cv2.imdecode(np.frombuffer(drawn.content, np.uint8), cv2.IMREAD_COLOR)
    assert image[200, 200, 2] > 200 and image[200, 200, 0] < 80  # the red box edge
    assert client.get("/api/v1/sites/not-a-uuid", auth=staff["viewer"]).status_code == 422
    assert (
        client.get("/api/v1/sites/00000000-0000-0000-0000-000000000000", auth=staff["viewer"]).status_code
        == 404
    )


def test_exports(client, staff, sites) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/api/v1/sites.csv?status=open", auth=staff["viewer"])
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["class"] for row in rows] == ["D10", "D40", "D00"]
    assert rows[1]["lat"] == "52.5" and rows[1]["lon"] == "13.4"
    gj = json.loads(client.get("/api/v1/sites.geojson", auth=staff["viewer"]).text)
    assert len(gj["features"]) == 4


def test_who_may_read(client, staff, sites, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/v1/sites").status_code == 401
    assert client.get("/api/v1/sites", auth=("viewer", "wrong password")).status_code == 401
    # A vehicle's upload token reads nothing.
    assert (
        client.get("/api/v1/sites", headers={"Authorization": f"Bearer {vehicle_token}"}).status_code == 401
    )
    assert (
        client.get("/api/v1/sites.csv", headers={"Authorization": f"Bearer {vehicle_token}"}).status_code
        == 401
    )


def test_health_and_openapi(client) -> None:  # type: ignore[no-untyped-def]
    health = client.get("/health").json()
    assert health["database"] == "ok" and health["model"]["present"] is True and health["status"] == "ok"
    assert health["privacy_model"] == {
        "file": "privacy-persons-vehicles-int8.onnx",  # the default, at its own operating point
        "present": True,
        "min_confidence": 0.08,
    }
    assert "/api/v1/batches" in client.get("/openapi.json").json()["paths"]


def test_transparency_record(client, staff) -> None:  # type: ignore[no-untyped-def]
    record = client.get("/api/v1/transparency", auth=staff["viewer"]).json()
    for key in (
        "purpose",
        "legal_basis",
        "human_oversight",
        "risk_classification",
        "model",
        "training_data",
        "retention",
        "contact",
        "data_categories",
        "safeguards",
    ):
        assert record[key], key
    assert record["model"]["name"].startswith("roadwatch-yolov5nu")
    assert {d["license"] for d in record["training_data"]} == {"CC BY-SA 4.0", "CC BY 4.0"}
    assert record["retention"]["images_days"] == 365
    assert "staff" in record["human_oversight"]
    assert client.get("/api/v1/transparency").status_code == 401
