"""One physical defect, one site: tracks within a drive, the drive registered against the map.

Pure: plain records in, plain records out, no database (``service/worker/association.py`` fetches the
known sites near a drive and writes the result). Per drive segment (one vehicle's frames in time order);
steps 0 and 1 live here, 2 and 3 in ``registration.py``, the one-to-one solver in ``hungarian.py``:

0. ``smooth_fixes``: a vehicle moves and turns smoothly, its GPS fix jitters by half a metre and its
   heading by degrees from one photo to the next: fixes and headings go onto straight-line fits over
   the frames within ``smooth_window_s``, the sightings move and turn with them.
1. ``track_drive``: link the detections of consecutive frames into tracks, backwards in time (the
   vehicle approaches a defect: its nearest, most precise sightings come last and found the track). A
   detection joins the track it fits best, in standard deviations that grow with the distance from the
   camera, much faster along the line of sight than across it; compatible classes only; one detection
   per track and frame (a one-to-one assignment per frame), so two defects side by side stay two
   tracks. Boxes of one frame that touch and lie within ``split_box_m`` (one crack split into two
   boxes) join as one. A track ends when unseen for ``max_gap_frames`` frames. Once all are built, a
   sighting moves to a track of the same visit that it fits clearly better (relinking); tracks that
   share no frame and lie within ``merge_m`` (a gap in the detections) are joined, one-to-one. A track's
   position is a robust weighted mean (near, confident sightings weigh more, outliers are dropped), its
   class the confidence vote, its size the median over sightings within ``size_range_m`` whose box lies
   wholly on the road (a box reaching the horizon gives no size).
2. ``register_drive``: phone GPS is off by 2-8 m, nearly constant over minutes, and drifts. Every pair
   of a track and a compatible known site (seen in two or more frames) within ``search_m`` proposes a
   translation; the one most tracks seen twice agree on (to ``inlier_m``, RANSAC over all candidates)
   wins, then a least-squares refit over its inliers, then a local correction per track for drift (the
   same consensus over the tracks within ``drift_window_m`` along the drive). A drive that overlaps no
   known site keeps its own reference (offset zero); a single candidate pair is accepted only when it
   is the only one. ``support`` is the number of tracks that agreed.
3. ``assign_tracks``: tracks to known sites one-to-one (minimum total squared distance, Hungarian
   method), compatible classes only, within ``registered_gate_m`` (``gate_m`` for an unregistered
   drive); tracks that share no frame may join the same site (a spot driven twice); the others form
   new sites: gaps in the detections merged first (``merge_m``), then spots driven again later matched
   jointly, one-to-one (``revisit_groups``, within ``revisit_merge_m``; tracks seen twice first, lone
   sightings after them, so a nearer lone false detection never takes a defect's other visit).

Positions are east/north metres on a local tangent plane around the drive's first frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from geotag import offset
from service.domain.geo import Box
from service.domain.hungarian import FORBIDDEN as _INF
from service.domain.hungarian import components, gated_assignment
from service.domain.track_records import (  # the records, re-exported: tracking.X
    ALGORITHM,
    BOX_TOUCH_PX,
    Assignment,
    Config,
    DrivePlan,
    FrameInput,
    KnownSite,
    Registration,
    Sighting,
    Track,
    from_local,
    to_local,
)

# --- 1. tracking -------------------------------------------------------------------------------


def _sigma_m(s: Sighting, config: Config) -> float:
    if s.distance_m is None:
        return config.gate_no_heading_m / 2.0
    return 0.3 + 0.05 * s.distance_m


def _link_cost(
    s: Sighting, at: tuple[float, float], cam: tuple[float, float], track: tuple[float, float], config: Config
) -> float:
    """How well a sighting at ``at`` fits a track's position: the squared distance in standard
    deviations over the gate (<= 1 inside it). A pixel of error moves a far point along the line of
    sight by much more than across it (the range error grows with the square of the distance, the
    heading error only linearly), so the two directions are weighed apart."""
    de, dn = track[0] - at[0], track[1] - at[1]
    if s.distance_m is None:
        return (de * de + dn * dn) / config.gate_no_heading_m**2
    ue, un = at[0] - cam[0], at[1] - cam[1]
    norm = math.hypot(ue, un) or 1.0
    ue, un = ue / norm, un / norm
    along, across = de * ue + dn * un, -de * un + dn * ue
    d = s.distance_m
    sigma_along = config.link_sigma_m + config.range_error_per_m2 * d * d
    sigma_across = config.link_sigma_m + config.heading_error_rad * d
    return ((along / sigma_along) ** 2 + (across / sigma_across) ** 2) / config.link_gate_sigmas**2


def _forward_m(at: tuple[float, float], cam: tuple[float, float], heading: float | None) -> float | None:
    if heading is None:
        return None
    h = math.radians(heading)
    return (at[0] - cam[0]) * math.sin(h) + (at[1] - cam[1]) * math.cos(h)


def _view_m(frames: Sequence[FrameInput], origin: tuple[float, float], config: Config) -> float:
    """How far ahead the detector finds damage in this drive: a high quantile of its sightings' forward
    distances (infinite with too few sightings to tell)."""
    ahead = []
    for f in frames:
        cam = to_local(f.lat, f.lon, origin)
        for s in f.sightings:
            fwd = (
                _forward_m(to_local(s.lat, s.lon, origin), cam, f.heading)
                if s.distance_m is not None
                else None
            )
            if fwd is not None and fwd > 0:
                ahead.append(fwd)
    if len(ahead) < config.view_min_sightings:
        return math.inf
    ahead.sort()
    return ahead[min(len(ahead) - 1, int(config.view_quantile * len(ahead)))]


def _beyond_view(
    track: tuple[float, float], cam: tuple[float, float], heading: float | None, view: float, config: Config
) -> float:
    """A track that would lie beyond the detector's range in this frame was hardly seen in it: the
    excess in along-the-line-of-sight deviations (gate units), capped at ``view_penalty_max``."""
    fwd = _forward_m(track, cam, heading)
    if fwd is None or fwd <= view:
        return 0.0
    sigma = config.link_sigma_m + config.range_error_per_m2 * view * view
    return min(((fwd - view) / sigma) ** 2 / config.link_gate_sigmas**2, config.view_penalty_max)


def _touch(a: Box, b: Box) -> bool:
    return not (
        a[2] + BOX_TOUCH_PX < b[0]
        or b[2] + BOX_TOUCH_PX < a[0]
        or a[3] + BOX_TOUCH_PX < b[1]
        or b[3] + BOX_TOUCH_PX < a[1]
    )


@dataclass
class _Open:
    """A track being built: its sightings as (frame index, sighting, east, north)."""

    members: list[tuple[int, Sighting, float, float]]
    last_frame: int
    votes: dict[str, float]
    sum_w: float = 0.0
    sum_e: float = 0.0
    sum_n: float = 0.0

    def add(self, frame: int, s: Sighting, e: float, n: float, config: Config) -> None:
        self.members.append((frame, s, e, n))
        w = s.confidence / _sigma_m(s, config) ** 2
        self.sum_w, self.sum_e, self.sum_n = self.sum_w + w, self.sum_e + w * e, self.sum_n + w * n
        self.votes[s.class_name] = self.votes.get(s.class_name, 0.0) + s.confidence
        self.last_frame = max(self.last_frame, frame)

    def remove(self, member: tuple[int, Sighting, float, float], config: Config) -> None:
        self.members.remove(member)
        _, s, e, n = member
        w = s.confidence / _sigma_m(s, config) ** 2
        self.sum_w, self.sum_e, self.sum_n = self.sum_w - w, self.sum_e - w * e, self.sum_n - w * n
        self.votes[s.class_name] -= s.confidence
        if self.votes[s.class_name] <= 1e-9:
            del self.votes[s.class_name]

    @property
    def position(self) -> tuple[float, float]:
        return self.sum_e / self.sum_w, self.sum_n / self.sum_w

    @property
    def class_name(self) -> str:
        return max(sorted(self.votes), key=lambda k: self.votes[k])


def _frame_groups(
    frame: FrameInput, origin: tuple[float, float], config: Config
) -> list[list[tuple[Sighting, float, float]]]:
    """The frame's sightings with local positions; touching boxes of compatible classes as one group."""
    items = [(s, *to_local(s.lat, s.lon, origin)) for s in frame.sightings]
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            a, b = items[i][0], items[j][0]
            near = math.dist(items[i][1:], items[j][1:]) <= config.split_box_m
            if near and _touch(a.box, b.box) and config.compatible_with(a.class_name, b.class_name):
                parent[root(j)] = root(i)
    groups: dict[int, list[tuple[Sighting, float, float]]] = {}
    for i, item in enumerate(items):
        groups.setdefault(root(i), []).append(item)
    return list(groups.values())


