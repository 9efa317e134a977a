"""`requires_grad`: switch torch autograd on (or off) for every array of a TensorMap."""

from __future__ import annotations

import warnings

from ..tensor import TensorBlock, TensorMap
from ..tensor._array import is_torch
from ._utils import no_gradients_of_gradients


def _set(array, value: bool):
    if is_torch(array):
        if value and array.requires_grad:
            warnings.warn("setting `requires_grad=True` again on a Tensor will detach the Tensor", stacklevel=3)
        return array.detach().requires_grad_(value)
    if value:
        warnings.warn("`requires_grad=True` does nothing for numpy arrays", stacklevel=3)
    return array


def requires_grad_block(block: TensorBlock, requires_grad: bool = True) -> TensorBlock:
    """``block`` with values and gradients detached and set to ``requires_grad``."""
    result = TensorBlock(_set(block.values, requires_grad), block.samples, block.components, block.properties)
    for parameter, gradient in block.gradients():
        no_gradients_of_gradients(gradient)
        values = _set(gradient.values, requires_grad)
        result.add_gradient(parameter, TensorBlock(values, gradient.samples, gradient.components, gradient.properties))
    return result


def requires_grad(tensor: TensorMap, requires_grad: bool = True) -> TensorMap:
    """``tensor`` with every array detached and set to ``requires_grad`` (torch only;
    numpy arrays are kept, with a warning when asking for ``True``)."""
    return TensorMap(tensor.keys, [requires_grad_block(b, requires_grad) for b in tensor.blocks()])
