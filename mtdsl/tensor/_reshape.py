"""Moving metadata between axes: keys to samples, keys to properties, components to properties.

These follow metatensor-core's semantics: blocks that differ only in the moved keys
are merged; the order of merged entries is the order of the keys, samples are
sorted on request, and entries a block lacks are filled.
"""

from __future__ import annotations

import numpy as np

from ..errors import MetadataError
from ._array import is_torch, zeros
from .block import TensorBlock
from .labels import Labels, check_names, describe_key, row_keys


def _split_keys(tensor, keys_to_move) -> tuple[list[str], list[str], list[list[int]], Labels]:
    """Names moved and kept, the block indices of each group, and the new keys."""
    if isinstance(keys_to_move, Labels):
        moved = keys_to_move.names
    else:
        moved = list(check_names(keys_to_move))
    names = tensor.keys.names
    for name in moved:
        if name not in names:
            raise MetadataError(f"cannot move key {name!r}: the keys are {names}")
    kept = [n for n in names if n not in moved]
    if not kept:
        return moved, kept, [list(range(len(tensor)))], Labels.single()
    kept_values = tensor.keys.array[:, [names.index(n) for n in kept]]
    keys = row_keys(kept_values)[0]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    group_order = np.argsort(first, kind="stable")  # groups in order of first appearance
    rank = np.empty_like(group_order)
    rank[group_order] = np.arange(len(group_order))
    groups = [[] for _ in group_order]
    for index, group in enumerate(rank[inverse.reshape(-1)]):
        groups[group].append(index)
    new_keys = Labels(kept, kept_values[first[group_order]], assume_unique=True)
    return moved, kept, groups, new_keys


def _moved_values(tensor, moved: list[str], indices: list[int]) -> np.ndarray:
    columns = [tensor.keys.names.index(n) for n in moved]
    return tensor.keys.array[np.asarray(indices, dtype=np.int64)][:, columns]


def _take(values, rows):
    return values[rows] if not is_torch(values) else values[__import__("torch").from_numpy(rows)]


def _merged(arrays: list, order: np.ndarray):
    """`concatenate(arrays)[order]`, copying each array's rows once, straight to their place."""
    if len(arrays) == 1:
        return _take(arrays[0], order)
    destination = np.empty(len(order), dtype=np.int64)
    destination[order] = np.arange(len(order))
    like = arrays[0]
    shape = (len(order), *like.shape[1:])
    if is_torch(like):
        import torch

        result = torch.empty(shape, dtype=like.dtype, device=like.device)
    else:
        result = np.empty(shape, dtype=like.dtype)
    start = 0
    for array in arrays:
        rows = destination[start : start + len(array)]
        start += len(array)
        if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and np.all(np.diff(rows) == 1):
            result[int(rows[0]) : int(rows[-1]) + 1] = array  # a contiguous run: plain slice copy
        elif is_torch(result):
            result[torch.from_numpy(rows).to(result.device)] = array
        else:
            result[rows] = array
    return result


def _lexsort_rows(array: np.ndarray) -> np.ndarray:
    if array.shape[1] == 0:
        return np.arange(len(array))
    return np.lexsort(array.T[::-1])


def _remap_gradient_samples(gradient_samples: np.ndarray, row_map: np.ndarray) -> np.ndarray:
    remapped = gradient_samples.copy()
    remapped[:, 0] = row_map[gradient_samples[:, 0]]
    return remapped


def keys_to_samples(tensor, keys_to_move, *, fill_value=0.0, sort_samples: bool = True):
    TensorMap = type(tensor)  # the class of the input: this module sits below tensormap.py, which calls it
    moved, _, groups, new_keys = _split_keys(tensor, keys_to_move)
    blocks = []
    for indices in groups:
        parts = [tensor.block_by_id(i) for i in indices]
        for index, part in zip(indices[1:], parts[1:]):
            if part.components != parts[0].components or part.properties.names != parts[0].properties.names:
                raise MetadataError(
                    f"keys_to_samples: block {describe_key(tensor.keys, index)} has other components or property "
                    f"names than block {describe_key(tensor.keys, indices[0])}, so they cannot be merged"
                )
        if any(part.properties != parts[0].properties for part in parts[1:]):
            parts = _on_union_of_properties(parts, fill_value)
        moved_rows = _moved_values(tensor, moved, indices)
        sample_arrays = [
            np.concatenate([b.samples.array, np.repeat(moved_rows[k : k + 1], len(b.samples), axis=0)], axis=1)
            for k, b in enumerate(parts)
        ]
        samples = np.concatenate(sample_arrays) if sample_arrays else np.zeros((0, 0), np.int32)
        offsets = np.cumsum([0] + [len(b.samples) for b in parts])
        order = _lexsort_rows(samples) if sort_samples else np.arange(len(samples))
        new_row = np.empty(len(order), dtype=np.int64)
        new_row[order] = np.arange(len(order))
        first = parts[0]
        block = TensorBlock(
            _merged([b.values for b in parts], order),
            Labels(first.samples.names + moved, samples[order], assume_unique=True),
            first.components,
            first.properties,
        )
        for parameter in first.gradients_list():
            gradients = [b.gradient(parameter) for b in parts]
            gradient_samples = np.concatenate(
                [_remap_gradient_samples(g.samples.array, new_row[offsets[k] : offsets[k + 1]]) for k, g in enumerate(gradients)]
            )
            g_order = _lexsort_rows(gradient_samples)  # metatensor sorts gradient samples in any case
            block.add_gradient(
                parameter,
                TensorBlock(
                    _merged([g.values for g in gradients], g_order),
                    Labels(gradients[0].samples.names, gradient_samples[g_order], assume_unique=True),
                    gradients[0].components,
                    gradients[0].properties,
                ),
            )
        blocks.append(block)
    result = TensorMap(new_keys, blocks)
    for key, value in tensor.info().items():
        result.set_info(key, value)
    return result


