"""Compare mtdsl results with those of the real metatensor-operations."""

from __future__ import annotations

import metatensor
import metatensor.operations as mts
import numpy as np
from hypothesis import HealthCheck, settings

from mtdsl import TensorBlock, TensorMap
from mtdsl.tensor._array import to_numpy

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def to_mts(value):
    """An mtdsl TensorMap/TensorBlock (or a list of them) as metatensor-core objects."""
    from mtdsl.io.metatensor import block_to_metatensor

    if isinstance(value, (list, tuple)):
        return [to_mts(v) for v in value]
    if isinstance(value, TensorBlock):
        return block_to_metatensor(value)
    return value.to_metatensor()


def from_mts(value):
    from mtdsl.io.metatensor import block_from_metatensor

    if isinstance(value, (list, tuple)):
        return [from_mts(v) for v in value]
    if isinstance(value, metatensor.TensorBlock):
        return block_from_metatensor(value)
    return TensorMap.from_metatensor(value)


def assert_same_block(ours: TensorBlock, theirs: TensorBlock, where="", gradients=True, atol=1e-12):
    assert ours.samples == theirs.samples, f"{where}samples differ"
    assert ours.components == theirs.components, f"{where}components differ"
    assert ours.properties == theirs.properties, f"{where}properties differ"
    a, b = to_numpy(ours.values), to_numpy(theirs.values)
    assert a.shape == b.shape, f"{where}shapes {a.shape} and {b.shape}"
    assert a.dtype == b.dtype, f"{where}dtypes {a.dtype} and {b.dtype}"
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=atol, equal_nan=True, err_msg=f"{where}values")
    if gradients:
        assert sorted(ours.gradients_list()) == sorted(theirs.gradients_list()), f"{where}gradient parameters"
        for parameter in ours.gradients_list():
            assert_same_block(ours.gradient(parameter), theirs.gradient(parameter), f"{where}{parameter}: ", atol=atol)


def assert_same(ours, theirs, gradients=True, atol=1e-12):
    """`ours` (mtdsl) and `theirs` (metatensor-core) have the same metadata and values within 1e-12."""
    if isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_same(a, b, gradients, atol)
        return
    theirs = from_mts(theirs)
    if isinstance(theirs, TensorBlock):
        assert_same_block(ours, theirs, gradients=gradients, atol=atol)
        return
    assert ours.keys == theirs.keys, f"keys differ:\n{ours.keys}\n{theirs.keys}"
    for index, (a, b) in enumerate(zip(ours.blocks(), theirs.blocks())):
        assert_same_block(a, b, f"block {index}: ", gradients=gradients, atol=atol)


def assert_reduction_same(function: str, tensor: TensorMap, names) -> None:
    """``ops.<function>`` on ``tensor`` and ``ops.<function>_block`` on its first block
    give what metatensor-operations' functions of the same names give."""
    import mtdsl.ops as ops

    assert_same(getattr(ops, function)(tensor, names), getattr(mts, function)(to_mts(tensor), names))
    block = tensor.block(0)
    ours = getattr(ops, function + "_block")(block, names)
    assert_same(ours, getattr(mts, function + "_block")(to_mts(block), names))


def redraw(tensor: TensorMap, seed: int, shift: float = 0.0) -> TensorMap:
    """A map with the metadata of `tensor` and other random values (gradients too)."""
    rng = np.random.default_rng(seed)

    def block_like(block):
        values = rng.standard_normal(tuple(block.values.shape)) + shift
        if not isinstance(block.values, np.ndarray):
            import torch

            values = torch.from_numpy(values).to(block.values.dtype)
        result = TensorBlock(values, block.samples, block.components, block.properties)
        for parameter, gradient in block.gradients():
            result.add_gradient(parameter, block_like(gradient))
        return result

    return TensorMap(tensor.keys, [block_like(b) for b in tensor.blocks()])


__all__ = ["redraw", "SETTINGS", "assert_same", "assert_same_block", "from_mts", "mts", "to_mts"]
