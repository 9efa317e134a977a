"""metatensor-core's Python API on mtdsl's data model, side by side with the real metatensor-core
(and metatensor-operations for the operators): containers, serialization methods, copies,
conversions, Labels edge cases."""

from __future__ import annotations

import copy
import io

import metatensor
import metatensor.operations as mto
import numpy as np
import pytest
import torch

import mtdsl
from mtdsl import Labels, MetadataError, MtdslError, TensorBlock, TensorMap
from mtdsl.io.metatensor import block_to_metatensor, labels_to_metatensor


def tensor(seed: int = 0, gradients: bool = True) -> TensorMap:
    rng = np.random.default_rng(seed)
    keys = Labels(["o3_lambda", "center_type"], np.array([[0, 1], [0, 8], [1, 1]]))
    blocks = []
    for _ in range(len(keys)):
        block = TensorBlock(rng.uniform(0.5, 2.0, (4, 3, 2)), Labels(["system", "atom"], np.array(
            [[0, 0], [0, 1], [1, 0], [1, 1]])), [Labels.range("o3_mu", 3)], Labels.range("n", 2))
        if gradients:
            block.add_gradient("positions", TensorBlock(
                rng.standard_normal((5, 3, 3, 2)),
                Labels(["sample", "system", "atom"], np.array([[0, 0, 0], [0, 0, 1], [1, 0, 1], [2, 1, 0], [3, 1, 1]])),
                [Labels.range("xyz", 3), Labels.range("o3_mu", 3)], Labels.range("n", 2)))
        blocks.append(block)
    return TensorMap(keys, blocks)


def assert_same(ours: TensorMap, theirs) -> None:
    """`ours` equals the metatensor TensorMap `theirs`, values and gradients bit for bit."""
    assert mtdsl.ops.equal(ours, TensorMap.from_metatensor(theirs))


# -- TensorMap as a container ------------------------------------------------------------------

def test_indexing_and_iteration_as_metatensor():
    ours = tensor()
    theirs = ours.to_metatensor()
    assert [block.values.tolist() for block in ours] == [block.values.tolist() for block in theirs]
    for index in range(len(ours)):
        assert ours[index] is ours.block(index)
        np.testing.assert_array_equal(ours[index].values, theirs[index].values)
    assert ours[{"center_type": 8}] is ours.block(1)
    assert ours[ours.keys[2]] is ours.block(2)
    selection = Labels(["center_type"], np.array([[8]]))
    np.testing.assert_array_equal(ours[selection].values, theirs[labels_to_metatensor(selection)].values)
    assert [key.values.tolist() for key, _ in ours.items()] == ours.keys.array.tolist()
    with pytest.raises(MetadataError, match="more than one block matched"):
        ours[{"o3_lambda": 0}]
    assert len(ours.block(0)) == len(theirs.block(0)) == 4
    assert ours.block(0).shape == theirs.block(0).shape == (4, 3, 2)


# -- operators ------------------------------------------------------------------------------------

def test_operators_equal_metatensor_operators():
    first, second = tensor(0), tensor(1)
    mt_first, mt_second = first.to_metatensor(), second.to_metatensor()
    # the reference is the metatensor-operations function each metatensor-core operator calls:
    # the operators themselves stop working in a process that imported metatensor.torch (they
    # then reach the TorchScript operations), as the interop tests do before this one
    assert_same(first + second, mto.add(mt_first, mt_second))
    assert_same(first - second, mto.subtract(mt_first, mt_second))
    assert_same(first * second, mto.multiply(mt_first, mt_second))
    assert_same(first / second, mto.divide(mt_first, mt_second))
    assert_same(first + 2.5, mto.add(mt_first, 2.5))
    assert_same(first * 3, mto.multiply(mt_first, 3))
    assert_same(first ** 2, mto.pow(mt_first, 2))
    assert_same(-first, mto.multiply(mt_first, -1))
    assert (+first) is first
    weights = TensorMap(first.keys, [TensorBlock(np.random.default_rng(i).standard_normal((5, 2)), Labels.range(
        "out", 5), [], Labels.range("n", 2)) for i in range(len(first))])
    assert_same(first @ weights, mto.dot(mt_first, weights.to_metatensor()))
    assert first == first.copy() and not (first != first.copy())
    assert first != second and not (first == second)
    assert first.block(0) == first.copy().block(0) and first.block(0) != second.block(0)
    assert (first == "not a tensor") is False
    assert len({first, first.copy()}) == 2  # equal maps stay distinct objects for caches and sets


