"""`remove_gradients`: the same TensorMap without some (or all) of its gradient blocks."""

from __future__ import annotations

from typing import List, Optional

from ..tensor import TensorBlock, TensorMap
from ._utils import no_gradients_of_gradients


def remove_gradients_block(block: TensorBlock, remove: Optional[List[str]] = None) -> TensorBlock:
    """``block`` (arrays shared) without the gradients listed in ``remove`` (default: all)."""
    if remove is None:
        remove = block.gradients_list()
    result = TensorBlock(block.values, block.samples, block.components, block.properties)
    for parameter, gradient in block.gradients():
        if parameter in remove:
            continue
        no_gradients_of_gradients(gradient)
        result.add_gradient(
            parameter, TensorBlock(gradient.values, gradient.samples, gradient.components, gradient.properties)
        )
    return result


def remove_gradients(tensor: TensorMap, remove: Optional[List[str]] = None) -> TensorMap:
    """``tensor`` (arrays shared) without the gradients listed in ``remove`` (default: all)."""
    if remove is None and len(tensor) != 0:
        remove = tensor.block(0).gradients_list()
    return TensorMap(tensor.keys, [remove_gradients_block(b, remove) for b in tensor.blocks()])
