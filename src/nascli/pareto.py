"""Pareto dominance for score (higher is better) against cost (lower is better).

One place for the arithmetic that the search's ``pareto.json``, the Pareto-evolution strategy
and the report's front all use. Points are ``(cost, score)`` pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Point = tuple[float, float]


def dominates(a: Point, b: Point) -> bool:
    """True when ``a`` costs no more and scores no less than ``b``, and differs from it."""
    return a[0] <= b[0] and a[1] >= b[1] and a != b


def pareto_front(points: Sequence[Point]) -> list[int]:
    """Indices of the points no other point dominates, by increasing cost (of equal points,
    the first)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front: list[int] = []
    best = -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def nondominated_ranks(points: Sequence[Point]) -> list[int]:
    """NSGA-II's front number of every point: 0 for the Pareto front, 1 for the front of the
    rest, and so on."""
    ranks = [-1] * len(points)
    left = list(range(len(points)))
    rank = 0
    while left:
        front = {left[i] for i in pareto_front([points[j] for j in left])}
        # copies of a front point are on the same front
        front |= {j for j in left if any(points[j] == points[f] for f in front)}
        for j in front:
            ranks[j] = rank
        left = [j for j in left if j not in front]
        rank += 1
    return ranks


def crowding_distances(points: Sequence[Point]) -> list[float]:
    """NSGA-II's crowding distance of each point within its set: the sum over both objectives
    of the normalised gap between its neighbours; the extremes get infinity."""
    n = len(points)
    dist = [0.0] * n
    if n <= 2:
        return [math.inf] * n
    for axis in (0, 1):
        order = sorted(range(n), key=lambda i: (points[i][axis], i))
        low, high = points[order[0]][axis], points[order[-1]][axis]
        dist[order[0]] = dist[order[-1]] = math.inf
        if high == low:
            continue
        for k in range(1, n - 1):
            gap = points[order[k + 1]][axis] - points[order[k - 1]][axis]
            dist[order[k]] += gap / (high - low)
    return dist