# -- serialization methods ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["tensormap", "block", "labels"])
def test_save_and_load_methods(tmp_path, kind):
    value = {"tensormap": tensor(), "block": tensor().block(1), "labels": tensor().keys}[kind]
    cls = type(value)
    buffer = value.save_buffer(use_numpy=True)
    assert isinstance(buffer, memoryview) and bytes(buffer) == mtdsl.save_buffer(value)
    value.save(tmp_path / "value.mts", use_numpy=False)
    loaded = [cls.load(tmp_path / "value.mts", use_numpy=True), cls.load_buffer(buffer),
              cls.load(io.BytesIO(bytes(buffer)))]
    if kind == "tensormap":
        theirs = metatensor.load(str(tmp_path / "value.mts"))
        for result in loaded:
            assert_same(result, theirs)
    elif kind == "block":
        theirs = metatensor.load_block(str(tmp_path / "value.mts"))
        for result in loaded:
            assert result == mtdsl.io.metatensor.block_from_metatensor(theirs)
    else:
        for result in loaded:
            assert result == value
    other = Labels if cls is not Labels else TensorMap
    with pytest.raises(mtdsl.FormatError, match=f"unable to load a {other.__name__}"):
        other.load(tmp_path / "value.mts")


def test_io_module_offers_metatensor_io_names():
    names = ["save", "load", "save_buffer", "load_buffer", "load_block", "load_block_buffer", "load_labels",
             "load_labels_buffer"]
    for name in names:
        assert callable(getattr(metatensor.io, name)) and callable(getattr(mtdsl.io, name))
    data = tensor()
    assert_same(mtdsl.io.load_buffer(mtdsl.io.save_buffer(data, use_numpy=True), use_numpy=True),
                metatensor.io.load_buffer(metatensor.io.save_buffer(data.to_metatensor())))
    with pytest.raises(TypeError, match="`data` must be one of 'Labels', 'TensorBlock' or 'TensorMap'"):
        mtdsl.io.save_buffer(np.zeros(3))
    assert mtdsl.MetatensorError is MtdslError and issubclass(mtdsl.NotEqualError, mtdsl.MetatensorError)


# -- copies and conversions -------------------------------------------------------------------------------

def test_shallow_and_deep_copies():
    original = tensor()
    for shallow in (original.copy(deep=False), copy.copy(original)):
        assert shallow.block(0).values is original.block(0).values
        assert shallow.block(0).gradient("positions").values is original.block(0).gradient("positions").values
    for deep in (original.copy(), original.copy(deep=True), copy.deepcopy(original)):
        assert not np.shares_memory(deep.block(0).values, original.block(0).values)
        assert deep == original
    block = original.block(0)
    assert block.copy(deep=False).values is block.values and block.copy().values is not block.values
    assert not original.is_view and not block.is_view


def test_to_positional_and_non_blocking():
    original = tensor()
    for converted in (original.to(np.float32), original.to("cpu", np.float32), original.to(np.float32, "cpu"),
                      original.to(dtype=np.float32, non_blocking=True), original.to("cpu", dtype=np.float32)):
        assert converted.dtype == np.float32 and converted.block(0).gradient("positions").dtype == np.float32
    on_torch = original.to(arrays="torch", non_blocking=True)
    assert isinstance(on_torch.block(0).values, torch.Tensor)
    assert on_torch.block(0).to(torch.float32, non_blocking=True).dtype == torch.float32
    with pytest.raises(ValueError, match="can not give a device twice in `TensorMap.to`"):
        original.to("cpu", device="cpu")
    with pytest.raises(ValueError, match="can not give a dtype twice in `TensorBlock.to`"):
        original.block(0).to(np.float32, dtype=np.float64)
    with pytest.raises(ValueError, match="can not move numpy array to non-cpu device: cuda"):
        original.to(device="cuda")


def test_block_from_array_keeps_the_array():
    for array in (np.zeros((6, 7)), np.zeros((6, 2, 7)), torch.zeros((6, 2, 7))):
        block = mtdsl.ops.block_from_array(array)
        theirs = mto.block_from_array(array)
        assert block.values is array and theirs.values is array
        assert block.components == [mtdsl.io.metatensor.labels_from_metatensor(c) for c in theirs.components]


