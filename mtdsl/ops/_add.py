"""`add`: the sum of two TensorMaps with the same metadata, or of a TensorMap and a scalar."""

from __future__ import annotations

from typing import Union

from ..tensor import TensorBlock, TensorMap
from . import _checks
from ._block import map_gradients, new_block
from ._parallel import map_blocks
from ._utils import (
    check_blocks_raise,
    check_same_gradients_raise,
    check_same_keys_raise,
    check_tensor_map,
    key_name,
    matching_blocks,
)


def _add_block_constant(block: TensorBlock, constant: float) -> TensorBlock:
    result = new_block(block.values + constant, block)
    return map_gradients(block, result, lambda parameter, gradient: gradient.values)


def _add_block_block(block_1: TensorBlock, block_2: TensorBlock) -> TensorBlock:
    result = new_block(block_1.values + block_2.values, block_1)
    return map_gradients(
        block_1, result, lambda parameter, gradient: gradient.values + block_2.gradient(parameter).values
    )


def add(A: TensorMap, B: Union[float, int, TensorMap]) -> TensorMap:
    r"""A new TensorMap with the values of ``A + B``.

    ``B`` is a scalar or a TensorMap with the same metadata as ``A`` (its keys may
    come in another order; samples, components, properties and gradients must match).

    Gradients: :math:`\nabla(A + B) = \nabla A` for a scalar ``B``,
    :math:`\nabla(A + B) = \nabla A + \nabla B` for a TensorMap ``B``.

    :param A: first TensorMap
    :param B: scalar or TensorMap with the same metadata as ``A``
    :return: a TensorMap with the metadata of ``A``
    """
    check_tensor_map(A, "A")
    if isinstance(B, (float, int)):
        blocks = map_blocks(lambda block: _add_block_constant(block, float(B)), A.blocks())
    elif isinstance(B, TensorMap):
        blocks_B = _checked_pairs(A, B, "add")
        blocks = map_blocks(_add_block_block, A.blocks(), blocks_B)
    else:
        raise TypeError(f"`B` must be a TensorMap or a scalar value, not {type(B)}")
    return TensorMap(A.keys, blocks)


def _checked_pairs(A: TensorMap, B: TensorMap, fname: str) -> list[TensorBlock]:
    """The blocks of `B` matching those of `A`, after checking all metadata agrees."""
    check_same_keys_raise(A, B, fname)
    blocks_B = matching_blocks(A, B)
    if not _checks.checks_enabled():
        return blocks_B
    for index, (block_A, block_B) in enumerate(zip(A.blocks(), blocks_B)):
        key = key_name(A, index)
        check_blocks_raise(block_A, block_B, fname, key=key)
        check_same_gradients_raise(block_A, block_B, fname, key=key)
    return blocks_B
