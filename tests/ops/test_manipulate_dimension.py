"""append/insert/permute/remove/rename_dimension against metatensor-operations."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mtdsl.ops as ops
from mtdsl.errors import MetadataError
from tests.strategies import tensormaps

from ._reference import SETTINGS, assert_same, mts, to_mts


@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@SETTINGS
@given(data=st.data())
def test_same_as_metatensor(arrays, data):
    tensor = data.draw(tensormaps(arrays=arrays))
    # metatensor-core cannot insert into torch labels: the reference runs on numpy
    theirs = to_mts(tensor.to(arrays="numpy"))
    for axis in ("keys", "samples", "properties"):
        assert_same(ops.append_dimension(tensor, axis, "extra", 3), mts.append_dimension(theirs, axis, "extra", 3))
        assert_same(ops.insert_dimension(tensor, axis, 0, "extra", 2), mts.insert_dimension(theirs, axis, 0, "extra", 2))
    values = np.arange(len(tensor.keys), dtype=np.int32)
    assert_same(ops.append_dimension(tensor, "keys", "extra", values), mts.append_dimension(theirs, "keys", "extra", values))
    assert_same(ops.permute_dimensions(tensor, "keys", [1, 0]), mts.permute_dimensions(theirs, "keys", [1, 0]))
    assert_same(ops.permute_dimensions(tensor, "samples", [1, 0]), mts.permute_dimensions(theirs, "samples", [1, 0]))
    for axis, old in (("keys", "o3_lambda"), ("samples", "system"), ("properties", "n"), ("components", "c0")):
        assert_same(ops.rename_dimension(tensor, axis, old, "renamed"), mts.rename_dimension(theirs, axis, old, "renamed"))
    extended = ops.append_dimension(tensor, "samples", "extra", 0)
    assert_same(ops.remove_dimension(extended, "samples", "extra"), mts.remove_dimension(to_mts(extended.to(arrays="numpy")), "samples", "extra"))
    one_key = ops.append_dimension(tensor, "keys", "extra", 1)
    assert_same(ops.remove_dimension(one_key, "keys", "extra"), mts.remove_dimension(to_mts(one_key.to(arrays="numpy")), "keys", "extra"))


def test_errors():
    from mtdsl import Labels, TensorBlock, TensorMap

    block = TensorBlock(np.ones((2, 1)), Labels(["system", "atom"], np.array([[0, 0], [0, 1]])), [],
                        Labels.range("n", 1))
    tensor = TensorMap(Labels.single(), [block])
    with pytest.raises(ValueError, match="'values' is not a valid axis"):
        ops.rename_dimension(tensor, "values", "a", "b")
    with pytest.raises(MetadataError, match=r"contain the entry \(0,\) twice"):
        ops.remove_dimension(tensor, "samples", "atom")
    with pytest.raises(ValueError, match="'components' is not a valid axis. Choose from 'keys', 'samples' or"):
        ops.append_dimension(tensor, "components", "a", 0)