# -- Labels edge cases ------------------------------------------------------------------------------------

def test_labels_edge_cases_as_metatensor():
    for names, values in ((["a", "b"], np.empty((0, 2))), ([], np.empty((0, 0))), ("", np.empty((0, 0), np.int32)),
                          (["a"], np.empty((0, 1), dtype=np.float32)), ([], np.empty((0, 2)))):
        ours, theirs = Labels(names, values), metatensor.Labels(names, values)
        assert ours.names == theirs.names and len(ours) == len(theirs) == 0
        assert ours.array.shape == tuple(theirs.values.shape) and ours.array.dtype == np.int32
    for error in (TypeError, MtdslError):  # metatensor's TypeError, and still one of ours
        with pytest.raises(error, match="Labels values must be convertible to integers"):
            Labels(["a"], np.array([[0.5]]))
    with pytest.raises(TypeError, match="Labels names must be strings, got <class 'int'> instead"):
        Labels.range(0, 1)
    labels = Labels(["a", "b"], np.array([[0, 1], [2, 3]]))
    with pytest.raises(ValueError, match="read-only"):
        labels.values[0, 0] = 4
    user = np.array([[0, 1], [2, 3]], dtype=np.int32)
    Labels(["a", "b"], user)[0]
    user[0, 0] = 7  # the caller's own array stays writable
    assert labels.permute([-1, 0]).names == ["b", "a"]
    assert labels.select(Labels([], np.zeros((0, 0), dtype=np.int32))).tolist() == [0, 1]
    theirs = metatensor.Labels(["a", "b"], np.array([[0, 1], [2, 3]]))
    assert labels.select(Labels([], np.zeros((0, 0), dtype=np.int32))).tolist() == theirs.select(
        metatensor.Labels([], np.zeros((0, 0), dtype=np.int32))).tolist()
    with pytest.raises(IndexError, match="index 5 is out of bounds for axis 0 with size 2"):
        labels[5]
    with pytest.raises(TypeError, match="can only index LabelsEntry with str or int"):
        labels[0][1, 2]


def test_gradient_block_repr_names_its_parameter():
    block = tensor().block(0)
    theirs = block_to_metatensor(block)
    assert repr(block.gradient("positions")) == repr(theirs.gradient("positions"))
    assert repr(block.to(np.float32).gradient("positions")) == repr(theirs.gradient("positions"))


@pytest.mark.parametrize("fill_value", [0.0, -1.5])
def test_keys_to_samples_merges_blocks_with_different_properties(fill_value):
    """As metatensor-core 0.2.6: the union of the properties, absent values `fill_value`."""
    rng = np.random.default_rng(4)
    blocks = []
    for properties in ([[0], [2]], [[2], [5], [1]], [[0], [2]]):
        properties = Labels(["n"], np.array(properties))
        samples = Labels(["system"], np.array([[0], [3], [4]]))
        block = TensorBlock(rng.standard_normal((3, 2, len(properties))), samples, [Labels.range("c", 2)], properties)
        block.add_gradient("positions", TensorBlock(
            rng.standard_normal((2, 3, 2, len(properties))), Labels(["sample", "atom"], np.array([[0, 1], [2, 0]])),
            [Labels.range("xyz", 3), Labels.range("c", 2)], properties))
        blocks.append(block)
    ours = TensorMap(Labels(["center", "neighbor"], np.array([[1, 0], [1, 1], [2, 0]])), blocks)
    theirs = TensorMap.from_metatensor(ours.to_metatensor().keys_to_samples("neighbor", fill_value=fill_value))
    merged = ours.keys_to_samples("neighbor", fill_value=fill_value)
    assert mtdsl.ops.equal(mtdsl.ops.remove_gradients(merged), mtdsl.ops.remove_gradients(theirs))
    for ours_block, their_block in zip(merged, theirs):
        ours_gradient, their_gradient = ours_block.gradient("positions"), their_block.gradient("positions")
        assert ours_gradient.samples == their_gradient.samples
        # metatensor fills absent gradients with fill_value too; a constant's derivative is 0
        filled = their_gradient.values == fill_value
        assert np.all(ours_gradient.values[filled] == 0.0)
        np.testing.assert_array_equal(ours_gradient.values[~filled], their_gradient.values[~filled])
