"""A drive registered against the map, and its tracks assigned to sites (steps 2 and 3 of
``service/domain/tracking.py``, whose docstring describes them). Pure: plain records in and out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from service.domain.hungarian import FORBIDDEN as _INF
from service.domain.hungarian import components, gated_assignment
from service.domain.tracking import (
    Assignment,
    Config,
    DrivePlan,
    FrameInput,
    KnownSite,
    Registration,
    Track,
    merge_limit_m,
    revisit_groups,
    smooth_fixes,
    to_local,
    track_drive,
)

# --- 2. registration ---------------------------------------------------------------------------


def _candidates(
    tracks: Sequence[Track], sites: Sequence[tuple[KnownSite, float, float]], config: Config
) -> list[tuple[int, int, float, float]]:
    """(track, site, east shift, north shift) for every compatible pair within search_m.

    Only sites seen in two or more frames take part: a false detection seen once is anywhere, and
    enough of them would agree on some wrong shift.
    """
    out: list[tuple[int, int, float, float]] = []
    sites = [s for s in sites if s[0].sightings >= config.min_site_sightings]
    if not sites:
        return out
    se = np.array([e for _, e, _ in sites])
    sn = np.array([n for _, _, n in sites])
    for i, t in enumerate(tracks):
        d = np.hypot(se - t.east, sn - t.north)
        for j in np.nonzero(d <= config.search_m)[0]:
            site = sites[int(j)][0]
            if config.compatible_with(t.class_name, site.class_name):
                out.append((i, int(j), float(se[j] - t.east), float(sn[j] - t.north)))
    return out


def _inliers(
    cands: list[tuple[int, int, float, float]], shift: tuple[float, float], tol: float
) -> dict[int, tuple[int, float, float]]:
    """Per track: its candidate nearest to ``shift`` within ``tol`` (one site per track, one track per site)."""
    best: dict[int, tuple[float, int, float, float]] = {}
    for i, j, de, dn in cands:
        d = math.hypot(de - shift[0], dn - shift[1])
        if d <= tol and (i not in best or d < best[i][0]):
            best[i] = (d, j, de, dn)
    by_site: dict[int, tuple[float, int]] = {}
    for i, (d, j, _, _) in best.items():
        if j not in by_site or d < by_site[j][0]:
            by_site[j] = (d, i)
    keep = {i for _, i in by_site.values()}
    return {i: (j, de, dn) for i, (_, j, de, dn) in best.items() if i in keep}


def register_drive(
    tracks: Sequence[Track], sites: Sequence[KnownSite], origin: tuple[float, float], config: Config
) -> Registration:
    """The drive's GPS correction against the known sites (see the module docstring)."""
    local_sites = [(s, *to_local(s.lat, s.lon, origin)) for s in sites]
    cands = _candidates(tracks, local_sites, config)
    n_cand = len({i for i, *_ in cands})
    zero = Registration(0.0, 0.0, 0, n_cand, 0.0, tuple((0.0, 0.0) for _ in tracks))
    if not cands:
        return zero
    # Support counts tracks seen at least twice: a lone false positive agrees with anything nearby.
    strong = {i for i, t in enumerate(tracks) if t.sightings >= 2}
    arr = np.array([(de, dn) for _, _, de, dn in cands])
    track_of = np.array([i for i, *_ in cands])
    best_key: tuple[float, float] | None = None
    best_shift = (0.0, 0.0)
    for k in range(len(cands)):
        near = np.hypot(arr[:, 0] - arr[k, 0], arr[:, 1] - arr[k, 1]) <= config.inlier_m
        agreeing = {int(i) for i in track_of[near]}
        score = len(agreeing & strong) + 0.01 * len(agreeing)
        key = (-score, float(np.hypot(*arr[k])))
        if best_key is None or key < best_key:
            best_key, best_shift = key, (float(arr[k, 0]), float(arr[k, 1]))
    shift = best_shift
    for _ in range(3):  # least-squares refit over the inliers
        inl = _inliers(cands, shift, config.inlier_m)
        if not inl:
            break
        shift = (
            sum(de for _, de, _ in inl.values()) / len(inl),
            sum(dn for _, _, dn in inl.values()) / len(inl),
        )
    inl = _inliers(cands, shift, config.inlier_m)
    support = len(set(inl) & strong)
    if support < 2 and not (len(cands) == 1 and len(inl) == 1):
        return zero
    support = max(support, 1)
    local, confirmed = _local_offsets(tracks, cands, strong, shift, config)
    drift = max((math.dist(o, shift) for o in local), default=0.0)
    return Registration(shift[0], shift[1], support, n_cand, drift, tuple(local), tuple(confirmed))


