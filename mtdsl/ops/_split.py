"""`split` and `split_block`: several slices of a TensorMap at once.

Each selection gives one TensorMap (see `slice`); the labels are searched once per
block for all selections, and each result copies only its own entries.

Gradients: sliced with their parent rows, like `slice`.
"""

from __future__ import annotations

from typing import List, Union

from ..tensor import Labels, TensorBlock, TensorMap
from ._slice import check_slice_args, selected_indices, slice_with_indices
from ._utils import check_tensor_map


def _check_split_args(block: TensorBlock, axis: str, selections) -> None:
    if not isinstance(axis, str):
        raise TypeError(f"axis must be a string, not {type(axis)}")
    if not isinstance(selections, list):
        raise TypeError(f"`selections` must be a list, not {type(selections)}")
    if axis not in ("samples", "properties"):
        raise ValueError("axis must be either 'samples' or 'properties'")
    for selection in selections:
        check_slice_args(block, axis, selection)


def _split_block(block: TensorBlock, axis: str, selections: list) -> List[TensorBlock]:
    labels = block.samples if axis == "samples" else block.properties
    return [slice_with_indices(block, axis, selected) for selected in selected_indices(labels, selections)]


def split(tensor: TensorMap, axis: str, selections: List[Union[Labels, List[int]]]) -> List[TensorMap]:
    """Split ``tensor`` along ``axis`` into one TensorMap per selection.

    :param tensor: the TensorMap to split
    :param axis: ``"samples"`` or ``"properties"``
    :param selections: `Labels` or lists of positions, one per output (see `slice`)
    :return: a list of TensorMaps with the keys of ``tensor``
    """
    check_tensor_map(tensor, "tensor")
    blocks = tensor.blocks()
    if blocks:
        _check_split_args(blocks[0], axis, selections)
    per_block = [_split_block(block, axis, selections) for block in blocks]  # copies: no threads (see `join`)
    return [TensorMap(tensor.keys, [parts[i] for parts in per_block]) for i in range(len(selections))]


def split_block(block: TensorBlock, axis: str, selections: List[Union[Labels, List[int]]]) -> List[TensorBlock]:
    """Split ``block`` along ``axis``, one block per selection (see `split`)."""
    if not isinstance(block, TensorBlock):
        raise TypeError(f"`block` must be a metatensor TensorBlock, not {type(block)}")
    _check_split_args(block, axis, selections)
    return _split_block(block, axis, selections)
