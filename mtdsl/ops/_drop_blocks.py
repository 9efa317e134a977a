"""`drop_blocks` and `drop_empty_blocks`: TensorMaps without some of their blocks.

The kept blocks share their arrays with the input unless ``copy=True``.
Gradients: kept with their blocks, unchanged.
"""

from __future__ import annotations

import numpy as np

from ..tensor import Labels, TensorMap
from ._block import shallow_copy
from ._utils import check_tensor_map, select


def keep_blocks(tensor: TensorMap, indices, copy: bool) -> TensorMap:
    """The blocks of `tensor` at `indices` (in that order), shared or copied."""
    indices = np.asarray(indices, dtype=np.int64)
    keys = Labels._trusted(tuple(tensor.keys.names), tensor.keys.array[indices], like=tensor.keys.values)
    blocks = tensor.blocks_by_id(indices.tolist())
    blocks = [b.copy() if copy else shallow_copy(b) for b in blocks]
    return TensorMap(keys, blocks)


def _check(tensor, keys, copy) -> None:
    check_tensor_map(tensor, "tensor")
    if keys is not None and not isinstance(keys, Labels):
        raise TypeError(f"`keys` must be Labels, not {type(keys)}")
    if not isinstance(copy, bool):
        raise TypeError(f"`copy` must be a boolean, not {type(copy)}")


def drop_blocks(tensor: TensorMap, keys: Labels, copy: bool = False) -> TensorMap:
    """``tensor`` without the blocks whose keys match ``keys`` (on the names of ``keys``).

    :param tensor: the TensorMap
    :param keys: the keys to drop; may name only some of the key dimensions
    :param copy: copy the kept blocks' arrays instead of sharing them
    """
    _check(tensor, keys, copy)
    dropped = np.zeros(len(tensor.keys), dtype=bool)
    dropped[select(tensor.keys, keys)] = True
    return keep_blocks(tensor, np.nonzero(~dropped)[0], copy)


def drop_empty_blocks(tensor: TensorMap, copy: bool = False) -> TensorMap:
    """``tensor`` without the blocks with no values (an axis of length 0)."""
    _check(tensor, None, copy)
    kept = [i for i, block in enumerate(tensor.blocks()) if all(d != 0 for d in block.values.shape)]
    return keep_blocks(tensor, kept, copy)
