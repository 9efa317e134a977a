"""Evaluation over the rows of gradients: the evaluator's `over_rows` rules.

The terms of a gradient kernel (mtdsl/ir/passes/autodiff.py) are evaluated over
the rows of other gradients (`i := sample of g`), and their sums over
`P.from(atom)` have an `atom` that varies along other axes (neighbours of
neighbours, or a centre that a row fixes). There many points share a few
distinct values, and a dense mask over atoms x pairs would be quadratic, so
`Evaluator(..., over_rows=True)` (runtime/gradients/forward.py) reads blocks
and sums through these rules instead:

- `gather_rows`: a block access gathered once per distinct (keys, samples) and
  broadcast back;
- `reduce_over_rows`: a sum evaluated once per distinct value of the aliases it
  depends on, and sums over `P.from(atom)` with a varying atom walked as ragged
  CSR segments.

They read the same values as the plain rules (gathers are exact) but sum in
another order, so the value kernels, whose results the compiled backends are
tested against bit for bit, keep the plain rules. numpy only: the torch
evaluation never reads gradient rows.
"""

from __future__ import annotations

import numpy as np

from mtdsl.ir import nodes as ir
from mtdsl.ir.walk import free_vars

from ..named import Named, apply, union_axes
from .dispatch import csr_matrix

#: below this many row points, deduplicating costs more than it saves
MIN_ROWS = 1024


def gather_rows(evaluator, expr: ir.BlockRef, scope) -> Named:
    """Block access, gathered once per distinct (keys, samples) and broadcast back.

    In gradient terms, keys and samples follow the rows of another gradient
    (`i := sample of g`): many rows share them, so this saves most lookups.
    """
    evaluate, bindings = evaluator.evaluate, evaluator.bindings
    keys = [(label, evaluate(e, scope)) for label, e in expr.keys]
    samples = [(slot, evaluate(slot.expr, scope)) for slot in expr.samples]
    rest = [(slot, evaluate(slot.expr, scope)) for slot in expr.components + expr.properties]
    groups = (len(expr.samples), len(expr.components), len(expr.properties))
    row_arrays = [v for _, v in keys] + [v for _, v in samples]
    row_axes = union_axes(*row_arrays)
    sizes = axis_sizes(row_arrays)
    row_shape = tuple(sizes.get(a, 1) for a in row_axes)
    n_rows = int(np.prod(row_shape, dtype=np.int64))
    table = evaluator.table(expr.tensor)
    shared = set(row_axes) & set(union_axes(*(v for _, v in rest))) if rest else set()
    if n_rows < MIN_ROWS or shared or any(v.missing is not None for v in row_arrays):
        return table.gather(keys, samples + rest, groups, bindings)
    stacked = np.stack([np.broadcast_to(v.expand(row_axes), row_shape).reshape(-1) for v in row_arrays], axis=1)
    unique, inverse = unique_rows(stacked)
    if len(unique) > n_rows // 2:
        return table.gather(keys, samples + rest, groups, bindings)
    axis = "·rows"
    distinct = [Named((axis,), unique[:, k]) for k in range(unique.shape[1])]
    new_keys = [(label, distinct[k]) for k, (label, _) in enumerate(keys)]
    new_samples = [(slot, distinct[len(keys) + k]) for k, (slot, _) in enumerate(samples)]
    result = table.gather(new_keys, new_samples + rest, groups, bindings)
    return unfold(result, axis, row_axes, inverse.reshape(row_shape))


def reduce_over_rows(evaluator, expr: ir.Reduce, scope):
    """The sum `expr` by a row rule, or None where the plain rule applies.

    A sum that depends on the rows of a gradient only through aliases taking few distinct values
    (the centre `i` of each row) is evaluated once per value. Sums over `P.from(atom)` where
    `atom` varies along other axes (neighbours of neighbours, or a centre that a gradient row
    fixes): the pairs of each atom are enumerated as ragged segments and summed back, instead of
    a dense mask."""
    deduplicated = _deduplicate(evaluator, expr, scope)
    if deduplicated is not None:
        return deduplicated
    segments = [k for k, b in enumerate(expr.binders) if isinstance(b.domain, ir.PairsFrom)]
    ragged = [k for k in segments if not (
        isinstance(expr.binders[k].domain.atom, ir.Var) and expr.binders[k].domain.atom.name not in scope.aliases)]
    if ragged:
        position = ragged[0]
    elif len(segments) > 1:  # the plain rule segments one of them only: the others are ragged here
        position = segments[-1]
    else:
        return None
    binder = expr.binders[position]
    domain = binder.domain
    atom = evaluator.evaluate(domain.atom, scope)
    if not atom.axes or atom.missing is not None:
        return None
    pairs = evaluator.bindings.pairs[domain.pairs]
    offsets = np.asarray(pairs.offsets, dtype=np.int64)
    atoms = np.asarray(atom.data, dtype=np.int64).reshape(-1)
    counts = offsets[atoms + 1] - offsets[atoms]
    outer = np.repeat(np.arange(len(atoms), dtype=np.int64), counts)
    before = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    pair = offsets[atoms][outer] + np.arange(len(outer), dtype=np.int64) - before[outer]
    axis = f"·seg{binder.name}"
    coordinates = dict(zip(atom.axes, np.unravel_index(outer, atom.data.shape)))
    inner = _reindex_scope(scope, atom.axes, coordinates, axis, len(outer))
    inner = inner.alias(binder.name, Named((axis,), pair))
    rest = expr.binders[:position] + expr.binders[position + 1:]
    if rest:
        value = evaluator.evaluate(ir.Reduce(rest, expr.body, expr.where), inner)
    else:
        value = evaluator.evaluate(expr.body, inner)
        if expr.where is not None:
            mask = evaluator.evaluate(expr.where, inner)
            value = apply(np.multiply, value, Named(mask.axes, np.asarray(mask.data).astype(evaluator.bindings.dtype)))
    # sum each atom's segment back onto the atom's axes
    others = tuple(a for a in value.axes if a != axis)
    data = np.broadcast_to(value.expand((axis,) + others), (len(outer),) + tuple(
        value.data.shape[value.axes.index(a)] for a in others))
    width = int(np.prod(data.shape[1:], dtype=np.int64))
    matrix = csr_matrix(
        (np.ones(len(outer), dtype=data.dtype), outer, np.arange(len(outer) + 1)), shape=(len(outer), len(atoms)))
    summed = np.asarray(matrix.T @ data.reshape(len(outer), width))
    return Named(atom.axes + others, summed.reshape(atom.data.shape + data.shape[1:]))


