"""Tests for service.domain.ranking: monotonicity, explanation, redistribution and config validation."""

from __future__ import annotations

import dataclasses
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from service.domain.ranking import (
    DEFAULT_CONFIG,
    TERMS,
    ConfigError,
    RankingConfig,
    SiteFacts,
    load_config,
    score,
    severity,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def facts(**changes: Any) -> SiteFacts:
    base = SiteFacts(
        class_name="D20",
        size_m=0.4,
        confidence=0.6,
        sightings=2,
        last_seen=NOW - timedelta(days=10),
        road_importance=0.5,
    )
    return dataclasses.replace(base, **changes)


def priority(**changes: Any) -> float:
    return score(facts(**changes), NOW).priority


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("size_m", [0.0, 0.2, 0.5, 0.9]),
        ("confidence", [0.1, 0.3, 0.7, 1.0]),
        ("sightings", [1, 2, 3, 4]),
        ("missed_passes", [3, 2, 1, 0]),
        ("road_importance", [0.0, 0.3, 0.6, 1.0]),
    ],
)
def test_priority_strictly_increases_with_each_input(field: str, values: list[Any]) -> None:
    priorities = [priority(**{field: v}) for v in values]
    assert all(a < b for a, b in itertools.pairwise(priorities)), priorities


def test_saturation() -> None:
    assert priority(size_m=1.0) == priority(size_m=3.0)
    assert priority(sightings=5) == priority(sightings=50)
    assert priority(last_seen=NOW + timedelta(days=1)) == priority(last_seen=NOW)  # clock skew


def test_recency_is_still_there_on_the_latest_covering_pass_not_seen_recently() -> None:
    # An old pothole that every drive still sees, or one on a street nobody drove since, keeps its place.
    assert priority(last_seen=NOW - timedelta(days=400)) == priority(last_seen=NOW)
    assert score(facts(last_seen=NOW - timedelta(days=400)), NOW).terms["recency"] == 1.0
    # Each covering pass that missed it halves the term (half-life one pass by default).
    assert score(facts(missed_passes=2), NOW).terms["recency"] == pytest.approx(0.25)
    slow = dataclasses.replace(DEFAULT_CONFIG, version="t", recency_half_life_passes=2.0)
    assert score(facts(missed_passes=2), NOW, slow).terms["recency"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="missed_passes: expected an integer >= 0"):
        facts(missed_passes=-1)


def test_class_order() -> None:
    p = {c: priority(class_name=c) for c in ("D40", "D20", "D10", "D00")}
    assert p["D40"] > p["D20"] > p["D10"] == p["D00"]


def test_components_explain_priority() -> None:
    s = score(facts(), NOW)
    assert set(s.components) == set(TERMS)
    assert sum(s.components.values()) == pytest.approx(s.priority)
    assert 0.0 <= s.priority <= 100.0
    # 2026-12-1 added the growth bonus; 2026-12-2 made recency count covering passes that missed the site
    assert s.config_version == DEFAULT_CONFIG.version == "2026-12-2"
    assert s.terms["class"] == 0.7 and s.terms["recency"] == 1.0
    assert s.components["class"] == pytest.approx(100 * DEFAULT_CONFIG.w_class * 0.7)
    assert s.unknown == ()


def test_extremes() -> None:
    best = facts(
        class_name="D40", size_m=2.0, confidence=1.0, sightings=9, last_seen=NOW, road_importance=1.0
    )
    assert score(best, NOW).priority == pytest.approx(100.0)
    worst = facts(
        class_name="D00",
        size_m=0.0,
        confidence=0.0,
        sightings=1,
        last_seen=NOW - timedelta(days=365),
        road_importance=0.0,
        missed_passes=6,
    )
    assert 0.0 < score(worst, NOW).priority < 25.0


def test_unknown_road_importance_redistributes_weight() -> None:
    s = score(facts(road_importance=None), NOW)
    assert "road" not in s.components and s.unknown == ("road",)
    assert sum(s.components.values()) == pytest.approx(s.priority)
    scale = 1.0 / (1.0 - DEFAULT_CONFIG.w_road)
    for term in ("class", "size", "confidence", "sightings", "recency"):
        weight = getattr(DEFAULT_CONFIG, f"w_{term}") * scale
        assert s.components[term] == pytest.approx(100 * weight * s.terms[term])
    perfect = facts(
        class_name="D40", size_m=1.0, confidence=1.0, sightings=5, last_seen=NOW, road_importance=None
    )
    assert score(perfect, NOW).priority == pytest.approx(100.0)
    # The unknown term behaves like the weighted mean of the known ones.
    known = score(facts(road_importance=None), NOW).priority / 100.0
    assert priority(road_importance=known) == pytest.approx(100.0 * known)


def test_unknown_size_redistributes_too() -> None:
    s = score(facts(size_m=None, road_importance=None), NOW)
    assert s.unknown == ("size", "road")
    assert sum(s.components.values()) == pytest.approx(s.priority)


def test_score_rejects_unknown_class_and_naive_now() -> None:
    with pytest.raises(ValueError, match="expected one of"):
        score(facts(class_name="D99"), NOW)
    with pytest.raises(ValueError, match="tz-aware"):
        score(facts(), datetime(2026, 11, 20))


