"""Condition grades on hand-built sections: numbers checked by hand against grading.yaml's tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.domain.grades import (
    GRADED,
    INSUFFICIENT,
    GradeSite,
    GradingConfigError,
    SectionSurvey,
    colour_class,
    combine,
    covered_share,
    grade_section,
    grading_from_dict,
    load_grading,
)

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
CONFIG = load_grading()


def survey(
    share: float = 1.0, passes: int = 2, age_days: float = 10.0, length: float = 50.0
) -> SectionSurvey:
    return SectionSurvey("w1:0", length, 6.0, share, passes, NOW - timedelta(days=age_days))


def test_an_undamaged_surveyed_section_is_very_good() -> None:
    g = grade_section(survey(), [], CONFIG, NOW)
    assert (g.status, g.grade, g.colour_class) == (GRADED, 1.0, "1.0-1.5")
    assert g.surveyed_area_m2 == pytest.approx(300.0)
    assert g.config_version == CONFIG.version


def test_one_pothole_extent_and_value_by_hand() -> None:
    # 0.6 m pothole: 0.36 m2 of 300 m2 = 0.12 %; potholes table (0.05, 2.0)-(0.2, 3.5): 2.0 + 1.5 * 0.07/0.15 = 2.7
    g = grade_section(survey(), [GradeSite(7, "D40", 0.6, 0.9)], CONFIG, NOW)
    pot = next(c for c in g.components if c.group == "potholes")
    assert pot.extent_pct == pytest.approx(0.12)
    assert pot.value == pytest.approx(2.7)
    assert pot.sites == (7,)
    assert g.grade == pytest.approx(2.7)  # the others are 1.0: no excess to add


def test_the_worst_component_dominates_and_others_add_a_little() -> None:
    # cracks: 2 x (3 m x 0.5 m) = 3 m2 = 1 % of 300 -> 1.0 + 0.5 * 1/2 = 1.25; pothole 2.7 (above)
    sites = [GradeSite(1, "D00", 3.0, 0.8), GradeSite(2, "D10", 3.0, 0.8), GradeSite(3, "D40", 0.6, 0.9)]
    g = grade_section(survey(), sites, CONFIG, NOW)
    values = {c.group: c.value for c in g.components}
    assert values["cracks"] == pytest.approx(1.25)
    # 2.7 + 0.1 * mean(1.25 - 1, 1.0 - 1) = 2.7125 -> 2.71
    assert g.grade == pytest.approx(2.71)
    assert g.grade >= max(values.values())  # more damage never improves a grade


def test_unsized_sites_count_with_the_default_size_and_weak_or_closed_sites_not_at_all() -> None:
    sites = [
        GradeSite(1, "D20", None, 0.9),  # default 1.0 m -> 1 m2
        GradeSite(2, "D20", 5.0, 0.1),  # below min_confidence
        GradeSite(3, "D20", 5.0, 0.9, counts=False),  # rejected or repaired
    ]
    g = grade_section(survey(), sites, CONFIG, NOW)
    alli = next(c for c in g.components if c.group == "alligator")
    assert alli.sites == (1,) and alli.area_m2 == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("s", "why"),
    [
        (survey(share=0.3), "surveyed share"),
        (survey(age_days=800), "older than"),
        (survey(passes=0), "never surveyed"),
        (SectionSurvey("x", 50, 6, 1.0, 0, None), "never surveyed"),
    ],
)
def test_too_little_data_gives_no_grade_never_a_good_one(s: SectionSurvey, why: str) -> None:
    g = grade_section(s, [GradeSite(1, "D40", 1.0, 0.9)], CONFIG, NOW)
    assert g.status == INSUFFICIENT and g.grade is None and g.colour_class is None
    assert why in (g.reason or "")


def test_extent_saturates_and_the_grade_stays_within_the_scale() -> None:
    sites = [GradeSite(i, "D40", 3.0, 0.9) for i in range(20)]
    g = grade_section(survey(), sites, CONFIG, NOW)
    assert g.grade == 5.0 and g.colour_class == "4.5-5.0"


def test_colour_classes_in_half_steps() -> None:
    assert [colour_class(v) for v in (1.0, 1.49, 1.5, 3.5, 4.49, 5.0)] == [
        "1.0-1.5",
        "1.0-1.5",
        "1.5-2.0",
        "3.5-4.0",
        "4.0-4.5",
        "4.5-5.0",
    ]
    assert colour_class(None) is None
    assert combine([], 0.1) == 1.0


def test_covered_share_is_the_union_of_seen_intervals() -> None:
    assert covered_share([(0, 10), (5, 20), (30, 40), (45, 80)], 50.0) == pytest.approx((20 + 10 + 5) / 50)
    assert covered_share([(20, 10)], 50.0) == pytest.approx(0.2)  # reversed interval (driven backwards)
    assert covered_share([], 50.0) == 0.0 and covered_share([(0, 5)], 0.0) == 0.0


def test_the_shipped_table_follows_zebs_fixed_points() -> None:
    # Every table passes through the 1.5 target, 3.5 warning and 4.5 threshold values in order.
    for table in CONFIG.groups.values():
        values = [v for _, v in table.points]
        assert values[0] == 1.0 and values[-1] == 5.0
        for fixed in (1.5, 3.5, 4.5):
            assert min(values) <= fixed <= max(values)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": ""}, "version"),
        ({"groups": {"cracks": {}}}, "groups"),
        ({"others_weight": 2}, "others_weight"),
        ({"colour": "red"}, "unknown"),
    ],
)
def test_bad_configs_are_refused_with_what_was_expected(change: dict[str, object], message: str) -> None:
    import yaml

    from service.domain.grades import DEFAULT_CONFIG_PATH

    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    data.update(change)
    with pytest.raises(GradingConfigError, match=message):
        grading_from_dict(data)


def test_a_table_must_start_at_zero_and_rise(tmp_path: Path) -> None:
    bad = tmp_path / "g.yaml"
    text = (Path(__file__).parents[1] / "domain" / "grading.yaml").read_text()
    bad.write_text(text.replace("[[0, 1.0], [2, 1.5]", "[[0, 1.0], [0, 1.5]"))
    with pytest.raises(GradingConfigError, match="strictly increasing"):
        load_grading(bad)
