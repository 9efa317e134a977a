"""`equal` and friends: are two TensorMaps (or blocks) exactly equal, metadata and values?"""

from __future__ import annotations

from ..tensor import TensorBlock, TensorMap
from . import _dispatch
from ._utils import (
    NotEqualError,
    check_blocks_impl,
    check_same_gradients_impl,
    check_same_keys_impl,
    key_name,
    matching_blocks,
)


def _compare_blocks(block_1: TensorBlock, block_2: TensorBlock, fname: str, same, what: str, key: str = "") -> str:
    """Shared by `equal` and `allclose`: shapes, metadata, then values with `same(a, b)`
    (metatensor-operations' order and wording)."""
    where = f" in block {key}" if key else ""
    if tuple(block_1.values.shape) != tuple(block_2.values.shape):
        return (f"values shapes are different{where}: {list(block_1.values.shape)} and "
                f"{list(block_2.values.shape)}")
    message = check_blocks_impl(block_1, block_2, fname, key=key)
    if message:
        return message
    message = check_same_gradients_impl(block_1, block_2, fname, key=key)
    if message:
        return message
    if not same(block_1.values, block_2.values):
        return f"values are not {what}{where}"
    for parameter, gradient_1 in block_1.gradients():
        if not same(gradient_1.values, block_2.gradient(parameter).values):
            return f"gradient '{parameter}' values are not {what}{where}"
    return ""


def _compare_maps(tensor_1: TensorMap, tensor_2: TensorMap, fname: str, same, what: str) -> str:
    message = check_same_keys_impl(tensor_1, tensor_2, fname)
    if message:
        return f"the tensor maps have different keys: {message}"
    for index, (block_1, block_2) in enumerate(zip(tensor_1.blocks(), matching_blocks(tensor_1, tensor_2))):
        message = _compare_blocks(block_1, block_2, fname, same, what)
        if message:
            return f"blocks for key {key_name(tensor_1, index)} are different: {message}"
    return ""


def _same_values(a, b) -> bool:
    return tuple(a.shape) == tuple(b.shape) and _dispatch.all(a == b)


def equal(tensor_1: TensorMap, tensor_2: TensorMap) -> bool:
    """Whether two TensorMaps have the same metadata and exactly the same values and gradients."""
    return not _compare_maps(tensor_1, tensor_2, "equal", _same_values, "equal")


def equal_raise(tensor_1: TensorMap, tensor_2: TensorMap) -> None:
    """Raise a `NotEqualError` saying where two TensorMaps differ (see `equal`)."""
    message = _compare_maps(tensor_1, tensor_2, "equal", _same_values, "equal")
    if message:
        raise NotEqualError(message)


def equal_block(block_1: TensorBlock, block_2: TensorBlock) -> bool:
    """Whether two TensorBlocks are exactly equal (see `equal`)."""
    return not _compare_blocks(block_1, block_2, "equal", _same_values, "equal")


def equal_block_raise(block_1: TensorBlock, block_2: TensorBlock) -> None:
    """Raise a `NotEqualError` saying where two TensorBlocks differ (see `equal`)."""
    message = _compare_blocks(block_1, block_2, "equal", _same_values, "equal")
    if message:
        raise NotEqualError(message)
