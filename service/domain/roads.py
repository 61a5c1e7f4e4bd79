"""The road network as sections: split at junctions and into pieces of at most ``max_length_m``.

Plain records in, plain records out, no database. Readers (``service/db/roads.py``) turn OSM ways or a city's
own lines into :class:`Way`; :func:`build_sections` turns ways into :class:`Section`.

Rules (each documented where it is applied):

- A *junction* is a node shared by two or more ways (or visited twice by one way, a loop). OSM nodes are
  identified by their id; lines from a GeoPackage/GeoJSON/Shapefile by their coordinates rounded to 1e-7
  degrees (about 1 cm), so only lines that share a vertex meet: lines crossing without a common vertex (a
  bridge, or data without topology) are not split there.
- Each piece of a way between junctions is cut into ``ceil(length / max_length_m)`` sections of equal
  length, so no section is longer than ``max_length_m`` and none is a sliver.
- A section's id is ``"{way_id}:{k}"``: the way's id and the section's ordinal along the way. Re-importing
  the same data gives the same ids (overrides and history attach to them).
- "Between A and B": walking along the way from the section's start backwards (its end forwards), the first
  node where a way of another name meets it; None at a dead end or where only the same street continues.
- Importance from the function class via a versioned mapping (:data:`IMPORTANCE_MAPPINGS`); a value on the way
  (the GeoJSON ``importance`` property) or a per-section override wins.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from geotag import EARTH_RADIUS_M, haversine_m

DEFAULT_MAX_SECTION_M = 50.0
# Drivable OSM highway classes imported by default (ROADWATCH_ROAD_HIGHWAY_CLASSES overrides).
DEFAULT_HIGHWAY_CLASSES: tuple[str, ...] = (
    "motorway",
    "motorway_link",
    "trunk",
    "trunk_link",
    "primary",
    "primary_link",
    "secondary",
    "secondary_link",
    "tertiary",
    "tertiary_link",
    "unclassified",
    "residential",
    "living_street",
    "service",
)

# Function class -> importance (0..1) for the ranking. A new mapping gets a new version; sections store
# the version they were scored with. Links rank with their road.
IMPORTANCE_MAPPINGS: dict[str, dict[str, float]] = {
    "osm-highway-1": {
        "motorway": 1.0,
        "trunk": 0.9,
        "primary": 0.8,
        "secondary": 0.65,
        "tertiary": 0.5,
        "unclassified": 0.4,
        "residential": 0.3,
        "living_street": 0.2,
        "service": 0.1,
    },
}
DEFAULT_IMPORTANCE_VERSION = "osm-highway-1"
UNKNOWN_CLASS_IMPORTANCE = 0.3  # a line without a known class counts like a residential street

LonLat = tuple[float, float]


@dataclass(frozen=True)
class Way:
    """One road line as read from a file: coordinates (lon, lat) in drawing order and their node keys.

    ``oneway`` means traffic flows in drawing order (readers reverse OSM ``oneway=-1`` ways).
    ``importance`` is a value given in the input (0..1), or None for the class mapping.
    """

    way_id: str
    coords: tuple[LonLat, ...]
    node_keys: tuple[Hashable, ...]
    name: str | None = None
    highway: str | None = None
    oneway: bool = False
    surface: str | None = None
    importance: float | None = None

    def __post_init__(self) -> None:
        if len(self.coords) < 2:
            raise ValueError(f"way {self.way_id}: expected at least 2 points, got {len(self.coords)}")
        if len(self.node_keys) != len(self.coords):
            raise ValueError(
                f"way {self.way_id}: expected one node key per point, got {len(self.node_keys)} keys "
                f"for {len(self.coords)} points"
            )
        for lon, lat in self.coords:
            if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
                raise ValueError(
                    f"way {self.way_id}: expected lon/lat in degrees (EPSG:4326), got ({lon}, {lat})"
                )
        if self.importance is not None and not 0.0 <= self.importance <= 1.0:
            raise ValueError(f"way {self.way_id}: importance must be in 0..1, got {self.importance}")


@dataclass(frozen=True)
class Section:
    """A stretch of one street of at most the section length, between two cut points."""

    id: str
    way_id: str
    ordinal: int
    name: str | None
    highway: str | None
    oneway: bool
    surface: str | None
    importance: float
    importance_source: str  # a mapping version, or "input"
    from_name: str | None
    to_name: str | None
    length_m: float
    coords: tuple[LonLat, ...]

    @property
    def label(self) -> str:
        """What crews read: "Hauptstraße, between Gartenweg and Ringstraße"."""
        return section_label(self.name, self.from_name, self.to_name)


def section_label(name: str | None, from_name: str | None, to_name: str | None) -> str:
    street = name or "unnamed road"
    ends = [n for n in (from_name, to_name) if n]
    if len(ends) == 2 and ends[0] != ends[1]:
        return f"{street}, between {ends[0]} and {ends[1]}"
    if ends:
        return f"{street}, at {ends[0]}"
    return street


def class_importance(highway: str | None, version: str = DEFAULT_IMPORTANCE_VERSION) -> float:
    """Importance of a function class under a mapping version; links count as their road."""
    try:
        mapping = IMPORTANCE_MAPPINGS[version]
    except KeyError:
        raise ValueError(
            f"importance mapping: expected one of {sorted(IMPORTANCE_MAPPINGS)}, got {version!r}"
        ) from None
    if highway is None:
        return UNKNOWN_CLASS_IMPORTANCE
    return mapping.get(highway.removesuffix("_link"), UNKNOWN_CLASS_IMPORTANCE)


def is_oneway(tags: Mapping[str, str]) -> int:
    """OSM one-way: 1 in drawing order, -1 against it, 0 both ways (roundabouts and motorways are one-way)."""
    value = (tags.get("oneway") or "").lower()
    if value in ("yes", "true", "1"):
        return 1
    if value == "-1" or value == "reverse":
        return -1
    if value in ("no", "false", "0"):
        return 0
    if tags.get("junction") in ("roundabout", "circular") or tags.get("highway") == "motorway":
        return 1
    return 0


def line_length_m(coords: Sequence[LonLat]) -> float:
    return sum(haversine_m(a[1], a[0], b[1], b[0]) for a, b in itertools.pairwise(coords))


def _cut(coords: Sequence[LonLat], n: int) -> list[list[LonLat]]:
    """Cut a polyline into ``n`` parts of equal length (linear interpolation between its points)."""
    steps = [haversine_m(a[1], a[0], b[1], b[0]) for a, b in itertools.pairwise(coords)]
    total = sum(steps)
    if n <= 1 or total == 0.0:
        return [list(coords)]
    targets = [total * k / n for k in range(1, n)]
    parts: list[list[LonLat]] = [[coords[0]]]
    walked, t = 0.0, 0
    for i, step in enumerate(steps):
        a, b = coords[i], coords[i + 1]
        while t < len(targets) and walked + step >= targets[t] and step > 0.0:
            f = (targets[t] - walked) / step
            cut = (a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f)
            parts[-1].append(cut)
            parts.append([cut])
            t += 1
        walked += step
        if parts[-1][-1] != b:
            parts[-1].append(b)
    return [p if len(p) >= 2 else [p[0], p[0]] for p in parts]


@dataclass(frozen=True)
class _Junctions:
    """Per node: how often ways use it (a way visiting it twice counts twice), the street names there, and
    which ways touch it (way index, point index)."""

    uses: Mapping[Hashable, int]
    names: Mapping[Hashable, set[str]]
    at: Mapping[Hashable, list[tuple[int, int]]]


def _junctions(ways: Sequence[Way]) -> _Junctions:
    uses: dict[Hashable, int] = defaultdict(int)
    names: dict[Hashable, set[str]] = defaultdict(set)
    at: dict[Hashable, list[tuple[int, int]]] = defaultdict(list)
    for w, way in enumerate(ways):
        closed = way.node_keys[0] == way.node_keys[-1]
        for i, key in enumerate(way.node_keys):
            at[key].append((w, i))
            if closed and i == len(way.node_keys) - 1:
                continue  # a closed way's last point is its first
            uses[key] += 1
            if way.name:
                names[key].add(way.name)
    return _Junctions(uses, names, at)


_MAX_WALK_WAYS = 50  # a street continued over more ways than this is searched no further


def _cross_name(ways: Sequence[Way], j: _Junctions, w: int, i: int, step: int) -> str | None:
    """Walking from point ``i`` of way ``w`` in direction ``step`` (+1/-1), the first node where a street of
    another name meets this one; the walk follows the same street onto the next way at a way's end."""
    name = ways[w].name or ""
    visited = {w}
    for _ in range(_MAX_WALK_WAYS):
        way = ways[w]
        while 0 <= i < len(way.node_keys):
            others = sorted(j.names.get(way.node_keys[i], set()) - {name})
            if others:
                return others[0]
            i += step
        end = way.node_keys[0 if step < 0 else -1]
        nxt = sorted(
            (ow, oi)
            for ow, oi in j.at.get(end, [])
            if ow not in visited and (ways[ow].name or "") == name and oi in (0, len(ways[ow].node_keys) - 1)
        )
        if not nxt:
            return None
        w, i = nxt[0]
        visited.add(w)
        step = 1 if i == 0 else -1
    return None


