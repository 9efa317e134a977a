"""A factorized assembly of kernel buffers into TensorMaps, for compiled backends.

`runtime/assemble.py` defines the result (group-by keys, sorted samples,
dense blocks) and handles every kernel by materializing the coordinates of
every point of a block. Most kernels are *separable*: once the key axes are
fixed, the samples, each component and the properties depend on disjoint sets
of the other axes, and the mask (`where` and `|m| <= l`) couples key axes with
at most one of those groups. Then each group's labels are computed on its own
small grid, and the block is filled by one broadcast gather from the buffer.
This module does that (`separable_layout`: the labels and where each block's
values sit, `SeparableLayout.fill(body)`: the TensorMap of a buffer), and
returns None for other kernels (the caller then uses `evaluate_kernel`). The
backend tests check both paths against the interpreter.
"""

from __future__ import annotations

import numpy as np

from mtdsl.ir import nodes as ir
from mtdsl.tensor import Labels, TensorBlock, TensorMap
from mtdsl.tensor.labels import row_keys

from .assemble import _any_over, _at, _dense, _sorted_unique, entry_names, kernel_domain, present_blocks
from .bindings import RunError
from .blocks import expand_slot
from .interpreter import Interpreter
from .named import Named


class SeparableLayout:
    """The labels of a separable kernel's TensorMap and where each block's values sit in the body
    buffer: everything but the values, so that the labels are known before a kernel runs
    (`runtime/compiled.py: _run_fused`) and `fill(body)` makes the TensorMap after."""

    def __init__(self, kernel, dtype, key_labels, key_axes, key_coordinates, blocks):
        self.kernel, self.dtype = kernel, dtype
        self.key_labels, self.key_axes, self.key_coordinates = key_labels, key_axes, key_coordinates
        self.blocks = blocks  # per block: (chosen key points, group rows, group index, group leads, extra, own axes)

    def labels(self) -> TensorMap:
        """The TensorMap with its labels and zero values (read-only views of one zero: no memory)."""
        blocks, made = [], {}
        for _, group_rows, *_ in self.blocks:
            shape = tuple(len(rows) for rows in group_rows)
            blocks.append(_block(self.kernel, np.broadcast_to(np.zeros((), self.dtype), shape), group_rows, made))
        return TensorMap(self.key_labels, blocks)

    def fill(self, body: Named) -> TensorMap:
        blocks, made = [], {}
        for chosen, group_rows, group_index, group_leads, extra, owned_axes in self.blocks:
            # the body on the block's points: key axes gathered at the key points, own axes as they are
            order = [body.axes.index(a) for a in self.key_axes] + [body.axes.index(a) for a in owned_axes]
            data = np.transpose(body.data, order)[tuple(self.key_coordinates[a][chosen] for a in self.key_axes)] \
                if self.key_axes else np.transpose(body.data, order)[None]
            values = _in_order(data, group_index, group_leads, [len(rows) for rows in group_rows], len(chosen))
            if values is None:
                shape_out = [len(rows) for rows in group_rows]
                if extra is not None:
                    shape_out[extra] += 1
                values = np.zeros(shape_out, dtype=self.dtype)
                values[tuple(group_index)] = data
                if extra is not None:
                    values = np.ascontiguousarray(np.delete(values, -1, axis=extra))
            blocks.append(_block(self.kernel, values, group_rows, made))
        return TensorMap(self.key_labels, blocks)


