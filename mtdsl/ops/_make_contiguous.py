"""`make_contiguous` and `is_contiguous`: C-contiguous arrays in every block."""

from __future__ import annotations

import numpy as np

from ..tensor import TensorBlock, TensorMap
from ..tensor._array import is_torch
from ._utils import no_gradients_of_gradients


def _contiguous(array):
    return array.contiguous() if is_torch(array) else np.ascontiguousarray(array)


def _is_contiguous(array) -> bool:
    return array.is_contiguous() if is_torch(array) else bool(array.flags["C_CONTIGUOUS"])


def make_contiguous_block(block: TensorBlock) -> TensorBlock:
    """``block`` with C-contiguous values and gradients (copied only where needed)."""
    result = TensorBlock(_contiguous(block.values), block.samples, block.components, block.properties)
    for parameter, gradient in block.gradients():
        no_gradients_of_gradients(gradient)
        values = _contiguous(gradient.values)
        result.add_gradient(parameter, TensorBlock(values, gradient.samples, gradient.components, gradient.properties))
    return result


def make_contiguous(tensor: TensorMap) -> TensorMap:
    """``tensor`` with C-contiguous arrays in every block (copied only where needed)."""
    return TensorMap(tensor.keys, [make_contiguous_block(b) for b in tensor.blocks()])


def is_contiguous_block(block: TensorBlock) -> bool:
    """Whether the values and gradients of ``block`` are C-contiguous."""
    if not _is_contiguous(block.values):
        return False
    for _, gradient in block.gradients():
        no_gradients_of_gradients(gradient)
        if not _is_contiguous(gradient.values):
            return False
    return True


def is_contiguous(tensor: TensorMap) -> bool:
    """Whether every array of ``tensor`` is C-contiguous."""
    return all(is_contiguous_block(b) for b in tensor.blocks())