def _link(
    frames: Sequence[FrameInput], origin: tuple[float, float], config: Config, view: float = math.inf
) -> list[_Open]:
    done: list[_Open] = []
    active: list[_Open] = []
    for f_index, frame in enumerate(frames):
        still: list[_Open] = []
        for t in active:
            (still if f_index - t.last_frame <= config.max_gap_frames else done).append(t)
        active = still
        groups = _frame_groups(frame, origin, config)
        if not groups:
            continue
        cam = to_local(frame.lat, frame.lon, origin)
        cost: list[list[float]] = []
        for group in groups:
            lead = max(group, key=lambda item: item[0].confidence)[0]
            ge = sum(e for _, e, _ in group) / len(group)
            gn = sum(n for _, _, n in group) / len(group)
            row = []
            for t in active:
                ok = config.compatible_with(t.class_name, lead.class_name)
                c = _link_cost(lead, (ge, gn), cam, t.position, config) if ok else _INF
                if c <= 1.0:  # within the gate: penalties only choose between tracks that fit
                    c += config.link_class_penalty if lead.class_name != t.class_name else 0.0
                    c += _beyond_view(t.position, cam, frame.heading, view, config)
                else:
                    c = _INF
                row.append(c)
            cost.append(row)
        unassigned = [1.0 + config.link_class_penalty + config.view_penalty_max] * len(groups)
        chosen = gated_assignment(cost, unassigned) if active else [-1] * len(groups)
        for group, j in zip(groups, chosen, strict=True):
            if j < 0:
                track = _Open([], f_index, {})
                active.append(track)
            else:
                track = active[j]
            for s, e, n in group:
                track.add(f_index, s, e, n, config)
    return done + active


