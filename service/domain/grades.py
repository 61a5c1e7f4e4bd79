"""Condition grades 1.0-5.0 per road section from its damage sites and its surveyed area.

Modelled on the German condition survey of roads (ZTV ZEB-StB; for municipal roads E EMI 2012); **not a
certified survey**: the inputs are a dashcam model's damage sites, not a measuring vehicle's records.
The method follows ZEB's structure so that a road department can read and recompute it:

1. Damage extent per class group, as a share (%) of the section's surveyed area:
   ``cracks`` (D00 longitudinal, D10 transverse: length x ``crack_width_m``), ``alligator`` (D20: area),
   ``potholes`` (D40: area). A site's area comes from its estimated size (the longer side in metres);
   a site without a size counts with the group's ``default_size_m``. Rejected and repaired sites, and sites
   below ``min_confidence``, do not count.
2. Each extent is normalised to a value 1.0-5.0 by a piecewise-linear table (``points``: share -> value),
   as ZEB's normalisation functions do (1.5 target, 3.5 warning, 4.5 threshold values).
3. The grade is the worst value plus a small share of the others' excess over 1.0 (``others_weight``):
   the worst component dominates, as in ZEB's synthesis, and never gets better by adding damage.

Certainty: a section whose surveyed share is below ``min_surveyed_share``, or whose last usable pass is older
than ``max_age_days``, gets **no grade** ("insufficient data"), never a good one by default. Every grade
carries its inputs (sites and their areas, surveyed area, passes, config version) so that staff can click
from "4.2" down to the photos that caused it.

The tables live in a versioned YAML file (``grading.yaml`` beside this module, or ``ROADWATCH_GRADING_CONFIG``);
a changed table is a new version, stored on every grade computed with it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

GROUPS = ("cracks", "alligator", "potholes")
GROUP_OF_CLASS = {"D00": "cracks", "D10": "cracks", "D20": "alligator", "D40": "potholes"}
# ZEB's fixed points of the 1-5 scale, and the colour classes in 0.5 steps (lower bound of each class).
TARGET, WARNING, THRESHOLD = 1.5, 3.5, 4.5
CLASS_BOUNDS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5)
DEFAULT_CONFIG_PATH = Path(__file__).with_name("grading.yaml")
INSUFFICIENT = "insufficient_data"
GRADED = "graded"


class GradingConfigError(ValueError):
    """A grading configuration is invalid: the message says what was expected."""


def _number(name: str, value: Any, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GradingConfigError(f"{name}: expected a finite number, got {value!r}")
    if not low <= value <= high:
        raise GradingConfigError(f"{name}: expected {low:g}..{high:g}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class GroupTable:
    """One class group: how a site's area is counted, and the extent (%) -> value table."""

    points: tuple[tuple[float, float], ...]
    default_size_m: float
    crack_width_m: float | None = None  # cracks: area = length x this width

    def __post_init__(self) -> None:
        if len(self.points) < 2:
            raise GradingConfigError(f"points: expected at least 2 (share, value) pairs, got {self.points!r}")
        shares = [p[0] for p in self.points]
        values = [p[1] for p in self.points]
        if shares[0] != 0.0 or values[0] != 1.0:
            raise GradingConfigError(f"points: expected to start at (0, 1.0), got {self.points[0]!r}")
        if any(b <= a for a, b in itertools.pairwise(shares)):
            raise GradingConfigError(f"points: expected strictly increasing shares, got {shares}")
        if any(b < a for a, b in itertools.pairwise(values)) or not all(1.0 <= v <= 5.0 for v in values):
            raise GradingConfigError(f"points: expected non-decreasing values in 1..5, got {values}")

    def value(self, share_pct: float) -> float:
        """The normalised value 1.0-5.0 of an extent (linear between points, flat after the last)."""
        pts = self.points
        if share_pct >= pts[-1][0]:
            return pts[-1][1]
        for (x0, y0), (x1, y1) in itertools.pairwise(pts):
            if x0 <= share_pct <= x1:
                return y0 + (y1 - y0) * (share_pct - x0) / (x1 - x0)
        return pts[0][1]

    def area_m2(self, size_m: float | None) -> float:
        """The road area one site covers, from its size (longer side, metres)."""
        size = self.default_size_m if size_m is None or not math.isfinite(size_m) or size_m <= 0 else size_m
        return size * self.crack_width_m if self.crack_width_m is not None else size * size


