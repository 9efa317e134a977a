"""Computed gradients as tables, and label lookups by value.

`GradientTable` holds the gradient rows of a computed tensor, concatenated over
its blocks: the evaluator's derivative nodes read their labels and values
(`GradLabel`/`GradValue`, runtime/evaluate/derivatives.py), and the native
kernels their arrays; `DenseLookup` finds label rows inside their block by
value with dense tables over the small ranges of label values (hashed `Labels`
for wide ones). `runtime/gradients/forward.py` builds gradient blocks with them.
"""

from __future__ import annotations

import numpy as np

from mtdsl.ir.passes import autodiff as ad
from mtdsl.ir.derivative_nodes import GradLabel
from mtdsl.ir import nodes as ir
from mtdsl.ir.roles import RowField
from mtdsl.tensor import Labels

from ..bindings import RunError
from ..blocks import SLOT_WIDTH, BlockLabels, expand_slot
from ..evaluate import dispatch as xp
from ..evaluate.rows import axis_sizes as _sizes
from ..named import Named, apply, union_axes

#: for each gradient, the order of the direction variables in the stored array
#: (strain: d/d eps_ab stored at [a, b]; cell: directions (x, a) of d/d H_ax stored at [a, x])
_STORED_ORDER = {"positions": (0,), "strain": (0, 1), "cell": (1, 0)}


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
        self.first_row = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)  # of each block
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

    def label(self, expr: GradLabel, rows: np.ndarray) -> np.ndarray:
        """The label a `GradLabel` asks of `rows`."""
        return np.take(self._column(expr.what, expr.label if expr.what == "key" else expr.slot),
                       np.asarray(rows, dtype=np.int64))  # (`take`: a faster gather than indexing)

    def row_field(self, field: RowField, rows: np.ndarray) -> np.ndarray:
        """The integer `field` of `rows`, as the derived kernels read it (`Data(GradientRows(..),
        field)`, mtdsl/ir/passes/terms.py): a `RowField` of kind "block", "local" (the row in its
        block), "target", "key" (its label `name`) or "sample" (its slot `name`)."""
        return np.take(self.column(field), np.asarray(rows, dtype=np.int64))

    def column(self, field: RowField) -> np.ndarray:
        """The integer `field` of every row, in row order (what the native runner passes a kernel)."""
        if not isinstance(field, RowField):
            raise RunError(f"a gradient row's label is read by a RowField, not {field!r}")
        return self._column(field.kind, field.name)

    def _column(self, what: str, name) -> np.ndarray:
        if what in ("block", "local", "target"):
            return {"block": self.row_block, "local": self.row_local, "target": self.row_target}[what]
        key = (what, name)
        column = self._columns.get(key)
        if column is None:
            column = self._columns[key] = self._label_column(what, name)
        return column

    def _label_column(self, what: str, name) -> np.ndarray:
        """The label asked (the key `name`, or the value of sample entry `name`) of every row."""
        if what == "key":
            return self.keys[self.row_block, self.key_names.index(name)]
        # the value of the slot-th sample entry: a batch atom index for atoms entries
        start = sum(SLOT_WIDTH.get(e.kind, 1) for e in self.entries[: name])
        entry = self.entries[name]
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
        values = xp.gather_flat(self.flat, offset.data)
        if missing is not None and missing.data.any():
            values = xp.zero_where(values, missing.expand(offset.axes))
        return Named(offset.axes, values)


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


def _broadcast(array: Named, axes: tuple, arrays) -> np.ndarray:
    sizes = _sizes(arrays)
    return np.broadcast_to(array.expand(axes), tuple(sizes.get(a, 1) for a in axes))


def _or_missing(missing, more: Named):
    if not more.data.any():
        return missing
    return more if missing is None else apply(np.logical_or, missing, more)