def test_custom_config_changes_version_and_weights() -> None:
    cfg = RankingConfig(
        version="test-2",
        w_class=0.5,
        w_size=0.1,
        w_confidence=0.1,
        w_sightings=0.1,
        w_recency=0.1,
        w_road=0.1,
    )
    s = score(facts(), NOW, cfg)
    assert s.config_version == "test-2"
    assert s.components["class"] == pytest.approx(100 * 0.5 * 0.7)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"w_class": 0.5}, "sum to 1.0"),
        ({"w_class": -0.1, "w_size": 0.6}, "w_class: expected >= 0"),
        ({"w_road": "0.15"}, "w_road: expected a finite number"),
        ({"class_weight": {"D40": 1.5}}, r"class_weight\['D40'\]"),
        ({"class_weight": {}}, "non-empty mapping"),
        ({"size_ref_m": 0.0}, "size_ref_m: expected > 0"),
        ({"recency_half_life_passes": -1.0}, "recency_half_life_passes"),
        ({"sightings_ref": 0.5}, "sightings_ref: expected >= 1"),
        ({"version": ""}, "version"),
        ({"w_size": True}, "w_size"),
    ],
)
def test_config_validation(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        dataclasses.replace(DEFAULT_CONFIG, **changes)


def test_load_config_json_and_yaml(tmp_path: Path) -> None:
    data = {"version": "2027-01", "size_ref_m": 2.0, "class_weight": {"D40": 1.0, "D20": 0.5, "D10": 0.2}}
    (tmp_path / "r.json").write_text(json.dumps(data))
    cfg = load_config(tmp_path / "r.json")
    assert cfg.version == "2027-01" and cfg.size_ref_m == 2.0 and cfg.class_weight["D20"] == 0.5
    assert cfg.w_class == DEFAULT_CONFIG.w_class
    (tmp_path / "r.yaml").write_text("version: 2027-01-15\nw_road: 0.0\nw_class: 0.45\n")
    cfg = load_config(str(tmp_path / "r.yaml"))
    assert cfg.version == "2027-01-15" and cfg.w_road == 0.0


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("c.toml", "version = 1", "expected a .json, .yaml or .yml file"),
        ("c.json", "{not json", "expected valid JSON"),
        ("c.yml", "version: [1, 2", "expected valid YAML"),
        ("c.yaml", "- just\n- a list\n", "expected a mapping"),
        ("c.yaml", "w_class: 0.3\n", "expected a 'version' key"),
        ("c.yaml", "version: a\nw_klass: 0.3\n", "unknown \\['w_klass'\\]"),
        ("c.yaml", "version: a\nw_class: 0.9\n", "sum to 1.0"),
        ("c.yaml", "version: a\nrecency_half_life_days: 30\n", "replaced by recency_half_life_passes"),
    ],
)
def test_load_config_errors(tmp_path: Path, name: str, text: str, match: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(tmp_path / name)


@pytest.mark.parametrize(
    ("cls", "size", "expected"),
    [
        ("D40", None, "medium"),
        ("D40", 0.2, "medium"),
        ("D40", 0.5, "high"),
        ("D20", None, "medium"),
        ("D20", 0.3, "low"),
        ("D20", 0.8, "medium"),
        ("D20", 1.5, "high"),
        ("D10", 1.0, "low"),
        ("D00", 2.5, "medium"),
        ("D00", 50.0, "medium"),
        ("D10", None, "low"),
    ],
)
def test_severity_rule(cls: str, size: float | None, expected: str) -> None:
    assert severity(facts(class_name=cls, size_m=size)) == expected


def test_severity_unknown_class() -> None:
    with pytest.raises(ValueError, match="expected one of"):
        severity(facts(class_name="X"))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"confidence": 1.2}, "confidence: expected 0..1"),
        ({"sightings": 0}, "sightings: expected an integer >= 1"),
        ({"size_m": -1.0}, "size_m"),
        ({"road_importance": 2.0}, "road_importance"),
        ({"last_seen": datetime(2026, 1, 1)}, "tz-aware"),
        ({"class_name": ""}, "class_name"),
    ],
)
def test_site_facts_validation(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        facts(**changes)


def test_a_growing_site_ranks_higher_and_a_shrinking_one_not() -> None:
    from dataclasses import replace

    base = SiteFacts("D40", 0.4, 0.8, 3, NOW_FOR_GROWTH)
    plain = score(base, NOW_FOR_GROWTH)
    grown = score(replace(base, growth_m_per_30d=0.1), NOW_FOR_GROWTH)  # half the reference: +10 %
    assert grown.priority == pytest.approx(plain.priority * 1.1)
    assert grown.components["growth"] == pytest.approx(plain.priority * 0.1)
    fast = score(replace(base, growth_m_per_30d=5.0), NOW_FOR_GROWTH)  # saturates at +20 %, never above 100
    assert fast.priority == pytest.approx(min(100.0, plain.priority * 1.2))
    assert score(replace(base, growth_m_per_30d=-0.3), NOW_FOR_GROWTH).priority == plain.priority
    assert "growth" not in plain.components


NOW_FOR_GROWTH = datetime(2026, 12, 1, tzinfo=UTC)
