"""Reading road networks from files: OpenStreetMap extracts (.osm.pbf, with pyosmium) and a city's own
lines as GeoPackage, GeoJSON or Shapefile (with pyogrio, i.e. GDAL). The result is a list of
:class:`service.domain.roads.Way`; sectioning is pure (``service/domain/roads.py``).

Errors are :class:`RoadFileError` (a ``ValueError``) with a message that names the file and what was expected:
a truncated or corrupt file, no line layer, a CRS that cannot be transformed to EPSG:4326, a file over the
size limit, no drivable roads. Nothing is written before the whole file has been read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from service.domain.roads import DEFAULT_HIGHWAY_CLASSES, LonLat, Way, is_oneway

OGR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".zip")
DEFAULT_MAX_FILE_BYTES = 2 * 1024**3  # a whole-country extract; a city is a few MB
_KEY_DIGITS = 7  # vertices closer than about 1 cm are one junction node (files without node ids)


class RoadFileError(ValueError):
    """The road file cannot be imported; the message says why and what was expected."""


def read_network(
    path: Path,
    highway_classes: Collection[str] = DEFAULT_HIGHWAY_CLASSES,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> list[Way]:
    """Drivable ways of an .osm.pbf extract or an OGR line file, in EPSG:4326."""
    if not path.is_file():
        raise RoadFileError(f"{path}: no such file")
    size = path.stat().st_size
    if size > max_bytes:
        raise RoadFileError(
            f"{path}: {size / 1e6:.0f} MB is over the limit of {max_bytes / 1e6:.0f} MB "
            "(ROADWATCH_ROAD_MAX_FILE_MB); cut the extract to the city first (osmium extract)"
        )
    name = path.name.lower()
    if name.endswith(".osm.pbf") or name.endswith(".pbf"):
        ways = read_osm_pbf(path, highway_classes)
    elif name.endswith(OGR_SUFFIXES):
        ways = read_ogr(path, highway_classes)
    else:
        raise RoadFileError(
            f"{path}: expected an .osm.pbf extract or one of {', '.join(OGR_SUFFIXES)}, got {path.suffix!r}"
        )
    if not ways:
        raise RoadFileError(
            f"{path}: no drivable roads found (highway classes: {', '.join(sorted(highway_classes))})"
        )
    return ways


# --- OpenStreetMap -----------------------------------------------------------------------------------


def _osm_way(obj: Any, classes: Collection[str]) -> Way | None:
    tags = {t.k: t.v for t in obj.tags}
    if tags.get("highway") not in classes or tags.get("area") == "yes" or tags.get("access") == "no":
        return None
    coords: list[LonLat] = []
    keys: list[int] = []
    for node in obj.nodes:
        if not node.location.valid():
            continue  # a node outside the extract's cut: the way is kept up to it
        coords.append((node.lon, node.lat))
        keys.append(node.ref)
    if len(coords) < 2:
        return None
    direction = is_oneway(tags)
    if direction < 0:
        coords.reverse()
        keys.reverse()
    return Way(
        way_id=f"w{obj.id}",
        coords=tuple(coords),
        node_keys=tuple(keys),
        name=tags.get("name"),
        highway=tags.get("highway"),
        oneway=direction != 0,
        surface=tags.get("surface"),
    )


def read_osm_pbf(path: Path, highway_classes: Collection[str]) -> list[Way]:
    import osmium

    ways: list[Way] = []
    try:
        processor = (
            osmium.FileProcessor(str(path)).with_locations().with_filter(osmium.filter.KeyFilter("highway"))
        )
        for obj in processor:
            if isinstance(obj, osmium.osm.Way):
                way = _osm_way(obj, highway_classes)
                if way is not None:
                    ways.append(way)
    except RuntimeError as exc:  # pyosmium reports corrupt and truncated files so
        raise RoadFileError(
            f"{path}: not a readable OSM PBF extract (truncated or corrupt?): {exc}"
        ) from None
    return ways


# --- GeoPackage / GeoJSON / Shapefile ---------------------------------------------------------------


def _ogr_source(path: Path) -> Path | bytes:
    """The file, or for GeoJSON its bytes with ``"type": "FeatureCollection"`` added when missing (the old
    importer accepted ``{"features": [...]}``, GDAL does not)."""
    if path.suffix.lower() not in (".geojson", ".json"):
        return path
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RoadFileError(f"{path}: not valid GeoJSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("features"), list) and "type" not in data:
        data["type"] = "FeatureCollection"
        for feature in data["features"]:
            if isinstance(feature, dict):
                feature.setdefault("type", "Feature")
    return json.dumps(data).encode()


def _line_layer(path: Path, source: Path | bytes) -> int:
    import pyogrio

    try:
        layers = pyogrio.list_layers(source)
    except Exception as exc:  # GDAL's error classes vary by driver
        raise RoadFileError(f"{path}: cannot be read as a GeoPackage/GeoJSON/Shapefile: {exc}") from None
    kinds = [str(kind) for _, kind in layers]
    lines = [i for i, kind in enumerate(kinds) if "LineString" in kind]
    lines += [i for i, kind in enumerate(kinds) if kind in ("Unknown", "Geometry")]  # mixed: filtered
    if not lines:
        found = ", ".join(f"{name} ({kind or 'no geometry'})" for name, kind in layers) or "none"
        raise RoadFileError(f"{path}: expected a layer of LineStrings, found layers: {found}")
    return lines[0]


def _transformer(path: Path, crs: str | None) -> Any:
    """None for lon/lat (EPSG:4326, CRS84), else a pyproj transformer to EPSG:4326."""
    if crs is None:
        return None  # checked per point: Way refuses coordinates outside lon/lat bounds
    from pyproj import CRS, Transformer
    from pyproj.exceptions import CRSError

    try:
        source = CRS.from_user_input(crs)
    except CRSError as exc:
        raise RoadFileError(f"{path}: unknown coordinate reference system {crs!r}: {exc}") from None
    if source.equals(CRS.from_epsg(4326), ignore_axis_order=True):
        return None
    return Transformer.from_crs(source, CRS.from_epsg(4326), always_xy=True)


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _oneway(value: Any) -> int:
    text = (_text(value) or "").lower()
    if text in ("f", "forward"):  # Geofabrik shapefiles: F forward, T backward, B both
        return 1
    if text in ("t", "backward"):
        return -1
    return is_oneway({"oneway": text})


def _importance(path: Path, fid: Any, value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        importance = float(value)
    except (TypeError, ValueError):
        raise RoadFileError(
            f"{path}: feature {fid}: expected a numeric 'importance' (0..1), got {value!r}"
        ) from None
    if not 0.0 <= importance <= 1.0:
        raise RoadFileError(f"{path}: feature {fid}: importance must be in 0..1, got {importance}")
    return importance


def _column(fields: Sequence[str], *names: str) -> str | None:
    lower = {f.lower(): f for f in fields}
    for name in names:
        if name in lower:
            return lower[name]
    return None


def _parts(geom: Any) -> list[Any]:
    return list(geom.geoms) if hasattr(geom, "geoms") else [geom]


def read_ogr(path: Path, highway_classes: Collection[str]) -> list[Way]:
    """Lines of the first line layer. Columns used when present (any case): ``name``; ``highway``, ``fclass``
    or ``class`` (filtered by the classes when present); ``oneway``; ``surface``; ``importance``; ``osm_id`` or
    ``id`` for stable way ids (else the feature id)."""
    # Reading one OGR file with every refusal in the order a city's file can fail (open, layer, CRS, geometry
    # type, size): one path of checks, each with its own message.
    import pyogrio
    import shapely

    source = _ogr_source(path)
    layer = _line_layer(path, source)
    try:
        meta, fids, wkb, values = pyogrio.raw.read(source, layer=layer, return_fids=True, force_2d=True)
    except Exception as exc:  # GDAL's error classes vary by driver
        raise RoadFileError(f"{path}: layer {layer!r} cannot be read: {exc}") from None
    fields = [str(f) for f in meta["fields"]]
    column = {f: values[i] for i, f in enumerate(fields)}
    col_name = _column(fields, "name")
    col_class = _column(fields, "highway", "fclass", "class")
    col_oneway = _column(fields, "oneway")
    col_surface = _column(fields, "surface")
    col_importance = _column(fields, "importance")
    col_id = _column(fields, "osm_id", "id")
    transformer = _transformer(path, meta.get("crs"))
    ids = [_text(v) for v in column[col_id]] if col_id else []
    use_ids = bool(ids) and None not in ids and len(set(ids)) == len(ids)
    ways: list[Way] = []
    geoms = shapely.from_wkb(wkb)
    for i, geom in enumerate(geoms):
        if geom is None or geom.is_empty or "LineString" not in geom.geom_type:
            continue
        highway = _text(column[col_class][i]) if col_class else None
        if col_class and highway is not None and highway not in highway_classes:
            continue
        direction = _oneway(column[col_oneway][i]) if col_oneway else 0
        importance = _importance(path, fids[i], column[col_importance][i]) if col_importance else None
        base = f"f{ids[i]}" if use_ids else f"f{fids[i]}"
        parts = _parts(geom)
        for k, part in enumerate(parts):
            coords = [(float(x), float(y)) for x, y in part.coords]
            if transformer is not None:
                xs, ys = transformer.transform([c[0] for c in coords], [c[1] for c in coords])
                coords = list(zip(xs, ys, strict=True))
            if not all(math.isfinite(x) and math.isfinite(y) for x, y in coords):
                raise RoadFileError(
                    f"{path}: feature {fids[i]}: coordinates cannot be transformed to lon/lat"
                )
            if direction < 0:
                coords.reverse()
            if len(coords) < 2:
                continue
            try:
                ways.append(
                    Way(
                        way_id=base if len(parts) == 1 else f"{base}.{k}",
                        coords=tuple(coords),
                        node_keys=tuple((round(x, _KEY_DIGITS), round(y, _KEY_DIGITS)) for x, y in coords),
                        name=_text(column[col_name][i]) if col_name else None,
                        highway=highway,
                        oneway=direction != 0,
                        surface=_text(column[col_surface][i]) if col_surface else None,
                        importance=importance,
                    )
                )
            except ValueError as exc:
                hint = "" if transformer is not None else " (the file declares no CRS, or EPSG:4326)"
                raise RoadFileError(f"{path}: {exc}{hint}") from None
    return ways
