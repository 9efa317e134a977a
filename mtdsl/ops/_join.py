"""`join` and `join_blocks`: concatenate TensorMaps (or blocks) along samples or properties.

Joining along samples stacks the blocks' rows; every block must have the same
components and properties, and the result's samples must be unique (or made
unique with ``add_dimension``, a new last sample dimension holding the index of
the input). Gradient rows are stacked too, their ``sample`` column shifted to
point at the joined rows.

Joining along properties stacks the blocks' columns; every block must have the
same samples and components. Inputs with different property names give
properties ``(joined_index, property)``. The gradient samples are the union of
the inputs' gradient samples (in order of first appearance) and each input's
gradient values fill its own properties, zero elsewhere.

Keys: ``different_keys="error"`` requires the same keys everywhere,
``"intersection"`` keeps the common keys, ``"union"`` keeps all of them and
treats missing blocks as empty.

Gradients: the joined gradient is the join of the gradients (a linear
operation), so no other rule applies. All work is a single concatenation per
block and array, so the cost is linear in the total size.
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np

from ..tensor import Labels, TensorBlock, TensorMap
from ..tensor.labels import row_keys
from ..tensor.tensormap import describe_key
from . import _dispatch
from ._utils import (
    NotEqualError,
    check_same_keys_impl,
    labels_difference,
    no_gradients_of_gradients,
)

AXES = ("samples", "properties")


def _check_same(first: Labels, other: Labels, fname: str, what: str, index: int, key: str) -> None:
    difference = labels_difference(first, other)
    if difference:
        where = f" for block {key}" if key else ""
        raise NotEqualError(f"inputs to '{fname}' should have the same {what}{where}: input {index} has {difference}")


def _all_same(labels: List[Labels]) -> bool:
    """Whether all labels equal the first, in a few vectorized operations."""
    first = labels[0]
    if all(other is first for other in labels):
        return True
    shape, names = first.array.shape, first._names
    if any(other._names != names or other.array.shape != shape for other in labels):
        return False
    return bool(np.all(np.stack([other.array for other in labels]) == first.array))


def _check_same_all(labels: List[Labels], fname: str, what: str, key: str) -> None:
    if not _all_same(labels):
        for index, other in enumerate(labels[1:], start=1):
            _check_same(labels[0], other, fname, what, index, key)


def _components_agree(blocks: List[TensorBlock]) -> bool:
    """Fast path: same gradients, and the same components (values and gradients) everywhere."""
    first = blocks[0]
    parameters = sorted(first.gradients_list())
    if any(sorted(b.gradients_list()) != parameters for b in blocks):
        return False
    groups = [[b.components for b in blocks]] + [[b.gradient(p).components for b in blocks] for p in parameters]
    for components in groups:
        n = len(components[0])
        if any(len(c) != n for c in components):
            return False
        if not all(_all_same([c[i] for c in components]) for i in range(n)):
            return False
    return True


def _check_components(blocks: List[TensorBlock], fname: str, key: str) -> None:
    """Same components and gradients in every block, else an error naming the first difference."""
    if _components_agree(blocks):
        return
    first = blocks[0]
    where = f" for block {key}" if key else ""
    for index, block in enumerate(blocks[1:], start=1):
        if sorted(block.gradients_list()) != sorted(first.gradients_list()):
            raise NotEqualError(
                f"inputs to '{fname}' should have the same gradient parameters{where}, "
                f"got {sorted(first.gradients_list())} and {sorted(block.gradients_list())} for input {index}"
            )
        pairs = [("", first, block)] + [
            (f"gradient '{p}' ", first.gradient(p), block.gradient(p)) for p in first.gradients_list()
        ]
        for prefix, reference, other in pairs:
            if len(other.components) != len(reference.components):
                raise NotEqualError(
                    f"inputs to '{fname}' should have the same {prefix}components{where}: input {index} has "
                    f"{len(other.components)} components instead of {len(reference.components)}"
                )
            for c_first, c_other in zip(reference.components, other.components):
                _check_same(c_first, c_other, fname, f"{prefix}component '{c_first.names[0]}'", index, key)


def _sample_columns(block: TensorBlock, names: list[str]) -> np.ndarray:
    """The block's sample rows with columns in the order of `names` (same set of names)."""
    own = block.samples.names
    if own == names:
        return block.samples.array
    return block.samples.array[:, [own.index(n) for n in names]]


