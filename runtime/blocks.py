"""`BlockTable`: reading entries of a TensorMap by label values, vectorized.

Block access `T{keys}[samples, components, properties]` names every position by
value. The table concatenates all blocks into one flat array and builds, once,
lookups from (block, label values) to positions, so a whole `Named` array of
accesses is one gather. Entries that do not exist read as 0 and are marked
missing (an error if they reach an output, see `Named.missing`).
"""

from __future__ import annotations

import numpy as np

from mtdsl.tensor import Labels, TensorMap
from mtdsl.tensor._array import to_numpy

from .bindings import RunError
from .evaluate.dispatch import concatenate_flat, gather_flat, zero_where
from .named import Named, apply, union_axes

SLOT_WIDTH = {"atoms": 2, "pairs": 6, "systems": 1, "value": 1}


class BlockTable:
    def __init__(self, name: str, tensor: TensorMap, torch_values: bool = False):
        self.name = name
        self.tensor = tensor
        blocks = tensor.blocks()
        self.key_names = tensor.keys.names
        self.sample_names = tensor.sample_names
        self.n_components = len(tensor.component_names)
        sizes = [int(np.prod(b.values.shape)) for b in blocks]
        self.base = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        # numpy; torch when the blocks hold torch values and `torch_values` keeps them (the
        # evaluator on torch values, runtime/evaluate/torch_values.py)
        values = [b.values if torch_values else to_numpy(b.values) for b in blocks]
        self.flat = concatenate_flat(values)
        width = 2 + self.n_components
        self.shapes = np.array([b.values.shape for b in blocks], dtype=np.int64).reshape(len(blocks), width)
        self.samples = BlockLabels([b.samples.array for b in blocks])
        self.components = [
            BlockLabels([b.components[k].array for b in blocks]) for k in range(self.n_components)
        ]
        self.properties = BlockLabels([b.properties.array for b in blocks])

    def gather(self, keys, slots, groups, bindings) -> Named:
        """Values at the positions given by `keys` [(label, Named)] and `slots` [(kind, Named)]."""
        return self.read(self.locate(keys, slots, groups, bindings))

    def read(self, located) -> Named:
        """The values at positions `locate` found (0 where missing)."""
        axes, shape, offset, missing = located
        values = gather_flat(self.flat, offset) if len(self.flat) else np.zeros(shape)
        if missing is None:
            return Named(axes, values.reshape(shape))
        values = zero_where(values, missing)
        return Named(axes, values.reshape(shape), Named(axes, np.broadcast_to(missing, shape).copy()))

    def locate(self, keys, slots, groups, bindings):
        """`(axes, shape, flat positions, where missing or None)` of the entries `gather` reads:
        label lookups only, which depend on the structure and not on the values.

        Each lookup (block; block and sample; block and a component; block and the properties)
        runs over the axes of its own slots only, then the positions are broadcast: reading
        `ps{...}[i, l, n1, n2]` looks each (block, i) up once, not once per (l, n1, n2)."""
        arrays = [value for _, value in keys] + [value for _, value in slots]
        axes = union_axes(*arrays)
        sizes = {}
        for array in arrays:
            for axis, size in zip(array.axes, array.data.shape):
                if size != 1:
                    sizes[axis] = size
        shape = tuple(sizes.get(a, 1) for a in axes)
        if len(self.tensor) == 0:  # no block at all: every read is missing
            return axes, shape, np.zeros(shape, dtype=np.int64), np.ones(shape, dtype=bool)

        key_arrays = [value for _, value in keys]
        block_axes = _axes_of(key_arrays, sizes)
        block = Named(block_axes, self._block_ids(keys, _flattener(block_axes, sizes),
                                                  _size(block_axes, sizes)).reshape(_shape(block_axes, sizes)))
        n_samples, n_components, n_properties = groups
        sample_slots = slots[:n_samples]
        component_slots = slots[n_samples : n_samples + n_components]
        property_slots = slots[n_samples + n_components :]

        def lookup(values: list, labels: "BlockLabels", columns) -> tuple[Named, Named]:
            """(block, position in the concatenated labels) over the axes of the block and `values`."""
            group = _axes_of(key_arrays + values, sizes)
            value_axes = _axes_of(values, sizes)
            if block_axes and not set(value_axes) & set(block_axes):
                # labels that do not vary with the block's axes (properties, components): each
                # distinct block looked up once (`ps{center_type = S.type[i], ...}[i, l, n1, n2]`:
                # 27 blocks x (l, n1, n2), not every atom), then spread over the block's axes
                distinct, inverse = np.unique(np.asarray(block.data).reshape(-1), return_inverse=True)
                if len(distinct) < np.size(block.data):
                    local = dict(sizes, **{"·block": len(distinct)})
                    small = ("·block",) + value_axes
                    flat = _flattener(small, local)
                    found = labels.positions(np.stack(
                        [flat(Named(("·block",), distinct))] + columns(flat), axis=1)).reshape(_shape(small, local))
                    position = found[inverse.reshape(np.shape(block.data))]
                    return block, Named(block_axes + value_axes, position)
            flat = _flattener(group, sizes)
            block_here = flat(block)
            position = labels.positions(np.stack([block_here] + columns(flat), axis=1))
            return Named(group, block_here.reshape(_shape(group, sizes))), \
                Named(group, position.reshape(_shape(group, sizes)))

        def sample_columns(flat):
            columns = []
            for slot, value in sample_slots:
                columns += expand_slot(slot.kind, slot.source, flat(value), bindings)
            if len(columns) != len(self.sample_names):
                raise RunError(
                    f"block access to {self.name}: {len(columns)} sample values for the "
                    f"samples {self.sample_names}"
                )
            return columns

        def over(named: Named) -> np.ndarray:
            """`named` over the result's axes (size 1 where it does not vary): a view."""
            return named.expand(axes)

        def in_block(at: Named, position: Named, offsets: np.ndarray) -> tuple[Named, Named]:
            """(position within its block, 0 where missing; where it is missing), over its own axes."""
            found = Named(position.axes, np.asarray(position.data))
            start = Named(at.axes, offsets[np.maximum(np.asarray(at.data), 0)])
            local = apply(lambda f, b: np.where(f >= 0, f - b, 0), found, start)
            return local, Named(found.axes, found.data < 0)

        # every lookup stays over its own few axes; they meet in one broadcast sum at the end
        at, row = lookup([v for _, v in sample_slots], self.samples, sample_columns)
        row_in_block, row_missing = in_block(at, row, self.samples.offsets)
        missing_parts = [Named(block.axes, np.asarray(block.data) < 0), row_missing]

        if len(component_slots) != self.n_components:
            raise RunError(f"block access to {self.name}: {len(component_slots)} component indices for {self.n_components} components")
        component_positions = []
        for k, (_, value) in enumerate(component_slots):
            at, position = lookup([value], self.components[k], lambda flat, v=value: [flat(v)])
            local, absent = in_block(at, position, self.components[k].offsets)
            component_positions.append(local)
            missing_parts.append(absent)

        at, column = lookup([v for _, v in property_slots], self.properties,
                            lambda flat: [flat(v) for _, v in property_slots])
        column_in_block, absent = in_block(at, column, self.properties.offsets)
        missing_parts.append(absent)

        safe_block = np.maximum(np.asarray(block.data), 0)

        def per_block(values: np.ndarray) -> np.ndarray:
            return over(Named(block.axes, values[safe_block]))

        offset = over(row_in_block)
        for k, position in enumerate(component_positions):
            offset = offset * per_block(self.shapes[:, 1 + k]) + over(position)
        offset = offset * per_block(self.shapes[:, -1]) + over(column_in_block) + per_block(self.base[:-1])
        missing = np.zeros((1,) * len(axes), dtype=bool)
        for part in missing_parts:
            missing = missing | over(part)
        offset = np.broadcast_to(offset, shape)
        if not bool(missing.any()):
            return axes, shape, offset, None
        return axes, shape, np.where(missing, 0, offset), missing

    # -- lookups ---------------------------------------------------------------------------
    def _block_ids(self, keys, flat, n_points) -> np.ndarray:
        columns = []
        bound = dict(keys)
        for name in self.key_names:
            if name in bound:
                columns.append(flat(bound[name]))
            else:
                values = np.unique(self.tensor.keys.column(name)) if len(self.tensor.keys) else np.zeros(0)
                if len(values) > 1:
                    raise RunError(
                        f"block access to {self.name} does not bind the key {name!r}, which takes several values"
                    )
                columns.append(np.full(n_points, values[0] if len(values) else 0, dtype=np.int64))
        for name in bound:
            if name not in self.key_names:
                raise RunError(f"block access to {self.name}: it has no key {name!r} (keys are {self.key_names})")
        if not columns:
            return np.zeros(n_points, dtype=np.int64)
        return self.tensor.keys.positions(np.stack(columns, axis=1))


