"""The one assembler: a kernel's values into a TensorMap (group-by keys, sorted samples, dense blocks).

The iteration domain of a kernel is the product of its indices' domains,
restricted by `where` and by `|m| <= l` for irrep indices. The key entries
partition it into blocks (sorted by key values); inside a block, samples are the
sorted distinct sample labels of its points, components and properties the
sorted distinct values of theirs (their domains' order), and every position is
filled, zeros included.

`evaluate_kernel(evaluator, kernel, body=None)` is the entry for every path:
the body comes from the evaluator (runtime/evaluate/) unless given (the dense
buffer of a native kernel over its index grid, runtime/native/compiled.py). Three cases:

- general: the coordinates of every valid point of a block are materialized;
- separable (`layout=`, from `separable_layout`): most kernels are separable:
  once the key axes are fixed, the samples, each component and the properties
  depend on disjoint sets of the other axes, and the mask couples key axes with
  at most one of those groups. Then each group's labels are computed on its own
  small grid, and a dense body fills the block by one broadcast gather
  (`SeparableLayout.fill`); the labels are known before the values, which the
  native runner's fused kernels need (`SeparableLayout.labels`);
- torch (`torch_dtype=`, or a body of torch values): the labels are the general
  case's on the flat position of each point (numpy), then the torch values are
  gathered at those positions (autograd flows through the gather).

The backend tests check every case against the evaluator.
"""

from __future__ import annotations

import numpy as np

from mtdsl.ir import nodes as ir
from mtdsl.systems import PAIR_LABEL_NAMES
from mtdsl.tensor import Labels, TensorBlock, TensorMap
from mtdsl.tensor.labels import row_keys

from .bindings import RunError
from .blocks import expand_slot
from .evaluate import dispatch as xp
from .evaluate.evaluator import Evaluator, Scope
from .evaluate.present_blocks import evaluate_present_blocks
from .named import Named, apply

ENTRY_LABELS = {"atoms": ("system", "atom"), "pairs": PAIR_LABEL_NAMES}


def entry_names(entries) -> list[str]:
    names = []
    for entry in entries:
        names += list(ENTRY_LABELS.get(entry.kind, (entry.label,)))
    return names


def kernel_domain(evaluator: Evaluator, kernel: ir.TensorKernel):
    """The scope of a kernel's indices, their names and sizes, and the mask of valid points
    (`where` and `|m| <= l` for irrep indices)."""
    scope = Scope()
    for binder in kernel.indices:
        scope = scope.bind(binder.name, binder.domain, evaluator.bindings.domain_values(binder.domain))
    axes = tuple(b.name for b in kernel.indices)
    sizes = {name: len(scope.values[name]) for name in axes}
    mask = Named.scalar(True)
    if kernel.where is not None:
        mask = apply(np.logical_and, mask, evaluator.evaluate(kernel.where, scope))
    for name in axes:
        valid = evaluator.validity(name, scope)
        if valid is not None:
            mask = apply(np.logical_and, mask, valid)
    return scope, axes, sizes, mask


def signature_values(evaluator: Evaluator, kernel: ir.TensorKernel, scope: Scope):
    """The kernel's key, sample, component and property entries, each paired with its values."""

    def evaluate(entries):
        return [(entry, evaluator.evaluate(entry.expr, scope)) for entry in entries]

    return evaluate(kernel.keys), evaluate(kernel.samples), evaluate(kernel.components), evaluate(kernel.properties)


def evaluate_kernel(evaluator: Evaluator, kernel: ir.TensorKernel, body: Named | None = None, *,
                    layout: "SeparableLayout | None" = None, torch_dtype=None) -> TensorMap:
    """The TensorMap of `kernel`; its `body` values come from the evaluator unless given.

    A compiled backend passes `body` as a `Named` over the kernel's indices (in
    any order, irreps padded to `-max..max`); only its entries at valid points
    (`where` and `|m| <= l`) are read. With its `layout` (`separable_layout`), a dense
    body fills the labels found before. `torch_dtype`: the values are torch tensors of
    that dtype (the torch case, also taken for a body of torch values).
    """
    if layout is not None:
        return layout.fill(body)
    scope, axes, sizes, mask = kernel_domain(evaluator, kernel)
    if body is None:  # the present blocks' key points alone, when known (else the dense grid)
        body = evaluate_present_blocks(evaluator, kernel, scope, axes, sizes)
    if body is None:
        body = evaluator.evaluate(kernel.body, scope)
    if torch_dtype is not None or xp.is_tensor(body.data):
        return _assemble_torch(evaluator, kernel, scope, axes, sizes, mask, body, torch_dtype)
    return _assemble(evaluator, kernel, scope, axes, sizes, mask, body)