def _check_joinable(blocks: List[TensorBlock], fname: str, key: str, same: str) -> None:
    """The blocks joined along one axis agree on their components and on the axis ``same``."""
    _check_components(blocks, fname, key)
    _check_same_all([getattr(b, same) for b in blocks], fname, same, key)


def _gradients_of(blocks: List[TensorBlock], parameter: str) -> List[TensorBlock]:
    """The ``parameter`` gradient of every block (none may have gradients of its own)."""
    gradients = [b.gradient(parameter) for b in blocks]
    for gradient in gradients:
        no_gradients_of_gradients(gradient)
    return gradients


def _input_index(counts: np.ndarray) -> np.ndarray:
    """For each joined row, the input it comes from (``counts`` rows an input)."""
    return np.repeat(np.arange(len(counts), dtype=np.int32), counts)


def _join_block_samples(
    blocks: List[TensorBlock], fname: str, add_dimension: Optional[str], key: str = ""
) -> TensorBlock:
    if len(blocks) == 1:
        return blocks[0]
    first = blocks[0]
    _check_joinable(blocks, fname, key, same="properties")
    names = first.samples.names
    counts = np.array([len(b.samples) for b in blocks], dtype=np.int64)
    rows = np.concatenate([_sample_columns(b, names) for b in blocks])
    if add_dimension is not None:
        rows = np.concatenate([rows, _input_index(counts)[:, None]], axis=1)
        samples = Labels._trusted((*names, add_dimension), rows, like=first.samples.values)
        Labels([*names, add_dimension], rows[:0])  # checks the new name
    else:
        samples = _unique_labels(names, rows, first.samples, fname)
    values = _dispatch.concatenate([b.values for b in blocks], axis=0)
    result = TensorBlock(values, samples, first.components, first.properties)
    shifts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for parameter, first_gradient in first.gradients():
        gradients = _gradients_of(blocks, parameter)
        g_counts = np.array([len(g.samples) for g in gradients], dtype=np.int64)
        g_rows = np.concatenate([g.samples.array for g in gradients])
        g_rows[:, 0] += np.repeat(shifts, g_counts).astype(np.int32)
        g_samples = Labels._trusted(tuple(first_gradient.samples.names), g_rows, like=first_gradient.samples.values)
        g_values = _dispatch.concatenate([g.values for g in gradients], axis=0)
        result.add_gradient(parameter, TensorBlock(g_values, g_samples, first_gradient.components, first.properties))
    return result


def _unique_labels(names, rows: np.ndarray, like: Labels, fname: str) -> Labels:
    keys = row_keys(rows)[0]
    ordered = np.sort(keys)
    duplicated = np.nonzero(ordered[1:] == ordered[:-1])[0]
    if len(duplicated):
        first = int(np.nonzero(keys == ordered[duplicated[0]])[0][0])
        entry = ", ".join(f"{n}={int(v)}" for n, v in zip(names, rows[first]))
        raise NotEqualError(
            f"the joined samples of '{fname}' contain ({entry}) twice; "
            "use `add_dimension` to tell the inputs apart"
        )
    return Labels._trusted(tuple(names), rows, like=like.values)


