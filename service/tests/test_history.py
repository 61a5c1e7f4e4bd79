"""A site across surveys: growth, still there, repairs verified by routine drives (hand-built passes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.domain.history import (
    AWAITING,
    CONFIRMED,
    NOT_SEEN_AGAIN,
    REAPPEARED,
    STILL_THERE,
    Pass,
    growth_m_per_30d,
    still_there_at,
    verify,
)

T0 = datetime(2026, 9, 1, 8, tzinfo=UTC)


def p(days: float, seen: bool, size: float | None = None) -> Pass:
    at = T0 + timedelta(days=days)
    return Pass(1, at.date().isoformat(), at, seen, size)


def test_a_growing_pothole_has_a_positive_trend_by_hand() -> None:
    # 0.4 m, 0.5 m, 0.6 m at days 0, 30, 60: 0.1 m per 30 days
    assert growth_m_per_30d(
        [p(0, True, 0.4), p(30, True, 0.5), p(60, True, 0.6), p(45, False)]
    ) == pytest.approx(0.1)
    assert growth_m_per_30d([p(0, True, 0.4)]) is None  # one sighting: no trend
    assert growth_m_per_30d([p(0, True, 0.4), p(0.2, True, 0.9)]) is None  # same day: no trend


def test_still_there_means_seen_on_the_latest_covering_pass() -> None:
    assert still_there_at([p(0, True), p(90, True)]) == T0 + timedelta(
        days=90
    )  # an old pothole every drive sees
    assert still_there_at([p(0, True), p(90, False)]) is None
    assert still_there_at([]) is None


def test_a_repair_is_confirmed_after_k_passes_that_do_not_see_it() -> None:
    repaired = T0 + timedelta(days=10)
    passes = [p(0, True), p(5, True), p(12, False), p(20, False)]
    assert verify(passes, repaired, k=3).state == AWAITING
    v = verify([*passes, p(31, False)], repaired, k=3)
    assert (v.state, v.passes_since, v.since) == (CONFIRMED, 3, repaired)


def test_a_repaired_site_seen_again_has_reappeared() -> None:
    repaired = T0 + timedelta(days=10)
    v = verify([p(0, True), p(12, False), p(40, True, 0.3)], repaired, k=2)
    assert v.state == REAPPEARED and v.last_seen == T0 + timedelta(days=40)


def test_an_open_site_not_seen_on_k_passes_goes_to_the_queue_not_closed() -> None:
    assert verify([p(0, True), p(10, False), p(20, False)], None, k=3).state == STILL_THERE
    v = verify([p(0, True), p(10, False), p(20, False), p(30, False)], None, k=3)
    assert (v.state, v.passes_since) == (NOT_SEEN_AGAIN, 3)
    assert verify([p(0, True), p(10, False), p(20, True)], None, k=1).state == STILL_THERE  # seen last
    with pytest.raises(ValueError, match="at least 1"):
        verify([], None, k=0)