def _on_union_of_properties(parts: list, fill_value) -> list:
    """The blocks with the union of their properties (in order of appearance), as metatensor-core
    0.2.6 merges them: values a block lacks are `fill_value`, gradients a block lacks are 0."""
    union, positions = _union_rows([part.properties.array for part in parts], sort=False)
    properties = Labels(parts[0].properties.names, union, assume_unique=True)

    def widened(values, columns, fill):
        result = zeros((*values.shape[:-1], len(union)), values)
        if fill:
            result = result + fill
        result[..., _index(columns, values)] = values
        return result

    blocks = []
    for part, columns in zip(parts, positions):
        block = TensorBlock(widened(part.values, columns, fill_value), part.samples, part.components, properties)
        for parameter, gradient in part.gradients():
            block.add_gradient(parameter, TensorBlock(widened(gradient.values, columns, 0), gradient.samples,
                                                      gradient.components, properties))
        blocks.append(block)
    return blocks


def _index(columns: np.ndarray, like):
    if is_torch(like):
        import torch

        return torch.from_numpy(columns).to(like.device)
    return columns


def _union_rows(arrays: list[np.ndarray], sort: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """Union of the rows of several arrays (first appearance or sorted), and each one's positions."""
    stacked = np.concatenate(arrays)
    keys = row_keys(stacked)[0]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if sort:
        order = _lexsort_rows(stacked[first])
    else:
        order = np.argsort(first, kind="stable")
    position_of_unique = np.empty(len(order), dtype=np.int64)
    position_of_unique[order] = np.arange(len(order))
    union = stacked[first[order]]
    positions = position_of_unique[inverse]
    offsets = np.cumsum([0] + [len(a) for a in arrays])
    return union, [positions[offsets[k] : offsets[k + 1]] for k in range(len(arrays))]


def keys_to_properties(tensor, keys_to_move, *, fill_value=0.0, sort_samples: bool = True):
    TensorMap = type(tensor)  # the class of the input: this module sits below tensormap.py, which calls it
    moved, _, groups, new_keys = _split_keys(tensor, keys_to_move)
    given = keys_to_move if isinstance(keys_to_move, Labels) else None
    blocks = []
    for indices in groups:
        parts = [tensor.block_by_id(i) for i in indices]
        moved_rows = _moved_values(tensor, moved, indices)
        first = parts[0]
        if given is not None:
            # every value of `given` gets the (shared) properties, filled where no block has it
            for index, part in zip(indices[1:], parts[1:]):
                if part.properties != first.properties:
                    raise MetadataError(
                        f"keys_to_properties: block {describe_key(tensor.keys, index)} has other properties "
                        f"than block {describe_key(tensor.keys, indices[0])}; the values to move can only "
                        "be given when the merged blocks share their properties"
                    )
            slot_of_part = given.positions(moved_rows)
            keep = slot_of_part >= 0
            parts = [p for p, k in zip(parts, keep) if k]
            width = len(first.properties)
            starts = slot_of_part[keep] * width
            widths = [width] * len(parts)
            property_rows = np.concatenate(
                [np.repeat(given.array, width, axis=0), np.tile(first.properties.array, (len(given), 1))], axis=1
            )
        else:
            # each merged block brings its own properties, after its moved key values
            widths = [len(p.properties) for p in parts]
            starts = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
            property_rows = np.concatenate([
                np.concatenate([np.repeat(moved_rows[k : k + 1], len(p.properties), axis=0), p.properties.array], axis=1)
                for k, p in enumerate(parts)
            ])
        new_properties = Labels(moved + first.properties.names, property_rows)
        n_columns = len(new_properties)
        if parts:
            samples, sample_rows = _union_rows([p.samples.array for p in parts], sort_samples)
        else:
            samples, sample_rows = np.zeros((0, len(first.samples.names)), np.int32), []
        block = TensorBlock(
            _scatter(parts, sample_rows, starts, widths, len(samples), n_columns, fill_value, first),
            Labels(first.samples.names, samples, assume_unique=True),
            first.components,
            new_properties,
        )
        for parameter in first.gradients_list():
            gradients = [p.gradient(parameter) for p in parts]
            remapped = [_remap_gradient_samples(g.samples.array, rows) for g, rows in zip(gradients, sample_rows)]
            reference = first.gradient(parameter)
            if gradients:
                g_samples, g_rows = _union_rows(remapped, True)  # metatensor sorts gradient samples in any case
            else:
                g_samples, g_rows = np.zeros((0, len(reference.samples.names)), np.int32), []
            block.add_gradient(
                parameter,
                TensorBlock(
                    _scatter(gradients, g_rows, starts, widths, len(g_samples), n_columns, 0.0, reference),
                    Labels(reference.samples.names, g_samples, assume_unique=True),
                    reference.components,
                    new_properties,
                ),
            )
        blocks.append(block)
    result = TensorMap(new_keys, blocks)
    for key, value in tensor.info().items():
        result.set_info(key, value)
    return result


def _scatter(parts, rows, starts, widths, n_rows, n_columns, fill_value, like):
    """Place each part's values at its rows and its columns `starts[k]:starts[k]+widths[k]`."""
    shape = (n_rows, *like.values.shape[1:-1], n_columns)
    if is_torch(like.values):
        import torch

        values = torch.full(shape, fill_value, dtype=like.values.dtype, device=like.values.device)
        for part, part_rows, start, width in zip(parts, rows, starts, widths):
            index = torch.from_numpy(part_rows).to(like.values.device)
            values[index, ..., int(start) : int(start) + width] = part.values
        return values
    # every entry is written when the parts cover every column and every row: no need to fill first
    covers_all = sum(widths) == n_columns and all(len(r) == n_rows for r in rows)
    values = np.empty(shape, dtype=like.values.dtype) if covers_all else np.full(shape, fill_value, dtype=like.values.dtype)
    for part, part_rows, start, width in zip(parts, rows, starts, widths):
        columns = slice(int(start), int(start) + width)
        if len(part_rows) == n_rows and (n_rows == 0 or (part_rows[0] == 0 and np.all(np.diff(part_rows) == 1))):
            values[..., columns] = part.values  # the rows in order: no fancy indexing
        else:
            values[part_rows, ..., columns] = part.values
    return values


def components_to_properties(tensor, dimensions):
    TensorMap = type(tensor)  # the class of the input: this module sits below tensormap.py, which calls it
    names = list(check_names(dimensions))
    blocks = [_block_components_to_properties(block, names, tensor) for block in tensor.blocks()]
    result = TensorMap(tensor.keys, blocks)
    for key, value in tensor.info().items():
        result.set_info(key, value)
    return result


def _block_components_to_properties(block: TensorBlock, names: list[str], tensor) -> TensorBlock:
    # like metatensor-core, components move one at a time, each to the front of the properties
    for name in names:
        component_names = [c.names[0] for c in block.components]
        if name not in component_names:
            raise MetadataError(f"cannot move component {name!r}: the components are {component_names}")
        axis = component_names.index(name)
        moved = _move_component(block, axis, offset=0)
        for parameter, gradient in block.gradients():
            extra = len(gradient.components) - len(block.components)
            moved.add_gradient(parameter, _move_component(gradient, axis, offset=extra))
        block = moved
    return block


def _move_component(block: TensorBlock, axis: int, offset: int) -> TensorBlock:
    """Move component `axis` (counted after `offset` leading components) to the front of the properties."""
    components = block.components
    moved = components[offset + axis]
    kept = components[: offset + axis] + components[offset + axis + 1 :]
    values = block.values
    source = 1 + offset + axis
    values = values.movedim(source, -2) if is_torch(values) else np.moveaxis(values, source, -2)
    n_properties = len(block.properties) * len(moved)
    values = values.reshape(values.shape[0], *[len(c) for c in kept], n_properties)
    properties = np.concatenate(
        [np.repeat(moved.array, len(block.properties), axis=0), np.tile(block.properties.array, (len(moved), 1))],
        axis=1,
    )
    new_properties = Labels(moved.names + block.properties.names, properties, assume_unique=True)
    return TensorBlock(values, block.samples, kept, new_properties)