def _join_block_properties(
    blocks: List[TensorBlock], fname: str, add_dimension: Optional[str], key: str = ""
) -> TensorBlock:
    if len(blocks) == 1:
        return blocks[0]
    first = blocks[0]
    _check_joinable(blocks, fname, key, same="samples")
    names = first.properties.names
    different_names = any(b.properties.names != names for b in blocks)
    counts = np.array([len(b.properties) for b in blocks], dtype=np.int64)
    input_index = _input_index(counts)
    if different_names:
        if add_dimension is not None:
            raise ValueError(
                "We can not add an extra dimension to properties when the inputs have different property names"
            )
        position = np.concatenate([np.arange(c, dtype=np.int32) for c in counts])
        properties = Labels._trusted(("joined_index", "property"), np.stack([input_index, position], axis=1),
                                     like=first.properties.values)
    else:
        rows = np.concatenate([b.properties.array for b in blocks])
        if add_dimension is not None:
            Labels([*names, add_dimension], np.zeros((0, len(names) + 1), np.int32))  # checks the new name
            properties = Labels._trusted((*names, add_dimension), np.concatenate([rows, input_index[:, None]], axis=1),
                                         like=first.properties.values)
        else:
            properties = Labels(names, rows)
            properties = Labels._trusted(tuple(names), properties.array, like=first.properties.values)
    values = _dispatch.concatenate([b.values for b in blocks], axis=-1)
    result = TensorBlock(values, first.samples, first.components, properties)
    for parameter, first_gradient in first.gradients():
        gradients = _gradients_of(blocks, parameter)
        same_samples = all(g.samples == first_gradient.samples for g in gradients[1:])
        if same_samples:
            g_samples = first_gradient.samples
            g_values = _dispatch.concatenate([g.values for g in gradients], axis=-1)
        else:
            g_samples, g_values = _union_gradients(gradients, len(properties))
        result.add_gradient(parameter, TensorBlock(g_values, g_samples, first_gradient.components, properties))
    return result


def _union_gradients(gradients: List[TensorBlock], n_properties: int):
    """Union of the gradient samples (first appearance order) and the values placed in it."""
    arrays = [g.samples.array for g in gradients]
    stacked = np.concatenate(arrays)
    keys = row_keys(stacked)[0]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    positions = rank[inverse.reshape(-1)]
    reference = gradients[0]
    samples = Labels._trusted(tuple(reference.samples.names), stacked[first[order]], like=reference.samples.values)
    shape = (len(samples), *reference.values.shape[1:-1], n_properties)
    values = _dispatch.zeros_like(reference.values, shape)
    start, offset = 0, 0
    for gradient, array in zip(gradients, arrays):
        rows = positions[offset : offset + len(array)]
        stop = start + gradient.values.shape[-1]
        values[_dispatch.index_like(rows, values), ..., start:stop] = gradient.values
        start, offset = stop, offset + len(array)
    return samples, values


def _check_axis(axis: str) -> None:
    if axis not in AXES:
        raise ValueError("Only `'properties'` or `'samples'` are valid values for the `axis` parameter.")


def _check_sample_names(names_list: List[List[str]], what: str, fname: str) -> None:
    if not names_list:
        return
    first = sorted(names_list[0])
    for names in names_list[1:]:
        if sorted(names) != first or len(set(names)) != len(names):
            raise ValueError(
                f"Different {what} have different sample names in `{fname}`. Joining along samples with "
                "different sample names will lose information and is not supported."
            )


def join(
    tensors: List[TensorMap],
    axis: str,
    different_keys: str = "error",
    add_dimension: Optional[str] = None,
) -> TensorMap:
    """Join a list of TensorMaps along ``axis`` (``"samples"`` or ``"properties"``).

    :param tensors: the TensorMaps to join
    :param axis: ``"samples"`` or ``"properties"``
    :param different_keys: ``"error"``, ``"intersection"`` or ``"union"``: what to
        do when the inputs have different keys
    :param add_dimension: name of a new dimension (last, on ``axis``) holding the
        index of the input each entry comes from
    :return: the joined TensorMap, with the keys of the first input (or the
        intersection / union of the keys)
    """
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"`tensors` must be a list or a tuple, not {type(tensors)}")
    for tensor in tensors:
        if not isinstance(tensor, TensorMap):
            raise TypeError(f"`tensors` elements must be TensorMap, not {type(tensor)}")
    if len(tensors) == 0:
        raise ValueError("provide at least one `TensorMap` for joining")
    _check_axis(axis)
    if len(tensors) == 1:
        return tensors[0]
    if different_keys == "error":
        for other in tensors[1:]:
            message = check_same_keys_impl(tensors[0], other, "join")
            if message:
                raise NotEqualError(message)
        keys = tensors[0].keys
        grid = _block_grid(keys, tensors)
    elif different_keys == "intersection":
        keys = tensors[0].keys
        for tensor in tensors[1:]:
            keys = keys.intersection(tensor.keys)
        grid = _block_grid(keys, tensors)
    elif different_keys == "union":
        keys = tensors[0].keys
        for tensor in tensors[1:]:
            keys = keys.union(tensor.keys)
        grid = _block_grid(keys, tensors, missing_ok=True)
    else:
        raise ValueError(
            f"'{different_keys}' is not a valid option for `different_keys`. "
            "Choose either 'error', 'intersection' or 'union'."
        )
    if axis == "samples":
        _check_sample_names([t.sample_names for t in tensors if len(t)], "tensor", "join")
    if different_keys == "union":
        grid = [_fill_missing(row, axis) for row in grid]
    names = [describe_key(keys, index) for index in range(len(keys))]
    join_row = _join_block_samples if axis == "samples" else _join_block_properties
    # no threads: joining is copying into fresh arrays, and allocations from worker threads
    # (other malloc arenas) page-fault much more than the copy saves
    blocks = [join_row(row, "join", add_dimension, key) for row, key in zip(grid, names)]
    return TensorMap(keys, blocks)


