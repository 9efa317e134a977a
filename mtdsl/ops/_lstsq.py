"""`lstsq`: least-squares solutions W of ``X W^T = Y``, block by block, gradients included.

The gradients of ``X`` and ``Y`` are stacked below their values as extra equations
(fitting values and derivatives together). The result has no gradients.
"""

from __future__ import annotations

import warnings
from typing import Optional

from ..tensor import TensorBlock, TensorMap
from ..tensor._array import is_torch
from ._utils import (
    check_blocks_raise,
    check_same_gradients_raise,
    check_same_keys_raise,
    check_tensor_map,
    key_name,
    matching_blocks,
)
from . import _dispatch


def stacked_equations(X: TensorBlock, Y: TensorBlock):
    """Rows of X and Y (values then each gradient), as 2-D arrays over the properties."""
    x_rows = [X.values.reshape(-1, X.values.shape[-1])]
    y_rows = [Y.values.reshape(-1, Y.values.shape[-1])]
    for parameter, X_gradient in X.gradients():
        x_rows.append(X_gradient.values.reshape(-1, X.values.shape[-1]))
        y_rows.append(Y.gradient(parameter).values.reshape(-1, Y.values.shape[-1]))
    return _dispatch.concatenate(x_rows, axis=0), _dispatch.concatenate(y_rows, axis=0)


def _lstsq_block(X: TensorBlock, Y: TensorBlock, rcond: Optional[float], driver: Optional[str], key="") -> TensorBlock:
    check_blocks_raise(X, Y, "lstsq", check=["samples", "components"], key=key)
    check_same_gradients_raise(X, Y, "lstsq", check=["samples", "components"], key=key)
    x, y = stacked_equations(X, Y)
    if is_torch(x):
        import torch

        weights = torch.linalg.lstsq(x, y, rcond=rcond, driver=driver)[0]
    else:
        import numpy as np

        weights = np.linalg.lstsq(x, y, rcond=rcond)[0]
    return TensorBlock(weights.T, Y.properties, [], X.properties)


def lstsq(X: TensorMap, Y: TensorMap, rcond: Optional[float], driver: Optional[str] = None) -> TensorMap:
    """Solve ``X W^T = Y`` in the least-squares sense for each block.

    :param X: the features; gradients are extra equations
    :param Y: the targets, with the samples, components and gradients of ``X``
    :param rcond: cut-off ratio for small singular values (numpy / torch meaning)
    :param driver: torch only, the LAPACK driver
    :return: W, with samples the properties of ``Y`` and properties those of ``X``
    """
    check_tensor_map(X, "X")
    check_tensor_map(Y, "Y")
    if rcond is None:
        warnings.warn(
            "WARNING rcond is set to None, which will trigger the default behavior which is different "
            "between numpy and torch lstsq function, and might depend on the version you are using.",
            stacklevel=2,
        )
    check_same_keys_raise(X, Y, "lstsq")
    blocks = [
        _lstsq_block(x, y, rcond, driver, key_name(X, i))
        for i, (x, y) in enumerate(zip(X.blocks(), matching_blocks(X, Y)))
    ]
    return TensorMap(X.keys, blocks)
