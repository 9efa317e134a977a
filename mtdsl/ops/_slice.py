"""`slice` and `slice_block`: keep a selection of samples or properties.

The selection is a `Labels` (entries matching it on its dimensions are kept, in
the block's order), or a list / 1-D array of positions (kept in the given order
for samples, in the block's order for properties, like metatensor-operations).
Gradient rows of removed samples are removed; the others point at the new rows.
Only the kept entries are copied.

Gradients: slicing is linear, gradients are sliced the same way.
"""

from __future__ import annotations

from typing import List, Union

import numpy as np

from ..tensor import Labels, TensorBlock, TensorMap
from ..tensor._array import to_numpy
from ..tensor.labels import row_keys
from . import _dispatch
from ._utils import check_tensor_map, no_gradients_of_gradients

AXES = ("samples", "properties")


class Selector:
    """Finds, for many selections, the entries of `labels` matching each one.

    The labels rows (restricted to the selection's names) are encoded and sorted
    once; each selection then costs a binary search of its own entries.
    """

    def __init__(self, labels: Labels, selections: List[Labels]):
        self._n = len(labels)
        # selections naming every dimension keep their own order (metatensor-core's select)
        self._in_selection_order = bool(selections) and selections[0].names == labels.names
        names = selections[0].names if selections else []
        columns = [labels.names.index(n) for n in names]
        arrays = [labels.array[:, columns]] + [s.array for s in selections]
        keys = row_keys(*arrays) if arrays[0].shape[1] else [np.zeros(len(a), np.int64) for a in arrays]
        self._order = np.argsort(keys[0], kind="stable")
        self._sorted = keys[0][self._order]
        self._selection_keys = keys[1:]

    def indices(self, i: int) -> np.ndarray:
        """Positions of the entries matching selection `i` (increasing, or in the
        selection's order when it names every dimension)."""
        wanted = self._selection_keys[i]
        left = np.searchsorted(self._sorted, wanted, side="left")
        right = np.searchsorted(self._sorted, wanted, side="right")
        lengths = right - left
        if self._in_selection_order:
            return self._order[left[lengths > 0]]
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64)
        starts = np.repeat(left - np.cumsum(lengths) + lengths, lengths)
        positions = starts + np.arange(total)
        return np.sort(self._order[positions])


def _positions(selection) -> np.ndarray:
    array = np.asarray(to_numpy(selection) if not isinstance(selection, list) else selection, dtype=np.int64)
    return array.reshape(-1)


def selected_indices(labels: Labels, selections: list) -> List[np.ndarray]:
    """For each selection (Labels, list or array), the positions in `labels` it selects."""
    result: List[np.ndarray] = [None] * len(selections)
    by_names: dict = {}
    for i, selection in enumerate(selections):
        if isinstance(selection, Labels):
            by_names.setdefault(tuple(selection.names), []).append(i)
        else:
            result[i] = _positions(selection)
    for names, group in by_names.items():
        selector = Selector(labels, [selections[i] for i in group])
        for j, i in enumerate(group):
            result[i] = selector.indices(j)
    return result


def _slice_block_samples(block: TensorBlock, selected: np.ndarray, mask_order: bool = False) -> TensorBlock:
    samples = Labels._trusted(tuple(block.samples.names), block.samples.array[selected], like=block.samples.values)
    result = TensorBlock(_dispatch.take(block.values, selected), samples, block.components, block.properties)
    if not block.gradients_list():
        return result
    sample_map = np.full(len(block.samples), -1, dtype=np.int64)
    sample_map[selected] = np.arange(len(selected))
    for parameter, gradient in block.gradients():
        no_gradients_of_gradients(gradient)
        rows = gradient.samples.array
        new_sample = sample_map[rows[:, 0]]
        kept = np.nonzero(new_sample >= 0)[0]
        new_rows = rows[kept].copy()
        new_rows[:, 0] = new_sample[kept]
        g_samples = Labels._trusted(tuple(gradient.samples.names), new_rows, like=gradient.samples.values)
        g_values = _dispatch.take(gradient.values, kept)
        result.add_gradient(parameter, TensorBlock(g_values, g_samples, gradient.components, block.properties))
    return result


def _slice_block_properties(block: TensorBlock, selected: np.ndarray) -> TensorBlock:
    mask = np.zeros(len(block.properties), dtype=bool)
    mask[selected] = True
    kept = np.nonzero(mask)[0]
    properties = Labels._trusted(tuple(block.properties.names), block.properties.array[kept],
                                 like=block.properties.values)
    axis = block.values.ndim - 1
    result = TensorBlock(_dispatch.take(block.values, kept, axis), block.samples, block.components, properties)
    for parameter, gradient in block.gradients():
        no_gradients_of_gradients(gradient)
        g_values = _dispatch.take(gradient.values, kept, gradient.values.ndim - 1)
        result.add_gradient(parameter, TensorBlock(g_values, gradient.samples, gradient.components, properties))
    return result


def slice_with_indices(block: TensorBlock, axis: str, selected: np.ndarray) -> TensorBlock:
    if axis == "samples":
        return _slice_block_samples(block, selected)
    return _slice_block_properties(block, selected)


def check_slice_args(block: TensorBlock, axis: str, selection) -> None:
    if axis not in AXES:
        raise ValueError(f"``axis``: {axis} is not known as a slicing axis. Please use 'samples' or 'properties'")
    if isinstance(selection, Labels):
        names = block.samples.names if axis == "samples" else block.properties.names
        what = "sample" if axis == "samples" else "property"
        for name in selection.names:
            if name not in names:
                raise ValueError(f"invalid {what} name '{name}' which is not part of the input")
    elif isinstance(selection, list) or hasattr(selection, "shape"):
        if hasattr(selection, "shape") and len(selection.shape) > 1:
            raise ValueError("`selection` must be a 1-D array of integers")
    else:
        raise TypeError(f"`selection` must be Labels, an array or List[int], not {type(selection)}")


def slice(tensor: TensorMap, axis: str, selection: Union[Labels, List[int]]) -> TensorMap:
    """Keep, in every block, the samples or properties (``axis``) matching ``selection``.

    :param tensor: the TensorMap to slice
    :param axis: ``"samples"`` or ``"properties"``
    :param selection: `Labels` over some of the axis' dimensions (every matching
        entry is kept), or positions along the axis
    :return: a TensorMap with the same keys, and blocks possibly empty
    """
    check_tensor_map(tensor, "tensor")
    blocks = tensor.blocks()
    if blocks:
        check_slice_args(blocks[0], axis, selection)
    labels = (lambda b: b.samples) if axis == "samples" else (lambda b: b.properties)
    # no threads: slicing is copying into fresh arrays (see `join`)
    return TensorMap(
        tensor.keys, [slice_with_indices(b, axis, selected_indices(labels(b), [selection])[0]) for b in blocks]
    )


def slice_block(block: TensorBlock, axis: str, selection: Union[Labels, List[int]]) -> TensorBlock:
    """Keep the samples or properties of ``block`` matching ``selection`` (see `slice`)."""
    if not isinstance(block, TensorBlock):
        raise TypeError(f"`block` must be a metatensor TensorBlock, not {type(block)}")
    check_slice_args(block, axis, selection)
    labels = block.samples if axis == "samples" else block.properties
    return slice_with_indices(block, axis, selected_indices(labels, [selection])[0])
