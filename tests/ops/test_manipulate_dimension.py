"""append/insert/permute/remove/rename_dimension against metatensor-operations."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mtdsl.ops as ops
from mtdsl.errors import MetadataError
from tests.strategies import tensormaps

from ._reference import SETTINGS, assert_same, mts, to_mts


def _same(name, tensor, *arguments):
    """ops.name and mts.name agree (metatensor-core cannot insert into torch labels:
    the reference runs on numpy)."""
    theirs = getattr(mts, name)(to_mts(tensor.to(arrays="numpy")), *arguments)
    assert_same(getattr(ops, name)(tensor, *arguments), theirs)


@pytest.mark.parametrize("arrays", ["numpy", "torch"])
@SETTINGS
@given(data=st.data())
def test_same_as_metatensor(arrays, data):
    tensor = data.draw(tensormaps(arrays=arrays))
    for axis in ("keys", "samples", "properties"):
        _same("append_dimension", tensor, axis, "extra", 3)
        _same("insert_dimension", tensor, axis, 0, "extra", 2)
    _same("append_dimension", tensor, "keys", "extra", np.arange(len(tensor.keys), dtype=np.int32))
    _same("permute_dimensions", tensor, "keys", [1, 0])
    _same("permute_dimensions", tensor, "samples", [1, 0])
    for axis, old in (("keys", "o3_lambda"), ("samples", "system"), ("properties", "n"), ("components", "c0")):
        _same("rename_dimension", tensor, axis, old, "renamed")
    _same("remove_dimension", ops.append_dimension(tensor, "samples", "extra", 0), "samples", "extra")
    _same("remove_dimension", ops.append_dimension(tensor, "keys", "extra", 1), "keys", "extra")


def test_errors():
    from mtdsl import Labels, TensorBlock, TensorMap

    block = TensorBlock(np.ones((2, 1)), Labels(["system", "atom"], np.array([[0, 0], [0, 1]])), [],
                        Labels.range("n", 1))
    tensor = TensorMap(Labels.single(), [block])
    with pytest.raises(ValueError, match="'values' is not a valid axis"):
        ops.rename_dimension(tensor, "values", "a", "b")
    with pytest.raises(MetadataError, match=r"same label entry multiple times: \[0\] is already present"):
        ops.remove_dimension(tensor, "samples", "atom")
    with pytest.raises(ValueError, match="'components' is not a valid axis. Choose from 'keys', 'samples' or"):
        ops.append_dimension(tensor, "components", "a", 0)
