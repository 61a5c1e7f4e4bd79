"""Vector tiles of sites, decoded by GDAL's MVT driver (``ogrinfo`` of gdal-bin): features, attributes and
positions per zoom (one feature per site from zoom 14, groups below), filters, bounds, who may read."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.db.engine import transaction
from service.db.tables import DamageSite, point
from service.db.tiles import tile_bounds

SEEN = datetime(2026, 5, 4, tzinfo=UTC)


def tile_of(lat: float, lon: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def mercator(lat: float, lon: float) -> tuple[float, float]:
    r = 6378137.0
    return math.radians(lon) * r, math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * r


@pytest.fixture
def sites(app) -> list[DamageSite]:  # type: ignore[no-untyped-def]
    rows = []
    with transaction(app.state.sessions) as s:
        for cls, status, prio, (lat, lon) in [
            ("D40", "open", 80.0, (52.5, 13.4)),
            ("D00", "confirmed", 30.0, (52.5001, 13.4001)),  # 13 m away: one group at low zoom
            ("D10", "open", 55.0, (52.52, 13.45)),
        ]:
            site = DamageSite(
                class_name=cls, position=point(lat, lon), priority=prio, status=status, first_seen=SEEN,
                last_seen=SEEN, sightings=1, n_observations=1, ranking_version="t",
            )  # fmt: skip
            s.add(site)
            rows.append(site)
    return rows


def features(tile: bytes, z: int, x: int, y: int, tmp_path: Path) -> list[dict[str, str]]:
    """Each feature's fields and POINT (EPSG:3857) as GDAL reads them."""
    assert shutil.which("ogrinfo"), "GDAL is missing: `make system-deps` installs gdal-bin"
    path = tmp_path / f"{z}-{x}-{y}.pbf"
    path.write_bytes(tile)
    out = subprocess.run(
        ["ogrinfo", "-ro", "-al", "-oo", f"X={x}", "-oo", f"Y={y}", "-oo", f"Z={z}", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "Layer name: sites" in out
    found = []
    for block in out.split("OGRFeature(sites)")[1:]:
        fields = dict(re.findall(r"^\s+(\w+) \(\w+\) = (.*)$", block, re.M))
        (x_m, y_m) = re.search(r"POINT \(([-\d.e+]+) ([-\d.e+]+)\)", block).groups()
        found.append({**fields, "x_m": x_m, "y_m": y_m})
    return found


def get_tile(client, auth, z: int, x: int, y: int, query: str = "") -> bytes:  # type: ignore[no-untyped-def]
    r = client.get(f"/tiles/sites/{z}/{x}/{y}.pbf{query}", auth=auth)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    return r.content


def test_detail_tile_has_each_site(client, staff, sites, tmp_path) -> None:  # type: ignore[no-untyped-def]
    z = 16
    x, y = tile_of(52.5, 13.4, z)
    found = features(get_tile(client, staff["viewer"], z, x, y), z, x, y, tmp_path)
    by_id = {f["id"]: f for f in found}
    assert set(by_id) == {str(sites[0].public_id), str(sites[1].public_id)}
    first = by_id[str(sites[0].public_id)]
    assert first["class"] == "D40" and first["status"] == "open" and float(first["priority"]) == 80.0
    assert first["citizen_reports"] == "0"
    # Within a tile unit (2.4 m at zoom 16 / 4096) of the true position.
    ex, ey = mercator(52.5, 13.4)
    unit = 2 * math.pi * 6378137.0 / 2**z / 4096
    assert abs(float(first["x_m"]) - ex) <= unit and abs(float(first["y_m"]) - ey) <= unit
    only_open = features(get_tile(client, staff["viewer"], z, x, y, "?status=open"), z, x, y, tmp_path)
    assert [f["id"] for f in only_open] == [str(sites[0].public_id)]


def test_low_zoom_groups_sites(client, staff, sites, tmp_path) -> None:  # type: ignore[no-untyped-def]
    z = 10
    x, y = tile_of(52.5, 13.4, z)
    found = features(get_tile(client, staff["viewer"], z, x, y), z, x, y, tmp_path)
    groups = sorted((int(f["count"]), float(f["priority"])) for f in found)
    assert groups == [(1, 55.0), (2, 80.0)]
    cracks = features(get_tile(client, staff["viewer"], z, x, y, "?class=D00,D10"), z, x, y, tmp_path)
    assert sorted(int(f["count"]) for f in cracks) == [1, 1]


def test_empty_bad_and_unauthorised_tiles(client, staff, sites, vehicle_token) -> None:  # type: ignore[no-untyped-def]
    assert get_tile(client, staff["viewer"], 16, 0, 0) == b""
    assert client.get("/tiles/sites/3/8/0.pbf", auth=staff["viewer"]).status_code == 404
    assert client.get("/tiles/sites/25/0/0.pbf", auth=staff["viewer"]).status_code == 404
    assert client.get("/tiles/sites/3/1/1.pbf?status=nope", auth=staff["viewer"]).status_code == 422
    assert client.get("/tiles/sites/3/1/1.pbf").status_code == 401
    bearer = {"Authorization": f"Bearer {vehicle_token}"}
    assert client.get("/tiles/sites/3/1/1.pbf", headers=bearer).status_code == 401


def test_tile_bounds() -> None:
    assert tile_bounds(0, 0, 0) == pytest.approx((-180, -85.0511287798, 180, 85.0511287798))
    west, south, east, north = tile_bounds(1, 1, 0)
    assert (west, south, east) == pytest.approx((0, 0, 180)) and north == pytest.approx(85.0511287798)
