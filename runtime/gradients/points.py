"""Each term of a gradient kernel over its scope: the contributions `runtime/gradients/forward.py` sums into rows.

A term (`mtdsl/ir/derivative_nodes.py: Term`, made by `mtdsl/ir/passes/autodiff.py`) is evaluated like a kernel body
over its *scope*: its binders (pairs, rows of a read tensor's gradient), joined
where an equality of its condition relates them (`bind_binders`: a sort-merge
join, the matching pairs only), the direction variables, and the kernel indices
its aliases do not fix (`term_scope`). Its value there is its derived term
kernel's (mtdsl/ir/passes/terms.py: the kernel the native runner compiles), run
natively where the run's compiled module has it (`native_value`), else in the
one evaluator (`GradientRun.evaluator`, with the row rules on). `term_points`
then gives every contribution of the term with the labels of the gradient row
it goes to (block, parent sample, target, column), for forward.py's scatter.
`term_masks` (where a term has points) serves the scatter kernels' row maps too.
"""

from __future__ import annotations

import numpy as np

from mtdsl.ir import nodes as ir
from mtdsl.ir.passes import autodiff as ad
from mtdsl.ir.derivative_nodes import Term
from mtdsl.ir.walk import free_vars
from mtdsl.ir.walk import conjuncts

from ..assemble import signature_values
from ..bindings import RunError
from ..evaluate.evaluator import Scope, _contract
from ..named import Named, apply, union_axes
from .run import GradientRun
from .tables import _lookup


def term_scope(run: GradientRun, kernel, gradient, term: Term) -> Scope:
    """The scope of one term: its binders (joined where related), directions, free kernel indices, aliases."""
    bindings = run.bindings
    aliased = {name for name, _ in term.aliases}
    scope = bind_binders(run, term, Scope())
    for name in gradient.directions:
        scope = scope.bind(name, ir.XyzDomain(), np.arange(3, dtype=np.int64))
    for binder in kernel.indices:
        if binder.name not in aliased:
            scope = scope.bind(binder.name, binder.domain, bindings.domain_values(binder.domain))
    for name, expr in term.aliases:
        scope = scope.alias(name, run.evaluator.evaluate(expr, scope))
    return scope


def term_masks(run: GradientRun, kernel, term: Term, scope, derived=None) -> list[Named]:
    """Where a term has points: the kernel's and the term's conditions (`derived`: the term's
    derived kernel, whose condition is both), and the validity of every binder no alias fixes
    (irrep bounds...)."""
    aliased = {name for name, _ in term.aliases}
    masks = []
    for condition in (kernel.where, term.where) if derived is None else (derived.where,):
        if condition is not None:
            masks.append(run.evaluator.evaluate(condition, scope))
    for binder in kernel.indices + term.binders:
        if binder.name not in aliased:
            valid = run.evaluator.validity(binder.name, scope)
            if valid is not None:
                masks.append(valid)
    return masks


def native_value(run: GradientRun, kernel, gradient, k: int, scope: Scope):
    """The term's values from its native kernel (zero where its conditions fail), or None."""
    if run.native is None:
        return None
    value = run.native.gradient_term(kernel.name, gradient.wrt, k, scope, run.bindings, run.gradient_tables)
    if value is not None:
        run.native_terms.append(((kernel.name, gradient.wrt, k), "term"))
    return value


