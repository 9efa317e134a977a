"""drop_blocks, drop_empty_blocks, filter_blocks, sort, unique_metadata, one_hot."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mtdsl.ops as ops
from mtdsl import Labels
from tests.strategies import tensormaps, unique_rows

from ._reference import SETTINGS, assert_same, mts, to_mts
from .test_slice_split import to_mts_labels


def _key_selection(data):
    names = data.draw(st.sampled_from([["o3_lambda"], ["center_type"], ["o3_lambda", "center_type"]]))
    return Labels(names, unique_rows(data.draw, len(names), 3, high=3))


@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@SETTINGS
@given(data=st.data(), copy=st.booleans())
def test_drop_and_filter_blocks(arrays, data, copy):
    tensor = data.draw(tensormaps(arrays=arrays))
    keys = _key_selection(data)
    assert_same(ops.drop_blocks(tensor, keys, copy), mts.drop_blocks(to_mts(tensor), to_mts_labels(keys), copy))
    assert_same(ops.filter_blocks(tensor, keys, copy), mts.filter_blocks(to_mts(tensor), to_mts_labels(keys), copy))
    assert_same(ops.drop_empty_blocks(tensor, copy), mts.drop_empty_blocks(to_mts(tensor), copy))


def test_copy_or_share():
    tensor = _unsorted()
    shared = ops.filter_blocks(tensor, Labels(["k"], np.array([[1]])))
    assert np.shares_memory(shared.block(0).values, tensor.block(0).values)
    copied = ops.filter_blocks(tensor, Labels(["k"], np.array([[1]])), copy=True)
    assert not np.shares_memory(copied.block(0).values, tensor.block(0).values)


@pytest.mark.parametrize("axes", ["all", "keys", "samples", "components", "properties", ["samples", "keys"]])
@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@SETTINGS
@given(tensor=tensormaps(min_samples=1), descending=st.booleans())
def test_sort(axes, arrays, tensor, descending):
    tensor = _shuffled(tensor).to(arrays=arrays)
    axes_theirs = list(axes) if isinstance(axes, list) else axes
    assert_same(ops.sort(tensor, axes, descending), mts.sort(to_mts(tensor), axes_theirs, descending))
    if axes not in ("keys",) and not isinstance(axes, list):
        block = tensor.block(0)
        assert_same(ops.sort_block(block, axes, descending), mts.sort_block(to_mts(block), axes, descending))


@pytest.mark.parametrize("axis", ["samples", "properties"])
@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@SETTINGS
@given(data=st.data())
def test_unique_metadata(axis, arrays, data):
    tensor = data.draw(tensormaps(arrays=arrays))
    names = data.draw(st.sampled_from([["system"], ["atom"], ["atom", "system"]])) if axis == "samples" else ["n"]
    ours = ops.unique_metadata(tensor, axis, names)
    theirs = mts.unique_metadata(to_mts(tensor), axis, names)
    assert ours == Labels(theirs.names, np.asarray(theirs.values))
    block = tensor.block(0)
    ours = ops.unique_metadata_block(block, axis, names)
    theirs = mts.unique_metadata_block(to_mts(block), axis, names)
    assert ours == Labels(theirs.names, np.asarray(theirs.values))
    if axis == "samples" and tensor.block(0).gradients_list():
        parameter = tensor.block(0).gradients_list()[0]
        ours = ops.unique_metadata(tensor, axis, "sample", gradient=parameter)
        theirs = mts.unique_metadata(to_mts(tensor), axis, "sample", gradient=parameter)
        assert ours == Labels(theirs.names, np.asarray(theirs.values))


@SETTINGS
@given(tensor=tensormaps())
def test_one_hot(tensor):
    samples = tensor.block(0).samples
    dimension = Labels.range("atom", 5)
    ours = ops.one_hot(samples, dimension)
    theirs = mts.one_hot(to_mts_labels(samples), to_mts_labels(dimension))
    np.testing.assert_array_equal(ours, theirs)
    assert ours.dtype == theirs.dtype


def test_one_hot_errors():
    with pytest.raises(ValueError, match="atom=7 is present in the labels, but was not found in the dimension"):
        ops.one_hot(Labels(["atom"], np.array([[7]])), Labels.range("atom", 3))
    with pytest.raises(ValueError, match="only one label dimension can be extracted"):
        ops.one_hot(Labels(["atom"], np.array([[0]])), Labels(["a", "b"], np.array([[0, 0]])))


def _shuffled(tensor):
    """`tensor` with keys, samples, components and properties in a random order."""
    rng = np.random.default_rng(len(tensor))
    key_order = rng.permutation(len(tensor))
    blocks = []
    for i in key_order:
        block = tensor.block(int(i))
        block = ops.slice_block(block, "samples", list(rng.permutation(len(block.samples))))
        blocks.append(_permute_components_and_properties(block, rng))
    from mtdsl import TensorMap

    return TensorMap(Labels(tensor.keys.names, tensor.keys.array[key_order]), blocks)


def _permute_components_and_properties(block, rng):
    from mtdsl import TensorBlock

    values = block.values
    components = []
    orders = []
    for axis, component in enumerate(block.components):
        order = rng.permutation(len(component))
        orders.append(order)
        components.append(Labels(component.names, component.array[order]))
        values = values[(slice(None),) * (axis + 1) + (order,)]
    order = rng.permutation(len(block.properties))
    properties = Labels(block.properties.names, block.properties.array[order])
    values = values[..., order]
    result = TensorBlock(values, block.samples, components, properties)
    for parameter, gradient in block.gradients():
        g = gradient.values
        extra = len(gradient.components) - len(block.components)
        for axis, o in enumerate(orders):
            g = g[(slice(None),) * (axis + 1 + extra) + (o,)]
        g = g[..., order]
        result.add_gradient(
            parameter, TensorBlock(g, gradient.samples, gradient.components[:extra] + components, properties)
        )
    return result


def _unsorted():
    from mtdsl import TensorBlock, TensorMap

    blocks = [
        TensorBlock(np.ones((2, 1)) * i, Labels.range("system", 2), [], Labels.range("n", 1)) for i in range(2)
    ]
    return TensorMap(Labels(["k"], np.array([[1], [0]])), blocks)
