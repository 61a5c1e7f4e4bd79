"""OGC API - Features at /ogc: GDAL's OAPIF driver (the protocol QGIS speaks) against the running service, plus
the parts of the standard a client may ask for directly (conformance, datetime, property filters, HTML)."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from service.db.engine import transaction
from service.tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
N_SITES = 5000
SEED = """
INSERT INTO damage_site (public_id, class_name, class_votes, position, position_weight, severity,
    max_confidence, sightings, n_observations, priority, score_components, ranking_version, status,
    first_seen, last_seen)
SELECT gen_random_uuid(), (ARRAY['D00','D10','D20','D40'])[1 + g % 4], '{}',
    ST_SetSRID(ST_MakePoint(13.3 + (g % 100) * 0.001, 52.5 + (g / 100) * 0.001), 4326), 1, 'low',
    0.5, 1, 1, g % 100, '{}', 't', CASE WHEN g % 10 = 0 THEN 'confirmed' ELSE 'open' END,
    TIMESTAMPTZ '2026-01-01 00:00Z' + g * INTERVAL '1 hour', TIMESTAMPTZ '2026-01-01 00:00Z' + g * INTERVAL '1 hour'
FROM generate_series(1, :n) g
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def seeded(settings, staff) -> int:  # type: ignore[no-untyped-def]
    engine = create_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(text(SEED), {"n": N_SITES})
    engine.dispose()
    return N_SITES


@pytest.fixture
def server(settings, seeded) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The service as a real process (uvicorn) on a free port."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": settings.database_url, "ROADWATCH_DATA_DIR": str(settings.data_dir)}
    cmd = [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 40
        while True:
            assert proc.poll() is None, "the server exited at start"
            assert time.monotonic() < deadline, "the server did not start within 40 s"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/ogc"
    finally:
        proc.kill()
        proc.wait(10)


def gdal(*args: str, user: str | None = "viewer", check: bool = True) -> subprocess.CompletedProcess[str]:
    assert shutil.which("ogrinfo"), "GDAL is missing: `make system-deps` installs gdal-bin"
    env = {**os.environ, "GDAL_HTTP_AUTH": "BASIC", "CPL_DEBUG": "OFF"}
    if user:
        env["GDAL_HTTP_USERPWD"] = f"{user}:{PASSWORD}"
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def csv_rows(out: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(out)))


def test_gdal_lists_reads_a_bbox_and_pages(server, settings) -> None:  # type: ignore[no-untyped-def]
    listing = gdal("ogrinfo", "-ro", f"OAPIF:{server}").stdout
    assert re.search(r"^1: damage_sites .*\(Point\)$", listing, re.M), listing
    assert re.search(r"^2: work_orders ", listing, re.M) and re.search(r"^3: road_sections ", listing, re.M)

    summary = gdal("ogrinfo", "-ro", "-so", f"OAPIF:{server}", "damage_sites").stdout
    assert "Geometry: Point" in summary and f"Feature Count: {N_SITES}" in summary
    assert 'ID["EPSG",4326]' in summary and "priority: Real" in summary and "last_seen: DateTime" in summary

    box = (13.3095, 52.5095, 13.3205, 52.5205)
    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        expected = set(
            conn.execute(
                text(
                    "SELECT public_id::text FROM damage_site WHERE position && ST_MakeEnvelope(:a, :b, :c, :d, 4326)"
                ),
                dict(zip("abcd", box, strict=True)),
            ).scalars()
        )
    engine.dispose()
    assert len(expected) == 121  # 11 columns x 11 rows of the grid
    spat = ["-spat", *(str(v) for v in box)]
    in_box = gdal("ogr2ogr", "-f", "CSV", "/vsistdout/", f"OAPIF:{server}", "damage_sites", *spat).stdout
    assert {r["public_id"] for r in csv_rows(in_box)} == expected

    # All 5,000 in pages of 1,000: GDAL follows the next links.
    everything = gdal(
        "ogr2ogr", "-f", "CSV", "/vsistdout/", f"OAPIF:{server}", "damage_sites", "-oo", "PAGE_SIZE=1000"
    ).stdout
    ids = [r["public_id"] for r in csv_rows(everything)]
    assert len(ids) == N_SITES and len(set(ids)) == N_SITES


def test_gdal_needs_a_staff_login(server) -> None:  # type: ignore[no-untyped-def]
    assert gdal("ogrinfo", "-ro", "-so", f"OAPIF:{server}", user=None, check=False).returncode != 0
    assert gdal("ogrinfo", "-ro", "-so", f"OAPIF:{server}", user="nobody", check=False).returncode != 0


