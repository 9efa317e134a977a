"""The interpreter of gradient terms: the derivative IR nodes, and computed gradients as tables.

`GradientInterpreter` is the reference evaluator (runtime/evaluate/) plus the
derivative nodes of `mtdsl.ir.passes.autodiff` (unit vectors, gradient labels and values of
computed tensors); `GradientTable` holds the gradient rows of a computed tensor,
concatenated over its blocks, for `GradLabel`/`GradValue`; `DenseLookup` finds label
rows inside their block by value with dense tables over the small ranges of label
values (hashed `Labels` for wide ones). `runtime/gradients/forward.py` builds gradient blocks
with them.
"""

from __future__ import annotations

import numpy as np

from mtdsl.ir.passes import autodiff as ad
from mtdsl.ir import nodes as ir
from mtdsl.tensor import Labels

from ..blocks import SLOT_WIDTH, BlockLabels, expand_slot
from ..evaluate.evaluator import Evaluator, Scope, csr_matrix
from ..named import VECTOR_AXIS, Named, apply, union_axes

#: for each gradient, the order of the direction variables in the stored array
#: (strain: d/d eps_ab stored at [a, b]; cell: directions (x, a) of d/d H_ax stored at [a, x])
_STORED_ORDER = {"positions": (0,), "strain": (0, 1), "cell": (1, 0)}


