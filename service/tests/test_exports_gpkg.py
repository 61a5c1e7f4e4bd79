"""GeoPackage downloads, opened by GDAL's own ``ogrinfo`` (Debian's gdal-bin): layer, geometry type, CRS,
field types, feature count, filters, who may download."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from geoalchemy2 import WKTElement

from service.db.engine import transaction
from service.db.grades import SectionGrade
from service.db.road_tables import RoadSection
from service.db.tables import DamageSite, point

SEEN = datetime(2026, 5, 4, 10, 30, tzinfo=UTC)


@pytest.fixture
def sites(app) -> list[DamageSite]:  # type: ignore[no-untyped-def]
    rows = []
    with transaction(app.state.sessions) as s:
        for cls, prio, status, (lat, lon), size in [
            ("D40", 80.5, "open", (52.5, 13.4), 0.4),
            ("D00", 30.0, "confirmed", (52.501, 13.401), None),
            ("D10", 90.0, "open", (48.1, 11.5), 1.2),
        ]:
            site = DamageSite(
                class_name=cls,
                position=point(lat, lon),
                priority=prio,
                status=status,
                size_m=size,
                first_seen=SEEN,
                last_seen=SEEN,
                sightings=2,
                n_observations=3,
                ranking_version="t",
            )
            s.add(site)
            rows.append(site)
    return rows


def ogrinfo(path: Path) -> str:
    assert shutil.which("ogrinfo"), "GDAL's ogrinfo is missing: `make system-deps` installs gdal-bin"
    out = subprocess.run(["ogrinfo", "-ro", "-al", str(path)], capture_output=True, text=True, check=True)
    return out.stdout


def field_types(info: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+): (\w+) \(", info, re.M))


def download(client, url: str, auth, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    r = client.get(url, auth=auth)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/geopackage+sqlite3"
    path = tmp_path / "download.gpkg"
    path.write_bytes(r.content)
    return path


def test_sites_gpkg_opens_in_ogrinfo(client, staff, sites, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = download(client, "/api/v1/sites.gpkg", staff["viewer"], tmp_path)
    info = ogrinfo(path)
    assert "Layer name: damage_sites" in info
    assert "Geometry: Point" in info
    assert "Feature Count: 3" in info
    srs = info.split("Layer SRS WKT:")[1].split("Data axis")[0]
    assert srs.strip().startswith('GEOGCRS["WGS 84"') and srs.strip().endswith('ID["EPSG",4326]]'), srs
    types = field_types(info)
    assert types["priority"] == "Real" and types["size_m"] == "Real" and types["max_confidence"] == "Real"
    assert types["sightings"] == "Integer" and types["observations"] == "Integer"
    assert types["first_seen"] == "DateTime" and types["last_seen"] == "DateTime"
    assert types["id"] == types["class"] == types["status"] == "String"
    # Values: the priority as a number, the time in UTC, the point in lon/lat, a missing size as NULL.
    assert "priority (Real) = 80.5" in info
    assert "first_seen (DateTime) = 2026/05/04 10:30:00" in info
    assert "POINT (13.4 52.5)" in info
    assert "size_m (Real) = (null)" in info
    assert str(sites[0].public_id) in info


def test_sites_gpkg_filters_like_the_csv(client, staff, sites, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = download(client, "/api/v1/sites.gpkg?bbox=13,52,14,53&status=open", staff["viewer"], tmp_path)
    info = ogrinfo(path)
    assert "Feature Count: 1" in info and str(sites[0].public_id) in info
    empty = download(client, "/api/v1/sites.gpkg?class=D20", staff["viewer"], tmp_path)
    assert "Feature Count: 0" in ogrinfo(empty)
    assert client.get("/api/v1/sites.gpkg?bbox=1,2").status_code in (401, 422)
    assert client.get("/api/v1/sites.gpkg?bbox=1,2", auth=staff["viewer"]).status_code == 422


def test_gpkg_needs_staff(client, vehicle_token, sites) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/v1/sites.gpkg").status_code == 401
    bearer = {"Authorization": f"Bearer {vehicle_token}"}
    assert client.get("/api/v1/sites.gpkg", headers=bearer).status_code == 401


def test_work_order_gpkg(client, staff, sites, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ids = [str(s.public_id) for s in sites[:2]]
    r = client.post("/api/v1/work-orders", json={"title": "Mitte", "sites": ids}, auth=staff["reviewer"])
    assert r.status_code == 201
    order_id = r.json()["id"]
    info = ogrinfo(download(client, f"/api/v1/work-orders/{order_id}/sites.gpkg", staff["viewer"], tmp_path))
    assert f"Layer name: work_order_{order_id}" in info and "Feature Count: 2" in info
    types = field_types(info)
    assert types["order_id"] == "Integer" and types["order_position"] == "Integer"
    assert types["priority"] == "Real" and types["last_seen"] == "DateTime"
    assert "order_title (String) = Mitte" in info and "status (String) = scheduled" in info
    assert client.get("/api/v1/work-orders/999/sites.gpkg", auth=staff["viewer"]).status_code == 404


def test_road_sections_gpkg(client, app, staff, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with transaction(app.state.sessions) as s:
        for i, lon in enumerate((13.40, 11.50)):
            s.add(
                RoadSection(
                    id=f"w{i}:0",
                    way_id=f"w{i}",
                    ordinal=0,
                    name="Hauptstraße",
                    importance=0.8,
                    importance_source="test",
                    length_m=68.0,
                    geom=WKTElement(f"LINESTRING({lon} 52.5, {lon + 0.001} 52.5)", srid=4326),
                )
            )
        s.add(
            SectionGrade(
                section_id="w0:0", computed_at=SEEN, checked_at=SEEN, grade=3.5, status="graded",
                colour_class="orange", config_version="g1", surveyed_share=0.9, passes=4, last_pass=SEEN,
                inputs={}, current=True,
            )
        )  # fmt: skip
    info = ogrinfo(download(client, "/api/v1/road-sections.gpkg?bbox=13,52,14,53", staff["viewer"], tmp_path))
    assert "Layer name: road_sections" in info and "Geometry: Line String" in info
    assert "Feature Count: 1" in info and "name (String) = Hauptstraße" in info
    types = field_types(info)
    assert types["importance"] == types["grade"] == types["surveyed_share"] == "Real"
    assert types["passes"] == "Integer" and types["graded_at"] == "DateTime"
    assert "grade (Real) = 3.5" in info and "colour_class (String) = orange" in info
    ungraded = ogrinfo(
        download(client, "/api/v1/road-sections.gpkg?bbox=11,52,12,53", staff["viewer"], tmp_path)
    )
    assert "Feature Count: 1" in ungraded and "grade (Real) = (null)" in ungraded
