"""Finite-difference checks of the gradients of every operation that propagates them
(arithmetic, reductions, join, slice and dot have their own, richer ones)."""

import numpy as np
import pytest
from hypothesis import given

import mtdsl.ops as ops
from mtdsl import Labels
from tests.strategies import tensormaps

from ._finite_differences import check_finite_differences
from ._reference import SETTINGS

KEYS = Labels(["o3_lambda"], np.array([[0]]))
SYSTEMS = Labels(["system"], np.array([[1], [3]]))

OPERATIONS = {
    "split": lambda t: ops.split(t, "samples", [SYSTEMS, Labels(["system"], np.array([[0]]))]),
    "split_block": lambda t: ops.split_block(t.block(0), "properties", [[0]]),
    "slice_block": lambda t: ops.slice_block(t.block(0), "samples", SYSTEMS),
    "join_blocks": lambda t: ops.join_blocks([t.block(0), t.block(0)], "samples", add_dimension="copy"),
    "sort": lambda t: ops.sort(t, descending=True),
    "sort_block": lambda t: ops.sort_block(t.block(0), "samples"),
    "drop_blocks": lambda t: ops.drop_blocks(t, KEYS),
    "filter_blocks": lambda t: ops.filter_blocks(t, KEYS, copy=True),
    "drop_empty_blocks": lambda t: ops.drop_empty_blocks(t),
    "append_dimension": lambda t: ops.append_dimension(t, "samples", "extra", 1),
    "insert_dimension": lambda t: ops.insert_dimension(t, "properties", 0, "extra", 1),
    "permute_dimensions": lambda t: ops.permute_dimensions(t, "samples", [1, 0]),
    "rename_dimension": lambda t: ops.rename_dimension(t, "samples", "system", "structure"),
    "remove_dimension": lambda t: ops.remove_dimension(ops.append_dimension(t, "keys", "extra", 0), "keys", "extra"),
    "detach": ops.detach,
    "make_contiguous": ops.make_contiguous,
    "zeros_like": ops.zeros_like,
    "mean_over_samples_block": lambda t: ops.mean_over_samples_block(t.block(0), "atom"),
    "var_over_properties_block": lambda t: ops.var_over_properties_block(t.block(0), "n"),
    "subtract_scalar": lambda t: ops.subtract(t, 1.5),
}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
@SETTINGS
@given(tensor=tensormaps(min_samples=1))
def test_finite_differences(name, tensor):
    check_finite_differences(OPERATIONS[name], [tensor])
