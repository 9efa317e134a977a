"""`random_uniform_like`: a TensorMap with the metadata of another one, uniform in [0, 1)."""

from __future__ import annotations

from typing import List, Optional, Union

import numpy as np

from ..tensor import TensorBlock, TensorMap
from ..tensor._array import is_torch
from ._like import like_block, like_map


def _fill(array):
    if is_torch(array):
        import torch

        return torch.rand(tuple(array.shape), dtype=array.dtype, device=array.device)
    return np.random.rand(*array.shape).astype(array.dtype)


def random_uniform_like_block(
    block: TensorBlock, gradients: Optional[Union[List[str], str]] = None, requires_grad: bool = False
) -> TensorBlock:
    """A block with the metadata of ``block`` and values drawn uniformly in [0, 1)
    (numpy's global generator, or torch's)."""
    return like_block(block, gradients, requires_grad, _fill, "random_uniform_like")


def random_uniform_like(
    tensor: TensorMap, gradients: Optional[Union[List[str], str]] = None, requires_grad: bool = False
) -> TensorMap:
    """A TensorMap with the metadata of ``tensor`` and values drawn uniformly in [0, 1)."""
    return like_map(tensor, gradients, requires_grad, _fill, "random_uniform_like")