def separable_layout(interpreter: Interpreter, kernel: ir.TensorKernel):
    """The `SeparableLayout` of `kernel`, or None when the kernel is not separable."""
    bindings = interpreter.bindings
    scope, axes, sizes, mask = kernel_domain(interpreter, kernel)

    def evaluate(entries):
        return [(entry, interpreter.evaluate(entry.expr, scope)) for entry in entries]

    keys = evaluate(kernel.keys)
    groups = [("samples", evaluate(kernel.samples))]
    groups += [(f"component{k}", evaluate([c])) for k, c in enumerate(kernel.components)]
    groups.append(("properties", evaluate(kernel.properties)))
    if any(value.missing is not None for _, value in keys) or any(
            value.missing is not None for _, entries in groups for _, value in entries):
        return None

    key_axes = tuple(a for a in axes if any(a in value.axes for _, value in keys))
    other_axes = [a for a in axes if a not in key_axes]
    owned = []
    for _, entries in groups:
        mine = tuple(a for a in other_axes if any(a in value.axes for _, value in entries))
        owned.append(mine)
    flat = [a for mine in owned for a in mine]
    if len(flat) != len(set(flat)) or set(flat) != set(other_axes):
        return None  # an axis shared by two groups, or in none: the general path decides
    mask_other = [a for a in mask.axes if a in other_axes]
    masked_group = None
    if mask_other:
        holders = [g for g, mine in enumerate(owned) if set(mask_other) <= set(mine)]
        if not holders:
            return None
        masked_group = holders[0]

    any_valid = _any_over(mask, tuple(other_axes), axes, sizes)
    if key_axes:
        key_points = np.nonzero(_dense(any_valid, key_axes, sizes))
        n_key_points = len(key_points[0])
    else:
        key_points, n_key_points = (), int(bool(np.any(any_valid.data)))
    key_coordinates = dict(zip(key_axes, key_points))
    if n_key_points == 0:
        return SeparableLayout(kernel, bindings.dtype, Labels.empty([e.label for e in kernel.keys]), (), {}, [])
    key_matrix = np.stack([_at(value, key_coordinates, n_key_points) for _, value in keys], axis=1).astype(np.int64) \
        if keys else np.zeros((n_key_points, 0), dtype=np.int64)
    if key_matrix.size and (np.abs(key_matrix) > np.iinfo(np.int32).max).any():
        raise RunError(f"tensor {kernel.name}: a key value does not fit in int32")
    # distinct key rows in lexicographic order (row_keys sort like the rows), points grouped by block
    encoded = row_keys(key_matrix.astype(np.int32))[0] if key_matrix.shape[1] else np.zeros(n_key_points, np.int64)
    _, first, inverse = np.unique(encoded, return_index=True, return_inverse=True)
    unique_keys = key_matrix[first]
    inverse = inverse.reshape(-1)
    by_block = np.argsort(inverse, kind="stable")
    splits = np.cumsum(np.bincount(inverse, minlength=len(unique_keys)))[:-1]
    chosen_per_block = np.split(by_block, splits)
    present = present_blocks(bindings, kernel, unique_keys)
    memo: dict = {}  # the labels of a group shared by many blocks (the samples of one centre type)

    blocks = []
    for block_index in range(len(unique_keys)):
        if not present[block_index]:
            continue
        chosen = chosen_per_block[block_index]
        n_kp = len(chosen)
        # one broadcast dimension for the key points, then each group's own axes
        dims = [n_kp] + [sizes[a] for mine in owned for a in mine]
        position_of = {}
        k = 1
        for mine in owned:
            for a in mine:
                position_of[a] = k
                k += 1
        full_rank = len(dims)

        def coordinate(axis):
            shape = [1] * full_rank
            if axis in key_coordinates:
                shape[0] = n_kp
                return key_coordinates[axis][chosen].reshape(shape)
            shape[position_of[axis]] = sizes[axis]
            return np.arange(sizes[axis]).reshape(shape)

        def gather(value: Named):
            if not value.axes:
                return np.asarray(value.data)
            index = []
            for axis, size in zip(value.axes, value.data.shape):
                index.append(np.zeros((1,) * full_rank, dtype=np.int64) if size == 1 else coordinate(axis))
            return value.data[tuple(index)]

        mask_data = np.asarray(gather(mask)).astype(bool) if mask.axes else None
        if mask_data is not None and mask_data.ndim < full_rank:
            mask_data = mask_data.reshape((1,) * (full_rank - mask_data.ndim) + mask_data.shape)
        if n_kp > 1 and not any(a in value.axes for _, entries in groups for _, value in entries for a in key_axes):
            return None  # several key points on the same positions: the general path decides
        group_rows, group_index, group_leads = [], [], []
        extra = None
        for g, (name, entries) in enumerate(groups):
            mine = owned[g]
            depends_on_keys = any(a in value.axes for _, value in entries for a in key_axes)
            lead = n_kp if depends_on_keys else 1
            shape = [1] * full_rank
            shape[0] = lead
            for a in mine:
                shape[position_of[a]] = sizes[a]
            columns = []
            for entry, value in entries:
                data = np.broadcast_to(gather(value), shape).reshape(-1).astype(np.int64)
                columns += expand_slot(entry.kind, entry.source, data, bindings)
            matrix = np.stack(columns, axis=1) if columns else np.zeros((int(np.prod(shape)), 0), dtype=np.int64)
            if g == masked_group and mask_data is not None:
                reduce = tuple(i for i in range(full_rank) if shape[i] == 1 and mask_data.shape[i] != 1)
                group_valid = np.any(mask_data, axis=reduce, keepdims=True) if reduce else mask_data
                group_valid = np.broadcast_to(group_valid, shape).reshape(-1)
                rows, index = _memo_unique(memo, g, matrix, group_valid)
                extra = g
            else:
                rows, index = _memo_unique(memo, g, matrix, None)
            group_rows.append(rows)
            group_index.append(index.reshape(shape))
            group_leads.append(lead)

        blocks.append((chosen, group_rows, group_index, group_leads, extra, [a for mine in owned for a in mine]))
    key_labels = Labels([e.label for e in kernel.keys], unique_keys[present].astype(np.int32), assume_unique=True)
    return SeparableLayout(kernel, bindings.dtype, key_labels, key_axes, key_coordinates, blocks)


