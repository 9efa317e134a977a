"""dot, lstsq, solve against metatensor-operations; dot's gradients by finite differences."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import mtdsl.ops as ops
from mtdsl import Labels, TensorBlock, TensorMap
from tests.strategies import tensormaps

from ._finite_differences import check_finite_differences
from ._reference import SETTINGS, assert_same, mts, to_mts


def _weights(tensor: TensorMap, n_out: int, seed: int) -> TensorMap:
    """A map whose samples are `n_out` outputs and whose properties are those of `tensor`."""
    rng = np.random.default_rng(seed)
    blocks = []
    for block in tensor.blocks():
        values = rng.standard_normal((n_out, len(block.properties)))
        if isinstance(block.values, torch.Tensor):
            values = torch.from_numpy(values).to(block.values.dtype)
        blocks.append(TensorBlock(values, Labels.range("out", n_out), [], block.properties))
    return TensorMap(tensor.keys, blocks)


@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@SETTINGS
@given(data=st.data(), n_out=st.integers(1, 3), seed=st.integers(0, 100))
def test_dot(arrays, data, n_out, seed):
    tensor = data.draw(tensormaps(arrays=arrays))
    weights = _weights(tensor, n_out, seed)
    assert_same(ops.dot(tensor, weights), mts.dot(to_mts(tensor), to_mts(weights)))


@SETTINGS
@given(tensor=tensormaps(min_samples=1), seed=st.integers(0, 100))
def test_dot_finite_differences(tensor, seed):
    weights = _weights(tensor, 2, seed)
    check_finite_differences(lambda t: ops.dot(t, weights), [tensor], seed=seed)


def _system(n_samples, n_properties, n_out, seed, gradients=False, arrays="numpy"):
    rng = np.random.default_rng(seed)
    samples = Labels.range("s", n_samples)
    x = TensorBlock(rng.standard_normal((n_samples, n_properties)), samples, [], Labels.range("p", n_properties))
    y = TensorBlock(rng.standard_normal((n_samples, n_out)), samples, [], Labels.range("out", n_out))
    if gradients:
        g_samples = Labels(["sample", "atom"], np.stack([np.arange(n_samples), np.zeros(n_samples, dtype=int)], axis=1))
        xyz = [Labels.range("xyz", 3)]
        x.add_gradient("positions", TensorBlock(rng.standard_normal((n_samples, 3, n_properties)), g_samples, xyz,
                                                x.properties))
        y.add_gradient("positions", TensorBlock(rng.standard_normal((n_samples, 3, n_out)), g_samples, xyz,
                                                y.properties))
    keys = Labels.single()
    X, Y = TensorMap(keys, [x]), TensorMap(keys, [y])
    return (X.to(arrays="torch"), Y.to(arrays="torch")) if arrays == "torch" else (X, Y)


@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@pytest.mark.parametrize("gradients", [False, True])
def test_lstsq(arrays, gradients):
    X, Y = _system(12, 4, 2, 0, gradients, arrays)
    assert_same(ops.lstsq(X, Y, rcond=1e-13), mts.lstsq(to_mts(X), to_mts(Y), rcond=1e-13), atol=1e-10)
    with pytest.warns(UserWarning, match="rcond is set to None"):
        ops.lstsq(X, Y, rcond=None)


@pytest.mark.parametrize("arrays", ["numpy", "torch"])
def test_solve(arrays):
    X, Y = _system(4, 4, 2, 1, arrays=arrays)
    X = TensorMap(X.keys, [TensorBlock(X.block(0).values, Labels.range("s", 4), [], Labels.range("p", 4))])
    assert_same(ops.solve(X, Y), mts.solve(to_mts(X), to_mts(Y)), atol=1e-10)
    with pytest.raises(ValueError, match="the values in each block of X should be a square 2D array"):
        ops.solve(*_system(5, 4, 2, 1))
    other = TensorMap(Y.keys, [TensorBlock(Y.block(0).values, Labels.range("t", 4), [], Y.block(0).properties)])
    message = r"same samples in the same order \(block \(_=0\)\): names \['s'\] and \['t'\]"
    with pytest.raises(ValueError, match=message):
        ops.solve(X, other)


def test_dot_errors():
    X, Y = _system(3, 2, 1, 0)
    message = r"should have the same properties \(block \(_=0\)\): names \['p'\] and \['out'\]"
    with pytest.raises(ValueError, match=message):
        ops.dot(X, Y)
