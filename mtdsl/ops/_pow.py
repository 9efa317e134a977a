"""`pow`: the element-wise power of a TensorMap by a scalar."""

from __future__ import annotations

from typing import Union

from ..tensor import TensorBlock, TensorMap
from ._block import map_gradients, new_block, values_at_gradient_samples
from ._parallel import map_blocks
from ._utils import check_tensor_map


def _pow_block_constant(block: TensorBlock, constant: float) -> TensorBlock:
    result = new_block(block.values**constant, block)

    def gradient_values(parameter, gradient):
        return constant * gradient.values * values_at_gradient_samples(block, gradient) ** (constant - 1)

    return map_gradients(block, result, gradient_values)


def pow(A: TensorMap, B: Union[float, int]) -> TensorMap:
    r"""A new TensorMap with the values of ``A`` raised to the scalar power ``B``.

    Gradients: :math:`\nabla(A^B) = B A^{B - 1} \nabla A`.

    :param A: the TensorMap
    :param B: the exponent, a scalar
    :return: a TensorMap with the metadata of ``A``
    """
    check_tensor_map(A, "A")
    if not isinstance(B, (float, int)):
        raise TypeError(f"`B` must be a scalar value, not {type(B)}")
    return TensorMap(A.keys, map_blocks(lambda block: _pow_block_constant(block, float(B)), A.blocks()))
