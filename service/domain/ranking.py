"""Priority of a damage site, so road crews fix the worst, surest, most recent damage on busy roads first.

The priority is a pure, explainable function: a weighted sum of six terms, each in 0..1 and monotone in its
input, scaled to 0..100. Weights live in a versioned RankingConfig; every Score records the version that
produced it, so a ranking shown to staff can be reproduced and a changed config is visible.

Terms (t) and their inputs:
    class       config.class_weight[class_name]          (pothole D40 > alligator D20 > cracks D10 = D00)
    size        min(size_m / size_ref_m, 1)               (saturates at size_ref_m)
    confidence  detector confidence, 0..1
    sightings   min(log(1 + n) / log(1 + sightings_ref), 1)   (independent frames/passes; saturating)
    recency     0.5 ** (missed_passes / recency_half_life_passes)   (still there on the latest covering pass: 1)
    road        road importance 0..1 from the road network

priority = 100 * sum(w_t * t) over known terms. The six weights sum to 1.0. When a term's input is unknown
(road importance without a road network, or size that could not be measured), its weight is redistributed
over the known terms in proportion to their weights, i.e. every known weight is divided by the sum of
known weights. An unknown term therefore acts as if it equalled the weighted mean of the known ones.

Growth (since 2026-12-1): a site whose size grows across surveys (least-squares slope of its sized
sightings, metres per 30 days; ``service/domain/history.py``) gets up to ``growth_bonus`` more:
priority = min(100, weighted sum x (1 + growth_bonus x min(growth / growth_ref_m_per_30d, 1))); the added
points appear as the component ``growth``. A shrinking or unknown trend adds nothing.

Recency (since 2026-12-2) reads "still there on the latest pass that covered it", not "seen recently":
``missed_passes`` counts the usable passes whose camera footprint covered the site's spot after its last
sighting and did not see it (``service/domain/history.py``, stored by the verification of routine drives).
An old pothole that every drive still sees keeps the full term however old it is, and so does one on a
street nobody has driven since (nothing says it is gone); each covering pass that misses it halves the
term (``recency_half_life_passes``), and after ``k`` such passes it also waits in the "not seen again"
queue for staff (nothing is closed automatically). Until 2026-12-1 the term decayed with the days since
the last sighting, which sank old damage on rarely driven streets.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

TERMS = ("class", "size", "confidence", "sightings", "recency", "road")
SEVERITIES = ("low", "medium", "high")

# Severity rule: (class, minimum size in metres for "medium", minimum size for "high"); None = never.
# Unknown size gives the class's base severity. Potholes are structural (water, tyres), so never "low".
_SEVERITY_RULES: dict[str, tuple[str, float | None, float | None]] = {
    # class: (base severity when size unknown, medium_from_m, high_from_m)
    "D40": ("medium", 0.0, 0.5),
    "D20": ("medium", 0.5, 1.5),
    "D10": ("low", 2.0, None),
    "D00": ("low", 2.0, None),
}


class ConfigError(ValueError):
    """A ranking configuration is invalid."""


def _default_class_weight() -> dict[str, float]:
    return {"D40": 1.0, "D20": 0.7, "D10": 0.45, "D00": 0.45}


def _num(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RankingConfig:
    """Versioned weights and reference values of the priority function (see module docstring)."""

    version: str = "2026-12-2"
    class_weight: dict[str, float] = field(default_factory=_default_class_weight)
    w_class: float = 0.30
    w_size: float = 0.20
    w_confidence: float = 0.10
    w_sightings: float = 0.15
    w_recency: float = 0.10
    w_road: float = 0.15
    size_ref_m: float = 1.0
    sightings_ref: float = 5.0
    recency_half_life_passes: float = 1.0
    growth_bonus: float = 0.2
    growth_ref_m_per_30d: float = 0.2

    def __post_init__(self) -> None:
        if not isinstance(self.version, str) or not self.version.strip():
            raise ConfigError(f"version: expected a non-empty string, got {self.version!r}")
        if not isinstance(self.class_weight, dict) or not self.class_weight:
            raise ConfigError(f"class_weight: expected a non-empty mapping, got {self.class_weight!r}")
        for name, w in self.class_weight.items():
            if not isinstance(name, str) or not 0.0 <= _num(f"class_weight[{name!r}]", w) <= 1.0:
                raise ConfigError(
                    f"class_weight[{name!r}]: expected a string key and weight in 0..1, got {w!r}"
                )
        weights = self.weights()
        for term, w in weights.items():
            if _num(f"w_{term}", w) < 0.0:
                raise ConfigError(f"w_{term}: expected >= 0, got {w!r}")
        if abs(sum(weights.values()) - 1.0) > 1e-6:
            raise ConfigError(f"weights: expected w_* to sum to 1.0, got {sum(weights.values()):.6f}")
        for name in ("size_ref_m", "recency_half_life_passes"):
            if _num(name, getattr(self, name)) <= 0.0:
                raise ConfigError(f"{name}: expected > 0, got {getattr(self, name)!r}")
        if not 0.0 <= _num("growth_bonus", self.growth_bonus) <= 1.0:
            raise ConfigError(f"growth_bonus: expected 0..1, got {self.growth_bonus!r}")
        if _num("growth_ref_m_per_30d", self.growth_ref_m_per_30d) <= 0.0:
            raise ConfigError(f"growth_ref_m_per_30d: expected > 0, got {self.growth_ref_m_per_30d!r}")
        if _num("sightings_ref", self.sightings_ref) < 1.0:
            raise ConfigError(f"sightings_ref: expected >= 1, got {self.sightings_ref!r}")

    def weights(self) -> dict[str, float]:
        """The six term weights keyed by term name."""
        return {term: getattr(self, f"w_{term}") for term in TERMS}


DEFAULT_CONFIG = RankingConfig()


def load_config(path: str | Path) -> RankingConfig:
    """Read a RankingConfig from a .json, .yaml or .yml file; `version` is required, other keys default.

    Raises ConfigError on an unknown suffix, unparsable content, unknown keys or invalid values.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise ConfigError(f"{path}: expected a .json, .yaml or .yml file, got suffix {suffix!r}")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        fmt = "JSON" if suffix == ".json" else "YAML"
        raise ConfigError(f"{path}: expected valid {fmt}, got a parse error: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at top level, got {type(data).__name__}")
    known = {f.name for f in fields(RankingConfig)}
    unknown = sorted(set(map(str, data)) - known)
    if "recency_half_life_days" in unknown:
        raise ConfigError(
            f"{path}: recency_half_life_days was replaced by recency_half_life_passes in version 2026-12-2 "
            "(recency now counts covering passes that missed the site, not days)"
        )
    if unknown:
        raise ConfigError(f"{path}: expected keys among {sorted(known)}, got unknown {unknown}")
    if "version" not in data:
        raise ConfigError(f"{path}: expected a 'version' key, got none")
    if isinstance(data["version"], date):  # YAML reads `version: 2026-11-01` as a date
        data["version"] = data["version"].isoformat()
    elif isinstance(data["version"], (int, float)) and not isinstance(data["version"], bool):
        data["version"] = str(data["version"])  # and `version: 3` as an int
    try:
        return RankingConfig(**data)
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