class GradientInterpreter(Evaluator):
    """The interpreter, plus the derivative IR nodes and gradient tables of computed tensors."""

    def __init__(self, module, bindings, kernels: dict, native=None):
        super().__init__(module, bindings)
        self.kernels = {k.name: k for k in module.kernels}
        self.gradient_tables: dict = {}
        self.gradient_kernels = kernels
        # a compiled module (runtime/native/compiled.py) whose `gradient_term` fills terms natively, or None
        self.native = native
        self.native_terms: list = []  # ((kernel, wrt, term index), "fused" | "scatter" | "term") run natively
        self.dense_gradients: dict = {}  # (tensor, wrt) -> buffer written by its scatter kernels
        self.prepared: dict = {}  # tensor -> GradientRows some of whose terms the values' pass added

    def _eval_UnitVector(self, expr: ad.UnitVector, scope: Scope) -> Named:
        direction = self.evaluate(expr.direction, scope)
        eye = np.eye(3, dtype=self.bindings.dtype)
        return Named(direction.axes + (VECTOR_AXIS,), eye[direction.data])

    def _eval_GradLabel(self, expr: ad.GradLabel, scope: Scope) -> Named:
        row = self.evaluate(expr.row, scope)
        table = self.gradient_tables[(expr.tensor, expr.wrt)]
        return Named(row.axes, table.label(expr, row.data))

    def _eval_GradValue(self, expr: ad.GradValue, scope: Scope) -> Named:
        table = self.gradient_tables[(expr.tensor, expr.wrt)]
        row = self.evaluate(expr.row, scope)
        directions = [self.evaluate(d, scope) for d in expr.directions]
        components = [self.evaluate(s.expr, scope) for s in expr.components]
        properties = [self.evaluate(s.expr, scope) for s in expr.properties]
        return table.gather(row, directions, components, properties)

    def _eval_BlockRef(self, expr: ir.BlockRef, scope: Scope) -> Named:
        """Block access, gathered once per distinct (keys, samples) and broadcast back.

        In gradient terms, keys and samples follow the rows of another gradient
        (`i := sample of g`): many rows share them, so this saves most lookups.
        """
        keys = [(label, self.evaluate(e, scope)) for label, e in expr.keys]
        samples = [(slot, self.evaluate(slot.expr, scope)) for slot in expr.samples]
        rest = [(slot, self.evaluate(slot.expr, scope)) for slot in expr.components + expr.properties]
        groups = (len(expr.samples), len(expr.components), len(expr.properties))
        row_arrays = [v for _, v in keys] + [v for _, v in samples]
        row_axes = union_axes(*row_arrays)
        sizes = _sizes(row_arrays)
        row_shape = tuple(sizes.get(a, 1) for a in row_axes)
        n_rows = int(np.prod(row_shape, dtype=np.int64))
        shared = set(row_axes) & set(union_axes(*(v for _, v in rest))) if rest else set()
        if n_rows < 1024 or shared or any(v.missing is not None for v in row_arrays):
            return self.table(expr.tensor).gather(keys, samples + rest, groups, self.bindings)
        stacked = np.stack([np.broadcast_to(v.expand(row_axes), row_shape).reshape(-1) for v in row_arrays], axis=1)
        unique, inverse = _unique_rows(stacked)
        if len(unique) > n_rows // 2:
            return self.table(expr.tensor).gather(keys, samples + rest, groups, self.bindings)
        axis = "·rows"
        distinct = [Named((axis,), unique[:, k]) for k in range(unique.shape[1])]
        new_keys = [(label, distinct[k]) for k, (label, _) in enumerate(keys)]
        new_samples = [(slot, distinct[len(keys) + k]) for k, (slot, _) in enumerate(samples)]
        result = self.table(expr.tensor).gather(new_keys, new_samples + rest, groups, self.bindings)
        return _unfold(result, axis, row_axes, inverse.reshape(row_shape))

    def _eval_Reduce(self, expr: ir.Reduce, scope: Scope) -> Named:
        """Sums over `P.from(atom)` where `atom` varies along other axes (neighbours of
        neighbours, or a centre that a gradient row fixes): the pairs of each atom are
        enumerated as ragged segments and summed back, instead of a dense mask.

        A sum that depends on the rows of a gradient only through aliases taking few
        distinct values (the centre `i` of each row) is evaluated once per value."""
        deduplicated = self._deduplicate(expr, scope)
        if deduplicated is not None:
            return deduplicated
        segments = [k for k, b in enumerate(expr.binders) if isinstance(b.domain, ir.PairsFrom)]
        ragged = [k for k in segments if not (
            isinstance(expr.binders[k].domain.atom, ir.Var) and expr.binders[k].domain.atom.name not in scope.aliases)]
        if ragged:
            position = ragged[0]
        elif len(segments) > 1:  # the interpreter segments one of them only: the others are ragged here
            position = segments[-1]
        else:
            return super()._eval_Reduce(expr, scope)
        binder = expr.binders[position]
        domain = binder.domain
        atom = self.evaluate(domain.atom, scope)
        if not atom.axes or atom.missing is not None:
            return super()._eval_Reduce(expr, scope)
        pairs = self.bindings.pairs[domain.pairs]
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
            value = self._eval_Reduce(ir.Reduce(rest, expr.body, expr.where), inner)
        else:
            value = self.evaluate(expr.body, inner)
            if expr.where is not None:
                mask = self.evaluate(expr.where, inner)
                value = apply(np.multiply, value, Named(mask.axes, np.asarray(mask.data).astype(self.bindings.dtype)))
        # sum each atom's segment back onto the atom's axes
        others = tuple(a for a in value.axes if a != axis)
        data = np.broadcast_to(value.expand((axis,) + others), (len(outer),) + tuple(
            value.data.shape[value.axes.index(a)] for a in others))
        width = int(np.prod(data.shape[1:], dtype=np.int64))
        matrix = csr_matrix(
            (np.ones(len(outer), dtype=data.dtype), outer, np.arange(len(outer) + 1)), shape=(len(outer), len(atoms)))
        summed = np.asarray(matrix.T @ data.reshape(len(outer), width))
        return Named(atom.axes + others, summed.reshape(atom.data.shape + data.shape[1:]))

    def _deduplicate(self, expr, scope: Scope):
        free = ad.free_variables(expr)
        aliased = [n for n in sorted(free) if n in scope.aliases]
        if not aliased:
            return None
        arrays = [scope.aliases[n] for n in aliased]
        if any(a.missing is not None for a in arrays):
            return None
        row_axes = union_axes(*arrays)
        if any(n in row_axes for n in free if n not in scope.aliases):
            return None
        sizes = _sizes(arrays)
        row_shape = tuple(sizes.get(a, 1) for a in row_axes)
        n_rows = int(np.prod(row_shape, dtype=np.int64))
        if n_rows < 1024:
            return None
        stacked = np.stack([np.broadcast_to(a.expand(row_axes), row_shape).reshape(-1) for a in arrays], axis=1)
        unique, inverse = _unique_rows(stacked.astype(np.int64))
        if len(unique) > n_rows // 4:
            return None
        axis = f"·distinct{len(scope.aliases)}"
        inner = Scope(dict(scope.values), dict(scope.domains), dict(scope.aliases))
        inner.values[axis] = np.arange(len(unique), dtype=np.int64)
        for k, name in enumerate(aliased):
            inner.aliases[name] = Named((axis,), unique[:, k])
        result = self._eval_Reduce(expr, inner)
        if axis not in result.axes:
            return result
        return _unfold(result, axis, row_axes, inverse.reshape(row_shape))

    def domain_values(self, domain) -> np.ndarray:
        if isinstance(domain, ad.GradRows):
            return np.arange(self.gradient_tables[(domain.tensor, domain.wrt)].n_rows, dtype=np.int64)
        return self.bindings.domain_values(domain)


