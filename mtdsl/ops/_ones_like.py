"""`ones_like`: a TensorMap with the metadata of another one, filled with ones."""

from __future__ import annotations

from typing import List, Optional, Union

from ..tensor import TensorBlock, TensorMap
from . import _dispatch
from ._like import like_block, like_map


def _fill(array):
    return _dispatch.ones_like(array, array.shape)


def ones_like_block(
    block: TensorBlock, gradients: Optional[Union[List[str], str]] = None, requires_grad: bool = False
) -> TensorBlock:
    """A block with the metadata, dtype and device of ``block``, filled with ones.

    :param gradients: which gradients to include (default: all of them)
    :param requires_grad: torch only, whether the new values require grad
    """
    return like_block(block, gradients, requires_grad, _fill, "ones_like")


def ones_like(
    tensor: TensorMap, gradients: Optional[Union[List[str], str]] = None, requires_grad: bool = False
) -> TensorMap:
    """A TensorMap with the metadata, dtype and device of ``tensor``, filled with ones.

    :param gradients: which gradients to include (default: all of them)
    :param requires_grad: torch only, whether the new values require grad
    """
    return like_map(tensor, gradients, requires_grad, _fill, "ones_like")