def _local_offsets(
    tracks: Sequence[Track],
    cands: list[tuple[int, int, float, float]],
    strong: set[int],
    shift: tuple[float, float],
    config: Config,
) -> tuple[list[tuple[float, float]], list[bool]]:
    """Each track's offset: the consensus of the candidates of tracks near it along the drive.

    GPS drift moves the offset by about a metre per 100 m, and the map's own positions come from
    drives that drifted too, so the offset that fits one street need not fit the next. Per track, the
    translations proposed within ``drift_window_m`` along the drive (and within ``max_drift_m`` of the
    drive's offset) vote, weighted by a Gaussian of the distance along the drive; at least two tracks
    seen twice must agree, else the track takes the offset of its supported neighbours (or the drive's).
    """
    # The drift correction along a drive in one pass over its tracks (windowed robust fit): the loop state is
    # shared by every step.
    arr = np.array([(de, dn) for _, _, de, dn in cands])
    track_of = np.array([i for i, *_ in cands])
    along = np.array([tracks[i].along_m for i in track_of])
    is_strong = np.array([i in strong for i in track_of])
    ok = np.hypot(arr[:, 0] - shift[0], arr[:, 1] - shift[1]) <= config.max_drift_m
    found: dict[int, tuple[float, float]] = {}
    for i, t in enumerate(tracks):
        w = np.exp(-0.5 * ((along - t.along_m) / config.drift_sigma_m) ** 2)
        window = np.nonzero(ok & (np.abs(along - t.along_m) <= config.drift_window_m))[0]
        best: tuple[float, float] | None = None
        best_t = shift
        for k in window:
            near = window[np.hypot(arr[window, 0] - arr[k, 0], arr[window, 1] - arr[k, 1]) <= config.inlier_m]
            agreeing = {int(track_of[m]) for m in near if is_strong[m]}
            if len(agreeing) < 2:
                continue
            score = sum(float(max(w[m] for m in near if track_of[m] == j)) for j in agreeing)
            key = (-score + config.drift_penalty * float(math.dist(arr[k], shift)), 0.0)
            if best is None or key < best:
                best, best_t = key, (float(arr[k, 0]), float(arr[k, 1]))
        if best is None:
            continue
        for _ in range(2):  # refit: kernel-weighted mean of the agreeing candidates (nearest per track)
            d = np.hypot(arr[window, 0] - best_t[0], arr[window, 1] - best_t[1])
            nearest: dict[int, tuple[float, int]] = {}
            for m, dm in zip(window, d, strict=True):
                j = int(track_of[m])
                if dm <= config.inlier_m and (j not in nearest or dm < nearest[j][0]):
                    nearest[j] = (float(dm), int(m))
            ms = [m for _, m in nearest.values()]
            if not ms:
                break
            ww = w[ms]
            best_t = (float(ww @ arr[ms, 0] / ww.sum()), float(ww @ arr[ms, 1] / ww.sum()))
        found[i] = best_t
    out: list[tuple[float, float]] = []
    for i, t in enumerate(tracks):
        if i in found:
            out.append(found[i])
            continue
        ws = [
            (math.exp(-0.5 * ((tracks[j].along_m - t.along_m) / config.drift_sigma_m) ** 2), o)
            for j, o in found.items()
        ]
        total = sum(w for w, _ in ws) + 0.05  # far from any supported track: the drive's offset
        guess = (
            (sum(w * o[0] for w, o in ws) + 0.05 * shift[0]) / total,
            (sum(w * o[1] for w, o in ws) + 0.05 * shift[1]) / total,
        )
        out.append(_snap(i, guess, arr[(track_of == i) & ok], i in strong, config))
    return out, [i in found for i in range(len(tracks))]


