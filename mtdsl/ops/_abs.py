"""`abs`: the element-wise absolute value of a TensorMap."""

from __future__ import annotations

from ..tensor import TensorBlock, TensorMap
from . import _dispatch
from ._block import map_gradients, new_block, values_at_gradient_samples
from ._parallel import map_blocks
from ._utils import check_tensor_map


def _abs_block(block: TensorBlock) -> TensorBlock:
    result = new_block(_dispatch.abs(block.values), block)
    if not block.gradients_list():
        return result
    sign = _dispatch.sign(block.values)

    def gradient_values(parameter, gradient):
        return gradient.values * values_at_gradient_samples(block, gradient, sign)

    return map_gradients(block, result, gradient_values)


def abs(A: TensorMap) -> TensorMap:
    r"""A new TensorMap with the absolute values of ``A``.

    Gradients: :math:`\nabla |A| = \mathrm{sign}(A) \nabla A` (zero where ``A`` is zero).

    :param A: the TensorMap
    :return: a TensorMap with the metadata of ``A``
    """
    check_tensor_map(A, "A")
    return TensorMap(A.keys, map_blocks(_abs_block, A.blocks()))
