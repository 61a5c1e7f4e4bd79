"""A damage site across surveys: which passes covered its spot and whether each saw it, how it grows, and
what routine drives say about a repair (pure: plain records in, plain records out).

A *pass* is one vehicle's drive on one day. It *covered* the site when one of its usable frames' footprints
(the road the camera shows clearly) contains the site's position; it *saw* the site when one of its frames
has an observation of the site. A pass whose frames were all unusable (blurred, dark) says nothing.

Verification by routine drives (``k`` = ``ROADWATCH_VERIFY_PASSES``):

- a **repaired** site not seen on ``k`` covering passes after the repair becomes ``repair_confirmed``;
  seen again after the repair it is ``reappeared`` (it returns to review with a notice);
- an **open** (or confirmed, scheduled) site not seen on its last ``k`` covering passes is
  ``not_seen_again``: repaired by others, or a false detection; staff decide, nothing is closed;
- otherwise ``awaiting_drive`` (repaired, fewer than ``k`` passes since) or ``still_there``.

The ranking's recency means "still there on the latest pass that covered it": :func:`still_there_at`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

AWAITING = "awaiting_drive"
CONFIRMED = "repair_confirmed"
REAPPEARED = "reappeared"
NOT_SEEN_AGAIN = "not_seen_again"
STILL_THERE = "still_there"
VERIFICATION_STATES = (AWAITING, CONFIRMED, REAPPEARED, NOT_SEEN_AGAIN, STILL_THERE)


@dataclass(frozen=True)
class Pass:
    """One pass over a site's spot: when, whether it saw the site, and the size then (if seen and sized)."""

    vehicle_id: int
    day: str  # ISO date of the pass
    at: datetime
    seen: bool
    size_m: float | None = None
    confidence: float | None = None
    frame_id: int | None = None  # a frame of the pass (the one that saw the site, when it did)


@dataclass(frozen=True)
class Verification:
    state: str
    passes_since: int  # covering passes after the reference time (the repair, or the last sighting)
    since: datetime | None
    last_seen: datetime | None


def growth_m_per_30d(passes: Sequence[Pass]) -> float | None:
    """Least-squares slope of the size over time (metres per 30 days) from the sized sightings; None with
    fewer than two sightings at least a day apart."""
    points = [(p.at.timestamp() / 86400.0, p.size_m) for p in passes if p.seen and p.size_m is not None]
    if len(points) < 2 or max(t for t, _ in points) - min(t for t, _ in points) < 1.0:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    ms = sum(s for _, s in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0.0:
        return None
    slope_per_day = sum((t - mt) * (s - ms) for t, s in points) / var
    return slope_per_day * 30.0


def still_there_at(passes: Sequence[Pass]) -> datetime | None:
    """The latest covering pass, if it saw the site (the site is still there then); None if the latest
    covering pass did not see it or no pass covered it."""
    if not passes:
        return None
    latest = max(passes, key=lambda p: p.at)
    return latest.at if latest.seen else None


def verify(passes: Sequence[Pass], repaired_at: datetime | None, k: int) -> Verification:
    """The verification state of a site from its covering passes (see the module docstring)."""
    if k < 1:
        raise ValueError(f"k: expected at least 1 pass, got {k}")
    ordered = sorted(passes, key=lambda p: p.at)
    seen = [p.at for p in ordered if p.seen]
    last_seen = seen[-1] if seen else None
    if repaired_at is not None:
        after = [p for p in ordered if p.at > repaired_at]
        if any(p.seen for p in after):
            return Verification(REAPPEARED, len(after), repaired_at, last_seen)
        state = CONFIRMED if len(after) >= k else AWAITING
        return Verification(state, len(after), repaired_at, last_seen)
    tail = [p for p in ordered if last_seen is None or p.at > last_seen]
    if len(tail) >= k:
        return Verification(NOT_SEEN_AGAIN, len(tail), last_seen, last_seen)
    return Verification(STILL_THERE, len(tail), last_seen, last_seen)