def test_ogc_core_over_http(client, staff, seeded, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    viewer = staff["viewer"]
    assert client.get("/ogc/").status_code == 401
    bearer = {"Authorization": f"Bearer {vehicle_token}"}
    assert client.get("/ogc/collections", headers=bearer).status_code == 401
    landing = client.get("/ogc/", auth=viewer).json()
    assert {"conformance", "data"} <= {link["rel"] for link in landing["links"]}
    conformance = client.get("/ogc/conformance", auth=viewer).json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conformance
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conformance
    assert [c["id"] for c in client.get("/ogc/collections", auth=viewer).json()["collections"]] == [
        "damage_sites",
        "work_orders",
        "road_sections",
    ]

    items = client.get("/ogc/collections/damage_sites/items?limit=7&offset=14", auth=viewer)
    assert items.status_code == 200 and items.headers["content-type"] == "application/geo+json"
    page = items.json()
    assert page["numberMatched"] == N_SITES and len(page["features"]) == 7
    (next_link,) = [link["href"] for link in page["links"] if link["rel"] == "next"]
    assert "offset=21" in next_link and "limit=7" in next_link
    # Only the published columns: no internal or personal fields.
    assert set(page["features"][0]["properties"]) == {
        "public_id", "class_name", "status", "priority", "severity", "size_m", "max_confidence",
        "sightings", "n_observations", "first_seen", "last_seen", "ranking_version", "citizen_reports",
        "citizen_reported",
    }  # fmt: skip

    # datetime (on last_seen) and property filters.
    before = client.get(
        "/ogc/collections/damage_sites/items?datetime=../2026-01-01T10:00:00Z&limit=100", auth=viewer
    ).json()
    assert before["numberMatched"] == 10
    assert all(f["properties"]["last_seen"] <= "2026-01-01T10:00:00+00:00" for f in before["features"])
    confirmed = client.get("/ogc/collections/damage_sites/items?status=confirmed&class_name=D00", auth=viewer)
    assert confirmed.json()["numberMatched"] == 250  # g % 10 == 0 and g % 4 == 0: every 20th
    bad = client.get("/ogc/collections/damage_sites/items?bbox=1,2", auth=viewer)
    assert bad.status_code == 422 and "bbox" in bad.json()["description"]
    assert client.get("/ogc/collections/nope/items", auth=viewer).status_code == 404

    one = page["features"][0]
    item = client.get(f"/ogc/collections/damage_sites/items/{one['id']}", auth=viewer).json()
    assert item["id"] == one["id"] and item["geometry"]["type"] == "Point"
    assert client.get("/ogc/collections/damage_sites/items/not-a-uuid", auth=viewer).status_code == 400
    unknown = "/ogc/collections/damage_sites/items/00000000-0000-0000-0000-000000000000"
    assert client.get(unknown, auth=viewer).status_code == 404

    html = client.get("/ogc/collections/damage_sites/items?f=html", auth=viewer)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")

    # The web app's session opens it too (a staff member browsing the HTML pages).
    from service.tests.web_seed import login

    login(client, *viewer)
    assert client.get("/ogc/collections?f=html").status_code == 200


def test_work_orders_and_graded_sections(client, app, staff, seeded) -> None:  # type: ignore[no-untyped-def]
    viewer = staff["viewer"]
    sites = client.get("/api/v1/sites?limit=3", auth=viewer).json()["features"]
    order = client.post(
        "/api/v1/work-orders", json={"title": "Mitte", "sites": [f["properties"]["id"] for f in sites]},
        auth=staff["reviewer"],
    ).json()  # fmt: skip
    with transaction(app.state.sessions) as s:
        s.execute(
            text(
                "INSERT INTO road_section (id, way_id, ordinal, name, importance, importance_source, length_m, geom)"
                " VALUES ('w1:0', 'w1', 0, 'Hauptstraße', 0.8, 't', 68, ST_GeomFromText('LINESTRING(13.3 52.5, 13.301 52.5)', 4326)),"
                " ('w2:0', 'w2', 0, 'Nebenweg', 0.2, 't', 68, ST_GeomFromText('LINESTRING(13.5 52.6, 13.501 52.6)', 4326))"
            )
        )
        s.execute(
            text(
                "INSERT INTO section_grade (section_id, computed_at, checked_at, grade, status, colour_class,"
                " config_version, surveyed_share, passes, inputs, current) VALUES"
                " ('w1:0', '2026-03-01Z', '2026-03-01Z', 2.0, 'old', 'green', 'g1', 0.5, 1, '{}', false),"
                " ('w1:0', '2026-04-01Z', '2026-04-01Z', 3.5, 'graded', 'orange', 'g1', 0.9, 4, '{}', true)"
            )
        )
    (wo,) = client.get("/ogc/collections/work_orders/items", auth=viewer).json()["features"]
    assert (
        wo["id"] == order["id"] and wo["properties"]["title"] == "Mitte" and wo["properties"]["n_sites"] == 3
    )
    assert wo["geometry"]["type"] == "MultiPoint" and len(wo["geometry"]["coordinates"]) == 3
    sections = client.get("/ogc/collections/road_sections/items?sortby=id", auth=viewer).json()["features"]
    assert [f["id"] for f in sections] == ["w1:0", "w2:0"]
    graded, ungraded = (f["properties"] for f in sections)
    assert graded["grade"] == 3.5 and graded["colour_class"] == "orange" and graded["surveyed_share"] == 0.9
    assert ungraded["grade"] is None and sections[0]["geometry"]["type"] == "LineString"
    poor = client.get("/ogc/collections/road_sections/items?colour_class=orange", auth=viewer).json()
    assert poor["numberMatched"] == 1