@dataclass(frozen=True)
class SiteFacts:
    """What is known about one damage site, aggregated over its observations."""

    class_name: str
    size_m: float | None
    confidence: float
    sightings: int
    last_seen: datetime
    road_importance: float | None = None
    growth_m_per_30d: float | None = None  # size trend across surveys; None: unknown
    missed_passes: int = 0  # covering passes since the last sighting that did not see it

    def __post_init__(self) -> None:
        if not isinstance(self.class_name, str) or not self.class_name:
            raise ValueError(f"class_name: expected a non-empty string, got {self.class_name!r}")
        if self.size_m is not None and not (math.isfinite(self.size_m) and self.size_m >= 0.0):
            raise ValueError(f"size_m: expected None or a number >= 0, got {self.size_m!r}")
        if not (math.isfinite(self.confidence) and 0.0 <= self.confidence <= 1.0):
            raise ValueError(f"confidence: expected 0..1, got {self.confidence!r}")
        if isinstance(self.sightings, bool) or not isinstance(self.sightings, int) or self.sightings < 1:
            raise ValueError(f"sightings: expected an integer >= 1, got {self.sightings!r}")
        if self.last_seen.tzinfo is None or self.last_seen.utcoffset() is None:
            raise ValueError(f"last_seen: expected a tz-aware datetime, got naive {self.last_seen!r}")
        if (
            isinstance(self.missed_passes, bool)
            or not isinstance(self.missed_passes, int)
            or self.missed_passes < 0
        ):
            raise ValueError(f"missed_passes: expected an integer >= 0, got {self.missed_passes!r}")
        road = self.road_importance
        if road is not None and not (math.isfinite(road) and 0.0 <= road <= 1.0):
            raise ValueError(f"road_importance: expected None or 0..1, got {road!r}")


