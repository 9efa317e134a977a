"""Shared inputs of the interop tests: a real model output with gradients, and comparisons."""

import functools

import numpy as np

import mtdsl
from mtdsl import TensorBlock, TensorMap
from mtdsl.tensor._array import to_numpy
from tests.torch._helpers import EXAMPLES, HYPERS, atoms


@functools.lru_cache(maxsize=None)
def expansion_output() -> TensorMap:
    """The spherical expansion of a water molecule and a rattled crystal, with positions and
    strain gradients and provenance in its info: several blocks, components, gradients."""
    model = mtdsl.compile(EXAMPLES / "spherical_expansion.mt", backend="cpp", **HYPERS["spherical_expansion"])
    return model(atoms(), gradients=["positions", "strain"])["rho"]


def assert_blocks_identical(ours: TensorBlock, theirs: TensorBlock):
    """Same labels, dtype, values bit for bit, and the same gradients (recursively)."""
    assert ours.samples == theirs.samples
    assert ours.components == theirs.components
    assert ours.properties == theirs.properties
    assert str(ours.dtype).replace("torch.", "") == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_array_equal(to_numpy(ours.values), to_numpy(theirs.values))
    assert sorted(ours.gradients_list()) == sorted(theirs.gradients_list())
    for parameter in ours.gradients_list():
        assert_blocks_identical(ours.gradient(parameter), theirs.gradient(parameter))


def assert_identical(ours: TensorMap, theirs: TensorMap):
    assert ours.keys == theirs.keys
    assert len(ours) == len(theirs)
    for first, second in zip(ours.blocks(), theirs.blocks()):
        assert_blocks_identical(first, second)
    assert ours.info() == theirs.info()
