"""`allclose` and friends: are two TensorMaps (or blocks) equal up to a tolerance?"""

from __future__ import annotations

from ..tensor import TensorBlock, TensorMap
from . import _dispatch
from ._equal import _compare_blocks, _compare_maps
from ._utils import NotEqualError


def _close(rtol: float, atol: float, equal_nan: bool):
    def same(a, b) -> bool:
        return tuple(a.shape) == tuple(b.shape) and _dispatch.allclose(a, b, rtol, atol, equal_nan)

    return same


def allclose(
    tensor_1: TensorMap, tensor_2: TensorMap, rtol: float = 1e-13, atol: float = 1e-12, equal_nan: bool = False
) -> bool:
    """Whether two TensorMaps have the same metadata and values (and gradients) within
    ``|a - b| <= atol + rtol * |b|``."""
    return not _compare_maps(tensor_1, tensor_2, "allclose", _close(rtol, atol, equal_nan), "allclose")


def allclose_raise(
    tensor_1: TensorMap, tensor_2: TensorMap, rtol: float = 1e-13, atol: float = 1e-12, equal_nan: bool = False
) -> None:
    """Raise a `NotEqualError` saying where two TensorMaps differ (see `allclose`)."""
    message = _compare_maps(tensor_1, tensor_2, "allclose", _close(rtol, atol, equal_nan), "allclose")
    if message:
        raise NotEqualError(message)


def allclose_block(
    block_1: TensorBlock, block_2: TensorBlock, rtol: float = 1e-13, atol: float = 1e-12, equal_nan: bool = False
) -> bool:
    """Whether two TensorBlocks are close (see `allclose`)."""
    return not _compare_blocks(block_1, block_2, "allclose", _close(rtol, atol, equal_nan), "allclose")


def allclose_block_raise(
    block_1: TensorBlock, block_2: TensorBlock, rtol: float = 1e-13, atol: float = 1e-12, equal_nan: bool = False
) -> None:
    """Raise a `NotEqualError` saying where two TensorBlocks differ (see `allclose`)."""
    message = _compare_blocks(block_1, block_2, "allclose", _close(rtol, atol, equal_nan), "allclose")
    if message:
        raise NotEqualError(message)
