"""Check the gradient blocks of an operation's result by finite differences.

A gradient block holds d values[sample] / d p for the parameter coordinates `p`
named by its samples (all columns but `sample`) and its leading components. We
pick random weights w_p and move every input along the direction they define:
``values(h) = values + h * sum_p w_p dvalues/dp``. Then for the result,
``(f(h) - f(-h)) / 2h`` must equal ``sum_p w_p dresult/dp`` built from the result's
gradient blocks. One pair of evaluations checks all coordinates at once.
"""

from __future__ import annotations

import numpy as np

from mtdsl import TensorBlock, TensorMap
from mtdsl.tensor._array import to_numpy


class _Weights:
    """Random weights per parameter coordinate, drawn on first use, shared by all blocks."""

    def __init__(self, seed: int):
        self._rng = np.random.default_rng(seed)
        self._table: dict = {}

    def get(self, parameter: str, coordinate: tuple, shape: tuple) -> np.ndarray:
        key = (parameter, coordinate)
        if key not in self._table:
            self._table[key] = self._rng.standard_normal(shape)
        return self._table[key]


def _direction(block: TensorBlock, weights: _Weights) -> np.ndarray:
    """sum_p w_p d values / d p, in the shape of the block's values."""
    values = to_numpy(block.values)
    result = np.zeros(values.shape, dtype=np.float64)
    n_components = len(block.components)
    for parameter, gradient in block.gradients():
        gradient_values = to_numpy(gradient.values)
        extra = len(gradient.components) - n_components
        parameter_shape = gradient_values.shape[1 : 1 + extra]
        # weights are drawn in the order of sorted component labels, then put in this block's order
        ranks = [np.argsort(np.argsort(c.array[:, 0])) for c in gradient.components[:extra]]
        rows = gradient.samples.array
        for r in range(len(rows)):
            w = weights.get(parameter, tuple(rows[r, 1:].tolist()), parameter_shape)
            w = w[np.ix_(*ranks)] if extra else w
            contribution = np.tensordot(w, gradient_values[r], axes=extra) if extra else gradient_values[r]
            result[rows[r, 0]] += contribution
    return result


def _with_values(tensor, shift: dict, h: float):
    """`tensor` (map or block) with values moved by h * shift, gradients dropped."""
    if isinstance(tensor, TensorBlock):
        values = tensor.values
        moved = values + h * _like(shift[id(tensor)], values)
        return TensorBlock(moved, tensor.samples, tensor.components, tensor.properties)
    return TensorMap(tensor.keys, [_with_values(b, shift, h) for b in tensor.blocks()])


def _like(array: np.ndarray, like):
    if hasattr(like, "detach"):
        import torch

        return torch.from_numpy(array).to(like.dtype)
    return array.astype(like.dtype)


def _blocks(tensor):
    if isinstance(tensor, TensorBlock):
        return [tensor]
    if isinstance(tensor, (list, tuple)):
        return [b for t in tensor for b in _blocks(t)]
    return tensor.blocks()


def check_finite_differences(function, inputs: list, *, h: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-6,
                             seed: int = 0, constant: list | None = None):
    """Check the gradients of `function(*inputs)` by central finite differences.

    `inputs` are TensorMaps or TensorBlocks with gradients (float64); `constant`
    optionally lists inputs (by position) that must not move. The result may be a
    TensorMap, a TensorBlock or a list of them.
    """
    constant = set(constant or [])
    weights = _Weights(seed)
    shifts = {}
    for position, tensor in enumerate(inputs):
        for block in _blocks(tensor):
            shifts[id(block)] = np.zeros(block.values.shape) if position in constant else _direction(block, weights)
    result = function(*inputs)
    plus = function(*[_with_values(t, shifts, h) for t in inputs])
    minus = function(*[_with_values(t, shifts, -h) for t in inputs])
    for index, (block, up, down) in enumerate(zip(_blocks(result), _blocks(plus), _blocks(minus))):
        numerical = (to_numpy(up.values).astype(np.float64) - to_numpy(down.values)) / (2 * h)
        analytical = _direction(block, weights)
        np.testing.assert_allclose(
            analytical, numerical, rtol=rtol, atol=atol, err_msg=f"finite differences, result block {index}"
        )