def _deduplicate(evaluator, expr: ir.Reduce, scope):
    """`expr` evaluated once per distinct value of the aliases it reads, or None (too few rows,
    too many distinct values, or a dependence on the rows' axes other than through the aliases)."""
    free = free_vars(expr)
    aliased = [n for n in sorted(free) if n in scope.aliases]
    if not aliased:
        return None
    arrays = [scope.aliases[n] for n in aliased]
    if any(a.missing is not None for a in arrays):
        return None
    row_axes = union_axes(*arrays)
    if any(n in row_axes for n in free if n not in scope.aliases):
        return None
    sizes = axis_sizes(arrays)
    row_shape = tuple(sizes.get(a, 1) for a in row_axes)
    n_rows = int(np.prod(row_shape, dtype=np.int64))
    if n_rows < MIN_ROWS:
        return None
    stacked = np.stack([np.broadcast_to(a.expand(row_axes), row_shape).reshape(-1) for a in arrays], axis=1)
    unique, inverse = unique_rows(stacked.astype(np.int64))
    if len(unique) > n_rows // 4:
        return None
    axis = f"·distinct{len(scope.aliases)}"
    inner = type(scope)(dict(scope.values), dict(scope.domains), dict(scope.aliases))
    inner.values[axis] = np.arange(len(unique), dtype=np.int64)
    for k, name in enumerate(aliased):
        inner.aliases[name] = Named((axis,), unique[:, k])
    result = evaluator.evaluate(expr, inner)
    if axis not in result.axes:
        return result
    return unfold(result, axis, row_axes, inverse.reshape(row_shape))


def axis_sizes(arrays) -> dict:
    """The size of each axis along which some array is not broadcast."""
    sizes = {}
    for array in arrays:
        for axis, size in zip(array.axes, np.shape(array.data)):
            if size != 1:
                sizes[axis] = size
    return sizes


def unique_rows(stacked: np.ndarray):
    """Distinct rows of an integer matrix and the index of each row among them."""
    low = stacked.min(axis=0)
    spans = stacked.max(axis=0) - low + 1
    if np.prod(spans.astype(np.float64)) < 2.0**62:
        keys = np.zeros(len(stacked), dtype=np.int64)
        for k in range(stacked.shape[1]):
            keys = keys * spans[k] + (stacked[:, k] - low[k])
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        return stacked[first], inverse.reshape(-1)
    unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
    return unique, inverse.reshape(-1)


def unfold(result: Named, axis: str, row_axes: tuple, inverse: np.ndarray) -> Named:
    """`result` over the distinct-rows axis, back over the row axes (`inverse` shaped like them)."""
    position = result.axes.index(axis)
    data = np.take(result.data, inverse, axis=position)
    axes = result.axes[:position] + row_axes + result.axes[position + 1:]
    missing = None
    if result.missing is not None:
        missing = unfold(result.missing, axis, row_axes, inverse) if axis in result.missing.axes else result.missing
    return Named(axes, data, missing)


def _reindex(named: Named, axes: tuple, coordinates: dict, axis: str) -> Named:
    """`named` with its `axes` replaced by one axis along which they take `coordinates`."""
    present = tuple(a for a in named.axes if a in axes)
    if not present:
        return named
    others = tuple(a for a in named.axes if a not in axes)
    data = named.expand(present + others)
    n = len(next(iter(coordinates.values())))
    index = tuple(coordinates[a] if data.shape[k] != 1 else np.zeros(n, np.int64) for k, a in enumerate(present))
    missing = _reindex(named.missing, axes, coordinates, axis) if named.missing is not None else None
    return Named((axis,) + others, data[index], missing)


def _reindex_scope(scope, axes: tuple, coordinates: dict, axis: str, n: int):
    """A scope where the variables along `axes` follow the points of a new axis instead."""
    inner = type(scope)(dict(scope.values), dict(scope.domains), dict(scope.aliases))
    for name in list(inner.values):
        if name in axes:
            inner.aliases[name] = Named((axis,), np.asarray(scope.values[name])[coordinates[name]])
    for name, value in scope.aliases.items():
        inner.aliases[name] = _reindex(value, axes, coordinates, axis)
    inner.values[axis] = np.arange(n, dtype=np.int64)
    return inner