@dataclass(frozen=True)
class GradingConfig:
    """The versioned grading tables (see the module docstring); built by :func:`load_grading`."""

    version: str
    groups: Mapping[str, GroupTable]
    road_width_m: Mapping[str, float]
    default_road_width_m: float
    others_weight: float
    min_confidence: float
    min_surveyed_share: float
    max_age_days: float

    def __post_init__(self) -> None:
        if not isinstance(self.version, str) or not self.version.strip():
            raise GradingConfigError(f"version: expected a non-empty string, got {self.version!r}")
        if set(self.groups) != set(GROUPS):
            raise GradingConfigError(f"groups: expected exactly {list(GROUPS)}, got {sorted(self.groups)}")

    def width_m(self, highway: str | None) -> float:
        """The carriageway width assumed for a function class (the surveyed area is length x width)."""
        return self.road_width_m.get(highway or "", self.default_road_width_m)


def _group(name: str, raw: Any) -> GroupTable:
    if not isinstance(raw, dict):
        raise GradingConfigError(f"groups.{name}: expected a mapping, got {raw!r}")
    points = raw.get("points")
    if not isinstance(points, list) or not all(isinstance(p, list | tuple) and len(p) == 2 for p in points):
        raise GradingConfigError(
            f"groups.{name}.points: expected a list of [share_pct, value], got {points!r}"
        )
    width = raw.get("crack_width_m")
    return GroupTable(
        points=tuple(
            (_number(f"{name} share", s, 0.0, 100.0), _number(f"{name} value", v, 1.0, 5.0))
            for s, v in points
        ),
        default_size_m=_number(f"groups.{name}.default_size_m", raw.get("default_size_m"), 0.01, 100.0),
        crack_width_m=None if width is None else _number(f"groups.{name}.crack_width_m", width, 0.01, 5.0),
    )


def grading_from_dict(data: Any) -> GradingConfig:
    """A checked config from parsed YAML; GradingConfigError says what is wrong."""
    if not isinstance(data, dict):
        raise GradingConfigError(f"expected a mapping at top level, got {type(data).__name__}")
    known = {
        "version",
        "groups",
        "road_width_m",
        "default_road_width_m",
        "others_weight",
        "min_confidence",
        "min_surveyed_share",
        "max_age_days",
    }
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        raise GradingConfigError(f"expected keys among {sorted(known)}, got unknown {unknown}")
    version = data.get("version")
    if isinstance(version, date | int | float) and not isinstance(version, bool):
        version = version.isoformat() if isinstance(version, date) else str(version)
    groups = data.get("groups")
    if not isinstance(groups, dict):
        raise GradingConfigError(f"groups: expected a mapping of {list(GROUPS)}, got {groups!r}")
    widths = data.get("road_width_m") or {}
    if not isinstance(widths, dict):
        raise GradingConfigError(f"road_width_m: expected a mapping highway -> metres, got {widths!r}")
    return GradingConfig(
        version=version,  # type: ignore[arg-type]  # checked in __post_init__
        groups={name: _group(name, raw) for name, raw in groups.items()},
        road_width_m={str(k): _number(f"road_width_m.{k}", v, 1.0, 50.0) for k, v in widths.items()},
        default_road_width_m=_number(
            "default_road_width_m", data.get("default_road_width_m", 6.0), 1.0, 50.0
        ),
        others_weight=_number("others_weight", data.get("others_weight", 0.1), 0.0, 1.0),
        min_confidence=_number("min_confidence", data.get("min_confidence", 0.25), 0.0, 1.0),
        min_surveyed_share=_number("min_surveyed_share", data.get("min_surveyed_share", 0.5), 0.0, 1.0),
        max_age_days=_number("max_age_days", data.get("max_age_days", 730), 1.0, 36500.0),
    )


def load_grading(path: str | Path | None = None) -> GradingConfig:
    """The grading config from a YAML file (default: the one shipped beside this module)."""
    path = Path(path) if path else DEFAULT_CONFIG_PATH
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise GradingConfigError(f"{path}: expected valid YAML, got a parse error: {exc}") from exc
    try:
        return grading_from_dict(data)
    except GradingConfigError as exc:
        raise GradingConfigError(f"{path}: {exc}") from exc


@dataclass(frozen=True)
class GradeSite:
    """A damage site as the grading sees it."""

    site_id: int
    class_name: str
    size_m: float | None
    confidence: float
    counts: bool = True  # False: rejected, repaired or otherwise not current damage


@dataclass(frozen=True)
class SectionSurvey:
    """What is known about a section's coverage: its length and width, the share of its length seen by
    usable frames in the period, the number of usable passes and the time of the last one."""

    section_id: str
    length_m: float
    width_m: float
    surveyed_share: float
    passes: int
    last_pass: datetime | None


@dataclass(frozen=True)
class Component:
    group: str
    extent_pct: float
    value: float
    sites: tuple[int, ...]
    area_m2: float