def way_sections(
    ways: Sequence[Way], j: _Junctions, w: int, max_length_m: float, importance_version: str
) -> list[Section]:
    """Sections of way ``w``: split at its junction nodes, then into equal parts of at most max_length_m."""
    way = ways[w]
    last = len(way.coords) - 1
    cuts = [0] + [i for i in range(1, last) if j.uses.get(way.node_keys[i], 0) >= 2] + [last]
    if way.importance is not None:
        importance, source = way.importance, "input"
    else:
        importance, source = class_importance(way.highway, importance_version), importance_version
    out: list[Section] = []
    for start, end in itertools.pairwise(cuts):
        piece = way.coords[start : end + 1]
        length = line_length_m(piece)
        if length == 0.0:
            continue  # repeated point: nothing to drive on
        from_name = _cross_name(ways, j, w, start, -1)
        to_name = _cross_name(ways, j, w, end, +1)
        n = max(1, math.ceil(length / max_length_m - 1e-9))
        for part in _cut(piece, n):
            out.append(
                Section(
                    id=f"{way.way_id}:{len(out)}",
                    way_id=way.way_id,
                    ordinal=len(out),
                    name=way.name,
                    highway=way.highway,
                    oneway=way.oneway,
                    surface=way.surface,
                    importance=importance,
                    importance_source=source,
                    from_name=from_name,
                    to_name=to_name,
                    length_m=line_length_m(part),
                    coords=tuple(part),
                )
            )
    return out


