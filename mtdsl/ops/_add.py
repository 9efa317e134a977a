"""`add`: the sum of two TensorMaps with the same metadata, or of a TensorMap and a scalar."""

from __future__ import annotations

from typing import Union

from ..tensor import TensorBlock, TensorMap
from . import _checks
from ._block import map_gradients, new_block
from ._parallel import map_blocks
from ._utils import (
    NotEqualError,
    check_blocks_raise,
    check_same_gradients_raise,
    check_same_keys_raise,
    check_tensor_map,
    key_name,
    matching_blocks,
)


def _add_block_constant(block: TensorBlock, constant: float) -> TensorBlock:
    result = new_block(block.values + constant, block)
    return map_gradients(block, result, lambda parameter, gradient: gradient.values)


def _add_block_block(block_1: TensorBlock, block_2: TensorBlock) -> TensorBlock:
    result = new_block(block_1.values + block_2.values, block_1)
    return map_gradients(
        block_1, result, lambda parameter, gradient: gradient.values + block_2.gradient(parameter).values
    )


def add(A: TensorMap, B: Union[float, int, TensorMap]) -> TensorMap:
    r"""A new TensorMap with the values of ``A + B``.

    ``B`` is a scalar or a TensorMap with the same metadata as ``A`` (its keys may
    come in another order; samples, components, properties and gradients must match).

    Gradients: :math:`\nabla(A + B) = \nabla A` for a scalar ``B``,
    :math:`\nabla(A + B) = \nabla A + \nabla B` for a TensorMap ``B``.

    :param A: first TensorMap
    :param B: scalar or TensorMap with the same metadata as ``A``
    :return: a TensorMap with the metadata of ``A``
    """
    check_tensor_map(A, "A")
    if isinstance(B, (float, int)):
        blocks = map_blocks(lambda block: _add_block_constant(block, float(B)), A.blocks())
    elif isinstance(B, TensorMap):
        blocks_B = _checked_pairs(A, B, "add")
        blocks = map_blocks(_add_block_block, A.blocks(), blocks_B)
    else:
        raise TypeError(f"`B` must be a metatensor TensorMap or a scalar value, not {type(B)}")
    return TensorMap(A.keys, blocks)


def _checked_pairs(A: TensorMap, B: TensorMap, fname: str) -> list[TensorBlock]:
    """The blocks of `B` matching those of `A`, after checking all metadata agrees."""
    check_same_keys_raise(A, B, fname)
    blocks_B = matching_blocks(A, B)
    if not _checks.checks_enabled():
        # the entries are trusted, but names and gradient lists cost nothing to compare
        for index, (block_A, block_B) in enumerate(zip(A.blocks(), blocks_B)):
            _check_names_and_gradients(block_A, block_B, fname, key_name(A, index))
        return blocks_B
    for index, (block_A, block_B) in enumerate(zip(A.blocks(), blocks_B)):
        key = key_name(A, index)
        check_blocks_raise(block_A, block_B, fname, key=key)
        check_same_gradients_raise(block_A, block_B, fname, key=key)
    return blocks_B


def _check_names_and_gradients(block_A: TensorBlock, block_B: TensorBlock, fname: str, key: str) -> None:
    for axis in ("samples", "properties"):
        names_A, names_B = getattr(block_A, axis).names, getattr(block_B, axis).names
        if names_A != names_B:
            raise NotEqualError(
                f"inputs to '{fname}' should have the same {axis}, but they are not the same or not in the same "
                f"order for block {key}: names {names_A} and {names_B}"
            )
    if sorted(block_A.gradients_list()) != sorted(block_B.gradients_list()):
        raise NotEqualError(
            f"inputs to '{fname}' should have the same gradient parameters for block {key}, "
            f"got {sorted(block_A.gradients_list())} and {sorted(block_B.gradients_list())}"
        )
