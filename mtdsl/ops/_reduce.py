"""What the reductions over samples and over properties share: which rows merge,
the merged labels, and the sum/mean/var/std of each group of merged rows.

The two differ only in the axis they reduce (the first, or the last), which the
callers give as the ``add`` and ``spread`` functions of :func:`reduce_groups`.
"""

from __future__ import annotations

from typing import List, Union

import numpy as np

from ..tensor import Labels
from ..tensor.labels import row_keys
from . import _dispatch

REDUCTIONS = ("sum", "mean", "var", "std")


def group_rows(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique rows of `array`, sorted, and for each row of `array` its unique row."""
    keys = row_keys(array)[0]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return array[first], inverse.reshape(-1).astype(np.int64)


def names_list(names: Union[List[str], str]) -> List[str]:
    return [names] if isinstance(names, str) else list(names)


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}, choose from {list(REDUCTIONS)}")


def check_names_present(reduced: List[str], names, axis: str) -> None:
    """Every reduced name is one of the tensor's ``axis`` (``sample``, ``property``) names."""
    for name in reduced:
        if name not in names:
            raise ValueError(f"one of the requested {axis} name ({name}) is not part of this TensorMap")


def empty_merged_labels(remaining: List[str]) -> Labels:
    """The labels of an empty axis once reduced: the remaining names, or ``_``."""
    return Labels(remaining or ["_"], np.zeros((0, len(remaining) or 1), dtype=np.int32))


def merge_labels(labels: Labels, remaining: List[str]) -> tuple[Labels, np.ndarray]:
    """The labels left when only the ``remaining`` names are kept (rows that agree
    merge, sorted; a single ``_ = 0`` without remaining names), and for each row of
    ``labels`` the merged row it goes to."""
    if remaining:
        columns = [labels.names.index(n) for n in remaining]
        merged, index = group_rows(labels.array[:, columns])
        return Labels._trusted(tuple(remaining), merged, like=labels.values), index
    index = np.zeros(len(labels), dtype=np.int64)
    return Labels._trusted(("_",), np.zeros((1, 1), dtype=np.int32), like=labels.values), index


def reduce_groups(values, index: np.ndarray, n_new: int, count, reduction: str, add, spread):
    """The ``reduction`` of each group of ``values`` (group of each entry: ``index``;
    ``count`` entries a group, broadcastable). ``add(n_new, x, index)`` sums the
    entries of each group, ``spread(group_values, index)`` gives each entry its
    group's value. Returns the reduced values, the group means (None for a sum)
    and the standard deviations (None unless ``reduction`` is ``std``)."""
    total = add(n_new, values, index)
    if reduction == "sum":
        return total, None, None
    mean = total / count
    if reduction == "mean":
        return mean, mean, None
    centered = values - spread(mean, index)
    var = add(n_new, centered * centered, index) / count
    if reduction == "var":
        return var, mean, None
    std = _dispatch.sqrt(var)
    return std, mean, std
