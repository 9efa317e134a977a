"""metatensor-torch and metatensor-core objects to and from mtdsl: labels, blocks, gradients and
info survive exactly; memory is shared where both sides allow it."""

import metatensor
import numpy as np
import pytest
import torch

import mtdsl

from mtdsl import Labels, TensorBlock, TensorMap
from mtdsl._coexist import import_metatensor_torch
from tests.interop._helpers import assert_blocks_identical, assert_identical, expansion_output


def test_round_trip_through_metatensor_torch_is_exact():
    mts = import_metatensor_torch()
    tensor = expansion_output()
    assert tensor.info() and tensor.block(0).gradients_list() == ["positions", "strain"]
    theirs = tensor.to_metatensor_torch()
    assert theirs._type().name() == "TensorMap"
    assert theirs.info() == tensor.info()
    assert theirs.keys.names == tensor.keys.names
    block = theirs.block(0)
    assert isinstance(block.values, torch.Tensor) and block.values.dtype == torch.float64
    assert block.gradients_list() == ["positions", "strain"]
    # the metatensor-torch object behaves as metatensor-torch's own: its operations accept it
    summed = TensorMap.from_metatensor(mts.sum_over_samples(theirs, ["atom"])).to(arrays="numpy")
    expected = mtdsl.ops.sum_over_samples(tensor, "atom")
    for ours, reference in zip(summed.blocks(), expected.blocks()):
        np.testing.assert_allclose(ours.values, reference.values, rtol=1e-12, atol=1e-14)
    back = TensorMap.from_metatensor(theirs)
    assert_identical(back.to(arrays="numpy"), tensor)
    assert isinstance(back.block(0).values, torch.Tensor)


def test_numpy_values_are_shared_with_metatensor_torch():
    tensor = expansion_output().copy()
    theirs = tensor.to_metatensor_torch()
    theirs.block(0).values[0, 0, 0] = 123.0
    assert tensor.block(0).values[0, 0, 0] == 123.0


def test_torch_values_keep_autograd_both_ways():
    values = torch.rand(3, 2, dtype=torch.float64, requires_grad=True)
    block = TensorBlock(values * 2, Labels.range("atom", 3), [], Labels.range("n", 2))
    tensor = TensorMap(Labels.single(), [block])
    back = TensorMap.from_metatensor(tensor.to_metatensor_torch())
    back.block(0).values.sum().backward()
    np.testing.assert_array_equal(values.grad.numpy(), np.full((3, 2), 2.0))


def test_labels_and_blocks_from_metatensor_torch_and_core():
    mts = import_metatensor_torch()
    tensor = expansion_output()
    theirs = tensor.to_metatensor_torch()
    labels = TensorMap.from_metatensor(theirs.keys)
    assert isinstance(labels, Labels) and labels == tensor.keys
    assert_blocks_identical(TensorMap.from_metatensor(theirs.block(1)).to(arrays="numpy"), tensor.block(1))
    core = tensor.to_metatensor()
    assert isinstance(core, metatensor.TensorMap)
    assert_identical(TensorMap.from_metatensor(core), tensor)
    assert_blocks_identical(TensorMap.from_metatensor(core.block(2)), tensor.block(2))
    assert TensorMap.from_metatensor(core.keys) == tensor.keys
    # metatensor-core to metatensor-torch through mtdsl, then back: still exact
    assert_identical(TensorMap.from_metatensor(TensorMap.from_metatensor(core).to_metatensor_torch()).to(arrays="numpy"),
                     tensor)
    assert mts.Labels.single()._type().name() == "Labels"


def test_from_metatensor_rejects_other_objects():
    with pytest.raises(TypeError, match="expects a metatensor or metatensor.torch TensorMap.*got numpy.ndarray"):
        TensorMap.from_metatensor(np.zeros(3))
