"""TensorMap: consistency checks, block selection, metadata moves against metatensor-core."""

import metatensor
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

from mtdsl import Labels, MetadataError, TensorBlock, TensorMap
from tests.strategies import tensormaps


def block(n_samples=2, n_properties=2, sample_names=("atom",), dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    samples = Labels(list(sample_names), np.arange(n_samples * len(sample_names)).reshape(n_samples, -1))
    return TensorBlock(rng.random((n_samples, n_properties)).astype(dtype), samples, [], Labels.range("n", n_properties))


def keys(*rows):
    return Labels(["center_type"], np.array(rows).reshape(-1, 1))


def test_mismatched_blocks_name_the_key():
    with pytest.raises(MetadataError, match=r"block \(center_type=8\) differs from block \(center_type=1\): sample names \['system'\]"):
        TensorMap(keys(1, 8), [block(), block(sample_names=("system",))])
    with pytest.raises(MetadataError, match=r"\(center_type=8\).*float32 instead of float64"):
        TensorMap(keys(1, 8), [block(), block(dtype=np.float32)])
    with pytest.raises(MetadataError, match="got 1 blocks for 2 keys"):
        TensorMap(keys(1, 8), [block()])


def test_gradient_sets_must_agree():
    first, second = block(), block()
    first.add_gradient("positions", TensorBlock(
        np.zeros((1, 3, 2)), Labels(["sample", "system", "atom"], np.array([[0, 0, 0]])), [Labels.range("xyz", 3)], first.properties))
    with pytest.raises(MetadataError, match=r"\(center_type=6\).*gradients \[\] instead of \['positions'\]"):
        TensorMap(keys(1, 6), [first, second])


def test_block_selection():
    tensor = TensorMap(
        Labels(["center_type", "o3_lambda"], np.array([[1, 0], [8, 0], [8, 1]])),
        [block(seed=s) for s in range(3)],
    )
    assert tensor.block(center_type=1) is tensor.block_by_id(0)
    assert tensor.block(center_type=8, o3_lambda=1) is tensor.block_by_id(2)
    assert tensor.block({"center_type": 8, "o3_lambda": 0}) is tensor.block_by_id(1)
    assert tensor.block(2) is tensor.block_by_id(2)
    assert len(tensor.blocks(center_type=8)) == 2
    assert tensor.blocks_matching(o3_lambda=0) == [0, 1]
    with pytest.raises(MetadataError, match=r"more than one block matched \(center_type=8\), use `TensorMap.blocks`.*\(2 blocks match\)"):
        tensor.block(center_type=8)
    with pytest.raises(MetadataError, match=r"couldn't find any block matching \(center_type=3\)"):
        tensor.block(center_type=3)
    with pytest.raises(MetadataError, match="no key named 'species'"):
        tensor.block(species=3)


def test_single_block_map():
    tensor = TensorMap(Labels.single(), [block()])
    assert tensor.block() is tensor.block_by_id(0)


def test_info_and_repr():
    tensor = TensorMap(keys(1, 8), [block(), block(seed=1)])
    tensor.set_info("producer", "mtdsl")
    assert tensor.info() == {"producer": "mtdsl"}
    assert tensor.get_info("missing") is None
    assert repr(tensor) == repr(tensor.to_metatensor())
    many = TensorMap(Labels(["center_type"], np.arange(9).reshape(-1, 1)), [block(seed=i) for i in range(9)])
    assert str(many) == str(many.to_metatensor()) and repr(many) == repr(many.to_metatensor())


def assert_same_as_metatensor(ours: TensorMap, theirs):
    converted = ours.to_metatensor()
    assert converted.keys == theirs.keys
    for ours_block, theirs_block in zip(converted.blocks(), theirs.blocks()):
        assert ours_block.samples == theirs_block.samples
        assert ours_block.components == theirs_block.components
        assert ours_block.properties == theirs_block.properties
        np.testing.assert_array_equal(ours_block.values, theirs_block.values)
        assert sorted(ours_block.gradients_list()) == sorted(theirs_block.gradients_list())
        for parameter in theirs_block.gradients_list():
            ours_gradient, theirs_gradient = ours_block.gradient(parameter), theirs_block.gradient(parameter)
            assert ours_gradient.samples == theirs_gradient.samples
            np.testing.assert_array_equal(ours_gradient.values, theirs_gradient.values)


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(tensormaps())
def test_metatensor_round_trip(tensor):
    theirs = tensor.to_metatensor()
    assert_same_as_metatensor(TensorMap.from_metatensor(theirs), theirs)


@SETTINGS
@given(tensormaps(same_properties=True, shuffled_gradients=True))
def test_keys_to_samples_matches_metatensor(tensor):
    for sort in (True, False):
        assert_same_as_metatensor(
            tensor.keys_to_samples("o3_lambda", sort_samples=sort),
            tensor.to_metatensor().keys_to_samples("o3_lambda", sort_samples=sort),
        )


@SETTINGS
@given(tensormaps(shuffled_gradients=True))
def test_keys_to_properties_matches_metatensor(tensor):
    for sort in (True, False):
        for moved in ("o3_lambda", ["o3_lambda", "center_type"]):
            assert_same_as_metatensor(
                tensor.keys_to_properties(moved, sort_samples=sort),
                tensor.to_metatensor().keys_to_properties(moved, sort_samples=sort),
            )


@SETTINGS
@given(tensormaps(components=[3, 2]))
def test_components_to_properties_matches_metatensor(tensor):
    for moved in ("c0", ["c1"], ["c0", "c1"]):
        assert_same_as_metatensor(tensor.components_to_properties(moved), tensor.to_metatensor().components_to_properties(moved))


def test_keys_to_properties_with_given_values_needs_shared_properties():
    first = TensorBlock(np.ones((1, 1)), Labels(["atom"], np.array([[0]])), [], Labels.range("n", 1))
    second = TensorBlock(np.ones((1, 2)), Labels(["atom"], np.array([[0]])), [], Labels.range("n", 2))
    tensor = TensorMap(keys(1, 8), [first, second])
    with pytest.raises(MetadataError, match=r"block \(center_type=8\) has other properties"):
        tensor.keys_to_properties(Labels(["center_type"], np.array([[1], [8]])))
    assert tensor.keys_to_properties("center_type").block().properties.array.tolist() == [[1, 0], [8, 0], [8, 1]]


def test_keys_to_properties_fills_missing_samples():
    first = TensorBlock(np.ones((1, 1)), Labels(["atom"], np.array([[0]])), [], Labels.range("n", 1))
    second = TensorBlock(np.full((1, 1), 2.0), Labels(["atom"], np.array([[1]])), [], Labels.range("n", 1))
    merged = TensorMap(keys(1, 8), [first, second]).keys_to_properties("center_type", fill_value=-1.0)
    assert merged.block().values.tolist() == [[1.0, -1.0], [-1.0, 2.0]]


def test_torch_map_and_conversion():
    tensor = TensorMap(keys(1, 8), [block(), block(seed=1)]).to(arrays="torch")
    assert isinstance(tensor.block(0).values, torch.Tensor)
    moved = tensor.keys_to_properties("center_type")
    assert isinstance(moved.block().values, torch.Tensor)
    converted = tensor.to_metatensor()
    assert isinstance(converted, metatensor.TensorMap)
