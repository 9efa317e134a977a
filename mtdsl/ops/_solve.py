"""`solve`: solutions W of the square systems ``X W^T = Y``, block by block.

Like `lstsq`, gradients are stacked as extra rows; with gradients the system is
no longer square and numpy / torch refuse it (as in metatensor-operations).
The result has no gradients.
"""

from __future__ import annotations

from ..tensor import TensorBlock, TensorMap
from ..tensor._array import is_torch
from ._lstsq import stacked_equations
from ._utils import check_same_gradients_raise, check_same_keys_raise, check_tensor_map, labels_difference
from ._utils import key_name, matching_blocks


def _solve_block(X: TensorBlock, Y: TensorBlock, key: str) -> TensorBlock:
    difference = labels_difference(X.samples, Y.samples)
    if difference:
        raise ValueError(
            f"X and Y blocks in `solve` should have the same samples in the same order (block {key}): {difference}"
        )
    if len(X.components) != len(Y.components) or any(a != b for a, b in zip(X.components, Y.components)):
        raise ValueError("X and Y blocks in `solve` should have the same components in the same order")
    check_same_gradients_raise(X, Y, "solve", key=key)
    x, y = stacked_equations(X, Y)
    if is_torch(x):
        import torch

        weights = torch.linalg.solve(x, y)
    else:
        import numpy as np

        weights = np.linalg.solve(x, y)
    return TensorBlock(weights.T, Y.properties, [], X.properties)


def solve(X: TensorMap, Y: TensorMap) -> TensorMap:
    """Solve ``X W^T = Y`` for each block; the values of ``X`` must be square 2-D arrays.

    :return: W, with samples the properties of ``Y`` and properties those of ``X``
    """
    check_tensor_map(X, "X")
    check_tensor_map(Y, "Y")
    check_same_keys_raise(X, Y, "solve")
    for block in X.blocks():
        shape = block.values.shape
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError("the values in each block of X should be a square 2D array")
    pairs = zip(X.blocks(), matching_blocks(X, Y))
    return TensorMap(X.keys, [_solve_block(x, y, key_name(X, i)) for i, (x, y) in enumerate(pairs)])
