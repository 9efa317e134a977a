"""join and join_blocks against metatensor-operations."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mtdsl.ops as ops
from mtdsl import Labels, TensorBlock, TensorMap
from tests.strategies import tensormaps

from ._finite_differences import check_finite_differences
from ._reference import SETTINGS, assert_same, mts, redraw, to_mts


def _halves(tensor: TensorMap, axis: str):
    """Two slices of `tensor` that join back without duplicates."""
    if axis == "samples":
        first = Labels(["system"], np.array([[0], [1]]))
        second = Labels(["system"], np.array([[2], [3], [4]]))
    else:
        first = Labels(["n"], np.arange(0, 5).reshape(-1, 1))
        second = Labels(["n"], np.arange(5, 10).reshape(-1, 1))
    return ops.split(tensor, axis, [first, second])


@pytest.mark.parametrize("axis", ["samples", "properties"])
@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@SETTINGS
@given(data=st.data(), seed=st.integers(0, 100))
def test_add_dimension(axis, arrays, data, seed):
    tensor = data.draw(tensormaps(arrays=arrays))
    tensors = [tensor, redraw(tensor, seed), redraw(tensor, seed + 1)]
    ours = ops.join(tensors, axis, add_dimension="tensor")
    theirs = mts.join(to_mts(tensors), axis, add_dimension="tensor")
    assert_same(ours, theirs)


@pytest.mark.parametrize("axis", ["samples", "properties"])
@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@SETTINGS
@given(data=st.data())
def test_join_slices(axis, arrays, data):
    tensor = data.draw(tensormaps(arrays=arrays))
    parts = _halves(tensor, axis)
    ours = ops.join(parts, axis)
    theirs = mts.join(to_mts(parts), axis)
    assert_same(ours, theirs)
    blocks = [p.block(0) for p in parts]
    assert_same(ops.join_blocks(blocks, axis), mts.join_blocks(to_mts(blocks), axis))


@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@SETTINGS
@given(data=st.data())
def test_different_property_names(arrays, data):
    tensor = data.draw(tensormaps(arrays=arrays))
    renamed = ops.rename_dimension(redraw(tensor, 0), "properties", "n", "m")
    ours = ops.join([tensor, renamed], "properties")
    theirs = mts.join(to_mts([tensor, renamed]), "properties")
    assert_same(ours, theirs)


@pytest.mark.parametrize("different_keys", ["intersection", "union"])
@pytest.mark.parametrize("axis", ["samples", "properties"])
@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@SETTINGS
@given(seed=st.integers(0, 100), data=st.data())
def test_different_keys(different_keys, axis, arrays, seed, data):
    tensor = data.draw(tensormaps(arrays=arrays))
    kept = data.draw(st.lists(st.integers(0, len(tensor) - 1), min_size=1, unique=True))
    selection = Labels(tensor.keys.names, tensor.keys.array[kept])
    other = redraw(ops.filter_blocks(tensor, selection), seed)
    tensors = [other, tensor]
    ours = ops.join(tensors, axis, different_keys=different_keys, add_dimension="t")
    theirs = mts.join(to_mts(tensors), axis, different_keys=different_keys, add_dimension="t")
    assert_same(ours, theirs)


@pytest.mark.parametrize("axis", ["samples", "properties"])
@SETTINGS
@given(tensor=tensormaps(min_samples=1), seed=st.integers(0, 100))
def test_finite_differences(axis, tensor, seed):
    check_finite_differences(lambda a, b: ops.join([a, b], axis, add_dimension="t"), [tensor, redraw(tensor, seed)],
                             seed=seed)


def test_many_inputs():
    tensor = _tensor(10)
    pieces = ops.split(tensor, "samples", [[i] for i in range(10)])
    assert ops.equal(ops.join(pieces, "samples"), tensor)


def test_errors():
    tensor = _tensor(3)
    with pytest.raises(ops.NotEqualError, match=r"the joined samples of 'join' contain \(system=0\) twice"):
        ops.join([tensor, tensor], "samples")
    with pytest.raises(ValueError, match="Only `'properties'` or `'samples'` are valid values"):
        ops.join([tensor, tensor], "components")
    with pytest.raises(ValueError, match="provide at least one `TensorMap` for joining"):
        ops.join([], "samples")
    other = ops.slice(tensor, "samples", [0, 1])
    with pytest.raises(
        ops.NotEqualError,
        match=r"inputs to 'join' should have the same samples for block \(_=0\): input 1 has 3 and 2 entries",
    ):
        ops.join([tensor, other], "properties", add_dimension="t")
    with pytest.raises(ValueError, match="not a valid option for `different_keys`"):
        ops.join([tensor, tensor], "samples", different_keys="maybe")


def _tensor(n):
    block = TensorBlock(np.arange(2.0 * n).reshape(n, 2), Labels.range("system", n), [], Labels.range("n", 2))
    return TensorMap(Labels.single(), [block])


@pytest.mark.parametrize("arrays", ["numpy", "torch"])
def test_properties_with_different_gradient_samples(arrays):
    samples = Labels.range("system", 3)
    xyz = [Labels.range("xyz", 3)]
    blocks = []
    for rows, n in (([[0, 0], [1, 1], [2, 0]], 2), ([[0, 1], [1, 1], [2, 2], [2, 0]], 3)):
        properties = Labels(["n"], np.arange(n).reshape(-1, 1) + 10 * len(blocks))
        block = TensorBlock(np.random.default_rng(n).standard_normal((3, n)), samples, [], properties)
        g_samples = Labels(["sample", "atom"], np.array(rows))
        g_values = np.random.default_rng(n + 1).standard_normal((len(rows), 3, n))
        block.add_gradient("positions", TensorBlock(g_values, g_samples, xyz, properties))
        blocks.append(block)
    tensors = [TensorMap(Labels.single(), [b]) for b in blocks]
    if arrays == "torch":
        tensors = [t.to(arrays="torch") for t in tensors]
    assert_same(ops.join(tensors, "properties"), mts.join(to_mts(tensors), "properties"))


def test_component_mismatch_names_the_input():
    tensor = _tensor(3)
    block = TensorBlock(np.ones((3, 2, 2)), Labels.range("system", 3), [Labels.range("m", 2)], Labels.range("n", 2))
    other = TensorMap(Labels.single(), [block])
    with pytest.raises(ops.NotEqualError, match=r"same components for block \(_=0\): input 1 has 1 components"):
        ops.join([tensor, other], "samples", add_dimension="t")


def test_maps_without_blocks():
    empty = TensorMap(Labels(["k"], np.zeros((0, 1), dtype=np.int32)), [])
    assert len(ops.join([empty, empty], "samples")) == 0
    assert len(ops.join([empty, empty], "properties", different_keys="union")) == 0
