"""Array functions for numpy and torch arrays alike, used by the operations.

torch is only imported when a torch array is seen, so numpy users never load it.
"""

from __future__ import annotations

import numpy as np

from ..tensor._array import is_torch


def _torch():
    import torch

    return torch


def index_like(index: np.ndarray, like):
    """`index` (numpy int64) as an index usable on `like`."""
    if is_torch(like):
        return _torch().from_numpy(np.ascontiguousarray(index, dtype=np.int64)).to(like.device)
    return index


def take(array, index: np.ndarray, axis: int = 0):
    """`array` at the positions `index` along `axis` (a copy)."""
    if is_torch(array):
        return _torch().index_select(array, axis, index_like(index, array))
    return np.take(array, index, axis=axis)


def zeros_like(array, shape):
    if is_torch(array):
        return _torch().zeros(tuple(shape), dtype=array.dtype, device=array.device)
    return np.zeros(tuple(shape), dtype=array.dtype)


def ones_like(array, shape):
    if is_torch(array):
        return _torch().ones(tuple(shape), dtype=array.dtype, device=array.device)
    return np.ones(tuple(shape), dtype=array.dtype)


def empty_like(array, shape):
    if is_torch(array):
        return _torch().empty(tuple(shape), dtype=array.dtype, device=array.device)
    return np.empty(tuple(shape), dtype=array.dtype)



def abs(array):
    return array.abs() if is_torch(array) else np.abs(array)


def sign(array):
    return array.sign() if is_torch(array) else np.sign(array)


def sqrt(array):
    return array.sqrt() if is_torch(array) else np.sqrt(array)


def sum(array, axis=None):
    """`np.sum` / `torch.sum` (metatensor-operations' `_dispatch.sum`, which its tests call)."""
    if is_torch(array):
        return _torch().sum(array, dim=axis)
    return np.sum(array, axis=axis).astype(array.dtype)


def copy(array):
    """A copy of a numpy array or torch tensor (metatensor-operations' `_dispatch.copy`)."""
    return array.clone() if is_torch(array) else array.copy()


def all(array) -> bool:
    return bool(array.all()) if is_torch(array) else bool(np.all(array))


def allclose(a, b, rtol: float, atol: float, equal_nan: bool) -> bool:
    if is_torch(a):
        return bool(_torch().allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))
    return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def concatenate(arrays, axis: int = 0):
    if is_torch(arrays[0]):
        return _torch().cat(list(arrays), dim=axis)
    return np.concatenate(arrays, axis=axis)




def rows_add(n_rows: int, values, index: np.ndarray, sorted_index: bool = False):
    """`result[index[i]] += values[i]` into a new zero array of `n_rows` rows.

    The rows of each group are added one after the other in their order, as
    metatensor-operations does (`np.add.at`, torch's `index_add`), so that sums agree
    with theirs, and with `np.sum(rows, axis=0)`, to the last bit.
    """
    shape = (n_rows, *values.shape[1:])
    if is_torch(values):
        result = zeros_like(values, shape)
        return result.index_add(0, index_like(index, values), values)
    if len(index) == 0:
        return np.zeros(shape, dtype=values.dtype)
    if not sorted_index and np.any(index[1:] < index[:-1]):
        order = np.argsort(index, kind="stable")
        index = index[order]
        values = values[order]
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    sums = _sequential_sums(values, starts, 0)
    if len(starts) == n_rows:
        return sums
    result = np.zeros(shape, dtype=values.dtype)
    result[index[starts]] = sums
    return result


def columns_add(n_columns: int, values, index: np.ndarray):
    """`result[..., index[i]] += values[..., i]` into a new zero array (columns of a group
    added one after the other, as `rows_add`)."""
    shape = (*values.shape[:-1], n_columns)
    if is_torch(values):
        result = zeros_like(values, shape)
        return result.index_add(values.ndim - 1, index_like(index, values), values)
    if values.shape[-1] == 0:
        return np.zeros(shape, dtype=values.dtype)
    if np.any(index[1:] < index[:-1]):
        order = np.argsort(index, kind="stable")
        index = index[order]
        values = values[..., order]
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    sums = np.moveaxis(_sequential_sums(np.moveaxis(values, -1, 0), starts, 0), 0, -1)
    if len(starts) == n_columns:
        return sums
    result = np.zeros(shape, dtype=values.dtype)
    result[..., index[starts]] = sums
    return result


def _sequential_sums(values: np.ndarray, starts: np.ndarray, axis: int) -> np.ndarray:
    """Sums of the consecutive groups of rows beginning at `starts`, each group added row after
    row in order (not numpy's pairwise or `reduceat` order)."""
    lengths = np.diff(np.r_[starts, len(values)])
    longest = int(lengths.max())
    if len(starts) * 4 < longest:
        # few long groups: an accumulation is sequential by definition (a reduction may be
        # pairwise when the group axis is the contiguous one), its last row is the sum
        return np.stack([np.add.accumulate(values[a:a + n], axis=0)[-1] for a, n in zip(starts, lengths)])
    # many short groups: add the k-th row of every group that has one, k = 1, 2, ...
    by_length = np.argsort(-lengths, kind="stable")
    result = values[starts[by_length]]
    descending = lengths[by_length]
    for k in range(1, longest):
        count = int(np.searchsorted(-descending, -k, side="left"))  # groups longer than k
        result[:count] += values[starts[by_length[:count]] + k]
    ordered = np.empty_like(result)
    ordered[by_length] = result
    return ordered


def as_like(array: np.ndarray, like):
    """A numpy array converted to the dtype/library/device of `like`."""
    if is_torch(like):
        return _torch().from_numpy(np.ascontiguousarray(array)).to(dtype=like.dtype, device=like.device)
    return array.astype(like.dtype, copy=False)


def nan_to_zero(array):
    if is_torch(array):
        return _torch().nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
    return np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