@dataclass(frozen=True)
class Score:
    """A site's priority (0..100) and why: `components` are points per known term and sum to `priority`;
    `terms` are the raw 0..1 term values; `unknown` lists terms whose weight was redistributed."""

    priority: float
    components: dict[str, float]
    config_version: str
    terms: dict[str, float]
    unknown: tuple[str, ...] = ()


def terms(facts: SiteFacts, now: datetime, config: RankingConfig = DEFAULT_CONFIG) -> dict[str, float | None]:
    """Each term's value in 0..1, or None when its input is unknown."""
    if facts.class_name not in config.class_weight:
        raise ValueError(
            f"class_name: expected one of {sorted(config.class_weight)}, got {facts.class_name!r}"
        )
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now: expected a tz-aware datetime, got naive {now!r}")
    size = None if facts.size_m is None else min(facts.size_m / config.size_ref_m, 1.0)
    return {
        "class": config.class_weight[facts.class_name],
        "size": size,
        "confidence": facts.confidence,
        "sightings": min(math.log1p(facts.sightings) / math.log1p(config.sightings_ref), 1.0),
        "recency": 0.5 ** (facts.missed_passes / config.recency_half_life_passes),
        "road": facts.road_importance,
    }


def score(facts: SiteFacts, now: datetime, config: RankingConfig = DEFAULT_CONFIG) -> Score:
    """Priority 0..100 of a site at time `now` under `config` (see module docstring for the formula)."""
    values = terms(facts, now, config)
    known = {t: v for t, v in values.items() if v is not None}
    weights = config.weights()
    total_w = sum(weights[t] for t in known)
    if total_w <= 0.0:
        raise ValueError(f"weights: expected known terms {sorted(known)} to have weight > 0, got 0")
    components = {t: 100.0 * weights[t] / total_w * v for t, v in known.items()}
    unknown = tuple(t for t in TERMS if values[t] is None)
    base = sum(components.values())
    growth = facts.growth_m_per_30d
    if growth is not None and math.isfinite(growth) and growth > 0.0:
        factor = config.growth_bonus * min(growth / config.growth_ref_m_per_30d, 1.0)
        components["growth"] = min(100.0, base * (1.0 + factor)) - base
    return Score(sum(components.values()), components, config.version, known, unknown)


def severity(facts: SiteFacts) -> str:
    """ "low", "medium" or "high" from class and size (bottom-edge width in metres).

    D40 pothole: high from 0.5 m, else medium (also when size unknown). D20 alligator: high from 1.5 m,
    medium from 0.5 m, else low; medium when size unknown. D10/D00 cracks: medium from 2.0 m, else low;
    never high. Other classes: ValueError.
    """
    if facts.class_name not in _SEVERITY_RULES:
        raise ValueError(f"class_name: expected one of {sorted(_SEVERITY_RULES)}, got {facts.class_name!r}")
    base, medium_from, high_from = _SEVERITY_RULES[facts.class_name]
    size = facts.size_m
    if size is None:
        return base
    if high_from is not None and size >= high_from:
        return "high"
    if medium_from is not None and size >= medium_from:
        return "medium"
    return "low"