def _relink(
    tracks: list[_Open],
    frames: Sequence[FrameInput],
    origin: tuple[float, float],
    config: Config,
    view: float = math.inf,
) -> list[_Open]:
    """Sightings moved to the track they fit best once every track is whole.

    Linking decides in time order, against tracks still being built; a far sighting of one of two
    defects side by side may join the wrong one. With the tracks complete, each sighting is weighed
    against its own track without itself and against the other tracks that have no sighting in its
    frame, and moves where it fits clearly better. Only to a track seen within ``max_gap_frames`` of
    its frame: a track of another visit to the spot is another pass, and a false detection moved into
    it would share a frame with the defect's own track there, which then never joins it.
    """
    cams = [to_local(f.lat, f.lon, origin) for f in frames]
    for _ in range(config.relink_rounds):
        moved = 0
        for ti, t in enumerate(tracks):
            for m in list(t.members):
                f, s, e, n = m
                if len(t.members) > 1:
                    w = s.confidence / _sigma_m(s, config) ** 2
                    rest = t.sum_w - w
                    own_pos = ((t.sum_e - w * e) / rest, (t.sum_n - w * n) / rest) if rest > 0 else (e, n)
                    votes = dict(t.votes)
                    votes[s.class_name] -= s.confidence
                    own_class = max(sorted(votes), key=lambda k: votes[k])
                    own = _link_cost(s, (e, n), cams[f], own_pos, config)
                    own += config.link_class_penalty if own_class != s.class_name else 0.0
                    own += _beyond_view(own_pos, cams[f], frames[f].heading, view, config)
                else:  # a track of its own: as good as the gate
                    own = 1.0 + config.link_class_penalty + config.view_penalty_max
                best: tuple[float, int] | None = None
                for tj, other in enumerate(tracks):
                    if (
                        tj == ti
                        or not other.members
                        or not config.compatible_with(other.class_name, s.class_name)
                    ):
                        continue
                    pos = other.position
                    if abs(pos[0] - e) > config.relink_reach_m or abs(pos[1] - n) > config.relink_reach_m:
                        continue
                    if any(g == f for g, *_ in other.members) or all(
                        abs(g - f) > config.max_gap_frames for g, *_ in other.members
                    ):
                        continue
                    c = _link_cost(s, (e, n), cams[f], pos, config)
                    if c > 1.0:
                        continue
                    c += config.link_class_penalty if other.class_name != s.class_name else 0.0
                    c += _beyond_view(pos, cams[f], frames[f].heading, view, config)
                    if best is None or c < best[0]:
                        best = (c, tj)
                if best is not None and best[0] < own - config.relink_margin:
                    t.remove(m, config)
                    tracks[best[1]].add(f, s, e, n, config)
                    moved += 1
        if not moved:
            break
    return [t for t in tracks if t.members]


