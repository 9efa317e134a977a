"""`dot`: contract the properties of two TensorMaps, ``A @ B.T`` block by block.

Gradients (only ``tensor_1`` may have gradients):
:math:`\\nabla (A B^T) = (\\nabla A) B^T`.
"""

from __future__ import annotations

from ..tensor import TensorBlock, TensorMap
from ._parallel import map_blocks
from ._utils import check_same_keys_raise, check_tensor_map, key_name, labels_difference, matching_blocks
from ._utils import no_gradients_of_gradients


def _matmul_transposed(a, b):
    """``a @ b.T`` over the last axis of `a`, as a single 2-D product."""
    # numpy's batched matmul beats one tall 2-D BLAS call for these thin shapes
    return a @ b.T


def _dot_block(block_1: TensorBlock, block_2: TensorBlock, key: str = "") -> TensorBlock:
    difference = labels_difference(block_1.properties, block_2.properties)
    if difference:
        where = f" (block {key})" if key else ""
        raise ValueError(f"TensorBlocks in `dot` should have the same properties{where}: {difference}")
    if len(block_2.components) > 0:
        raise ValueError("the second TensorMap in `dot` should not have components")
    if len(block_2.gradients_list()) > 0:
        raise ValueError("the second TensorMap in `dot` should not have gradients")
    result = TensorBlock(
        _matmul_transposed(block_1.values, block_2.values), block_1.samples, block_1.components, block_2.samples
    )
    for parameter, gradient in block_1.gradients():
        no_gradients_of_gradients(gradient)
        values = _matmul_transposed(gradient.values, block_2.values)
        result.add_gradient(parameter, TensorBlock(values, gradient.samples, gradient.components, block_2.samples))
    return result


def dot(tensor_1: TensorMap, tensor_2: TensorMap) -> TensorMap:
    """The product of the values of ``tensor_1`` with the transposed values of
    ``tensor_2``, contracting their (identical) properties.

    The result has the samples and components of ``tensor_1`` and, as properties,
    the samples of ``tensor_2``, which must have no components and no gradients.
    """
    check_tensor_map(tensor_1, "tensor_1")
    check_tensor_map(tensor_2, "tensor_2")
    check_same_keys_raise(tensor_1, tensor_2, "dot")
    keys = tensor_1.keys
    names = [key_name(tensor_1, i) for i in range(len(keys))]
    return TensorMap(keys, map_blocks(_dot_block, tensor_1.blocks(), matching_blocks(tensor_1, tensor_2), names))
