"""zeros/ones/empty/random_uniform_like, block_from_array, remove_gradients, detach,
requires_grad, make_contiguous, is_contiguous, to."""

import numpy as np
import pytest
import torch
from hypothesis import given

import mtdsl.ops as ops
from tests.strategies import tensormaps

from ._reference import SETTINGS, assert_same, mts, to_mts


@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@SETTINGS
@given(data=__import__("hypothesis").strategies.data())
def test_like(arrays, data):
    tensor = data.draw(tensormaps(arrays=arrays))
    theirs = to_mts(tensor)
    assert_same(ops.zeros_like(tensor), mts.zeros_like(theirs))
    assert_same(ops.ones_like(tensor), mts.ones_like(theirs))
    gradients = tensor.block(0).gradients_list()[:1]
    assert_same(ops.zeros_like(tensor, gradients=gradients), mts.zeros_like(theirs, gradients=gradients))
    for function in (ops.empty_like, ops.random_uniform_like):
        result = function(tensor)
        assert ops.equal_metadata(result, tensor)
        assert all(b.values.dtype == a.values.dtype for a, b in zip(tensor.blocks(), result.blocks()))
    uniform = ops.random_uniform_like(tensor)
    for block in uniform.blocks():
        values = np.asarray(block.values)
        assert values.size == 0 or (values.min() >= 0 and values.max() < 1)
    assert_same(ops.remove_gradients(tensor), mts.remove_gradients(theirs))
    assert_same(ops.remove_gradients(tensor, gradients), mts.remove_gradients(theirs, gradients))
    assert_same(ops.detach(tensor), mts.detach(theirs))
    assert_same(ops.make_contiguous(tensor), mts.make_contiguous(theirs))
    assert ops.is_contiguous(tensor) == mts.is_contiguous(theirs)


def test_requires_grad_and_to():
    tensor = ops.block_from_array(np.arange(6.0).reshape(3, 2))
    from mtdsl import Labels, TensorMap

    tensor = TensorMap(Labels.single(), [tensor])
    as_torch = ops.to(tensor, backend="torch", dtype=torch.float32)
    assert as_torch.block(0).values.dtype == torch.float32
    tracked = ops.requires_grad(as_torch)
    assert tracked.block(0).values.requires_grad
    assert not ops.detach(tracked).block(0).values.requires_grad
    assert ops.zeros_like(as_torch, requires_grad=True).block(0).values.requires_grad
    back = ops.to(tracked, backend="numpy")
    assert isinstance(back.block(0).values, np.ndarray)
    with pytest.warns(UserWarning, match="does nothing for numpy arrays"):
        ops.requires_grad(tensor)
    with pytest.raises(ValueError, match="Unknown backend: jax"):
        ops.to(tensor, backend="jax")
    with pytest.raises(ValueError, match="gradients .* not defined|requested gradient 'cell' in 'ones_like'"):
        ops.ones_like(tensor, gradients=["cell"])


def test_make_contiguous():
    from mtdsl import Labels, TensorBlock, TensorMap

    values = np.arange(12.0).reshape(4, 3)[:, ::2]
    block = TensorBlock(values, Labels.range("s", 4), [], Labels.range("p", 2))
    tensor = TensorMap(Labels.single(), [block])
    assert not ops.is_contiguous(tensor)
    assert ops.is_contiguous(ops.make_contiguous(tensor))
    assert ops.is_contiguous_block(ops.make_contiguous_block(block))


@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@pytest.mark.parametrize(
    "shape, names",
    [((3, 2), {}), ((3, 4, 2), {}), ((2, 3, 4, 5), {"sample_names": ["a", "b"], "property_names": ["p", "q"]}),
     ((2, 3, 4), {"component_names": ["m"]})],
)
def test_block_from_array(arrays, shape, names):
    array = np.arange(float(np.prod(shape))).reshape(shape)
    if arrays == "torch":
        array = torch.from_numpy(array)
    assert_same(ops.block_from_array(array, **names), mts.block_from_array(array, **names))


def test_block_from_array_errors():
    with pytest.raises(ValueError, match="must have at least two dimensions"):
        ops.block_from_array(np.zeros(3))
    with pytest.raises(ValueError, match="does not have enough dimensions to match the sample and property names"):
        ops.block_from_array(np.zeros((3, 2)), sample_names=["a", "b"], property_names=["p"])
