"""Minimum-cost one-to-one assignment (the Hungarian method), pure Python for the small problems of
tracking: a frame's detections against open tracks, a drive's tracks against nearby sites.

``FORBIDDEN`` marks a pair that may not be assigned. Problems split into ``components`` stay small.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

FORBIDDEN = 1e18
_INF = FORBIDDEN


def min_cost_assignment(cost: Sequence[Sequence[float]]) -> list[int]:
    """Column per row minimising the total cost (Hungarian method, shortest augmenting paths).

    Needs rows <= columns; entries >= ``1e18`` are forbidden (a row with only those gets -1).
    """
    n = len(cost)
    if n == 0:
        return []
    m = len(cost[0])
    if m < n:
        raise ValueError(f"cost matrix: expected rows <= columns, got {n}x{m}")
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    p, way = [0] * (m + 1), [0] * (m + 1)  # p[j]: row (1-based) assigned to column j
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv, used = [_INF * 2] * (m + 1), [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = p[j0], _INF * 2, 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = cost[i0 - 1][j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    out = [-1] * n
    for j in range(1, m + 1):
        if p[j] and cost[p[j] - 1][j - 1] < _INF:
            out[p[j] - 1] = j - 1
    return out


def gated_assignment(cost: Sequence[Sequence[float]], unassigned: Sequence[float]) -> list[int]:
    """Column per row (or -1), minimising the total cost where leaving row i unassigned costs
    ``unassigned[i]``; forbidden pairs cost ``>= 1e18``."""
    n = len(cost)
    if n == 0:
        return []
    m = len(cost[0]) if cost else 0
    square = [list(row) + [unassigned[i] if k == i else _INF for k in range(n)] for i, row in enumerate(cost)]
    return [j if 0 <= j < m else -1 for j in min_cost_assignment(square)]


def components(pairs: Mapping[int, Mapping[int, float]]) -> list[tuple[list[int], list[int]]]:
    """Connected groups of tracks and sites that compete (so each assignment problem stays small)."""
    seen_rows: set[int] = set()
    by_col: dict[int, list[int]] = {}
    for i, row in pairs.items():
        for j in row:
            by_col.setdefault(j, []).append(i)
    out: list[tuple[list[int], list[int]]] = []
    for start in sorted(pairs):
        if start in seen_rows:
            continue
        rows: set[int] = set()
        cols: set[int] = set()
        stack = [start]
        while stack:
            i = stack.pop()
            if i in rows:
                continue
            rows.add(i)
            for j in pairs[i]:
                if j not in cols:
                    cols.add(j)
                    stack.extend(by_col[j])
        seen_rows |= rows
        out.append((sorted(rows), sorted(cols)))
    return out
