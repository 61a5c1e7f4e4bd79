"""The per-frame association (before the per-drive stage, ``service.worker.association``), kept so
``bench/association.py`` can compare both: associating one frame's located detections with damage sites, correcting the drive's GPS offset.

Phone GPS is off by 3-5 m, and the error stays nearly constant over minutes of one drive. So all
detections of a frame, and of neighbouring frames of the same drive, share one offset. Each frame:

1. starts from the offset estimated on the vehicle's recent frames (``prior``, east/north metres).
   Without a prior (the first frames of a drive over known sites) it acquires one: every known site
   within the wider ``search_m`` of a detection proposes a shift, and the shift that most of the
   frame's detections agree on (to ``AGREE_M``) wins, the smallest among equals; a lone detection near
   a lone site takes that site's shift. Then it shifts the detections and associates within ``radius_m``;
2. associates most confident detections first; a site taken by one detection of the frame cannot take
   another one (two defects seen side by side stay two sites) unless their boxes touch in the image
   (one crack that the model split into two boxes);
3. records its own offset: the prior plus the median residual between matched sites and detections.

The map keeps the reference of the first drive; later drives are aligned to it, so sightings of one
defect from different drives agree to about a metre instead of 5-10 m.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from geotag import local_m, offset
from service.db.sites import (
    add_observation,
    find_site,
    nearby_sites,
    rescore,
    site_latlon,
)
from service.db.tables import DamageSite
from service.domain.ranking import RankingConfig

BOX_TOUCH_PX = 12.0
AGREE_M = 2.0  # shifts proposed by different detections closer than this are one shift


@dataclass(frozen=True)
class Located:
    """One detection located on the ground (before any drive-offset correction)."""

    class_name: str
    confidence: float
    lat: float
    lon: float
    distance_m: float | None
    size_m: float | None
    box: tuple[float, float, float, float]


@dataclass
class FrameAssociation:
    sites: list[DamageSite] = field(default_factory=list)  # per detection, in input order
    positions: list[tuple[float, float]] = field(default_factory=list)  # corrected lat/lon per detection
    offset: tuple[float, float] | None = None  # this frame's east/north GPS correction estimate, metres
    matched: int = 0


shift = offset  # (lat, lon) moved east_m, north_m
residual_m = local_m  # east/north metres from one position to another


def combine_offsets(offsets: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """The drive's current offset from its recent frames' estimates: the component-wise median."""
    if not offsets:
        return None
    return statistics.median(o[0] for o in offsets), statistics.median(o[1] for o in offsets)


def acquire_offset(
    session: Session, detections: Sequence[Located], search_m: float
) -> tuple[float, float] | None:
    """A first east/north offset for a drive with none yet, or None when the frame cannot tell.

    Accepted only when it can be checked: two or more known sites agree on it, or the frame's one
    detection near known sites has exactly one of them in reach. A lone detection among several
    sites could belong to any of them, and a wrong first offset would misplace the whole drive.
    """
    proposals: list[tuple[int, int, tuple[float, float]]] = []  # (detection, site, shift onto the site)
    for i, det in enumerate(detections):
        for site, _ in nearby_sites(session, det.class_name, det.lat, det.lon, search_m):
            proposals.append((i, site.id, residual_m(det.lat, det.lon, *site_latlon(site))))
    if len(proposals) == 1:
        return proposals[0][2]
    best: tuple[int, float] | None = None
    offset = None
    for _, _, shift_ in proposals:
        agreeing: dict[int, tuple[float, int, tuple[float, float]]] = {}  # detection -> nearest shift
        for j, site_id, other in proposals:
            d = math.dist(shift_, other)
            if d <= AGREE_M and (j not in agreeing or d < agreeing[j][0]):
                agreeing[j] = (d, site_id, other)
        sites = {site_id for _, site_id, _ in agreeing.values()}
        if len(sites) < 2:
            continue
        key = (-len(sites), math.hypot(*shift_))
        if best is None or key < best:
            best = key
            offset = (
                statistics.median(v[2][0] for v in agreeing.values()),
                statistics.median(v[2][1] for v in agreeing.values()),
            )
    return offset


def _touch(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return not (
        a[2] + BOX_TOUCH_PX < b[0]
        or b[2] + BOX_TOUCH_PX < a[0]
        or a[3] + BOX_TOUCH_PX < b[1]
        or b[3] + BOX_TOUCH_PX < a[1]
    )


def associate_frame(
    session: Session,
    detections: Sequence[Located],
    *,
    prior: tuple[float, float] | None,
    radius_m: float,
    search_m: float,
    seen_at: datetime,
    model_version_id: int | None,
    ranking: RankingConfig,
) -> FrameAssociation:
    """Attach every detection of one frame to a site (new or existing); count one sighting per site."""
    result = FrameAssociation(sites=[None] * len(detections), positions=[(0.0, 0.0)] * len(detections))  # type: ignore[list-item]
    start = prior if prior is not None else acquire_offset(session, detections, search_m)
    east0, north0 = start or (0.0, 0.0)
    radius = radius_m
    claimed: dict[int, list[tuple[float, float, float, float]]] = {}  # site id -> boxes in this frame
    residuals: list[tuple[float, float]] = []
    order = sorted(range(len(detections)), key=lambda i: -detections[i].confidence)
    for i in order:
        det = detections[i]
        lat, lon = shift(det.lat, det.lon, east0, north0)
        blocked = {sid for sid, boxes in claimed.items() if not any(_touch(det.box, b) for b in boxes)}
        site = find_site(session, det.class_name, lat, lon, radius, exclude=blocked)
        if site is not None and site.id not in claimed:
            residuals.append(residual_m(lat, lon, *site_latlon(site)))
        new_sighting = site is None or site.id not in claimed
        site = add_observation(
            session,
            class_name=det.class_name,
            confidence=det.confidence,
            lat=lat,
            lon=lon,
            size_m=det.size_m,
            distance_m=det.distance_m,
            seen_at=seen_at,
            site=site,
            model_version_id=model_version_id,
        )
        if new_sighting:
            site.sightings += 1
        claimed.setdefault(site.id, []).append(det.box)
        rescore(site, ranking)
        result.sites[i] = site
        result.positions[i] = (lat, lon)
    result.matched = len(residuals)
    if residuals and start is not None:  # without a checked start, residuals may come from wrong sites
        result.offset = (
            east0 + statistics.median(r[0] for r in residuals),
            north0 + statistics.median(r[1] for r in residuals),
        )
    else:
        result.offset = prior  # an acquired offset that matched nothing is not kept
    return result


# --- per drive segment: tracks, registration, one-to-one assignment (issue 13) ------------------
