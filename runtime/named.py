"""`Named`: a numpy array whose axes are named by index variables.

The reference interpreter evaluates every expression to a `Named` over the index
variables it depends on, so broadcasting aligns axes by name, like an einsum
with named indices. A vector value carries the extra axis `VECTOR_AXIS`.

`missing` marks entries that read a block or sample a tensor does not have: they
hold 0 and only become an error if they reach a valid output position (a masked
branch of `?:` or a `where`-filtered term may touch them legitimately).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

VECTOR_AXIS = "·xyz"  # not an identifier, so it never collides with an index name


@dataclass(frozen=True)
class Named:
    axes: tuple[str, ...]
    data: np.ndarray
    missing: Optional["Named"] = None  # boolean Named, or None when nothing is missing

    def __post_init__(self):
        if np.ndim(self.data) != len(self.axes):
            raise ValueError(f"array of {np.ndim(self.data)} dimensions for axes {self.axes}")

    @staticmethod
    def scalar(value) -> "Named":
        return Named((), np.asarray(value))

    def shape_of(self, axis: str) -> int:
        return self.data.shape[self.axes.index(axis)]

    def expand(self, axes: tuple[str, ...]) -> np.ndarray:
        """The data with axes reordered to `axes` (a superset), new axes of size 1."""
        order = [self.axes.index(a) for a in axes if a in self.axes]
        data = np.transpose(self.data, order) if order != list(range(len(order))) else self.data
        shape = [self.data.shape[self.axes.index(a)] if a in self.axes else 1 for a in axes]
        return data.reshape(shape)

    def with_missing(self, missing: Optional["Named"]) -> "Named":
        return Named(self.axes, self.data, missing)


def union_axes(*arrays: Named) -> tuple[str, ...]:
    axes: list[str] = []
    for array in arrays:
        for axis in array.axes:
            if axis not in axes:
                axes.append(axis)
    # keep the vector axis last, where vector functions expect it
    if VECTOR_AXIS in axes:
        axes.remove(VECTOR_AXIS)
        axes.append(VECTOR_AXIS)
    return tuple(axes)


def merge_missing(*arrays: Named) -> Optional[Named]:
    masks = [a.missing for a in arrays if a.missing is not None]
    if not masks:
        return None
    if len(masks) == 1:
        return masks[0]
    axes = union_axes(*masks)
    result = masks[0].expand(axes)
    for mask in masks[1:]:
        result = result | mask.expand(axes)
    return Named(axes, result)


def apply(function, *arrays: Named) -> Named:
    """`function` applied elementwise on arrays aligned by axis name."""
    axes = union_axes(*arrays)
    data = function(*(a.expand(axes) for a in arrays))
    data = np.asarray(data)
    if data.ndim != len(axes):
        data = np.broadcast_to(data, tuple(1 for _ in axes)) if data.ndim == 0 else data
    return Named(axes, data, merge_missing(*arrays))


def broadcast_to(array: Named, axes: tuple[str, ...], sizes: dict[str, int]) -> np.ndarray:
    data = array.expand(axes)
    return np.broadcast_to(data, tuple(sizes[a] for a in axes))
