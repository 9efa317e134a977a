"""Structures shared by the runtime tests."""

from __future__ import annotations

import numpy as np


def spaced_positions(rng: np.random.Generator, count: int, half_width: float, min_distance: float) -> list:
    """`count` positions, the first at the origin, the others drawn uniformly in the cube of
    half-width `half_width` and kept when at least `min_distance` from every earlier one."""
    positions = [np.zeros(3)]
    while len(positions) < count:
        candidate = rng.uniform(-half_width, half_width, 3)
        if min(np.linalg.norm(candidate - p) for p in positions) > min_distance:
            positions.append(candidate)
    return positions