def term_points(run: GradientRun, kernel, gradient, term: Term, layout, k: int) -> dict:
    """Every contribution of term `k` of `gradient` (`term`): block, parent sample row, target, flat
    column, values [n, 3^k]. `layout`: the values' `forward._Layout`."""
    bindings = run.bindings
    scope = term_scope(run, kernel, gradient, term)
    native = native_value(run, kernel, gradient, k, scope)
    # the term's derived kernel: its body is the term's value, its condition the term's and the kernel's
    derived = run.term_kernel(kernel, gradient, k)
    coefficient = native if native is not None else run.evaluator.evaluate(derived.body, scope)
    masks = term_masks(run, kernel, term, scope, derived)

    keys, samples, components, properties = signature_values(run.evaluator, kernel, scope)
    target = run.evaluator.evaluate(term.target, scope)
    labelled = [v for _, v in keys + samples + components + properties] + [target]
    directions = tuple(gradient.directions)
    point_axes = tuple(a for a in union_axes(*labelled) if a not in directions)
    if any(a in directions for a in union_axes(*labelled)):
        raise RunError(f"gradient of {kernel.name}: a label depends on a direction")

    # contributions summed over the axes no label depends on
    summed = [a for a in union_axes(coefficient, *masks) if a not in point_axes and a not in directions]
    if native is not None:  # already zero where the conditions fail: only the sum is left
        kept = tuple(a for a in native.axes if a not in summed)
        data = native.data.sum(axis=tuple(native.axes.index(a) for a in native.axes if a in summed)) if len(kept) < len(native.axes) else native.data
        value = Named(kept, data)
    else:
        float_masks = [Named(m.axes, np.asarray(m.data).astype(bindings.dtype)) for m in masks]
        value = _contract([coefficient], float_masks, summed, scope, bindings.dtype)
    exists = Named.scalar(True)
    for mask in masks:
        exists = apply(np.logical_and, exists, Named(mask.axes, np.asarray(mask.data).astype(bool)))
    sizes = {a: len(scope.values[a]) if a in scope.values else _size_in(a, labelled + [value, exists])
             for a in point_axes}
    exists_axes = tuple(a for a in exists.axes if a not in point_axes)
    exists_data = np.asarray(exists.data)
    if exists_axes:
        exists_data = np.any(exists_data, axis=tuple(exists.axes.index(a) for a in exists_axes))
        exists = Named(tuple(a for a in exists.axes if a in point_axes), exists_data)
    grid = np.broadcast_to(exists.expand(point_axes), tuple(sizes[a] for a in point_axes))
    coordinates = dict(zip(point_axes, np.nonzero(grid)))
    n_points = int(np.count_nonzero(grid))

    def at(named: Named) -> np.ndarray:
        return _at(named, coordinates, n_points).astype(np.int64, copy=False)

    # lookups over the few axes each label depends on, then one gather per point
    key_values = [v for _, v in keys]
    found_block = _lookup(layout.keys, Named.scalar(0), key_values) if layout.keys is not None else Named.scalar(-1)
    block = Named(found_block.axes, np.maximum(found_block.data, 0))  # -1 only where no point is
    sample = _lookup(layout.samples, block, [v for _, v in samples], [e for e, _ in samples], bindings)
    column = Named.scalar(0)
    for k, (entry, v) in enumerate(components):
        found = _lookup(layout.components[k], block, [v])
        size = apply(lambda b, k=k: layout.component_sizes[b, k], block)
        column = apply(lambda c, s_, f: c * s_ + f, column, size, found)
    found = _lookup(layout.properties, block, [v for _, v in properties], [e for e, _ in properties], bindings)
    n_properties = apply(lambda b: layout.n_properties[b], block)
    column = apply(lambda c, s_, f: c * s_ + f, column, n_properties, found)
    block_points, sample_points = at(found_block), at(sample)
    present = layout.present_points(bindings, kernel.name, block_points, sample_points)
    if present is not None and not present.all():  # the points on absent rows add zeros: skipped
        coordinates = {a: c[present] for a, c in coordinates.items()}
        n_points = int(np.count_nonzero(present))
        block_points, sample_points = at(found_block), at(sample)
    if np.any(block_points < 0):
        raise RunError(f"gradient of {kernel.name}: a contribution to a block the values do not have")
    if np.any(sample_points < 0):
        raise RunError(f"gradient of {kernel.name}: a contribution to a sample the values do not have")
    column_points = at(column)

    present = tuple(a for a in value.axes if a not in directions)
    data = value.expand(present + directions)
    index = tuple(
        coordinates[a] if data.shape[k] != 1 else np.zeros(n_points, dtype=np.int64)
        for k, a in enumerate(present)
    )
    gathered = data[index] if present else np.broadcast_to(data, (n_points,) + data.shape)
    gathered = np.broadcast_to(gathered, (n_points,) + (3,) * len(directions))
    return {
        "block": block_points,
        "sample": sample_points,
        "target": at(target),
        "column": column_points,
        "values": np.ascontiguousarray(gathered).reshape(n_points, 3 ** len(directions)),
    }