def _assemble_torch(evaluator, kernel, scope, axes, sizes, mask, body: Named, dtype) -> TensorMap:
    """The torch case: the general assembly of the flat position (+ 1) of each point, then the
    torch values gathered at those positions (0: a position no point fills)."""
    import torch

    shape = tuple(sizes[a] for a in axes)
    data = xp.as_torch(xp.expand(body, axes), dtype if dtype is not None else body.data.dtype)
    if not data.is_floating_point():
        data = data.to(dtype)
    flat = torch.cat([data.new_zeros(1), data.expand(shape).reshape(-1)])
    n_points = int(np.prod(shape, dtype=np.int64))
    payload = Named(axes, np.arange(1, n_points + 1, dtype=np.float64).reshape(shape), body.missing)
    structure = _assemble(evaluator, kernel, scope, axes, sizes, mask, payload)
    blocks = []
    for block in structure.blocks():
        index = xp.from_numpy(np.asarray(block.values).astype(np.int64))
        blocks.append(TensorBlock(flat[index], block.samples, block.components, block.properties))
    return TensorMap(structure.keys, blocks)


def _assemble(evaluator, kernel, scope, axes, sizes, mask, body: Named) -> TensorMap:
    """The general case: the coordinates of every valid point of each block."""
    keys, samples, components, properties = signature_values(evaluator, kernel, scope)

    # 1. block-level points: the axes the keys depend on
    key_axes = tuple(a for a in axes if any(a in value.axes for _, value in keys))
    other_axes = tuple(a for a in axes if a not in key_axes)
    any_valid = _any_over(mask, other_axes, axes, sizes)
    if key_axes:
        key_points = np.nonzero(_dense(any_valid, key_axes, sizes))
        n_key_points = len(key_points[0])
    else:  # constant keys: one block, if any point is valid
        key_points, n_key_points = (), int(bool(np.any(any_valid.data)))
    key_coordinates = dict(zip(key_axes, key_points))
    key_matrix = np.stack(
        [_at(value, key_coordinates, n_key_points) for _, value in keys], axis=1
    ).astype(np.int64) if keys else np.zeros((n_key_points, 0), dtype=np.int64)
    if key_matrix.size and (np.abs(key_matrix) > np.iinfo(np.int32).max).any():
        raise RunError(f"tensor {kernel.name}: a key value does not fit in int32")

    if n_key_points == 0:
        return TensorMap(Labels.empty([e.label for e in kernel.keys]), [])
    unique_keys, inverse = np.unique(key_matrix, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    present = present_blocks(evaluator.bindings, kernel, unique_keys)
    other_shape = tuple(sizes[a] for a in other_axes)
    # (a kernel whose every index is a key index has one point per key point: shape (0, 1))
    other_grid = np.indices(other_shape).reshape(len(other_axes), int(np.prod(other_shape, dtype=np.int64)))

    blocks = []
    for block_index, key in enumerate(unique_keys):
        if not present[block_index]:
            continue
        chosen = np.nonzero(inverse == block_index)[0]
        n_other = other_grid.shape[1]
        coordinates = {a: np.repeat(key_coordinates[a][chosen], n_other) for a in key_axes}
        coordinates.update({a: np.tile(other_grid[k], len(chosen)) for k, a in enumerate(other_axes)})
        n_points = len(chosen) * n_other
        valid = _at(mask, coordinates, n_points).astype(bool)
        coordinates = {a: c[valid] for a, c in coordinates.items()}
        n_points = int(valid.sum())
        blocks.append(
            _block(kernel, evaluator, key, body, samples, components, properties, coordinates, n_points)
        )
    key_labels = Labels([e.label for e in kernel.keys], unique_keys[present].astype(np.int32), assume_unique=True)
    return TensorMap(key_labels, blocks)


def present_blocks(bindings, kernel: ir.TensorKernel, keys: np.ndarray) -> np.ndarray:
    """Which of the key rows `keys` have a block: all, unless the presence of the tensor was decided
    before the run (`Bindings.present`, runtime/presence.py): then only the present ones."""
    present = getattr(bindings, "present", {}).get(kernel.name)
    if present is None or not len(keys):
        return np.ones(len(keys), dtype=bool)
    if not present.key_names:
        return np.full(len(keys), len(present.samples) > 0)
    return present.key_positions(keys) >= 0


def _block(kernel, evaluator, key, body, samples, components, properties, coordinates, n_points) -> TensorBlock:
    bindings = evaluator.bindings
    if body.missing is not None and not getattr(bindings, "sparse", False) \
            and np.any(_at(body.missing, coordinates, n_points)):
        first = int(np.argmax(_at(body.missing, coordinates, n_points)))
        where = ", ".join(f"{a} = {int(bindings_value)}" for a, bindings_value in
                          ((a, c[first]) for a, c in coordinates.items()))
        block_key = ", ".join(f"{e.label}={int(v)}" for e, v in zip(kernel.keys, key))
        raise RunError(
            f"tensor {kernel.name}, block ({block_key}): a block access reads a key or sample that "
            f"does not exist (at index positions {where})"
        )

    def columns(entries):
        result = []
        for entry, value in entries:
            values = _at(value, coordinates, n_points).astype(np.int64)
            result += expand_slot(entry.kind, entry.source, values, bindings)
        return np.stack(result, axis=1) if result else np.zeros((n_points, 0), dtype=np.int64)

    sample_rows, sample_index = _sorted_unique(columns(samples))
    component_axes = [_sorted_unique(columns([c])) for c in components]
    property_rows, property_index = _sorted_unique(columns(properties))

    shape = (len(sample_rows), *(len(rows) for rows, _ in component_axes), len(property_rows))
    values = np.zeros(shape, dtype=bindings.dtype)
    position = (sample_index, *(index for _, index in component_axes), property_index)
    values[position] = _at(body, coordinates, n_points)

    return TensorBlock(
        values,
        Labels(entry_names(kernel.samples), sample_rows.astype(np.int32), assume_unique=True),
        [Labels([entry.label], rows.astype(np.int32), assume_unique=True) for (entry, _), (rows, _) in zip(components, component_axes)],
        Labels(entry_names(kernel.properties), property_rows.astype(np.int32), assume_unique=True),
    )


def _sorted_unique(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows in lexicographic order, and the position of each input row among them."""
    if matrix.shape[1] == 0:
        return np.zeros((1 if len(matrix) else 0, 0), dtype=np.int64), np.zeros(len(matrix), dtype=np.int64)
    keys = row_keys(matrix.astype(np.int32))[0]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rows = matrix[first]
    order = np.lexsort(rows.T[::-1])
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rows[order], rank[inverse.reshape(-1)]


def _at(value: Named, coordinates: dict, n_points: int) -> np.ndarray:
    """The entries of `value` at the given points (coordinates per axis)."""
    index = []
    for axis, size in zip(value.axes, value.data.shape):
        if size == 1 or axis not in coordinates:
            index.append(np.zeros(n_points, dtype=np.int64))
        else:
            index.append(coordinates[axis])
    if not index:
        return np.broadcast_to(value.data, (n_points,))
    return value.data[tuple(index)]


def _dense(value: Named, axes: tuple, sizes: dict) -> np.ndarray:
    return np.broadcast_to(value.expand(axes), tuple(sizes[a] for a in axes))


def _any_over(mask: Named, reduced: tuple, axes: tuple, sizes: dict) -> Named:
    """`mask` true somewhere along the `reduced` axes (only those the mask depends on)."""
    full_axes = tuple(a for a in mask.axes if a in reduced or a in axes)
    full = np.broadcast_to(mask.expand(full_axes), tuple(sizes[a] for a in full_axes))
    reduce_axes = tuple(k for k, a in enumerate(full_axes) if a in reduced)
    data = np.any(full, axis=reduce_axes) if reduce_axes else full
    return Named(tuple(a for a in full_axes if a not in reduced), np.asarray(data))


# ---- the separable case --------------------------------------------------------------------------


class SeparableLayout:
    """The labels of a separable kernel's TensorMap and where each block's values sit in the body
    buffer: everything but the values, so that the labels are known before a kernel runs
    (`runtime/native/compiled.py: _run_fused`) and `fill(body)` makes the TensorMap after."""

    def __init__(self, kernel, dtype, key_labels, key_axes, key_coordinates, blocks):
        self.kernel, self.dtype = kernel, dtype
        self.key_labels, self.key_axes, self.key_coordinates = key_labels, key_axes, key_coordinates
        self.blocks = blocks  # per block: (chosen key points, group rows, group index, group leads, extra, own axes)

    def labels(self) -> TensorMap:
        """The TensorMap with its labels and zero values (read-only views of one zero: no memory)."""
        blocks, made = [], {}
        for _, group_rows, *_ in self.blocks:
            shape = tuple(len(rows) for rows in group_rows)
            blocks.append(_layout_block(self.kernel, np.broadcast_to(np.zeros((), self.dtype), shape), group_rows, made))
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
            blocks.append(_layout_block(self.kernel, values, group_rows, made))
        return TensorMap(self.key_labels, blocks)


def separable_layout(evaluator: Evaluator, kernel: ir.TensorKernel):
    """The `SeparableLayout` of `kernel`, or None when the kernel is not separable. When the
    presence of an output was decided before the run (`Bindings.present`), the layout has its
    present blocks and samples alone (its points where the presence grid is true), so that
    `restrict()` keeps every block as it is; unless that grid makes the kernel inseparable."""
    scope, axes, sizes, mask = kernel_domain(evaluator, kernel)
    grid = _presence_grid(evaluator.bindings, kernel)
    if grid is not None:
        layout = _separable_layout(evaluator, kernel, scope, axes, sizes, apply(np.logical_and, mask, grid))
        if layout is not None:
            return layout
    return _separable_layout(evaluator, kernel, scope, axes, sizes, mask)


def _presence_grid(bindings, kernel: ir.TensorKernel):
    """The present points of output `kernel` over the indices its keys and samples depend on (a
    boolean `Named`, runtime/presence.py: `PresentSet.grid`), or None when not decided. Not for
    an intermediate tensor: it keeps every sample of its present blocks, so that the gradient rows
    an output reaches through it do not depend on the path (runtime/gradients.py: present_rows)."""
    if kernel.name not in getattr(bindings, "present", {}):
        return None
    present = getattr(bindings, "outputs_present", {}).get(kernel.name)
    if present is None or present.grid is None:
        return None
    kept, grid = present.grid
    return Named(tuple(kept), np.asarray(grid, dtype=bool))


def _separable_layout(evaluator: Evaluator, kernel: ir.TensorKernel, scope, axes, sizes, mask):
    bindings = evaluator.bindings

    def evaluate(entries):
        return [(entry, evaluator.evaluate(entry.expr, scope)) for entry in entries]

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
        else:  # a subset of the whole matrix's sorted rows (shared by the blocks of one centre type)
            rows, index = _memo_unique(memo, group, matrix, None)
            used = np.zeros(len(rows), dtype=bool)
            used[index[valid]] = True
            kept = np.nonzero(used)[0]
            renumber = np.full(len(rows), len(kept), dtype=np.int64)
            renumber[kept] = np.arange(len(kept))
            full_index = renumber[index]
            full_index[~valid] = len(kept)
            found = rows[kept], full_index
        memo[key] = found
    return found


def _layout_block(kernel, values, group_rows, made: dict) -> TensorBlock:
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
