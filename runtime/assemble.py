"""Turning a kernel's values into a TensorMap: group-by keys, sorted samples, dense blocks.

The iteration domain of a kernel is the product of its indices' domains,
restricted by `where` and by `|m| <= l` for irrep indices. The key entries
partition it into blocks (sorted by key values); inside a block, samples are the
sorted distinct sample labels of its points, components and properties the
sorted distinct values of theirs (their domains' order), and every position is
filled, zeros included.
"""

from __future__ import annotations

import numpy as np

from mtdsl.ir import nodes as ir
from mtdsl.systems import PAIR_LABEL_NAMES
from mtdsl.tensor import Labels, TensorBlock, TensorMap
from mtdsl.tensor.labels import row_keys

from .bindings import RunError
from .blocks import expand_slot
from .interpreter import Interpreter, Scope
from .named import Named, apply

ENTRY_LABELS = {"atoms": ("system", "atom"), "pairs": PAIR_LABEL_NAMES}


def entry_names(entries) -> list[str]:
    names = []
    for entry in entries:
        names += list(ENTRY_LABELS.get(entry.kind, (entry.label,)))
    return names


def kernel_domain(interpreter: Interpreter, kernel: ir.TensorKernel):
    """The scope of a kernel's indices, their names and sizes, and the mask of valid points
    (`where` and `|m| <= l` for irrep indices)."""
    scope = Scope()
    for binder in kernel.indices:
        scope = scope.bind(binder.name, binder.domain, interpreter.bindings.domain_values(binder.domain))
    axes = tuple(b.name for b in kernel.indices)
    sizes = {name: len(scope.values[name]) for name in axes}
    mask = Named.scalar(True)
    if kernel.where is not None:
        mask = apply(np.logical_and, mask, interpreter.evaluate(kernel.where, scope))
    for name in axes:
        valid = interpreter.validity(name, scope)
        if valid is not None:
            mask = apply(np.logical_and, mask, valid)
    return scope, axes, sizes, mask


def signature_values(interpreter: Interpreter, kernel: ir.TensorKernel, scope: Scope):
    """The kernel's key, sample, component and property entries, each paired with its values."""

    def evaluate(entries):
        return [(entry, interpreter.evaluate(entry.expr, scope)) for entry in entries]

    return evaluate(kernel.keys), evaluate(kernel.samples), evaluate(kernel.components), evaluate(kernel.properties)


def evaluate_kernel(interpreter: Interpreter, kernel: ir.TensorKernel, body: Named | None = None) -> TensorMap:
    """The TensorMap of `kernel`; its `body` values come from the interpreter unless given.

    A compiled backend passes `body` as a `Named` over the kernel's indices (in
    any order, irreps padded to `-max..max`); only its entries at valid points
    (`where` and `|m| <= l`) are read.
    """
    scope, axes, sizes, mask = kernel_domain(interpreter, kernel)
    if body is None:
        body = interpreter.evaluate(kernel.body, scope)

    keys, samples, components, properties = signature_values(interpreter, kernel, scope)

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
    present = present_blocks(interpreter.bindings, kernel, unique_keys)
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
            _block(kernel, interpreter, key, body, samples, components, properties, coordinates, n_points)
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


def _block(kernel, interpreter, key, body, samples, components, properties, coordinates, n_points) -> TensorBlock:
    bindings = interpreter.bindings
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
