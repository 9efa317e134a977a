"""sum/mean/var/std_over_samples against metatensor-operations and finite differences."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mtdsl.ops as ops
from tests.strategies import tensormaps

from ._finite_differences import check_finite_differences
from ._reference import SETTINGS, assert_reduction_same, assert_same, mts, to_mts

REDUCTIONS = ["sum", "mean", "var", "std"]
NAMES = st.sampled_from(["atom", "system", ["system", "atom"], ["atom"]])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@SETTINGS
@given(data=st.data(), names=NAMES)
def test_same_as_metatensor(reduction, arrays, data, names):
    # metatensor-operations divides mean/var/std gradients by the number of merged
    # gradient rows, which is the group size only for dense gradients, such as strain
    # when the remaining sample dimension is the system
    gradients = None if reduction == "sum" else ["strain"]
    if reduction != "sum":
        names = "atom"
    # (metatensor-operations fails on blocks without samples when no dimension remains)
    tensor = data.draw(tensormaps(arrays=arrays, gradients=gradients, min_samples=1))
    assert_reduction_same(f"{reduction}_over_samples", tensor, names)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@SETTINGS
@given(tensor=tensormaps(min_samples=1), names=NAMES)
def test_values_same_as_metatensor(reduction, tensor, names):
    function = f"{reduction}_over_samples"
    ours = getattr(ops, function)(tensor, names)
    theirs = getattr(mts, function)(to_mts(tensor), names)
    assert_same(ours, theirs, gradients=reduction == "sum")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@SETTINGS
@given(tensor=tensormaps(min_samples=1), names=NAMES, seed=st.integers(0, 100))
def test_finite_differences(reduction, tensor, names, seed):
    function = getattr(ops, f"{reduction}_over_samples")
    check_finite_differences(lambda t: function(t, names), [tensor], seed=seed)


def test_sparse_gradients_mean():
    """The mean's gradient divides by the group size, also for sparse gradient rows."""
    from mtdsl import Labels, TensorBlock, TensorMap

    block = TensorBlock(np.array([[1.0], [3.0]]), Labels(["system", "atom"], np.array([[0, 0], [0, 1]])), [],
                        Labels.range("n", 1))
    gradient = TensorBlock(np.array([[[2.0]]]), Labels(["sample", "system", "atom"], np.array([[0, 0, 0]])),
                           [Labels.range("xyz", 1)], block.properties)
    block.add_gradient("positions", gradient)
    tensor = TensorMap(Labels.single(), [block])
    result = ops.mean_over_samples(tensor, "atom").block(0)
    assert result.values.tolist() == [[2.0]]
    assert result.gradient("positions").values.tolist() == [[[1.0]]]


def test_unknown_name():
    tensor = ops.abs(ops.add(_one(), 0))
    with pytest.raises(ValueError, match=r"one of the requested sample name \(foo\) is not part of this TensorMap"):
        ops.sum_over_samples(tensor, "foo")


def _one():
    from mtdsl import Labels, TensorBlock, TensorMap

    block = TensorBlock(np.ones((1, 1)), Labels(["system"], np.array([[0]])), [], Labels.range("n", 1))
    return TensorMap(Labels.single(), [block])


def test_empty_block_keeps_underscore():
    from mtdsl import Labels, TensorBlock, TensorMap

    empty = TensorBlock(np.ones((0, 1)), Labels.empty(["system"]), [], Labels.range("n", 1))
    full = TensorBlock(np.ones((2, 1)), Labels.range("system", 2), [], Labels.range("n", 1))
    result = ops.sum_over_samples(TensorMap(Labels.range("k", 2), [empty, full]), "system")
    assert result.block(0).samples.names == ["_"] and len(result.block(0).samples) == 0
    assert result.block(1).values.tolist() == [[2.0]]
