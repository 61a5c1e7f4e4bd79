"""Vector tiles of sites, decoded by GDAL's MVT driver (``ogrinfo`` of gdal-bin): features, attributes and
positions per zoom (one feature per site from zoom 14, groups below), filters, bounds, who may read."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from service.api import tiles as tile_routes
from service.db.engine import transaction
from service.db.tables import DamageSite, point
from service.db.tiles import (
    CellPlan,
    CellState,
    SiteTileFilter,
    plan_cells,
    refresh_cells,
    site_tile,
    tile_bounds,
)
from service.tests.test_coverage import LAT0, LON0, _drive, _network

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


def features(
    tile: bytes, z: int, x: int, y: int, tmp_path: Path, layer: str = "sites"
) -> list[dict[str, str]]:
    """Each feature's fields and POINT (EPSG:3857) as GDAL reads them (sections: fields and line)."""
    assert shutil.which("ogrinfo"), "GDAL is missing: `make system-deps` installs gdal-bin"
    path = tmp_path / f"{z}-{x}-{y}.pbf"
    path.write_bytes(tile)
    out = subprocess.run(
        ["ogrinfo", "-ro", "-al", "-oo", f"X={x}", "-oo", f"Y={y}", "-oo", f"Z={z}", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"Layer name: {layer}" in out
    found = []
    for block in out.split(f"OGRFeature({layer})")[1:]:
        fields = dict(re.findall(r"^\s+(\w+) \(\w+\) = (.*)$", block, re.M))
        point = re.search(r"POINT \(([-\d.e+]+) ([-\d.e+]+)\)", block)
        if point:
            fields |= {"x_m": point.group(1), "y_m": point.group(2)}
        fields["geometry"] = "LINESTRING" if "LINESTRING" in block else "POINT" if point else ""
        found.append(fields)
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
    # the sites list's own query: repeated parameters, priority, last seen, area
    listed = "?applied=1&status=open&status=confirmed&priority_min=50&seen_from=2026-05-01&seen_to=2026-05-04"
    assert [
        f["id"] for f in features(get_tile(client, staff["viewer"], z, x, y, listed), z, x, y, tmp_path)
    ] == [str(sites[0].public_id)]
    assert get_tile(client, staff["viewer"], z, x, y, "?seen_to=2026-05-02") == b""
    area = "?bbox=13.40005,52.49,13.41,52.51"  # east of the first site, around the second
    assert [
        f["id"] for f in features(get_tile(client, staff["viewer"], z, x, y, area), z, x, y, tmp_path)
    ] == [str(sites[1].public_id)]


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


SPREAD_SQL = """
INSERT INTO damage_site (public_id, class_name, class_votes, position, position_weight, severity, max_confidence,
    sightings, n_observations, priority, score_components, ranking_version, status, first_seen, last_seen)
SELECT gen_random_uuid(), (ARRAY['D00','D10','D40'])[1 + i % 3], '{}',
    ST_SetSRID(ST_MakePoint(13.3 + (i * 0.618034 % 1) * 0.3, 52.4 + (i * 0.414214 % 1) * 0.2), 4326),
    1, 'medium', 0.6, 1, 1, (i * 37) % 100, '{}', 't', (ARRAY['open','confirmed','repaired'])[1 + i % 3 / 2 + i % 2],
    now(), now()
FROM generate_series(1, 600) i
"""


def groups(found: list[dict[str, str]]) -> list[tuple[int, float, float, float]]:
    return sorted((int(f["count"]), float(f["priority"]), float(f["x_m"]), float(f["y_m"])) for f in found)


def test_cells_group_as_live(app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Groups read from site_tile_cell are the groups computed from the sites, per zoom and filter."""
    with transaction(app.state.sessions) as s:
        s.execute(text(SPREAD_SQL))
        assert refresh_cells(s, datetime.now(UTC))
    with app.state.sessions() as s:
        for z in (6, 9, 11):
            x, y = tile_of(52.5, 13.45, z)
            unit = 2 * math.pi * 6378137.0 / 2**z / 4096  # positions may round to the next tile unit
            for statuses, classes in [((), ()), (("open",), ()), (("open", "repaired"), ("D10",))]:
                live = groups(
                    features(site_tile(s, z, x, y, SiteTileFilter(statuses, classes)), z, x, y, tmp_path)
                )
                cells = groups(
                    features(
                        site_tile(s, z, x, y, SiteTileFilter(statuses, classes), cells=True),
                        z,
                        x,
                        y,
                        tmp_path,
                    )
                )
                assert [g[:2] for g in cells] == [g[:2] for g in live] and live
                assert all(
                    abs(a[2] - b[2]) <= unit and abs(a[3] - b[3]) <= unit
                    for a, b in zip(cells, live, strict=True)
                )
        x, y = tile_of(52.5, 13.45, 4)  # the whole spread
        assert (
            sum(g[0] for g in groups(features(site_tile(s, 4, x, y, cells=True), 4, x, y, tmp_path))) == 600
        )


def test_groups_take_the_colour_of_the_sites_still_to_be_dealt_with(app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A repaired site of priority 90 beside an open one of 20: the group is coloured by the open one; a group
    of repaired and rejected sites only counts none as active (drawn grey), from the sites and the cells."""
    with transaction(app.state.sessions) as s:
        for status, prio, (lat, lon) in [
            ("repaired", 90.0, (52.4, 13.3)),
            ("open", 20.0, (52.4001, 13.3001)),
            ("repaired", 70.0, (52.4, 13.6)),
            ("rejected", 60.0, (52.4001, 13.6001)),
        ]:
            s.add(
                DamageSite(
                    class_name="D00", position=point(lat, lon), priority=prio, status=status, first_seen=SEEN,
                    last_seen=SEEN, sightings=1, n_observations=1, ranking_version="t",
                )
            )  # fmt: skip
        s.flush()
        assert refresh_cells(s, datetime.now(UTC))
    with app.state.sessions() as s:
        x, y = tile_of(52.4, 13.45, 8)
        for cells in (False, True):
            found = features(site_tile(s, 8, x, y, cells=cells), 8, x, y, tmp_path)
            assert sorted((int(f["count"]), float(f["priority"]), int(f["active"])) for f in found) == [
                (2, 20.0, 1),
                (2, 70.0, 0),
            ], cells


def test_plan_cells() -> None:
    now = datetime(2026, 5, 4, 12, tzinfo=UTC)
    ago = lambda s: now - timedelta(seconds=s)  # noqa: E731
    assert plan_cells(CellState(None, None, 5, 100.0), now) == CellPlan(
        use=False, refresh=False
    )  # small city
    assert plan_cells(CellState(None, None, 5, 1e6), now) == CellPlan(use=False, refresh=True)  # never built
    assert plan_cells(CellState(ago(10), 5, 9, 1e6), now) == CellPlan(use=True, refresh=False)  # recent
    assert plan_cells(CellState(ago(90), 5, 9, 1e6), now) == CellPlan(use=True, refresh=True)  # stale
    assert plan_cells(CellState(ago(900), 5, 9, 1e6), now) == CellPlan(use=False, refresh=True)  # too old
    assert plan_cells(CellState(ago(9000), 9, 9, 1e6), now) == CellPlan(use=True, refresh=False)  # unchanged


def test_route_rebuilds_and_reads_cells(app, client, staff, sites, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A stale plan starts the rebuild in the background; the tile then comes from the cells."""
    z = 10
    x, y = tile_of(52.5, 13.4, z)
    monkeypatch.setattr(tile_routes, "plan_cells", lambda state, now: CellPlan(use=False, refresh=True))
    get_tile(client, staff["viewer"], z, x, y)
    refresh = app.state.tile_cell_refresh
    for _ in range(100):
        if refresh.running.acquire(timeout=0.1):
            refresh.running.release()
            break
    with app.state.sessions() as s:
        assert s.execute(text("SELECT sites FROM site_tile_cell_state")).scalar() == 3
    with transaction(app.state.sessions) as s:  # cells only: the sites are gone, their groups stay
        s.execute(text("DELETE FROM damage_site"))
    monkeypatch.setattr(tile_routes, "plan_cells", lambda state, now: CellPlan(use=True, refresh=False))
    found = features(get_tile(client, staff["viewer"], z, x, y, "?class=D00,D40"), z, x, y, tmp_path)
    assert sorted(int(f["count"]) for f in found) == [2]


def test_section_tiles(app, client, staff, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Sections with their coverage age class ("never" for the street driven only with blurred photos)."""
    _network(app.state.sessions, tmp_path)
    now = datetime.now(UTC)
    with transaction(app.state.sessions) as session:
        _drive(session, 0.0, 300.0, now - timedelta(days=10), usable=True)
        _drive(session, 15.0, 300.0, now - timedelta(days=10), usable=False)
    z = 16
    x, y = tile_of(LAT0 + 0.0005, LON0, z)
    r = client.get(f"/tiles/sections/{z}/{x}/{y}.pbf", auth=staff["viewer"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    found = {f["id"]: f for f in features(r.content, z, x, y, tmp_path, layer="sections")}
    assert {"fWest:0", "fEast:0"} <= set(found)
    west, east = found["fWest:0"], found["fEast:0"]
    assert west["age_class"] == "0-3 months" and west["last_usable_pass"].startswith(
        now.date().isoformat()[:4]
    )
    assert east["age_class"] == "never" and "last_usable_pass" not in east
    assert west["name"] == "West" and west["geometry"] == "LINESTRING" and "grade" not in west
    assert client.get(f"/tiles/sections/11/{x >> 5}/{y >> 5}.pbf", auth=staff["viewer"]).content == b""
    assert client.get(f"/tiles/sections/{z}/{x}/{y}.pbf").status_code == 401


def test_section_tiles_take_the_streets_filters(app, client, staff, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The streets page's filters narrow the section tiles as they narrow its GeoJSON map (one filter)."""
    _network(app.state.sessions, tmp_path)
    now = datetime.now(UTC)
    with transaction(app.state.sessions) as session:
        _drive(session, 0.0, 300.0, now - timedelta(days=40), usable=True)  # West, 40 days ago; East never
    viewer = staff["viewer"]
    z = 16
    x, y = tile_of(LAT0 + 0.0005, LON0, z)

    def ids(query: str) -> set[str]:
        r = client.get(f"/tiles/sections/{z}/{x}/{y}.pbf{query}", auth=viewer)
        assert r.status_code == 200, r.text
        return (
            {f["id"] for f in features(r.content, z, x, y, tmp_path, layer="sections")}
            if r.content
            else set()
        )

    def geojson(query: str) -> set[str]:
        rows = client.get(f"/streets/map.geojson{query}", auth=viewer).json()["features"]
        return {f["properties"]["id"] for f in rows}

    everything = ids("")
    west = {i for i in everything if i.startswith("fWest:")}
    assert "fWest:0" in west and "fEast:0" in everything
    assert ids("?street=west") == west == geojson("?street=west") & everything
    since = (now - timedelta(days=50)).date().isoformat()  # West's pass is newer: only East is left
    assert ids(f"?not_surveyed_since={since}") == everything - west
    assert ids(f"?not_surveyed_since={since}") == geojson(f"?not_surveyed_since={since}") & everything
    later = (now - timedelta(days=30)).date().isoformat()  # no pass since: both streets
    assert ids(f"?not_surveyed_since={later}&highway=residential") == everything
    assert ids("?highway=motorway") == set()
    assert ids("?colour=1.0-1.5&colour=3.5-4.0") == set()  # nothing graded yet
    for bad in ("?colour=9.0-9.5", "?not_surveyed_since=yesterday", "?surveyed_since=2026-13-01"):
        assert client.get(f"/tiles/sections/{z}/{x}/{y}.pbf{bad}", auth=viewer).status_code in (400, 422), bad