def _block_grid(keys: Labels, tensors: List[TensorMap], missing_ok: bool = False) -> List[list]:
    """grid[k][t]: the block of `tensors[t]` for key k (None when missing)."""
    grid = [[None] * len(tensors) for _ in range(len(keys))]
    for t, tensor in enumerate(tensors):
        if tensor.keys is keys or np.array_equal(tensor.keys.array, keys.array):
            positions = range(len(keys))
        else:
            positions = tensor.keys.positions(keys.array).tolist()
        blocks = tensor.blocks()
        for k, position in enumerate(positions):
            if position >= 0:
                grid[k][t] = blocks[position]
    return grid


def _fill_missing(row: list, axis: str) -> List[TensorBlock]:
    reference = next(b for b in row if b is not None)
    empty = None
    result = []
    for block in row:
        if block is None:
            empty = empty or _empty_like(reference, axis)
            block = empty
        result.append(block)
    return result


def _empty_like(block: TensorBlock, axis: str) -> TensorBlock:
    """A block like `block` with nothing along `axis`."""
    def shrink(b: TensorBlock, properties: Labels) -> TensorBlock:
        if axis == "samples":
            shape = (0, *b.values.shape[1:])
            samples = Labels.empty(b.samples.names)
            if _dispatch.is_torch(b.samples.values):
                samples = Labels._trusted(tuple(b.samples.names), samples.array, like=b.samples.values)
            return TensorBlock(_dispatch.empty_like(b.values, shape), samples, b.components, properties)
        shape = (*b.values.shape[:-1], 0)
        return TensorBlock(_dispatch.empty_like(b.values, shape), b.samples, b.components, properties)

    if axis == "samples":
        properties = block.properties
    else:
        properties = Labels._trusted(tuple(block.properties.names),
                                     np.zeros((0, len(block.properties.names)), np.int32),
                                     like=block.properties.values)
    result = shrink(block, properties)
    for parameter, gradient in block.gradients():
        no_gradients_of_gradients(gradient)
        result.add_gradient(parameter, shrink(gradient, properties))
    return result


def join_blocks(blocks: List[TensorBlock], axis: str, add_dimension: Optional[str] = None) -> TensorBlock:
    """Join a list of TensorBlocks along ``axis`` (see `join`)."""
    if not isinstance(blocks, (list, tuple)):
        raise TypeError(f"`blocks` must be a list or a tuple, not {type(blocks)}")
    for block in blocks:
        if not isinstance(block, TensorBlock):
            raise TypeError(f"`blocks` elements must be TensorBlock, not {type(block)}")
    if len(blocks) == 0:
        raise ValueError("provide at least one `TensorBlock` for joining")
    _check_axis(axis)
    if axis == "samples":
        _check_sample_names([b.samples.names for b in blocks], "blocks", "join_blocks")
        return _join_block_samples(list(blocks), "join_blocks", add_dimension)
    return _join_block_properties(list(blocks), "join_blocks", add_dimension)
