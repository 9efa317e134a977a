"""add, subtract, multiply, divide, pow, abs against metatensor-operations and finite differences."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import mtdsl.ops as ops
from mtdsl import Labels, TensorBlock, TensorMap
from tests.strategies import tensormaps

from ._finite_differences import check_finite_differences
from ._reference import SETTINGS, assert_same, mts, redraw, to_mts

BINARY = ["add", "subtract", "multiply", "divide"]


_like = redraw


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@SETTINGS
@given(tensor=tensormaps(arrays="numpy"), seed=st.integers(0, 1000))
def test_binary_tensor_maps(name, arrays, tensor, seed):
    other = _like(tensor, seed, shift=3.0)
    if arrays == "torch":
        tensor, other = tensor.to(arrays="torch"), other.to(arrays="torch")
    ours = getattr(ops, name)(tensor, other)
    theirs = getattr(mts, name)(to_mts(tensor), to_mts(other))
    assert_same(ours, theirs)


@pytest.mark.parametrize("name", BINARY + ["pow"])
@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@SETTINGS
@given(data=st.data(), constant=st.sampled_from([2, -1.5, 3.0, 0.5]))
def test_with_scalar(name, arrays, data, constant):
    tensor = data.draw(tensormaps(arrays=arrays))
    if name == "pow":
        tensor = ops.abs(tensor)
    ours = getattr(ops, name)(tensor, constant)
    theirs = getattr(mts, name)(to_mts(tensor), constant)
    assert_same(ours, theirs)


@SETTINGS
@given(tensor=tensormaps(arrays="torch"))
def test_abs(tensor):
    assert_same(ops.abs(tensor), mts.abs(to_mts(tensor)))


@pytest.mark.parametrize("name", BINARY)
@SETTINGS
@given(tensor=tensormaps(min_samples=1), seed=st.integers(0, 1000))
def test_binary_finite_differences(name, tensor, seed):
    other = _like(tensor, seed, shift=3.0)
    if name == "divide":  # keep the denominator away from 0, where differences are inaccurate
        other = ops.add(ops.abs(other), 1.0)
    check_finite_differences(getattr(ops, name), [tensor, other], seed=seed)


@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "divide", "pow"])
@SETTINGS
@given(tensor=tensormaps(min_samples=1), seed=st.integers(0, 1000))
def test_scalar_finite_differences(name, tensor, seed):
    if name == "pow":
        tensor = ops.add(ops.abs(tensor), 0.5)
    check_finite_differences(lambda t: getattr(ops, name)(t, 2.5), [tensor], seed=seed)


@SETTINGS
@given(tensor=tensormaps(min_samples=1), seed=st.integers(0, 1000))
def test_abs_finite_differences(tensor, seed):
    check_finite_differences(ops.abs, [tensor], seed=seed)


def test_keys_in_another_order():
    tensor = _small(keys=[[0], [1]])
    other = TensorMap(Labels(["k"], np.array([[1], [0]])), [tensor.block(1), tensor.block(0)])
    assert ops.equal(ops.add(tensor, other), ops.multiply(tensor, 2))


def test_torch_autograd():
    tensor = _small().to(arrays="torch")
    values = tensor.block(0).values.requires_grad_(True)
    result = ops.multiply(ops.add(tensor, tensor), tensor)
    result.block(0).values.sum().backward()
    assert torch.allclose(values.grad, 4 * values.detach())


def _small(keys=([0],), samples=((0, 0), (0, 1), (1, 0))):
    keys = Labels(["k"], np.array(keys))
    blocks = []
    for i in range(len(keys)):
        samples_labels = Labels(["system", "atom"], np.array(samples))
        blocks.append(
            TensorBlock(np.arange(6.0).reshape(3, 2) + i, samples_labels, [], Labels.range("n", 2))
        )
    return TensorMap(keys, blocks)


def test_errors_name_the_block_the_axis_and_the_label():
    tensor = _small(keys=[[0], [1]])
    other = _small(keys=[[0], [1]], samples=((0, 0), (0, 1), (1, 1)))
    message = (
        "inputs to 'add' should have the same samples, but they are not the same or not in the same order for block (k=0): "
        r"first difference at entry 2: \(system=1, atom=0\) and \(system=1, atom=1\)"
    )
    with pytest.raises(ops.NotEqualError, match=message.replace("(k=0)", r"\(k=0\)")):
        ops.add(tensor, other)
    with pytest.raises(ops.NotEqualError, match="inputs to 'multiply' should have the same keys names"):
        ops.multiply(tensor, TensorMap(Labels(["j"], np.array([[0], [1]])), tensor.blocks()))
    with pytest.raises(TypeError, match="`B` must be a metatensor TensorMap or a scalar value"):
        ops.add(tensor, "3")
    with pytest.raises(TypeError, match="`B` must be a scalar value"):
        ops.pow(tensor, tensor)


def test_unsafe_disable_checks():
    tensor = _small(keys=[[0], [1]])
    other = _small(keys=[[0], [1]], samples=((0, 0), (0, 1), (1, 1)))
    assert ops.checks_enabled()
    with ops.unsafe_disable_checks():
        assert not ops.checks_enabled()
        ops.add(tensor, other)  # trusted
    assert ops.checks_enabled()
    with pytest.raises(ops.NotEqualError):
        ops.add(tensor, other)