def _snap(
    i: int, guess: tuple[float, float], own: np.ndarray[Any, Any], strong: bool, config: Config
) -> tuple[float, float]:
    """The offset of a track no neighbour confirmed: its own translation to a known site when exactly
    one lies near the interpolated ``guess``, else the guess.

    The map holds the drift of the drives that built it, so the correction changes from one street to
    the next and interpolating along the drive can miss by metres; a lone defect (no neighbour to agree
    with) seen twice that has one known site near the guess is that site. Two candidates near the
    guess (a close pair, a site and its neighbour) keep the guess.
    """
    if not strong or not len(own):
        return guess
    d = np.hypot(own[:, 0] - guess[0], own[:, 1] - guess[1])
    order = np.argsort(d)
    best = int(order[0])
    second = float(d[order[1]]) if len(order) > 1 else math.inf
    if d[best] > config.snap_m or second - float(d[best]) < config.snap_margin_m:
        return guess
    return float(own[best, 0]), float(own[best, 1])


# --- 3. assignment -----------------------------------------------------------------------------


def assign_tracks(
    tracks: Sequence[Track],
    sites: Sequence[KnownSite],
    registration: Registration,
    origin: tuple[float, float],
    config: Config,
) -> Assignment:
    """Tracks to known sites one-to-one, then the rest to new sites.

    Two tracks of one drive that share a frame are two defects: they never join the same site. Tracks
    that share no frame may (a gap in the detections, a junction driven twice): after the one-to-one
    round, the tracks left over get further rounds against the sites that no overlapping track took.
    The tracks left after that form new sites, merged with each other under the same rule.
    """
    # Cost matrix, gating, class compatibility and the one-to-one solve belong together: the gates define the
    # matrix the solver sees.
    gate = config.registered_gate_m if registration.support >= 2 else config.gate_m
    # A track whose offset no neighbour confirmed may be off by the drift: it looks a little farther.
    gates = [
        config.unconfirmed_gate_m if registration.support >= 2 and not ok else gate
        for ok in (registration.confirmed or (True,) * len(tracks))
    ]
    pos = [(t.east + o[0], t.north + o[1]) for t, o in zip(tracks, registration.local, strict=True)]
    local_sites = [to_local(s.lat, s.lon, origin) for s in sites]
    frames_of = [set(t.frame_keys) for t in tracks]
    taken: dict[int, set[object]] = {}  # site index -> frames of the tracks that joined it
    out: list[int | None] = [None] * len(tracks)
    dist: list[float | None] = [None] * len(tracks)
    near: dict[int, dict[int, tuple[float, float]]] = {}  # track -> site index -> (distance, cost)
    for i, (t, p) in enumerate(zip(tracks, pos, strict=True)):
        for j, (s, q) in enumerate(zip(sites, local_sites, strict=True)):
            if abs(p[0] - q[0]) > gates[i] or abs(p[1] - q[1]) > gates[i]:
                continue
            d = math.dist(p, q)
            if d <= gates[i] and config.compatible_with(t.class_name, s.class_name):
                near.setdefault(i, {})[j] = (d, _join_cost(t, s, d, config))
    # Tracks seen in two or more frames first: a lone sighting (often a false detection) never takes
    # a site from a confirmed track; it joins what is left.
    strong = [i for i in range(len(tracks)) if tracks[i].sightings >= 2]
    weak = [i for i in range(len(tracks)) if tracks[i].sightings < 2]
    for group in (strong, weak):
        remaining = [i for i in group if i in near]
        for _ in range(3):
            pairs = {
                i: {j: c for j, (_, c) in near[i].items() if not frames_of[i] & taken.get(j, set())}
                for i in remaining
            }
            pairs = {i: row for i, row in pairs.items() if row}
            joined = 0
            for rows, cols in components(pairs):
                cost = [[pairs[i].get(j, _INF) for j in cols] for i in rows]
                # Leaving a track out costs more than any pair: as many joins as possible, then the cheapest.
                unassigned = [max(max(pairs[i].values()) for i in rows) + 1.0] * len(rows)
                for i, c in zip(rows, gated_assignment(cost, unassigned), strict=True):
                    if c >= 0:
                        out[i], dist[i] = sites[cols[c]].key, near[i][cols[c]][0]
                        taken.setdefault(cols[c], set()).update(frames_of[i])
                        joined += 1
            remaining = [i for i in remaining if out[i] is None]
            if not joined or not remaining:
                break
    _improve(out, dist, near, frames_of, sites)
    remaining = [i for i in range(len(tracks)) if out[i] is None]
    founders: list[int | None] = [None] * len(tracks)
    # First the gaps in the detections (tracks close along the drive), strongest track first; then the
    # spots driven again later, by the joint one-to-one matching of tracking's revisits, so that a close
    # pair driven twice stays two sites although the GPS drifted by metres in between.
    gap_only = replace(config, revisit_merge_m=0.0)
    new: list[tuple[int, list[float], set[int], float]] = []  # founder, position, frames, weight
    for i in sorted(remaining, key=lambda k: (-tracks[k].sightings, k)):
        best = None
        for n, (f, centre, seen, _) in enumerate(new):
            d = math.dist(pos[i], centre)
            if (
                d <= min(gates[i], merge_limit_m(tracks[f], tracks[i], gap_only))
                and not frames_of[i] & seen
                and config.compatible_with(tracks[f].class_name, tracks[i].class_name)
                and (best is None or d < best[0])
            ):
                best = (d, n)
        if best is None:
            founders[i] = i
            new.append((i, list(pos[i]), set(frames_of[i]), float(tracks[i].sightings)))
            continue
        f, centre, seen, w = new[best[1]]
        founders[i] = f
        wi = float(tracks[i].sightings)
        centre[0] = (centre[0] * w + pos[i][0] * wi) / (w + wi)
        centre[1] = (centre[1] * w + pos[i][1] * wi) / (w + wi)
        seen |= frames_of[i]
        new[best[1]] = (f, centre, seen, w + wi)
    groups = [
        replace(
            tracks[f],
            east=centre[0],
            north=centre[1],
            frame_keys=tuple(sorted(seen)),
        )
        for f, centre, seen, _ in new
    ]
    for members in revisit_groups(groups, replace(config, merge_m=0.0)):
        heads = [new[k][0] for k in members]
        head = min(heads, key=lambda k: (-tracks[k].sightings, k))
        for i in remaining:
            if founders[i] in heads:
                founders[i] = head
    return Assignment(tuple(out), tuple(dist), tuple(founders))


