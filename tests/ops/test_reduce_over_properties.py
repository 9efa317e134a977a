"""sum/mean/var/std_over_properties against metatensor-operations and finite differences."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mtdsl.ops as ops
from mtdsl import Labels, TensorBlock, TensorMap
from tests.strategies import tensormaps

from ._finite_differences import check_finite_differences
from ._reference import SETTINGS, assert_reduction_same

REDUCTIONS = ["sum", "mean", "var", "std"]


def _two_dimensional(tensor: TensorMap) -> TensorMap:
    """Properties (n) -> (a, n) with a = n % 2, so that reductions over one name merge some."""
    blocks = []
    for block in tensor.blocks():
        n = block.properties.array[:, 0]
        properties = Labels(["a", "n"], np.stack([n % 2, n], axis=1))
        result = TensorBlock(block.values, block.samples, block.components, properties)
        for parameter, gradient in block.gradients():
            gradient = TensorBlock(gradient.values, gradient.samples, gradient.components, properties)
            result.add_gradient(parameter, gradient)
        blocks.append(result)
    return TensorMap(tensor.keys, blocks)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@SETTINGS
@given(data=st.data(), names=st.sampled_from(["n", "a", ["a", "n"]]))
def test_same_as_metatensor(reduction, arrays, data, names):
    # metatensor-operations 0.5.0 breaks on mean/var/std with components and gets
    # var/std gradients wrong (or crashes) with torch: compare where it is right
    components = [] if reduction != "sum" else None
    gradients = [] if reduction in ("var", "std") and arrays == "torch" else None
    tensor = _two_dimensional(
        data.draw(tensormaps(arrays=arrays, components=components, gradients=gradients, min_samples=1))
    )
    assert_reduction_same(f"{reduction}_over_properties", tensor, names)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@SETTINGS
@given(tensor=tensormaps(min_samples=1), names=st.sampled_from(["n", "a", ["a", "n"]]), seed=st.integers(0, 100))
def test_finite_differences(reduction, tensor, names, seed):
    function = getattr(ops, f"{reduction}_over_properties")
    check_finite_differences(lambda t: function(t, names), [_two_dimensional(tensor)], seed=seed)


def test_unknown_name():
    block = TensorBlock(np.ones((1, 1)), Labels(["system"], np.array([[0]])), [], Labels.range("n", 1))
    with pytest.raises(ValueError, match=r"one of the requested property name \(foo\) is not part of this TensorMap"):
        ops.sum_over_properties(TensorMap(Labels.single(), [block]), "foo")
