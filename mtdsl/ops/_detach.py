"""`detach`: the same TensorMap with torch values detached from the autograd graph."""

from __future__ import annotations

from ..tensor import TensorBlock, TensorMap
from ..tensor._array import is_torch
from ._utils import no_gradients_of_gradients


def _detach(array):
    return array.detach() if is_torch(array) else array


def detach_block(block: TensorBlock) -> TensorBlock:
    """``block`` with its values and gradients detached (numpy arrays are returned as they are)."""
    result = TensorBlock(_detach(block.values), block.samples, block.components, block.properties)
    for parameter, gradient in block.gradients():
        no_gradients_of_gradients(gradient)
        result.add_gradient(
            parameter, TensorBlock(_detach(gradient.values), gradient.samples, gradient.components, gradient.properties)
        )
    return result


def detach(tensor: TensorMap) -> TensorMap:
    """``tensor`` with every array detached from the autograd graph (no-op for numpy)."""
    return TensorMap(tensor.keys, [detach_block(b) for b in tensor.blocks()])
