"""Structural presence (LANGUAGE.md §3, "Sparsity"): which blocks and samples an output has.

Values are *present* or *absent*, as in featomic and sparse tensor algebra: a
`sum` over an empty set is absent, a product, quotient or function of an absent
operand is absent, `a + b` / `a - b` is absent only when both are, `c ? a : b`
takes the presence of the branch taken, a block access to a key or sample the
tensor lacks is absent, and literals, hypers, params and fields of `S` / `P` are
present. A sample exists only if some entry of it is present, a block only if it
has a sample.

Presence never depends on values, only on structure (pair lists, species, the
`where` conditions, the keys and samples of the tensors read), so it is one
static walk over the IR, evaluated once per run with the interpreter's
vectorized index arithmetic and independent of the backend that computed the
values: `PresenceEvaluator.presence(expr)` is a boolean `Named` over the few
index variables presence depends on (`None`: present everywhere). For the
spherical expansion that is "centre `i` has a neighbour of type `b`" over
`(i, b)`, a segment count over the pair list, never over `(l, m, n)`.

The backends compute a kernel's values over its dense grid as before (absent
entries hold 0, the value of an empty sum), and `restrict()` keeps the present
blocks and samples of each output, gradient rows included, so every backend
(interpreter, cpp, llvm, fused and gradient kernels, reverse products, torch)
gives the same keys and samples. `Model(dense=True)` skips this step: a block
for every key tuple of the domains, zeros included (the earlier rule).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from mtdsl.ir import nodes as ir
from mtdsl.ir.reads import read_closure
from mtdsl.tensor import Labels, TensorBlock, TensorMap

from .assemble import kernel_domain
from .blocks import expand_slot
from .interpreter import Interpreter, Scope, _contract, _factors
from .named import Named, apply, union_axes

Presence = Optional[Named]  # boolean Named, None when present everywhere


class PresentSet:
    """The present (key, sample) rows of a tensor: sorted keys, and each block's sample labels."""

    def __init__(self, key_names: list[str], keys: np.ndarray, samples: list[np.ndarray]):
        self.key_names = list(key_names)
        self.keys = Labels(self.key_names, keys.astype(np.int32), assume_unique=True) if self.key_names \
            else Labels(["_"], np.zeros((len(keys), 1), np.int32), assume_unique=True)
        self.samples = samples  # per block: [n, n_sample_labels] int arrays
        width = samples[0].shape[1] if samples else 0
        rows = [np.concatenate([np.full((len(s), 1), b, np.int64), s], axis=1) for b, s in enumerate(samples)]
        stacked = np.concatenate(rows) if rows else np.zeros((0, width + 1), np.int64)
        self.rows = Labels(["block"] + [f"c{k}" for k in range(width)], stacked.astype(np.int32),
                           assume_unique=True)

    @staticmethod
    def of(tensor: TensorMap) -> "PresentSet":
        """Every block and sample of a given TensorMap (an input) is present."""
        return PresentSet(list(tensor.keys.names), np.asarray(tensor.keys.array),
                          [np.asarray(block.samples.array) for block in tensor.blocks()])

    def block_ids(self, keys, flat, n_points: int) -> np.ndarray:
        """The position of each point's block among the present ones, -1 when absent."""
        bound = dict(keys)
        key_array = np.asarray(self.keys.array)
        columns = []
        for k, name in enumerate(self.key_names):
            if name in bound:
                columns.append(flat(bound[name]))
            else:  # an unbound key takes one value (checked by the value path)
                values = np.unique(key_array[:, k])
                columns.append(np.full(n_points, values[0] if len(values) else 0, np.int64))
        if not self.key_names:
            return np.where(np.zeros(n_points, bool) | (len(self.samples) > 0), 0, -1)
        return self.keys.positions(np.stack(columns, axis=1))

    def lookup(self, keys, slots, bindings) -> Named:
        """Whether the entries read at `keys` [(label, Named)] and sample `slots` [(Slot, Named)]
        are present, over the axes of those values only."""
        arrays = [value for _, value in keys] + [value for _, value in slots]
        axes = union_axes(*arrays)
        sizes = {}
        for array in arrays:
            for axis, size in zip(array.axes, np.shape(array.data)):
                if size != 1:
                    sizes[axis] = size
        axes = tuple(a for a in axes if a in sizes)
        shape = tuple(sizes[a] for a in axes)
        n_points = int(np.prod(shape, dtype=np.int64))

        def flat(named: Named) -> np.ndarray:
            data = named.data
            kept = [k for k, a in enumerate(named.axes) if a in sizes]
            data = data.reshape(tuple(np.shape(data)[k] for k in kept))
            return np.broadcast_to(Named(tuple(named.axes[k] for k in kept), data).expand(axes), shape) \
                .reshape(-1).astype(np.int64)

        if not len(self.samples):
            return Named(axes, np.zeros(shape, bool))
        block = self.block_ids(keys, flat, n_points)
        columns = [block]
        for slot, value in slots:
            columns += expand_slot(slot.kind, slot.source, flat(value), bindings)
        found = self.rows.positions(np.stack(columns, axis=1)) if len(columns) > 1 else block
        return Named(axes, ((block >= 0) & (found >= 0)).reshape(shape))


