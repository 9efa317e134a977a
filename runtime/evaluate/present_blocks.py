"""The reference evaluator skips absent blocks: a kernel's body over its present key points only.

When the presence of a kernel's blocks was decided before the run (`Bindings.present`,
runtime/presence.py), the key variables of the kernel (the indices its keys depend on)
need values only where their key row is a present block: the assembly
(runtime/assemble.py) drops every other block unread. So the body is evaluated with
those variables replaced by one axis, `BLOCKS_AXIS`, over their present combinations
(each variable an alias gathering its values there), samples and the other indices
dense as before, and the result is scattered back onto the dense grid (zeros at the
skipped points, which no block reads). Every point computed is the same array
operation on the same operands as the dense evaluation, so the values are bit for bit
the dense ones; a many-species molecular batch evaluates its present blocks (~194 of
1,470 for the power spectrum of g2) instead of every key combination.

Left dense (kept as axes of their own): a key variable that is the atom of a
`P.from(i)` reduction (its CSR segment sum needs `i` along its own axis) and irrep
variables (`|m| <= l` reads their values). Nothing is skipped when the presence is
unknown (`Model(dense=True)`, the torch evaluation, gradient kernels) or when every
combination is present.
"""

from __future__ import annotations

import numpy as np

from mtdsl.ir import nodes as ir

from ..named import Named
from . import dispatch as xp

#: the axis of the present key points (not an identifier: never an index name)
BLOCKS_AXIS = "·blocks"
#: False: every kernel over its dense grid (benchmarks/bench_interpreter_blocks.py times both)
SKIP_ABSENT_BLOCKS = True


def evaluate_present_blocks(evaluator, kernel: ir.TensorKernel, scope, axes: tuple, sizes: dict):
    """The body of `kernel` over the dense grid of `axes`, evaluated at the key points of its
    present blocks alone (zeros elsewhere); None when nothing can be skipped."""
    present = getattr(evaluator.bindings, "present", {}).get(kernel.name)
    if not SKIP_ABSENT_BLOCKS or present is None or not present.key_names or not kernel.keys:
        return None
    keys = [evaluator.evaluate(entry.expr, scope) for entry in kernel.keys]
    if any(value.missing is not None for value in keys):
        return None
    key_axes = tuple(a for a in axes if any(a in value.axes for value in keys))
    dense = _segment_atoms(kernel.body)
    chosen = tuple(a for a in key_axes if a not in dense and not isinstance(scope.domains[a], ir.IrrepDomain))
    if not chosen:
        return None
    shape = tuple(sizes[a] for a in key_axes)
    rows = np.stack([np.broadcast_to(value.expand(key_axes), shape).reshape(-1) for value in keys], axis=1)
    is_present = (present.key_positions(rows.astype(np.int64)) >= 0).reshape(shape)
    others = tuple(k for k, a in enumerate(key_axes) if a not in chosen)
    wanted = np.any(is_present, axis=others) if others else is_present
    points = np.nonzero(wanted)
    if len(points[0]) == wanted.size:
        return None  # every combination present: the dense evaluation, as it is
    inner = scope
    for axis, at in zip(chosen, points):
        inner = inner.alias(axis, Named((BLOCKS_AXIS,), np.asarray(scope.values[axis])[at]))
    body = evaluator.evaluate(kernel.body, inner)
    return _scatter(body, chosen, points, sizes)


def _scatter(value: Named, chosen: tuple, points: tuple, sizes: dict) -> Named:
    """`value` over `BLOCKS_AXIS` put back on the dense grid of the `chosen` axes (zeros, or not
    missing, at the other points)."""
    if BLOCKS_AXIS not in value.axes:
        return value
    rest = tuple(a for a in value.axes if a != BLOCKS_AXIS)
    axes = chosen + rest
    data = xp.expand(value, (BLOCKS_AXIS,) + rest)
    dense_shape = tuple(sizes[a] for a in chosen) + tuple(data.shape[1:])
    data = xp.broadcast_to(data, (len(points[0]),) + tuple(data.shape[1:])) if data.shape[0] == 1 \
        else data
    if xp.is_tensor(data):
        index = tuple(xp.from_numpy(np.asarray(p, dtype=np.int64)) for p in points)
        scattered = data.new_zeros(dense_shape).index_put(index, data)
    else:
        scattered = np.zeros(dense_shape, dtype=data.dtype)
        scattered[points] = data
    missing = None if value.missing is None else _scatter(value.missing, chosen, points, sizes)
    return Named(axes, scattered, missing)


def _segment_atoms(expr) -> set:
    """The names of the variables that are the atom of a `P.from(i)` binder anywhere in `expr`."""
    found = set()

    def visit(node):
        if isinstance(node, ir.Reduce):
            for binder in node.binders:
                if isinstance(binder.domain, ir.PairsFrom) and isinstance(binder.domain.atom, ir.Var):
                    found.add(binder.domain.atom.name)
        for child in _children(node):
            visit(child)

    visit(expr)
    return found


def _children(node):
    if isinstance(node, (list, tuple)):
        for item in node:
            yield from _children(item)
        return
    if not hasattr(node, "__dataclass_fields__"):
        return
    for name in node.__dataclass_fields__:
        child = getattr(node, name)
        if isinstance(child, (list, tuple)) or hasattr(child, "__dataclass_fields__"):
            yield child
