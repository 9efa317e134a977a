"""`subtract`: the difference of two TensorMaps, or of a TensorMap and a scalar."""

from __future__ import annotations

from typing import Union

from ..tensor import TensorBlock, TensorMap
from ._add import _add_block_constant, _checked_pairs
from ._block import map_gradients, new_block
from ._parallel import map_blocks
from ._utils import check_tensor_map


def _subtract_block_block(block_1: TensorBlock, block_2: TensorBlock) -> TensorBlock:
    result = new_block(block_1.values - block_2.values, block_1)
    return map_gradients(
        block_1, result, lambda parameter, gradient: gradient.values - block_2.gradient(parameter).values
    )


def subtract(A: TensorMap, B: Union[float, int, TensorMap]) -> TensorMap:
    r"""A new TensorMap with the values of ``A - B``.

    ``B`` is a scalar or a TensorMap with the same metadata as ``A``.

    Gradients: :math:`\nabla(A - B) = \nabla A` for a scalar ``B``,
    :math:`\nabla(A - B) = \nabla A - \nabla B` for a TensorMap ``B``.

    :param A: first TensorMap
    :param B: scalar or TensorMap with the same metadata as ``A``
    :return: a TensorMap with the metadata of ``A``
    """
    check_tensor_map(A, "A")
    if isinstance(B, (float, int)):
        blocks = map_blocks(lambda block: _add_block_constant(block, -float(B)), A.blocks())
    elif isinstance(B, TensorMap):
        blocks_B = _checked_pairs(A, B, "subtract")
        blocks = map_blocks(_subtract_block_block, A.blocks(), blocks_B)
    else:
        raise TypeError(f"`B` must be a metatensor TensorMap or a scalar value, not {type(B)}")
    return TensorMap(A.keys, blocks)
