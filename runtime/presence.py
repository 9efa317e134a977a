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

from mtdsl.ir.passes.products import presence_variables
from mtdsl.ir import nodes as ir
from mtdsl.ir.passes.autodiff import substitute
from mtdsl.ir.walk import conjuncts
from mtdsl.ir.reads import read_closure
from mtdsl.tensor import Labels, TensorBlock, TensorMap
from mtdsl.tensor.labels import row_keys

from .assemble import kernel_domain
from .blocks import expand_slot
from .evaluate.evaluator import Evaluator, Scope, _contract, _factors
from .named import Named, apply, union_axes

Presence = Optional[Named]  # boolean Named, None when present everywhere


class PresentSet:
    """The present (key, sample) rows of a tensor: sorted keys, and each block's sorted samples."""

    def __init__(self, key_names: list[str], keys: np.ndarray, samples: list[np.ndarray]):
        self.key_names = list(key_names)
        self.keys = np.asarray(keys, dtype=np.int64).reshape(len(keys), len(self.key_names))
        self.samples = samples  # per block: [n, n_sample_labels] int arrays, sorted
        #: (axes, bool array over them): the present points of the kernel over the indices its keys
        #: and samples depend on, when computed by `kernel_presence` (the kernels' presence tables)
        self.grid: Optional[tuple] = None
        width = samples[0].shape[1] if samples else 0
        rows = [np.concatenate([np.full((len(s), 1), b, np.int64), s], axis=1) for b, s in enumerate(samples)]
        self.rows = np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, width + 1), np.int64)

    @staticmethod
    def of(tensor: TensorMap) -> "PresentSet":
        """Every block and sample of a given TensorMap (an input) is present."""
        keys = np.asarray(tensor.keys.array)
        order = np.lexsort(keys.T[::-1]) if len(tensor) and keys.shape[1] else np.arange(len(tensor))
        blocks = tensor.blocks()
        samples = []
        for b in order:
            rows = np.asarray(blocks[b].samples.array, dtype=np.int64)
            samples.append(rows[np.lexsort(rows.T[::-1])] if rows.shape[1] else rows)
        return PresentSet(list(tensor.keys.names), np.asarray(tensor.keys.array)[order], samples)

    def key_positions(self, rows: np.ndarray) -> np.ndarray:
        """The position of each key row among the present keys, -1 when absent."""
        return _find(self.keys, np.asarray(rows, dtype=np.int64).reshape(-1, len(self.key_names)))

    def sample_mask(self, block: int, rows: np.ndarray) -> np.ndarray:
        """Whether each sample row is present in present block `block`."""
        present = self.samples[block]
        if present.shape[1] == 0:
            return np.full(len(rows), len(present) > 0)
        return _find(present, np.asarray(rows, dtype=np.int64)) >= 0

    def lookup(self, keys, slots, bindings) -> Named:
        """Whether the entries read at `keys` [(label, Named)] and sample `slots` [(Slot, Named)]
        are present, over the axes of those values only."""
        arrays = [value for _, value in keys] + [value for _, value in slots]
        sizes = {}
        for array in arrays:
            for axis, size in zip(array.axes, np.shape(array.data)):
                if size != 1:
                    sizes[axis] = size
        axes = tuple(a for a in union_axes(*arrays) if a in sizes)
        shape = tuple(sizes[a] for a in axes)
        n_points = int(np.prod(shape, dtype=np.int64))

        def flat(named: Named) -> np.ndarray:
            kept = [k for k, a in enumerate(named.axes) if a in sizes]
            data = np.asarray(named.data).reshape(tuple(np.shape(named.data)[k] for k in kept))
            return np.broadcast_to(Named(tuple(named.axes[k] for k in kept), data).expand(axes), shape) \
                .reshape(-1).astype(np.int64)

        if not len(self.samples):
            return Named(axes, np.zeros(shape, bool))
        bound = dict(keys)
        columns = []
        for k, name in enumerate(self.key_names):
            if name in bound:
                columns.append(flat(bound[name]))
            else:  # an unbound key takes one value (checked by the value path)
                columns.append(np.full(n_points, self.keys[0, k], np.int64))
        block = self.key_positions(np.stack(columns, axis=1)) if columns else np.zeros(n_points, np.int64)
        sample_columns = []
        for slot, value in slots:
            sample_columns += expand_slot(slot.kind, slot.source, flat(value), bindings)
        if sample_columns:
            found = _find(self.rows, np.stack([block] + sample_columns, axis=1)) >= 0
        else:
            found = block >= 0
        return Named(axes, (found & (block >= 0)).reshape(shape))


