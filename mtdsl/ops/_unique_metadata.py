"""`unique_metadata`: the distinct values of some sample or property dimensions."""

from __future__ import annotations

from typing import List, Optional, Tuple, Union

import numpy as np

from ..tensor import Labels, TensorBlock, TensorMap
from ..tensor.labels import row_keys
from ._utils import check_tensor_map


def _unique_from_blocks(blocks: List[TensorBlock], axis: str, names: List[str], like) -> Labels:
    arrays = []
    for block in blocks:
        labels = block.samples if axis == "samples" else block.properties
        for name in names:
            if name not in labels.names:
                raise ValueError(f"'{name}' not found in the dimensions of these Labels")
        arrays.append(labels.array[:, [labels.names.index(n) for n in names]])
    stacked = np.concatenate(arrays) if arrays else np.zeros((0, len(names)), np.int32)
    if len(stacked) and names:
        _, first = np.unique(row_keys(stacked)[0], return_index=True)  # sorted like the rows
        stacked = stacked[first]
    return Labels._trusted(tuple(names), stacked, like=like)


def _check_args(axis, names, gradient) -> List[str]:
    names = [names] if isinstance(names, str) else list(names) if isinstance(names, tuple) else names
    if not isinstance(axis, str):
        raise TypeError(f"`axis` must be a string, not {type(axis)}")
    if not isinstance(names, list):
        raise TypeError(f"`names` must be a list of strings, not {type(names)}")
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"`names` elements must be a strings, not {type(name)}")
    if gradient is not None and not isinstance(gradient, str):
        raise TypeError(f"`gradient` must be a string, not {type(gradient)}")
    if axis not in ("samples", "properties"):
        raise ValueError(f"`axis` must be either 'samples' or 'properties', not '{axis}'")
    return names


def unique_metadata(
    tensor: TensorMap, axis: str, names: Union[List[str], Tuple[str], str], gradient: Optional[str] = None
) -> Labels:
    """The unique entries (sorted) of the dimensions ``names`` of ``axis`` over all blocks.

    :param axis: ``"samples"`` or ``"properties"``
    :param names: the dimensions to look at
    :param gradient: look at this gradient's blocks instead of the values' blocks
    """
    check_tensor_map(tensor, "tensor")
    names = _check_args(axis, names, gradient)
    blocks = tensor.blocks() if gradient is None else [b.gradient(gradient) for b in tensor.blocks()]
    return _unique_from_blocks(blocks, axis, names, tensor.keys.values)


def unique_metadata_block(
    block: TensorBlock, axis: str, names: Union[List[str], Tuple[str], str], gradient: Optional[str] = None
) -> Labels:
    """The unique entries (sorted) of the dimensions ``names`` of ``axis`` in ``block``."""
    if not isinstance(block, TensorBlock):
        raise TypeError(f"`block` must be a metatensor TensorBlock, not {type(block)}")
    names = _check_args(axis, names, gradient)
    blocks = [block] if gradient is None else [block.gradient(gradient)]
    return _unique_from_blocks(blocks, axis, names, block.samples.values)
