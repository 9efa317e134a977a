"""slice, slice_block, split, split_block against metatensor-operations."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mtdsl.ops as ops
from mtdsl import Labels, TensorBlock, TensorMap
from tests.strategies import tensormaps, unique_rows

from ._finite_differences import check_finite_differences
from ._reference import SETTINGS, assert_same, mts, to_mts


def _selection(data, axis):
    if axis == "samples":
        names = data.draw(st.sampled_from([["system"], ["atom"], ["system", "atom"]]))
        rows = unique_rows(data.draw, len(names), 4, high=4)
    else:
        names = ["n"]
        rows = unique_rows(data.draw, 1, 5, high=9)
    return Labels(names, rows)


@pytest.mark.parametrize("axis", ["samples", "properties"])
@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@SETTINGS
@given(data=st.data())
def test_slice_labels(axis, arrays, data):
    tensor = data.draw(tensormaps(arrays=arrays))
    selection = _selection(data, axis)
    assert_same(ops.slice(tensor, axis, selection), mts.slice(to_mts(tensor), axis, to_mts_labels(selection)))
    block = tensor.block(0)
    assert_same(ops.slice_block(block, axis, selection), mts.slice_block(to_mts(block), axis, to_mts_labels(selection)))


@pytest.mark.parametrize("axis", ["samples", "properties"])
@SETTINGS
@given(data=st.data())
def test_slice_positions(axis, data):
    tensor = data.draw(tensormaps(max_blocks=1))
    block = tensor.block(0)
    n = len(block.samples) if axis == "samples" else len(block.properties)
    positions = data.draw(st.lists(st.integers(0, n - 1), unique=True)) if n else []
    assert_same(ops.slice_block(block, axis, positions), mts.slice_block(to_mts(block), axis, positions))
    array = np.array(positions, dtype=np.int64)
    assert_same(ops.slice_block(block, axis, array), mts.slice_block(to_mts(block), axis, array))
    selections = [positions[: len(positions) // 2], positions[len(positions) // 2 :]]
    assert_same(ops.split(tensor, axis, selections), mts.split(to_mts(tensor), axis, selections))


@pytest.mark.parametrize("axis", ["samples", "properties"])
@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@SETTINGS
@given(data=st.data())
def test_split(axis, arrays, data):
    tensor = data.draw(tensormaps(arrays=arrays))
    selections = [_selection(data, axis) for _ in range(data.draw(st.integers(0, 3)))]
    names = {tuple(s.names) for s in selections}
    selections = [s for s in selections if tuple(s.names) == min(names)] if names else []
    ours = ops.split(tensor, axis, selections)
    theirs = mts.split(to_mts(tensor), axis, [to_mts_labels(s) for s in selections])
    assert_same(ours, theirs)
    block = tensor.block(0)
    ours = ops.split_block(block, axis, selections)
    theirs = mts.split_block(to_mts(block), axis, [to_mts_labels(s) for s in selections])
    assert_same(ours, theirs)


@pytest.mark.parametrize("axis", ["samples", "properties"])
@SETTINGS
@given(tensor=tensormaps(min_samples=1), data=st.data())
def test_finite_differences(axis, tensor, data):
    selection = _selection(data, axis)
    check_finite_differences(lambda t: ops.slice(t, axis, selection), [tensor])


def test_copies_only_the_result():
    values = np.arange(100.0 * 4).reshape(100, 4)
    block = TensorBlock(values, Labels.range("system", 100), [], Labels.range("n", 4))
    tensor = TensorMap(Labels.single(), [block])
    result = ops.slice(tensor, "samples", Labels(["system"], np.array([[3], [7]]))).block(0)
    assert result.values.shape == (2, 4) and not np.shares_memory(result.values, values)
    assert result.values.base is None or result.values.base.size <= 8


def test_errors():
    block = TensorBlock(np.ones((2, 1)), Labels.range("system", 2), [], Labels.range("n", 1))
    tensor = TensorMap(Labels.single(), [block])
    with pytest.raises(ValueError, match="invalid sample name 'atom' which is not part of the input"):
        ops.slice(tensor, "samples", Labels(["atom"], np.array([[0]])))
    with pytest.raises(ValueError, match="invalid property name 'm' which is not part of the input"):
        ops.split(tensor, "properties", [Labels(["m"], np.array([[0]]))])
    with pytest.raises(ValueError, match="is not known as a slicing axis"):
        ops.slice(tensor, "components", [0])
    with pytest.raises(TypeError, match="`selections` must be a list"):
        ops.split(tensor, "samples", Labels(["system"], np.array([[0]])))


def to_mts_labels(labels):
    from mtdsl.io.metatensor import labels_to_metatensor

    return labels_to_metatensor(labels)