def _axes_of(arrays, sizes: dict) -> tuple:
    """The axes of `arrays` that are not broadcast (size > 1), in first-seen order."""
    return tuple(a for a in union_axes(*arrays) if a in sizes) if arrays else ()


def _shape(axes, sizes: dict) -> tuple:
    return tuple(sizes[a] for a in axes)


def _size(axes, sizes: dict) -> int:
    return int(np.prod(_shape(axes, sizes), dtype=np.int64))


def _flattener(axes, sizes: dict):
    """Named -> its values over `axes` (broadcast), flat int64."""
    shape = _shape(axes, sizes)

    def flat(named: Named) -> np.ndarray:
        return np.broadcast_to(_over(named, axes), shape).reshape(-1).astype(np.int64)
    return flat


def _over(named: Named, axes) -> np.ndarray:
    """`named`'s data over `axes`, its axes outside them being of size 1 (dropped)."""
    extra = tuple(k for k, a in enumerate(named.axes) if a not in axes)
    if extra:
        named = Named(tuple(a for a in named.axes if a in axes), named.data.reshape(
            tuple(n for k, n in enumerate(named.data.shape) if k not in extra)))
    return named.expand(axes)


def expand_slot(kind: str, source: str, values: np.ndarray, bindings) -> list[np.ndarray]:
    """The label columns of an atoms / pairs / plain index value (see `ir.Slot`)."""
    if kind in ("value", "systems"):
        return [values]
    if kind == "atoms":
        batch = bindings.systems[source]
        return [np.asarray(batch.system)[values], np.asarray(batch.atom)[values]]
    if kind == "pairs":
        labels = bindings.pairs[source].label_values()[values]
        return [labels[:, k].astype(np.int64) for k in range(6)]
    raise RunError(f"unknown slot kind {kind!r}")


class BlockLabels:
    """Labels of one axis of every block, prefixed by the block index, with per-block offsets."""

    def __init__(self, arrays):
        counts = [len(a) for a in arrays]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        width = arrays[0].shape[1] if arrays else 0
        rows = [np.concatenate([np.full((len(a), 1), b, dtype=np.int32), a], axis=1) for b, a in enumerate(arrays)]
        values = np.concatenate(rows) if rows else np.zeros((0, width + 1), dtype=np.int32)
        self.labels = Labels(["block"] + [f"c{k}" for k in range(width)], values, assume_unique=True)

    def positions(self, rows: np.ndarray) -> np.ndarray:
        return self.labels.positions(rows)