def _find(table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The position of each row of `rows` in `table` (rows sorted lexicographically, distinct), -1
    when absent."""
    if len(table) == 0 or len(rows) == 0:
        return np.full(len(rows), -1, np.int64)
    # column by column: much faster than min(axis=0) on these narrow rows
    low = np.array([min(table[:, k].min(), rows[:, k].min()) for k in range(table.shape[1])], np.int64)
    spans = np.array([max(table[:, k].max(), rows[:, k].max()) for k in range(table.shape[1])], np.int64) - low + 1
    if float(np.prod(spans.astype(np.float64))) < 2.0**62:
        def encode(a):
            code = np.zeros(len(a), np.int64)
            for k in range(a.shape[1]):
                code = code * spans[k] + (a[:, k] - low[k])
            return code
        mine, theirs = encode(table), encode(rows)
    else:
        mine, theirs = row_keys(table.astype(np.int32), rows.astype(np.int32))
    where = np.clip(np.searchsorted(mine, theirs), 0, len(mine) - 1)
    return np.where(mine[where] == theirs, where, -1)


class PresenceEvaluator(Evaluator):
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
        expr = _bound_by_equality(expr, scope)
        if not expr.binders:
            body = self.presence(expr.body, scope)
            if expr.where is None:
                return body
            where = self.evaluate(expr.where, scope)
            return _all(body, Named(where.axes, np.asarray(where.data, dtype=bool)))
        inner, segment, masks = self.reduce_scope(expr, scope)
        body = _all(*(self.presence(f, inner) for f in _factors(expr.body)))
        reduced_names = {b.name for b in expr.binders}
        if segment is None and (body is None or not set(body.axes) & reduced_names):
            # the body's presence does not vary over the sum: present where it is and some term
            # passes the masks (booleans over the masks' own axes, no count over the whole grid)
            exists = _all(*masks) if masks else None
            if exists is None:
                exists = Named.scalar(True)
            for name in reduced_names:  # an empty domain leaves no term
                if name not in exists.axes and len(inner.values.get(name, [0])) == 0:
                    exists = Named.scalar(False)
            drop = tuple(k for k, a in enumerate(exists.axes) if a in reduced_names)
            data = np.any(np.asarray(exists.data, dtype=bool), axis=drop) if drop else np.asarray(exists.data, bool)
            exists = Named(tuple(a for a in exists.axes if a not in reduced_names), data)
            return _all(body, exists)
        terms = [Named(body.axes, body.data.astype(np.float64))] if body is not None else [Named.scalar(1.0)]
        reduced = [b.name for b in expr.binders if not (segment and b.name == segment[0])]
        floats = [Named(m.axes, np.asarray(m.data).astype(np.float64)) for m in masks]
        count = _contract(terms, floats, reduced, inner, np.float64)
        if segment is not None:
            count = self._segment_sum(count, *segment)
        return Named(count.axes, np.asarray(count.data) > 0)


def _bound_by_equality(expr: ir.Reduce, scope: Scope) -> ir.Reduce:
    """`expr` without its binders `j` that a conjunct `j == x` of its `where` fixes to a variable
    `x` of the same domain in scope (`j in atoms(S) where j == i`): `x` substituted for `j`, so
    presence is not a dense (j, i) mask."""

    names = {b.name for b in expr.binders}
    for binder in expr.binders:
        for conjunct in conjuncts(expr.where):
            if not (isinstance(conjunct, ir.Binary) and conjunct.op == "eq"):
                continue
            for this, other in ((conjunct.left, conjunct.right), (conjunct.right, conjunct.left)):
                if (isinstance(this, ir.Var) and this.name == binder.name and isinstance(other, ir.Var)
                        and other.name not in names and other.name not in scope.aliases
                        and scope.domains.get(other.name) == binder.domain):
                    rest = [c for c in conjuncts(expr.where) if c is not conjunct]
                    where = None
                    for c in rest:
                        where = c if where is None else ir.Binary("and", where, c)
                    mapping = {binder.name: other}
                    reduced = ir.Reduce(tuple(b for b in expr.binders if b is not binder),
                                        substitute(expr.body, mapping), substitute(where, mapping))
                    return _bound_by_equality(reduced, scope)
    return expr


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
    keys = [(e, evaluator.evaluate(e.expr, scope)) for e in kernel.keys]
    samples = [(e, evaluator.evaluate(e.expr, scope)) for e in kernel.samples]
    kept = tuple(a for a in axes if any(a in value.axes for _, value in keys + samples))

    def reduced(named: Named) -> Named:
        """`named` true somewhere along the axes outside `kept`."""
        dropped = tuple(k for k, a in enumerate(named.axes) if a not in kept)
        data = np.asarray(named.data, dtype=bool)
        return Named(tuple(a for a in named.axes if a in kept), np.any(data, axis=dropped) if dropped else data)

    if body is None or set(body.axes) <= set(kept):  # reduce the mask alone, then meet the body
        present = reduced(mask) if body is None else apply(np.logical_and, reduced(mask), body)
    else:
        present = reduced(apply(np.logical_and, mask, body))
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
        result = PresentSet(key_names, np.zeros((0, len(key_names)), np.int64), [])
        result.grid = (kept, np.asarray(grid, dtype=bool))
        return result
    # distinct (key, sample) rows in lexicographic order, grouped by key
    rows = _unique_rows(np.concatenate([key_matrix, sample_matrix], axis=1))
    n_keys = key_matrix.shape[1]
    if n_keys:
        starts = np.concatenate([[0], np.nonzero(np.any(rows[1:, :n_keys] != rows[:-1, :n_keys], axis=1))[0] + 1])
    else:
        starts = np.zeros(1, np.int64)
    per_block = np.split(rows[:, n_keys:], starts[1:])
    result = PresentSet(key_names, rows[starts, :n_keys], per_block)
    result.grid = (kept, np.asarray(grid, dtype=bool))
    return result


def presence_table(kernel: ir.TensorKernel, present: Optional[PresentSet], sizes: dict) -> np.ndarray:
    """The presence table a guarded kernel reads (codegen/schedule/presence.py): over the kernel
    indices its keys and samples depend on (`sizes`: each index's domain size), flattened, 0 at
    a present point and -1 at an absent one; empty (every point computed) when unknown."""
    variables = presence_variables(kernel)
    if present is None or present.grid is None or not variables:
        return np.zeros(0, np.int64)
    kept, grid = present.grid
    if not set(kept) <= set(variables):
        return np.zeros(0, np.int64)
    shape = tuple(int(sizes[v]) for v in variables)
    grid = grid.reshape(tuple(grid.shape[kept.index(v)] if v in kept else 1 for v in variables))
    if any(g not in (1, s) for g, s in zip(grid.shape, shape)):
        return np.zeros(0, np.int64)
    return np.where(np.broadcast_to(grid, shape), 0, -1).astype(np.int64).reshape(-1)


def _unique_rows(matrix: np.ndarray) -> np.ndarray:
    """The distinct rows of an int matrix, in lexicographic order."""
    if matrix.shape[1] == 0:
        return matrix[:1]
    low = np.array([matrix[:, k].min() for k in range(matrix.shape[1])], np.int64)
    spans = np.array([matrix[:, k].max() for k in range(matrix.shape[1])], np.int64) - low + 1
    if float(np.prod(spans.astype(np.float64))) < 2.0**62:
        code = np.zeros(len(matrix), np.int64)
        for k in range(matrix.shape[1]):
            code = code * spans[k] + (matrix[:, k] - low[k])
        _, first = np.unique(code, return_index=True)
        return matrix[first]
    return np.unique(matrix, axis=0)


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
        found = present.key_positions(np.asarray(tensor.keys.array))
    else:
        found = np.zeros(len(tensor), np.int64) if len(present.samples) else -np.ones(len(tensor), np.int64)
    kept_keys, blocks = [], []
    for b, block in enumerate(tensor.blocks()):
        if found[b] < 0:
            continue
        if len(block.samples) == len(present.samples[found[b]]):
            # as many samples as present, and never fewer than present (the assembly's points
            # include the present ones): these are the present ones (the layout had the grid)
            kept_keys.append(b)
            blocks.append(block)
            continue
        keep = present.sample_mask(found[b], np.asarray(block.samples.array))
        if not keep.any():
            continue
        kept_keys.append(b)
        blocks.append(block if keep.all() else _restrict_block(block, keep))
    if len(kept_keys) == len(tensor) and all(a is b for a, b in zip(blocks, tensor.blocks())):
        return tensor  # assembled on its present blocks and samples: nothing to drop, no new TensorMap
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
        # no row of a dropped sample (the rows were laid out on the present samples): no copy
        values = gradient.values if len(kept) == len(rows) else _take(gradient.values, kept)
        new.add_gradient(parameter, TensorBlock(
            values, Labels(gradient.samples.names, new_rows, assume_unique=True),
            list(gradient.components), gradient.properties))
    return new


def _take(values, index: np.ndarray):
    if isinstance(values, np.ndarray):
        return np.ascontiguousarray(values[index])
    import torch

    return values.index_select(0, torch.as_tensor(index, dtype=torch.long, device=values.device))


def present_rows(tensor: TensorMap, present: PresentSet) -> np.ndarray:
    """Whether each sample row of `tensor` (its blocks' samples one after the other, as the
    gradient rows number them) is present: the gradient terms skip the points of the others
    (their contributions are structurally zero), so the gradient rows are laid out on the
    present blocks and samples only."""
    sizes = [len(block.samples) for block in tensor.blocks()]
    result = np.zeros(int(sum(sizes)), dtype=bool)
    if not len(tensor) or not len(present.samples):
        return result
    if present.key_names:
        found = present.key_positions(np.asarray(tensor.keys.array))
    else:
        found = np.zeros(len(tensor), np.int64)
    start = 0
    for b, block in enumerate(tensor.blocks()):
        if found[b] >= 0:
            result[start:start + sizes[b]] = present.sample_mask(found[b], np.asarray(block.samples.array))
        start += sizes[b]
    return result
