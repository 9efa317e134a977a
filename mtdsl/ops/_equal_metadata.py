"""`equal_metadata` and friends: do two TensorMaps (or blocks) have the same metadata?"""

from __future__ import annotations

from typing import List, Union

from ..tensor import TensorBlock, TensorMap
from ._utils import (
    NotEqualError,
    check_blocks_impl,
    check_same_gradients_impl,
    check_same_keys_impl,
    key_name,
    matching_blocks,
)


def _equal_metadata_block_impl(
    block_1, block_2, check: Union[List[str], str], check_gradients: bool, key: str = ""
) -> str:
    if not isinstance(block_1, TensorBlock):
        return f"`block_1` must be a TensorBlock, not {type(block_1)}"
    if not isinstance(block_2, TensorBlock):
        return f"`block_2` must be a TensorBlock, not {type(block_2)}"
    message = check_blocks_impl(block_1, block_2, "equal_metadata", check, key)
    if message or not check_gradients:
        return message
    return check_same_gradients_impl(block_1, block_2, "equal_metadata", check, key)


def _equal_metadata_impl(tensor_1, tensor_2, check: Union[List[str], str], check_gradients: bool) -> str:
    if not isinstance(tensor_1, TensorMap):
        return f"`tensor_1` must be a TensorMap, not {type(tensor_1)}"
    if not isinstance(tensor_2, TensorMap):
        return f"`tensor_2` must be a TensorMap, not {type(tensor_2)}"
    message = check_same_keys_impl(tensor_1, tensor_2, "equal_metadata")
    if message:
        return message
    for index, (block_1, block_2) in enumerate(zip(tensor_1.blocks(), matching_blocks(tensor_1, tensor_2))):
        message = _equal_metadata_block_impl(block_1, block_2, check, check_gradients, key_name(tensor_1, index))
        if message:
            return message
    return ""


def equal_metadata(
    tensor_1: TensorMap, tensor_2: TensorMap, check: Union[List[str], str] = "all", check_gradients: bool = True
) -> bool:
    """Whether two TensorMaps have the same keys (in any order) and the same metadata.

    ``check`` is ``'all'`` or a list among ``'samples'``, ``'components'``,
    ``'properties'``: the metadata compared in each block (same values, same order).
    With ``check_gradients``, the gradients' parameters and the same metadata of
    each gradient block are compared too.
    """
    return not _equal_metadata_impl(tensor_1, tensor_2, check, check_gradients)


def equal_metadata_raise(
    tensor_1: TensorMap, tensor_2: TensorMap, check: Union[List[str], str] = "all", check_gradients: bool = True
) -> None:
    """Raise a `NotEqualError` naming the block key, the axis and the first differing
    label if two TensorMaps do not have the same metadata (see `equal_metadata`)."""
    message = _equal_metadata_impl(tensor_1, tensor_2, check, check_gradients)
    if message:
        raise NotEqualError(message)


def equal_metadata_block(
    block_1: TensorBlock, block_2: TensorBlock, check: Union[List[str], str] = "all", check_gradients: bool = True
) -> bool:
    """Whether two TensorBlocks have the same metadata (see `equal_metadata`)."""
    return not _equal_metadata_block_impl(block_1, block_2, check, check_gradients)


def equal_metadata_block_raise(
    block_1: TensorBlock, block_2: TensorBlock, check: Union[List[str], str] = "all", check_gradients: bool = True
) -> None:
    """Raise a `NotEqualError` if two TensorBlocks do not have the same metadata."""
    message = _equal_metadata_block_impl(block_1, block_2, check, check_gradients)
    if message:
        raise NotEqualError(message)
