"""Small helpers that build result blocks, shared by the operations."""

from __future__ import annotations

from ..tensor import TensorBlock
from . import _dispatch
from ._utils import no_gradients_of_gradients


def new_block(values, like: TensorBlock, samples=None, components=None, properties=None) -> TensorBlock:
    """A block with `values` and the metadata of `like` (unless given)."""
    return TensorBlock(
        values,
        like.samples if samples is None else samples,
        like.components if components is None else components,
        like.properties if properties is None else properties,
    )


def values_at_gradient_samples(block: TensorBlock, gradient: TensorBlock, values=None):
    """`values` (default: the block's) at the rows of `gradient`, broadcastable against it."""
    values = block.values if values is None else values
    rows = gradient.samples.array[:, 0]
    extra = len(gradient.values.shape) - len(values.shape)
    picked = _dispatch.take(values, rows.astype("int64"), axis=0)
    return picked.reshape((-1, *([1] * extra), *values.shape[1:]))


def map_gradients(block: TensorBlock, result: TensorBlock, function) -> TensorBlock:
    """Add to `result` each gradient of `block` with its values replaced by `function(parameter, gradient)`."""
    for parameter, gradient in block.gradients():
        no_gradients_of_gradients(gradient)
        result.add_gradient(parameter, new_block(function(parameter, gradient), gradient))
    return result


def shallow_copy(block: TensorBlock) -> TensorBlock:
    """A new block sharing the arrays and labels of `block` (gradients too)."""
    result = new_block(block.values, block)
    for parameter, gradient in block.gradients():
        no_gradients_of_gradients(gradient)
        result.add_gradient(parameter, new_block(gradient.values, gradient))
    return result