class PresenceEvaluator(Interpreter):
    """Evaluates the presence of expressions; index values (conditions, keys, samples, the atoms
    of `P.from`) come from the interpreter itself."""

    def __init__(self, module: ir.Module, bindings, present: dict):
        super().__init__(module, bindings)
        self.present = present  # tensor name -> PresentSet

    def presence(self, expr, scope: Scope) -> Presence:
        method = getattr(self, f"_present_{type(expr).__name__}", None)
        if method is None:  # literals, indices, hypers, params, fields of S and P
            return None
        return method(expr, scope)

    def _present_Unary(self, expr: ir.Unary, scope: Scope) -> Presence:
        return self.presence(expr.operand, scope)

    def _present_Binary(self, expr: ir.Binary, scope: Scope) -> Presence:
        left, right = self.presence(expr.left, scope), self.presence(expr.right, scope)
        if expr.op in ("add", "sub"):  # absent only where both are
            return None if left is None or right is None else apply(np.logical_or, left, right)
        return _all(left, right)

    def _present_Select(self, expr: ir.Select, scope: Scope) -> Presence:
        if_true, if_false = self.presence(expr.if_true, scope), self.presence(expr.if_false, scope)
        if if_true is None and if_false is None:
            return None
        condition = self.evaluate(expr.condition, scope)
        true = Named.scalar(True)
        result = apply(np.where, condition, if_true or true, if_false or true)
        return Named(result.axes, result.data.astype(bool))

    def _present_Call(self, expr: ir.Call, scope: Scope) -> Presence:
        return _all(*(self.presence(a, scope) for a in expr.args))

    def _present_BlockRef(self, expr: ir.BlockRef, scope: Scope) -> Presence:
        present = self.present.get(expr.tensor)
        if present is None:
            tensor = self.bindings.tensors.get(expr.tensor)
            if tensor is None:
                return None
            present = self.present[expr.tensor] = PresentSet.of(tensor)
        keys = [(label, self.evaluate(e, scope)) for label, e in expr.keys]
        slots = [(slot, self.evaluate(slot.expr, scope)) for slot in expr.samples]
        return present.lookup(keys, slots, self.bindings)

    def _present_Reduce(self, expr: ir.Reduce, scope: Scope) -> Presence:
        """Present where at least one term is: the count of present terms, > 0."""
        inner, segment, masks = self.reduce_scope(expr, scope)
        body = _all(*(self.presence(f, inner) for f in _factors(expr.body)))
        terms = [Named(body.axes, body.data.astype(np.float64))] if body is not None else [Named.scalar(1.0)]
        reduced = [b.name for b in expr.binders if not (segment and b.name == segment[0])]
        floats = [Named(m.axes, np.asarray(m.data).astype(np.float64)) for m in masks]
        count = _contract(terms, floats, reduced, inner, np.float64)
        if segment is not None:
            count = self._segment_sum(count, *segment)
        return Named(count.axes, np.asarray(count.data) > 0)


def _all(*parts: Presence) -> Presence:
    """Present where every part is."""
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    result = parts[0]
    for part in parts[1:]:
        result = apply(np.logical_and, result, part)
    return Named(result.axes, np.asarray(result.data, dtype=bool))