class DenseLookup:
    """Positions of label rows inside their block, by value: `positions(block, columns)`.

    Label values of gradients' lookups (atoms, `l`, `m`, `n`, species) span small
    ranges, so a dense table indexed by (block, value - lowest value...) answers
    every lookup with integer arithmetic; wide ranges fall back to hashed `Labels`.
    """

    LIMIT = 1 << 24

    def __init__(self, arrays: list[np.ndarray]):
        arrays = [np.asarray(a, dtype=np.int64).reshape(len(a), -1) for a in arrays]
        self.n_blocks = len(arrays)
        self.width = arrays[0].shape[1] if arrays else 0
        self.counts = np.array([len(a) for a in arrays], dtype=np.int64)
        self.table = None
        self.labels = None
        stacked = np.concatenate(arrays) if arrays else np.zeros((0, self.width), np.int64)
        if self.width == 0:
            return
        if len(stacked) == 0:
            self.low = np.zeros(self.width, np.int64)
            self.extent = np.ones(self.width, np.int64)
            self.table = np.full(self.n_blocks, -1, dtype=np.int64)
            return
        self.low = stacked.min(axis=0)
        self.extent = stacked.max(axis=0) - self.low + 1
        size = self.n_blocks * int(np.prod(self.extent.astype(np.float64)))
        if size <= self.LIMIT:
            self.table = np.full(size, -1, dtype=np.int64)
            for block, array in enumerate(arrays):
                flat = np.full(len(array), block, dtype=np.int64)
                for k in range(self.width):
                    flat = flat * self.extent[k] + (array[:, k] - self.low[k])
                self.table[flat] = np.arange(len(array), dtype=np.int64)
        else:
            self.labels = BlockLabels(arrays)

    def positions(self, block: np.ndarray, columns: list) -> np.ndarray:
        """Row of each (block, values) in its block, -1 when absent."""
        block = np.asarray(block, dtype=np.int64)
        if self.width == 0:
            return np.where(self.counts[block] > 0, 0, -1) if self.n_blocks else np.full(len(block), -1)
        if self.table is not None:
            flat = block.copy()
            valid = np.ones(len(block), dtype=bool)
            for k, column in enumerate(columns):
                shifted = np.asarray(column, dtype=np.int64) - self.low[k]
                inside = (shifted >= 0) & (shifted < self.extent[k])
                valid &= inside
                flat = flat * self.extent[k] + np.where(inside, shifted, 0)
            return np.where(valid, self.table[flat], -1)
        found = self.labels.positions(np.stack([block] + [np.asarray(c, np.int64) for c in columns], axis=1))
        return np.where(found >= 0, found - self.labels.offsets[np.maximum(block, 0)], -1)