def _finish(t: _Open, frames: Sequence[FrameInput], along: Sequence[float], config: Config) -> Track:
    weights = {s.key: s.confidence / _sigma_m(s, config) ** 2 for _, s, _, _ in t.members}
    e, n = t.position
    if len(t.members) >= 3:  # drop sightings far from the rest (a wrong link, a bad projection)
        kept = [
            m for m in t.members if math.dist((m[2], m[3]), (e, n)) <= max(2.5 * _sigma_m(m[1], config), 1.5)
        ]
        if 2 <= len(kept) < len(t.members):
            sw = sum(weights[m[1].key] for m in kept)
            e = sum(weights[m[1].key] * m[2] for m in kept) / sw
            n = sum(weights[m[1].key] * m[3] for m in kept) / sw
            weights = {k: (w if any(m[1].key == k for m in kept) else 0.0) for k, w in weights.items()}
    sizes = sorted(
        s.size_m
        for _, s, _, _ in t.members
        if s.size_m is not None
        and s.sizeable
        and s.distance_m is not None
        and s.distance_m <= config.size_range_m
    )
    frame_indices = sorted({f for f, _, _, _ in t.members})
    return Track(
        sighting_keys=tuple(s.key for _, s, _, _ in t.members),
        frame_keys=tuple(frames[f].key for f in sorted(frame_indices, key=lambda f: along[f])),
        class_name=t.class_name,
        class_votes=dict(t.votes),
        east=e,
        north=n,
        size_m=sizes[len(sizes) // 2] if sizes else None,
        max_confidence=max(s.confidence for _, s, _, _ in t.members),
        first_seen=min(frames[f].seen_at for f in frame_indices),
        last_seen=max(frames[f].seen_at for f in frame_indices),
        along_m=min(along[f] for f in frame_indices),
        weights=weights,
    )


def _merge(a: Track, b: Track) -> Track:
    wa, wb = sum(a.weights.values()) or 1.0, sum(b.weights.values()) or 1.0
    votes = dict(a.class_votes)
    for k, v in b.class_votes.items():
        votes[k] = votes.get(k, 0.0) + v
    sizes = [s for s in (a.size_m, b.size_m) if s is not None]
    return Track(
        sighting_keys=a.sighting_keys + b.sighting_keys,
        frame_keys=tuple(
            sorted(set(a.frame_keys) | set(b.frame_keys), key=(a.frame_keys + b.frame_keys).index)
        ),
        class_name=max(sorted(votes), key=lambda k: votes[k]),
        class_votes=votes,
        east=(a.east * wa + b.east * wb) / (wa + wb),
        north=(a.north * wa + b.north * wb) / (wa + wb),
        size_m=max(sizes) if sizes else None,
        max_confidence=max(a.max_confidence, b.max_confidence),
        first_seen=min(a.first_seen, b.first_seen),
        last_seen=max(a.last_seen, b.last_seen),
        along_m=min(a.along_m, b.along_m),
        weights={**a.weights, **b.weights},
    )


def merge_limit_m(a: Track, b: Track, config: Config) -> float:
    """How far apart two tracks of one drive that share no frame may be and still be one defect.

    Close in the drive (a gap in the detections) the GPS error is the same for both: ``merge_m``.
    Far apart in the drive (the same spot driven again, from another street or direction) the GPS
    has drifted in between: ``revisit_merge_m``.
    """
    return config.revisit_merge_m if abs(a.along_m - b.along_m) > config.revisit_after_m else config.merge_m


def _match_one_to_one(pairs: dict[int, dict[int, float]], reach: float) -> list[tuple[float, int, int]]:
    """(distance, earlier, later) pairs: each track matched to at most one later and one earlier track,
    as many as possible, then the least total squared distance."""
    pairs = {i: row for i, row in pairs.items() if row}
    matches = []
    for rows, cols in components(pairs):
        cost = [[pairs[i][j] ** 2 if j in pairs[i] else _INF for j in cols] for i in rows]
        # Leaving a track unmatched costs more than any allowed match: as many matches as possible.
        for i, c in zip(rows, gated_assignment(cost, [reach**2 + 1.0] * len(rows)), strict=True):
            if c >= 0:
                matches.append((pairs[i][cols[c]], i, cols[c]))
    return matches


def revisit_groups(tracks: Sequence[Track], config: Config) -> list[list[int]]:
    """Indices of ``tracks`` grouped into defects: tracks that never share a frame and lie within their
    merge limit are one defect seen twice (each group in order along the drive).

    Matched one-to-one (each track to at most one later track, least total squared distance): when a
    close pair is driven again, the GPS has drifted by the same amount for both, and only the joint
    matching keeps each defect with its own earlier track. Tracks seen in two or more frames are
    matched with each other first, then lone sightings with them, then lone sightings with each other.
    """
    reach = max(config.merge_m, config.revisit_merge_m)
    frames = [set(t.frame_keys) for t in tracks]
    pairs: dict[int, dict[int, float]] = {}
    for i, a in enumerate(tracks):
        for j, b in enumerate(tracks):
            if (
                (a.along_m, i) >= (b.along_m, j)
                or abs(a.east - b.east) > reach
                or abs(a.north - b.north) > reach
            ):
                continue
            d = math.dist((a.east, a.north), (b.east, b.north))
            if (
                d <= merge_limit_m(a, b, config)
                and not frames[i] & frames[j]
                and config.compatible_with(a.class_name, b.class_name)
            ):
                pairs.setdefault(i, {})[j] = d
    owner = list(range(len(tracks)))

    def root(i: int) -> int:
        while owner[i] != i:
            i = owner[i]
        return i

    # Tracks seen in two or more frames are matched with each other first, then a lone sighting with
    # one of them, then two lone sightings: a lone sighting is often a false detection, and one that
    # lies nearer never takes a defect's other visit.
    strong = {i for i, t in enumerate(tracks) if t.sightings >= 2}
    matches: list[tuple[float, int, int]] = []
    for n_strong in (2, 1, 0):
        rows, cols = {i for _, i, _ in matches}, {j for _, _, j in matches}
        found = _match_one_to_one(
            {
                i: {j: d for j, d in row.items() if len({i, j} & strong) == n_strong and j not in cols}
                for i, row in pairs.items()
                if i not in rows
            },
            reach,
        )
        matches += sorted(found)
    members = {i: [i] for i in range(len(tracks))}
    seen = {i: set(frames[i]) for i in range(len(tracks))}
    for _, i, j in matches:
        ri, rj = root(i), root(j)
        if ri == rj or seen[ri] & seen[rj]:
            continue
        members[ri] += members.pop(rj)
        seen[ri] |= seen.pop(rj)
        owner[rj] = ri
    return [sorted(m, key=lambda k: (tracks[k].along_m, k)) for _, m in sorted(members.items())]


def _merge_revisits(tracks: list[Track], config: Config) -> list[Track]:
    """Each group of :func:`revisit_groups` merged into one track."""
    merged = []
    for group in revisit_groups(tracks, config):
        t = tracks[group[0]]
        for k in group[1:]:
            t = _merge(t, tracks[k])
        merged.append(t)
    return merged


def _line_fit(t: Sequence[float], values: Sequence[float]) -> float:
    """The least-squares straight line through (t, value), evaluated at t = 0."""
    tm, vm = sum(t) / len(t), sum(values) / len(values)
    stt = sum((x - tm) ** 2 for x in t)
    slope = sum((x - tm) * (v - vm) for x, v in zip(t, values, strict=True)) / stt if stt else 0.0
    return vm - slope * tm


def smooth_fixes(frames: Sequence[FrameInput], config: Config) -> list[FrameInput]:
    """The frames with their GPS fixes and headings moved onto straight-line fits of the neighbouring
    frames within ``smooth_window_s``, their sightings moved and turned with them: a vehicle moves and
    turns smoothly, while the fix jitters by half a metre and the heading by degrees from one photo to
    the next. A fix the fit would move by more than ``smooth_max_m``, or turn by more than
    ``smooth_max_deg`` (a sharp turn, a jump), stays as it is."""
    if not frames or config.smooth_window_s <= 0:
        return list(frames)
    origin = (frames[0].lat, frames[0].lon)
    pts = [to_local(f.lat, f.lon, origin) for f in frames]
    out = []
    for i, f in enumerate(frames):
        near = [
            j
            for j in range(max(0, i - 8), min(len(frames), i + 9))
            if abs((frames[j].seen_at - f.seen_at).total_seconds()) <= config.smooth_window_s
        ]
        if len(near) < 3:
            out.append(f)
            continue
        t = [(frames[j].seen_at - f.seen_at).total_seconds() for j in near]
        fe, fn = _line_fit(t, [pts[j][0] for j in near]), _line_fit(t, [pts[j][1] for j in near])
        de, dn = fe - pts[i][0], fn - pts[i][1]
        if math.hypot(de, dn) > config.smooth_max_m:
            out.append(f)
            continue
        turn, heading = 0.0, f.heading
        headed = [j for j in near if frames[j].heading is not None]
        if f.heading is not None and len(headed) >= 3:
            rel = [((frames[j].heading or 0.0) - f.heading + 180.0) % 360.0 - 180.0 for j in headed]
            fit = _line_fit([t[near.index(j)] for j in headed], rel)
            if abs(fit) <= config.smooth_max_deg:
                turn, heading = fit, (f.heading + fit) % 360.0
        c, s_ = math.cos(math.radians(turn)), math.sin(math.radians(turn))
        moved = []
        for sg in f.sightings:  # about the smoothed camera position, turned clockwise by ``turn``
            ve, vn = to_local(sg.lat, sg.lon, (f.lat, f.lon))
            lat, lon = offset(f.lat, f.lon, de + ve * c + vn * s_, dn - ve * s_ + vn * c)
            moved.append(replace(sg, lat=lat, lon=lon))
        lat, lon = offset(f.lat, f.lon, de, dn)
        out.append(replace(f, lat=lat, lon=lon, heading=heading, sightings=tuple(moved)))
    return out


def track_drive(
    frames: Sequence[FrameInput], config: Config, origin: tuple[float, float] | None = None
) -> list[Track]:
    """Tracks of one drive segment; ``frames`` in time order."""
    if not frames:
        return []
    origin = origin or (frames[0].lat, frames[0].lon)
    along, travelled = [], 0.0
    for k, f in enumerate(frames):
        if k:
            travelled += math.dist(
                to_local(f.lat, f.lon, origin), to_local(frames[k - 1].lat, frames[k - 1].lon, origin)
            )
        along.append(travelled)
    # Linked backwards in time: the vehicle approaches a defect, so its last sightings are the nearest
    # and most precise; they found the track, and the far, uncertain ones join the track they fit.
    backwards, along_back = list(reversed(frames)), list(reversed(along))
    view = _view_m(frames, origin, config)
    tracks = [
        _finish(t, backwards, along_back, config)
        for t in _relink(_link(backwards, origin, config, view), backwards, origin, config, view)
        if t.members
    ]
    tracks.sort(key=lambda t: (t.along_m, t.first_seen, t.sighting_keys))
    return _merge_revisits(tracks, replace(config, revisit_merge_m=0.0))  # revisits: see assign_tracks


def split_drives(times: Sequence[datetime | None], gap_s: float) -> list[list[int]]:
    """Indices of a vehicle's frames (sorted by time) grouped into drives: a pause longer than
    ``gap_s`` starts a new one; a frame without a time is a drive of its own."""
    drives: list[list[int]] = []
    current: list[int] | None = None
    last: datetime | None = None
    for i, t in enumerate(times):
        if t is None:
            drives.append([i])
            continue
        if current is None or last is None or (t - last).total_seconds() > gap_s:
            current = []
            drives.append(current)
        current.append(i)
        last = t
    return drives


__all__ = [
    "ALGORITHM",
    "BOX_TOUCH_PX",
    "Assignment",
    "Config",
    "DrivePlan",
    "FrameInput",
    "KnownSite",
    "Registration",
    "Sighting",
    "Track",
    "from_local",
    "merge_limit_m",
    "revisit_groups",
    "smooth_fixes",
    "split_drives",
    "to_local",
    "track_drive",
]