def bind_binders(run, term: Term, scope: Scope) -> Scope:
    """Bind a term's binders; binders related by an equality of its condition
    (`P.second[p] == sample of g`, `P.first[q] == P.second[p]`) are enumerated
    jointly, as the matching pairs only (a sort-merge join), never as a product."""
    values = {b.name: run.evaluator.domain_values(b.domain) for b in term.binders}
    domains = {b.name: b.domain for b in term.binders}
    # groups: axis name -> {binder: index of its value along the axis}
    groups = {name: {name: np.arange(len(v), dtype=np.int64)} for name, v in values.items()}
    owner = {name: name for name in values}

    def group_scope(axis):
        inner = scope.bind(axis, ir.RangeDomain(axis, 0, 0), np.arange(len(next(iter(groups[axis].values()))), dtype=np.int64))
        for name, index in groups[axis].items():
            inner = inner.alias(name, Named((axis,), values[name][index]))
        return inner

    resolved: dict = {}  # aliases in terms of the binders only
    for name, expr in term.aliases:
        resolved[name] = ad.substitute(expr, resolved)
    counter = 0
    for conjunct in conjuncts(ad.substitute(term.where, resolved) if term.where is not None else None):
        if not (isinstance(conjunct, ir.Binary) and conjunct.op == "eq"):
            continue
        left, right = free_vars(conjunct.left), free_vars(conjunct.right)
        if not left or not right or not (left | right) <= set(values):
            continue
        axes_left, axes_right = {owner[n] for n in left}, {owner[n] for n in right}
        if len(axes_left) != 1 or len(axes_right) != 1 or axes_left == axes_right:
            continue
        a, b = axes_left.pop(), axes_right.pop()
        lv = run.evaluator.evaluate(conjunct.left, group_scope(a))
        rv = run.evaluator.evaluate(conjunct.right, group_scope(b))
        if lv.axes != (a,) or rv.axes != (b,) or lv.missing is not None or rv.missing is not None:
            continue
        ia, ib = _join(np.asarray(lv.data), np.asarray(rv.data))
        counter += 1
        axis = f"·join{counter}"
        merged = {name: index[ia] for name, index in groups.pop(a).items()}
        merged.update({name: index[ib] for name, index in groups.pop(b).items()})
        groups[axis] = merged
        for name in merged:
            owner[name] = axis
    for axis, members in groups.items():
        if list(members) == [axis]:
            scope = scope.bind(axis, domains[axis], values[axis])
        else:
            scope = group_scope(axis)
    return scope


def _join(left: np.ndarray, right: np.ndarray):
    """Indices (i, j) of every pair with left[i] == right[j]."""
    order = np.argsort(right, kind="stable")
    ordered = right[order]
    low = np.searchsorted(ordered, left, side="left")
    high = np.searchsorted(ordered, left, side="right")
    counts = high - low
    i = np.repeat(np.arange(len(left), dtype=np.int64), counts)
    starts = np.repeat(low - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    j = order[starts + np.arange(len(i), dtype=np.int64)] if len(i) else np.zeros(0, np.int64)
    return i, j


def _size_in(axis, arrays) -> int:
    for array in arrays:
        if axis in array.axes and array.data.shape[array.axes.index(axis)] != 1:
            return array.data.shape[array.axes.index(axis)]
    return 1


def _at(value: Named, coordinates: dict, n_points: int) -> np.ndarray:
    index = []
    for axis, size in zip(value.axes, np.shape(value.data)):
        if size == 1 or axis not in coordinates:
            index.append(np.zeros(n_points, dtype=np.int64))
        else:
            index.append(coordinates[axis])
    if not index:
        return np.broadcast_to(np.asarray(value.data), (n_points,))
    return np.asarray(value.data)[tuple(index)]