def _memo_unique(memo: dict, group: int, matrix: np.ndarray, valid):
    """`_sorted_unique` of a group's label matrix (its valid rows; invalid points go to one extra
    position past the end, cut off by the caller), computed once per distinct matrix."""
    key = (group, matrix.shape, matrix.tobytes(), None if valid is None else np.packbits(valid).tobytes())
    found = memo.get(key)
    if found is None:
        if valid is None:
            found = _sorted_unique(matrix)
        else:
            rows, index = _sorted_unique(matrix[valid])
            full_index = np.full(len(matrix), len(rows), dtype=np.int64)
            full_index[valid] = index
            found = rows, full_index
        memo[key] = found
    return found


def _block(kernel, values, group_rows, made: dict) -> TensorBlock:
    """`made`: {id(rows): Labels} of one TensorMap's blocks, whose groups share rows
    (`_memo_unique`: the samples of one centre type, the properties)."""
    sample_rows, *component_rows, property_rows = group_rows

    def labels(names, rows):
        found = made.get(id(rows))
        if found is None:
            found = made[id(rows)] = Labels(names, rows.astype(np.int32), assume_unique=True)
        return found

    return TensorBlock(
        values,
        labels(entry_names(kernel.samples), sample_rows),
        [labels([entry.label], rows) for entry, rows in zip(kernel.components, component_rows)],
        labels(entry_names(kernel.properties), property_rows),
    )


def _in_order(data, group_index, group_leads, counts, n_kp):
    """The block values as a reshape (and selection) of `data`, when every group's labels come
    in grid order (the usual case: sorted atoms, m, n...); None otherwise.

    `data` has one axis for the key points then each group's own axes; group `g`'s
    position array has the key-point axis only when its labels depend on it (the
    samples, usually). Positions past the last label (`counts[g]`) are invalid points.
    """
    if any(lead != 1 for lead in group_leads[1:]) and n_kp != 1:
        return None
    shape, selections = [], []
    for g, index in enumerate(group_index):
        flat = index.reshape(-1)
        keep = flat < counts[g]
        kept = flat[keep]
        if not np.array_equal(kept, np.arange(counts[g])):
            return None
        selections.append(None if keep.all() else np.nonzero(keep)[0])
        shape.append(flat.size)
    if group_leads[0] == 1 and n_kp != 1:
        return None
    values = data.reshape(shape)
    for axis, selection in enumerate(selections):
        if selection is not None:
            values = np.take(values, selection, axis=axis)
    return np.ascontiguousarray(values)