class GradientTable:
    """The gradient rows of a computed tensor, concatenated over its blocks, for `GradLabel`/`GradValue`."""

    def __init__(self, kernel: ir.TensorKernel, tensor, wrt: str, targets: list[np.ndarray], bindings):
        blocks = tensor.blocks()
        gradients = [block.gradient(wrt) for block in blocks]
        counts = [len(g.samples) for g in gradients]
        self.n_rows = int(sum(counts))
        self.row_block = np.repeat(np.arange(len(blocks), dtype=np.int64), counts)
        self.row_local = np.concatenate([np.arange(c, dtype=np.int64) for c in counts]) if blocks else np.zeros(0, np.int64)
        self.row_target = np.concatenate(targets).astype(np.int64) if targets else np.zeros(0, np.int64)
        self.keys = np.asarray(tensor.keys.array, dtype=np.int64)
        self.key_names = list(tensor.keys.names)
        self.entries = kernel.samples
        self.bindings = bindings
        self._blocks = blocks
        self._gradients = gradients
        self._flat = None
        self._width = len(tensor.sample_names)
        # every label of every row, built on first use (`label`): later terms and kernels read
        # the same few labels of every row again (the power spectrum's two terms, its scatter kernels)
        self._columns: dict = {}
        sizes = [int(np.prod(g.values.shape)) for g in gradients]
        self.base = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        ndim = 2 + len(ad.DIRECTIONS[wrt]) + len(tensor.component_names)
        self.shapes = np.array([g.values.shape for g in gradients], dtype=np.int64).reshape(len(blocks), ndim)
        self.order = _STORED_ORDER[wrt]
        self._n_components = len(tensor.component_names)
        self._lookups = None

    def _sample_columns(self, start: int, stop: int, function=None) -> np.ndarray:
        """`function` of columns start:stop of the parent sample of every row (`[rows, stop - start]`
        without it): applied to each block's samples, then gathered by the rows' parents (fewer samples)."""
        if function is None:
            def function(columns):
                return columns
        if not self._blocks:
            return function(np.zeros((0, stop - start), np.int64))
        return np.concatenate([function(b.samples.array[:, start:stop].astype(np.int64))[g.samples.array[:, 0]]
                               for b, g in zip(self._blocks, self._gradients)])

    @property
    def sample_values(self) -> np.ndarray:
        """The parent sample of every row, `[rows, sample entries' columns]`."""
        return self._sample_columns(0, self._width)

    @property
    def components(self) -> list:
        return self._value_lookups()[0]

    @property
    def properties(self) -> DenseLookup:
        return self._value_lookups()[1]

    def _value_lookups(self):
        """Lookups of the gradient's components and properties (built on first use: only `gather` needs them)."""
        if self._lookups is None:
            blocks = self._blocks
            self._lookups = ([DenseLookup([b.components[k].array for b in blocks]) for k in range(self._n_components)],
                             DenseLookup([b.properties.array for b in blocks]))
        return self._lookups

    @property
    def flat(self) -> np.ndarray:
        """Every gradient value, blocks concatenated (built on first use: compiled terms do not need it)."""
        if self._flat is None:
            gradients = self._gradients
            self._flat = np.concatenate([np.asarray(g.values).reshape(-1) for g in gradients]) if gradients else np.zeros(0)
        return self._flat

    def label(self, expr: ad.GradLabel, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if expr.what == "target":
            return self.row_target[rows]
        key = (expr.what, expr.label if expr.what == "key" else expr.slot)
        column = self._columns.get(key)
        if column is None:
            column = self._columns[key] = self._label_column(expr)
        return np.take(column, rows)  # (`take`: a faster gather than indexing)

    def _label_column(self, expr: ad.GradLabel) -> np.ndarray:
        """The label `expr` asks (a key, or a sample entry's value) of every row."""
        if expr.what == "key":
            return self.keys[self.row_block, self.key_names.index(expr.label)]
        # the value of the slot-th sample entry: a batch atom index for atoms entries
        start = sum(SLOT_WIDTH.get(e.kind, 1) for e in self.entries[: expr.slot])
        entry = self.entries[expr.slot]
        stop = start + SLOT_WIDTH.get(entry.kind, 1)
        if entry.kind == "atoms":
            batch = self.bindings.systems[entry.source]
            offsets = np.asarray(batch.atom_offsets, dtype=np.int64)
            return self._sample_columns(start, stop, lambda columns: offsets[columns[..., 0]] + columns[..., 1])
        if entry.kind == "pairs":
            labels = Labels([f"c{k}" for k in range(6)], self.bindings.pairs[entry.source].label_values(),
                            assume_unique=True)
            return self._sample_columns(start, stop, lambda columns: labels.positions(
                columns.reshape(-1, 6).astype(np.int32)).reshape(columns.shape[:-1]))
        return self._sample_columns(start, stop, lambda columns: columns[..., 0])

    def gather(self, row: Named, directions, components, properties) -> Named:
        """Gradient values at rows, directions, components and properties (by label value).

        The flat offset is a sum of parts over fewer axes (the row's, the row's and a
        component's...), added once over all axes, then one gather.
        """
        block = Named(row.axes, self.row_block[row.data])
        strides = np.cumprod(self.shapes[:, ::-1], axis=1)[:, ::-1]  # strides[b, k]: size of axes k.. of block b
        strides = np.concatenate([strides[:, 1:], np.ones((len(strides), 1), np.int64)], axis=1)
        offset = Named(row.axes, self.base[block.data] + self.row_local[row.data] * strides[block.data, 0])
        missing = None
        for k, direction in enumerate(directions):  # direction k is stored on axis 1 + order[k]
            axis = 1 + self.order[k]
            offset = apply(np.add, offset, apply(lambda b, d, axis=axis: d * strides[b, axis], block, direction))
        first = 1 + len(directions)
        for k, value in enumerate(components):
            axes = union_axes(block, value)
            b = _broadcast(block, axes, [block, value])
            local = self.components[k].positions(b.reshape(-1), [_broadcast(value, axes, [block, value]).reshape(-1)])
            local = local.reshape(b.shape)
            missing = _or_missing(missing, Named(axes, local < 0))
            offset = apply(np.add, offset, Named(axes, np.maximum(local, 0) * strides[b, first + k]))
        arrays = [block] + properties
        axes = union_axes(*arrays)
        b = _broadcast(block, axes, arrays)
        local = self.properties.positions(b.reshape(-1), [_broadcast(v, axes, arrays).reshape(-1) for v in properties])
        local = local.reshape(b.shape)
        missing = _or_missing(missing, Named(axes, local < 0))
        offset = apply(np.add, offset, Named(axes, np.maximum(local, 0)))
        if not len(self.flat):
            return Named(offset.axes, np.zeros(offset.data.shape))
        values = self.flat[offset.data]
        if missing is not None and missing.data.any():
            values = np.where(missing.expand(offset.axes), 0.0, values)
        return Named(offset.axes, values)


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


def _reindex_scope(scope: Scope, axes: tuple, coordinates: dict, axis: str, n: int) -> Scope:
    """A scope where the variables along `axes` follow the points of a new axis instead."""
    inner = Scope(dict(scope.values), dict(scope.domains), dict(scope.aliases))
    for name in list(inner.values):
        if name in axes:
            inner.aliases[name] = Named((axis,), np.asarray(scope.values[name])[coordinates[name]])
    for name, value in scope.aliases.items():
        inner.aliases[name] = _reindex(value, axes, coordinates, axis)
    inner.values[axis] = np.arange(n, dtype=np.int64)
    return inner


def _lookup(lookup: DenseLookup, block: Named, values: list, entries=None, bindings=None) -> Named:
    """Positions of label values in their block, over the union of the arrays' axes only."""
    arrays = [block] + list(values)
    axes = union_axes(*arrays)
    if lookup.table is not None and lookup.width > 0:
        return _table_lookup(lookup, block, values, entries, bindings, axes, arrays)
    flat_block = _broadcast(block, axes, arrays)
    shape = flat_block.shape
    columns = []
    for k, value in enumerate(values):
        flat = _broadcast(value, axes, arrays).reshape(-1).astype(np.int64)
        if entries is not None:
            columns += expand_slot(entries[k].kind, entries[k].source, flat, bindings)
        else:
            columns.append(flat)
    found = lookup.positions(flat_block.reshape(-1).astype(np.int64), columns)
    return Named(axes, found.reshape(shape))


def _table_lookup(lookup: DenseLookup, block: Named, values: list, entries, bindings, axes, arrays) -> Named:
    """`_lookup` through a dense table: the table's flat index is a sum of one part per label column
    (`DenseLookup.positions`' arithmetic), each over the few axes of its own value (the key's `l`
    over `l`, its centre type over pairs), broadcast together only by the last additions."""
    shape = tuple(_sizes(arrays).get(a, 1) for a in axes)
    strides = [1] * lookup.width
    for k in range(lookup.width - 2, -1, -1):
        strides[k] = strides[k + 1] * int(lookup.extent[k + 1])
    # (the block's part, then each column's part and where it is outside the table), over their own axes
    parts = [block.expand(axes).astype(np.int64) * (strides[0] * int(lookup.extent[0]))]
    outside = []

    def encode(columns, shape, k):
        """The part of columns k.. (and where they are outside the table) over `shape`."""
        part, missing = None, None
        for column in columns:
            shifted = np.asarray(column, dtype=np.int64).reshape(shape) - lookup.low[k]
            inside = shifted.view(np.uint64) < np.uint64(lookup.extent[k])  # 0 <= shifted < extent
            if not inside.all():
                missing = ~inside if missing is None else missing | ~inside
                shifted = np.where(inside, shifted, 0)
            shifted = shifted * strides[k] if strides[k] != 1 else shifted
            part = shifted if part is None else part + shifted
            k += 1
        return part, missing, k

    k = 0
    for n, value in enumerate(values):
        data = value.expand(axes)
        flat = data.reshape(-1).astype(np.int64)
        kind = entries[n].kind if entries is not None else "value"
        domain = _slot_domain(kind, entries[n].source, bindings) if kind in ("atoms", "pairs") else None
        if domain is not None and domain < flat.size:
            # an atom / pair index expands to several label columns: encode every atom / pair
            # once, then gather the part of each value (one gather instead of one per column)
            columns = expand_slot(kind, entries[n].source, np.arange(domain, dtype=np.int64), bindings)
            part, missing, k = encode(columns, (domain,), k)
            part = np.take(part, flat).reshape(data.shape)
            missing = np.take(missing, flat).reshape(data.shape) if missing is not None else None
        else:
            columns = expand_slot(kind, entries[n].source, flat, bindings) if entries is not None else [flat]
            part, missing, k = encode(columns, data.shape, k)
        parts.append(part)
        if missing is not None:
            outside.append(missing)
    # smaller parts first: their sums stay small until the parts over more axes join
    parts.sort(key=np.size)
    index = parts[0]
    for part in parts[1:]:
        if index.shape == np.broadcast_shapes(index.shape, part.shape) and index is not parts[0]:
            index += part  # a sum made here: add in place
        else:
            index = index + part
    found = np.asarray(np.take(lookup.table, index))
    if outside:
        missing = outside[0]
        for more in outside[1:]:
            missing = missing | more
        found = np.where(missing, -1, found)
    if found.shape != shape:
        found = np.ascontiguousarray(np.broadcast_to(found, shape))
    return Named(axes, found)


def _slot_domain(kind: str, source: str, bindings) -> int:
    """How many atoms / pairs an atoms / pairs slot's index ranges over."""
    if kind == "atoms":
        return len(np.asarray(bindings.systems[source].system))
    return len(bindings.pairs[source].label_values())


def _sizes(arrays) -> dict:
    sizes = {}
    for array in arrays:
        for axis, size in zip(array.axes, np.shape(array.data)):
            if size != 1:
                sizes[axis] = size
    return sizes


def _broadcast(array: Named, axes: tuple, arrays) -> np.ndarray:
    sizes = _sizes(arrays)
    return np.broadcast_to(array.expand(axes), tuple(sizes.get(a, 1) for a in axes))


def _or_missing(missing, more: Named):
    if not more.data.any():
        return missing
    return more if missing is None else apply(np.logical_or, missing, more)


def _unique_rows(stacked: np.ndarray):
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


def _unfold(result: Named, axis: str, row_axes: tuple, inverse: np.ndarray) -> Named:
    """`result` over the distinct-rows axis, back over the row axes (`inverse` shaped like them)."""
    position = result.axes.index(axis)
    data = np.take(result.data, inverse, axis=position)
    axes = result.axes[:position] + row_axes + result.axes[position + 1:]
    missing = None
    if result.missing is not None:
        missing = _unfold(result.missing, axis, row_axes, inverse) if axis in result.missing.axes else result.missing
    return Named(axes, data, missing)
