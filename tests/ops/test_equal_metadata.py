"""equal_metadata, equal, allclose (and their block and _raise variants)."""

import numpy as np
import pytest
from hypothesis import given

import mtdsl.ops as ops
from mtdsl import Labels, TensorBlock, TensorMap
from mtdsl.errors import MetadataError
from tests.strategies import tensormaps

from ._reference import SETTINGS, mts, to_mts


def _pair(tensor: TensorMap, samples=None, properties=None) -> TensorMap:
    blocks = []
    for block in tensor.blocks():
        blocks.append(
            TensorBlock(block.values, samples or block.samples, block.components, properties or block.properties)
        )
    return TensorMap(tensor.keys, blocks)


def _tensor(properties=(0, 1), values=None):
    keys = Labels(["o3_lambda", "center_type"], np.array([[0, 1], [1, 1]]))
    blocks = []
    for _ in range(2):
        block = TensorBlock(
            np.ones((2, 3, len(properties))) if values is None else values,
            Labels(["system", "atom"], np.array([[0, 0], [0, 1]])),
            [Labels.range("m", 3)],
            Labels(["n"], np.array(properties).reshape(-1, 1)),
        )
        blocks.append(block)
    return TensorMap(keys, blocks)


@SETTINGS
@given(first=tensormaps(), second=tensormaps())
def test_same_answers_as_metatensor(first, second):
    for check in ("all", ["samples"], ["components", "properties"]):
        expected = mts.equal_metadata(to_mts(first), to_mts(second), check=check)
        assert ops.equal_metadata(first, second, check=check) == expected
        assert ops.equal_metadata(first, first, check=check)
    assert ops.equal(first, second) == mts.equal(to_mts(first), to_mts(second))
    assert ops.allclose(first, second) == mts.allclose(to_mts(first), to_mts(second))
    assert ops.equal(first, first) and ops.allclose(first, first)


@SETTINGS
@given(tensor=tensormaps(arrays="torch"))
def test_torch(tensor):
    assert ops.equal(tensor, tensor.copy())
    assert ops.allclose(tensor, ops.add(tensor, 1e-14))
    assert not ops.equal(tensor, ops.add(tensor, 1.0)) or all(len(b.samples) == 0 for b in tensor.blocks())


def test_raise_names_key_axis_and_label():
    first, second = _tensor(), _tensor(properties=(0, 2))
    message = (
        r"inputs to 'equal_metadata' should have the same properties, but they are not the same or not in the same order for block \(o3_lambda=0, center_type=1\): "
        r"first difference at entry 1: \(n=1\) and \(n=2\)"
    )
    with pytest.raises(ops.NotEqualError, match=message):
        ops.equal_metadata_raise(first, second)
    ops.equal_metadata_raise(first, second, check=["samples", "components"])
    with pytest.raises(MetadataError, match=r"\(n=1\) and \(n=2\)"):
        ops.equal_metadata_block_raise(first.block(0), second.block(0))
    assert not ops.equal_metadata_block(first.block(0), second.block(0))


def test_raise_on_length_and_names():
    first, second = _tensor(), _tensor(properties=(0, 1, 2))
    with pytest.raises(ops.NotEqualError, match=r"2 and 3 entries, the first extra one is \(n=2\)"):
        ops.equal_metadata_raise(first, second)
    renamed = _pair(first, properties=Labels(["p"], np.array([[0], [1]])))
    with pytest.raises(ops.NotEqualError, match=r"names \['n'\] and \['p'\]"):
        ops.equal_metadata_raise(first, renamed)
    with pytest.raises(ValueError, match="'values' does not refer to metadata to check"):
        ops.equal_metadata(first, second, check=["values"])


def test_equal_and_allclose_raise():
    first, second = _tensor(), _tensor(values=np.full((2, 3, 2), 1.0 + 1e-9))
    with pytest.raises(ops.NotEqualError, match=r"blocks for key \(o3_lambda=0, center_type=1\) are different: values are not equal"):
        ops.equal_raise(first, second)
    with pytest.raises(ops.NotEqualError, match="values are not allclose"):
        ops.allclose_raise(first, second)
    ops.allclose_raise(first, second, rtol=1e-6)
    assert ops.allclose_block(first.block(0), second.block(0), atol=1e-6)
    with pytest.raises(ops.NotEqualError, match="values are not equal"):
        ops.equal_block_raise(first.block(0), second.block(0))
    with pytest.raises(ops.NotEqualError, match="values are not allclose"):
        ops.allclose_block_raise(first.block(0), second.block(0))
    keys = TensorMap(Labels(["k"], np.array([[0], [1]])), first.blocks())
    with pytest.raises(ops.NotEqualError, match="the tensor maps have different keys"):
        ops.equal_raise(first, keys)
