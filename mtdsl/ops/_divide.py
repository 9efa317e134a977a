"""`divide`: the element-wise quotient of two TensorMaps, or of a TensorMap and a scalar."""

from __future__ import annotations

from typing import Union

from ..tensor import TensorBlock, TensorMap
from ._add import _checked_pairs
from ._block import map_gradients, new_block, values_at_gradient_samples
from ._parallel import map_blocks
from ._utils import check_tensor_map


def _divide_block_constant(block: TensorBlock, constant: float) -> TensorBlock:
    result = new_block(block.values / constant, block)
    return map_gradients(block, result, lambda parameter, gradient: gradient.values / constant)


def _divide_block_block(block_1: TensorBlock, block_2: TensorBlock) -> TensorBlock:
    result = new_block(block_1.values / block_2.values, block_1)

    def gradient_values(parameter, gradient_1):
        gradient_2 = block_2.gradient(parameter)
        values_1 = values_at_gradient_samples(block_1, gradient_1)
        values_2 = values_at_gradient_samples(block_2, gradient_2)
        return gradient_1.values / values_2 - values_1 * gradient_2.values / values_2**2

    return map_gradients(block_1, result, gradient_values)


def divide(A: TensorMap, B: Union[float, int, TensorMap]) -> TensorMap:
    r"""A new TensorMap with the element-wise quotient ``A / B``.

    ``B`` is a scalar or a TensorMap with the same metadata as ``A``.

    Gradients: :math:`\nabla(A / B) = \nabla A / B` for a scalar ``B``,
    :math:`\nabla(A / B) = \nabla A / B - A \nabla B / B^2` for a TensorMap ``B``.

    :param A: first TensorMap
    :param B: scalar or TensorMap with the same metadata as ``A``
    :return: a TensorMap with the metadata of ``A``
    """
    check_tensor_map(A, "A")
    if isinstance(B, (float, int)):
        blocks = map_blocks(lambda block: _divide_block_constant(block, float(B)), A.blocks())
    elif isinstance(B, TensorMap):
        blocks_B = _checked_pairs(A, B, "divide")
        blocks = map_blocks(_divide_block_block, A.blocks(), blocks_B)
    else:
        raise TypeError(f"`B` must be a metatensor TensorMap or a scalar value, not {type(B)}")
    return TensorMap(A.keys, blocks)
