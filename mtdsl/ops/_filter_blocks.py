"""`filter_blocks`: the blocks of a TensorMap whose keys match a selection.

Gradients: kept with their blocks, unchanged.
"""

from __future__ import annotations

from ..tensor import Labels, TensorMap
from ._drop_blocks import _check, keep_blocks
from ._utils import select


def filter_blocks(tensor: TensorMap, keys: Labels, copy: bool = False) -> TensorMap:
    """Only the blocks of ``tensor`` whose keys match ``keys`` (on the names of ``keys``).

    :param tensor: the TensorMap
    :param keys: the keys to keep; may name only some of the key dimensions
    :param copy: copy the kept blocks' arrays instead of sharing them
    """
    _check(tensor, keys, copy)
    return keep_blocks(tensor, select(tensor.keys, keys), copy)
