"""The Pareto front: one definition for the tables, exports and early stopping."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def non_dominated(values: Sequence[Sequence[float]], maximize: Sequence[bool]) -> list[int]:
    """Indices of the points that no other point dominates, in their given order.

    A point dominates another when it is at least as good in every objective and better
    in one; ``maximize[i]`` says which way objective ``i`` is better. Equal points do not
    dominate each other, so duplicates are all kept.
    """
    if len(values) == 0:
        return []
    signs = np.where(np.asarray(maximize, dtype=bool), 1.0, -1.0)
    points = np.asarray(values, dtype=float) * signs  # (n, objectives), higher is better
    front = []
    for index, point in enumerate(points):
        at_least = (points >= point).all(axis=1)
        better = (points > point).any(axis=1)
        if not (at_least & better).any():
            front.append(index)
    return front