def kernel_presence(evaluator: PresenceEvaluator, kernel: ir.TensorKernel) -> PresentSet:
    """The present keys and samples of `kernel`: the valid points (`where`, `|m| <= l`) where
    the body is present, reduced to the axes the keys and samples depend on."""
    scope, axes, sizes, mask = kernel_domain(evaluator, kernel)
    body = evaluator.presence(kernel.body, scope)
    present = mask if body is None else apply(np.logical_and, mask, body)
    keys = [(e, evaluator.evaluate(e.expr, scope)) for e in kernel.keys]
    samples = [(e, evaluator.evaluate(e.expr, scope)) for e in kernel.samples]
    kept = tuple(a for a in axes if any(a in value.axes for _, value in keys + samples))
    dropped = tuple(k for k, a in enumerate(present.axes) if a not in kept)
    data = np.asarray(present.data, dtype=bool)
    if dropped:
        data = np.any(data, axis=dropped)
    present = Named(tuple(a for a in present.axes if a in kept), data)
    grid = np.broadcast_to(present.expand(kept), tuple(sizes[a] for a in kept)) if kept \
        else np.asarray(present.data).reshape(())
    points = np.nonzero(grid) if kept else ()
    n = len(points[0]) if kept else int(bool(grid))
    coordinates = dict(zip(kept, points))

    def at(value: Named) -> np.ndarray:
        index = tuple(coordinates[a] if np.shape(value.data)[k] != 1 else np.zeros(n, np.int64)
                      for k, a in enumerate(value.axes))
        return np.broadcast_to(value.data[index] if index else value.data, (n,)).astype(np.int64)

    key_matrix = np.stack([at(v) for _, v in keys], axis=1) if keys else np.zeros((n, 0), np.int64)
    columns = []
    for entry, value in samples:
        columns += expand_slot(entry.kind, entry.source, at(value), evaluator.bindings)
    sample_matrix = np.stack(columns, axis=1) if columns else np.zeros((n, 0), np.int64)
    key_names = [e.label for e in kernel.keys]
    if n == 0:
        return PresentSet(key_names, np.zeros((0, len(key_names)), np.int64), [])
    unique_keys, inverse = np.unique(key_matrix, axis=0, return_inverse=True) if keys \
        else (np.zeros((1, 0), np.int64), np.zeros(n, np.int64))
    inverse = inverse.reshape(-1)
    per_block = []
    for b in range(len(unique_keys)):
        rows = sample_matrix[inverse == b]
        per_block.append(np.unique(rows, axis=0) if rows.shape[1] else rows[:1])
    return PresentSet(key_names, unique_keys, per_block)


def module_presence(module: ir.Module, bindings, names) -> dict:
    """`{tensor: PresentSet}` of the kernels `names` need (and `names` themselves), in order."""
    evaluator = PresenceEvaluator(module, bindings, {})
    result = {}
    for kernel in read_closure(module, names):
        result[kernel.name] = evaluator.present[kernel.name] = kernel_presence(evaluator, kernel)
    return result


def restrict(tensor: TensorMap, present: PresentSet) -> TensorMap:
    """`tensor` with only its present blocks and samples (gradient rows of dropped samples go,
    the others are renumbered); numpy or torch values alike."""
    if not len(tensor):
        return tensor
    key_names = list(tensor.keys.names)
    if present.key_names:
        found = present.keys.positions(np.asarray(tensor.keys.array))
    else:
        found = np.zeros(len(tensor), np.int64) if len(present.samples) else -np.ones(len(tensor), np.int64)
    kept_keys, blocks = [], []
    for b, block in enumerate(tensor.blocks()):
        if found[b] < 0:
            continue
        samples = np.asarray(block.samples.array)
        rows = present.samples[found[b]]
        if samples.shape[1]:
            keep = Labels(block.samples.names, rows.astype(np.int32), assume_unique=True).positions(samples) >= 0
        else:
            keep = np.ones(len(samples), bool)
        if not keep.any():
            continue
        kept_keys.append(b)
        blocks.append(block if keep.all() else _restrict_block(block, keep))
    keys = Labels(key_names, np.asarray(tensor.keys.array)[kept_keys].reshape(len(kept_keys), len(key_names)),
                  assume_unique=True)
    result = TensorMap(keys, blocks) if blocks else TensorMap(Labels.empty(key_names), [])
    for key, value in tensor.info().items():
        result.set_info(key, value)
    return result


def _restrict_block(block: TensorBlock, keep: np.ndarray) -> TensorBlock:
    index = np.nonzero(keep)[0]
    samples = Labels(block.samples.names, np.asarray(block.samples.array)[index], assume_unique=True)
    new = TensorBlock(_take(block.values, index), samples, list(block.components), block.properties)
    renumber = np.cumsum(keep) - 1
    for parameter, gradient in block.gradients():
        rows = np.asarray(gradient.samples.array)
        kept = np.nonzero(keep[rows[:, 0]])[0]
        new_rows = rows[kept].copy()
        new_rows[:, 0] = renumber[new_rows[:, 0]]
        new.add_gradient(parameter, TensorBlock(
            _take(gradient.values, kept), Labels(gradient.samples.names, new_rows, assume_unique=True),
            list(gradient.components), gradient.properties))
    return new


def _take(values, index: np.ndarray):
    if isinstance(values, np.ndarray):
        return np.ascontiguousarray(values[index])
    import torch

    return values.index_select(0, torch.as_tensor(index, dtype=torch.long, device=values.device))