@dataclass(frozen=True)
class Grade:
    """A section's grade (None when the data do not suffice) with everything it was computed from."""

    section_id: str
    grade: float | None
    status: str  # GRADED or INSUFFICIENT
    reason: str | None
    components: tuple[Component, ...]
    surveyed_area_m2: float
    surveyed_share: float
    passes: int
    last_pass: datetime | None
    config_version: str
    colour_class: str | None = field(default=None)

    def as_dict(self) -> dict[str, Any]:
        """The stored form of the grade's inputs (JSON)."""
        return {
            "components": [
                {
                    "group": c.group,
                    "extent_pct": round(c.extent_pct, 4),
                    "value": round(c.value, 3),
                    "sites": list(c.sites),
                    "area_m2": round(c.area_m2, 3),
                }
                for c in self.components
            ],
            "surveyed_area_m2": round(self.surveyed_area_m2, 1),
            "surveyed_share": round(self.surveyed_share, 4),
            "passes": self.passes,
            "last_pass": self.last_pass.isoformat() if self.last_pass else None,
            "reason": self.reason,
        }


def colour_class(grade: float | None) -> str | None:
    """The 0.5-step class of a grade ('1.0-1.5' ... '4.5-5.0'); None without a grade."""
    if grade is None:
        return None
    lower = max(b for b in CLASS_BOUNDS if b <= max(grade, 1.0))
    return f"{lower:.1f}-{lower + 0.5:.1f}"


def combine(values: Sequence[float], others_weight: float) -> float:
    """Worst value plus ``others_weight`` times the mean excess over 1.0 of the rest, capped at 5.0."""
    if not values:
        return 1.0
    ordered = sorted(values, reverse=True)
    rest = ordered[1:]
    excess = sum(v - 1.0 for v in rest) / len(rest) if rest else 0.0
    return min(5.0, ordered[0] + others_weight * excess)


def grade_section(
    survey: SectionSurvey, sites: Iterable[GradeSite], config: GradingConfig, now: datetime
) -> Grade:
    """The condition grade of one section (pure: the same inputs always give the same grade)."""
    area = max(survey.length_m, 0.0) * max(survey.width_m, 0.0) * min(max(survey.surveyed_share, 0.0), 1.0)
    reason = None
    if survey.last_pass is None or survey.passes == 0:
        reason = "never surveyed by a usable pass"
    elif survey.surveyed_share < config.min_surveyed_share:
        reason = f"surveyed share {survey.surveyed_share:.0%} below {config.min_surveyed_share:.0%}"
    elif now - survey.last_pass > timedelta(days=config.max_age_days):
        reason = f"last usable pass older than {config.max_age_days:g} days"
    elif area <= 0.0:
        reason = "no surveyed area"
    counted = [
        s
        for s in sites
        if s.counts and s.confidence >= config.min_confidence and s.class_name in GROUP_OF_CLASS
    ]
    components = []
    for group in GROUPS:
        table = config.groups[group]
        members = [s for s in counted if GROUP_OF_CLASS[s.class_name] == group]
        damaged = sum(table.area_m2(s.size_m) for s in members)
        extent = min(100.0, 100.0 * damaged / area) if area > 0 else 0.0
        components.append(
            Component(group, extent, table.value(extent), tuple(s.site_id for s in members), damaged)
        )
    grade = None if reason else round(combine([c.value for c in components], config.others_weight), 2)
    return Grade(
        section_id=survey.section_id,
        grade=grade,
        status=INSUFFICIENT if reason else GRADED,
        reason=reason,
        components=tuple(components),
        surveyed_area_m2=area,
        surveyed_share=survey.surveyed_share,
        passes=survey.passes,
        last_pass=survey.last_pass,
        config_version=config.version,
        colour_class=colour_class(grade),
    )


# Age classes of a section's last usable pass, in days (the coverage colours of the maps and the API);
# "never" for no usable pass at all.
AGE_CLASSES = ((90, "0-3 months"), (182, "3-6 months"), (365, "6-12 months"))


def age_class(last_usable: datetime | None, now: datetime) -> str:
    """The coverage class of a section whose last usable pass was ``last_usable`` (None: never)."""
    if last_usable is None:
        return "never"
    days = (now - last_usable).days
    return next((name for limit, name in AGE_CLASSES if days < limit), "over 12 months")


def covered_share(intervals: Iterable[tuple[float, float]], length_m: float) -> float:
    """The share of a section's length covered by the union of seen intervals (metres from its start)."""
    if length_m <= 0:
        return 0.0
    spans = sorted((max(0.0, min(a, b)), min(length_m, max(a, b))) for a, b in intervals)
    total, end = 0.0, 0.0
    for a, b in spans:
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return min(1.0, total / length_m)
