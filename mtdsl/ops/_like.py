"""Shared by `zeros_like`, `ones_like`, `empty_like`, `random_uniform_like`."""

from __future__ import annotations

from typing import List, Optional, Union

from ..tensor import TensorBlock, TensorMap
from ..tensor._array import is_torch
from ._utils import check_gradient_presence_raise, no_gradients_of_gradients


def like_block(block: TensorBlock, gradients, requires_grad: bool, fill, fname: str) -> TensorBlock:
    """A block with the metadata of `block` and values `fill(array)`."""
    result = TensorBlock(_grad(fill(block.values), requires_grad), block.samples, block.components, block.properties)
    if isinstance(gradients, str):
        gradients = [gradients]
    if gradients is None:
        gradients = block.gradients_list()
    else:
        check_gradient_presence_raise(block, list(gradients), fname)
    for parameter in gradients:
        gradient = block.gradient(parameter)
        no_gradients_of_gradients(gradient)
        values = _grad(fill(gradient.values), requires_grad)
        result.add_gradient(parameter, TensorBlock(values, gradient.samples, gradient.components, gradient.properties))
    return result


def like_map(tensor: TensorMap, gradients: Optional[Union[List[str], str]], requires_grad: bool, fill, fname: str):
    return TensorMap(tensor.keys, [like_block(b, gradients, requires_grad, fill, fname) for b in tensor.blocks()])


def _grad(array, requires_grad: bool):
    if requires_grad and is_torch(array):
        return array.requires_grad_(True)
    return array