def build_sections(
    ways: Sequence[Way],
    max_length_m: float = DEFAULT_MAX_SECTION_M,
    importance_version: str = DEFAULT_IMPORTANCE_VERSION,
) -> list[Section]:
    """All sections of a network, in input order. Way ids must be unique (they make the section ids)."""
    if not (math.isfinite(max_length_m) and max_length_m >= 1.0):
        raise ValueError(f"max section length: expected >= 1 m, got {max_length_m!r}")
    seen: set[str] = set()
    for way in ways:
        if way.way_id in seen:
            raise ValueError(f"way ids must be unique, got {way.way_id!r} twice")
        seen.add(way.way_id)
    junctions = _junctions(ways)
    out: list[Section] = []
    for w in range(len(ways)):
        out.extend(way_sections(ways, junctions, w, max_length_m, importance_version))
    return out


# --- local metric geometry (matching, footprints) -------------------------------------------------------


def to_local(lat0: float, lon0: float, lon: float, lat: float) -> tuple[float, float]:
    """(east, north) metres of (lon, lat) from (lat0, lon0) on the local tangent plane (equirectangular)."""
    coslat = max(math.cos(math.radians(lat0)), 1e-12)
    return (
        math.radians(lon - lon0) * EARTH_RADIUS_M * coslat,
        math.radians(lat - lat0) * EARTH_RADIUS_M,
    )


def from_local(lat0: float, lon0: float, east: float, north: float) -> LonLat:
    coslat = max(math.cos(math.radians(lat0)), 1e-12)
    return (
        lon0 + math.degrees(east / (EARTH_RADIUS_M * coslat)),
        lat0 + math.degrees(north / EARTH_RADIUS_M),
    )