def _join_cost(track: Track, site: KnownSite, d: float, config: Config) -> float:
    """The cost of a track joining a known site: the squared distance, plus a penalty for a site seen
    in a single frame (possibly a false detection) and for a crack class other than the site's."""
    cost = d * d
    if site.sightings < config.min_site_sightings:
        cost += config.weak_site_penalty_m2
    if track.class_name != site.class_name:
        cost += config.class_penalty_m2
    return cost


def _improve(
    out: list[int | None],
    dist: list[float | None],
    near: dict[int, dict[int, tuple[float, float]]],
    frames_of: Sequence[set[int]],
    sites: Sequence[KnownSite],
) -> None:
    """Each joined track moves to a cheaper site that no track sharing a frame with it has joined.

    The one-to-one rounds give every site to one track first; a defect seen twice in a drive (two
    streets at a junction) has two tracks that share no frame, and the second one was pushed to the
    next-best site although both may join the nearest.
    """
    index = {s.key: j for j, s in enumerate(sites)}
    for _ in range(3):
        moved = 0
        for i, key in enumerate(out):
            if key is None or i not in near:
                continue
            current = near[i][index[key]][1]
            for j, (d, c) in sorted(near[i].items(), key=lambda kv: kv[1][1]):
                if c >= current:
                    break
                target = sites[j].key
                if not any(
                    out[k] == target and frames_of[k] & frames_of[i] for k in range(len(out)) if k != i
                ):
                    out[i], dist[i] = target, d
                    moved += 1
                    break
        if not moved:
            break


def plan_drive(frames: Sequence[FrameInput], sites: Sequence[KnownSite], config: Config) -> DrivePlan:
    """Tracks of one drive segment, its registration against ``sites`` and each track's site."""
    if not frames:
        return DrivePlan((0.0, 0.0), (), Registration(0.0, 0.0, 0, 0, 0.0, ()), Assignment((), (), ()))
    origin = (frames[0].lat, frames[0].lon)
    tracks = track_drive(smooth_fixes(frames, config), config, origin)
    registration = register_drive(tracks, sites, origin, config)
    return DrivePlan(
        origin, tuple(tracks), registration, assign_tracks(tracks, sites, registration, origin, config)
    )
