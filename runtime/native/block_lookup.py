"""The lookup tables a compiled block access reads, and `Fallback`: why a kernel's argument has no native form.

A compiled kernel reads `T{keys}[samples, components, properties]` through dense
tables from label values to positions (`BlockLookup`, see `codegen/schedule/reads.py`,
`_render_BlockRef`). A table that would be too large, or labels too spread out
to encode, have no native form: binding then returns a `Fallback` value (never
an exception), and the native runner (`runtime/native/compiled.py`) leaves that
kernel's run to the evaluator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtdsl.tensor._array import to_numpy

from ..bindings import Bindings, RunError

SLOT_WIDTH = {"atoms": 2, "pairs": 6, "systems": 1, "value": 1}
MAX_TABLE = 1 << 26  # entries of one block-access lookup table before the interpreter takes over


@dataclass(frozen=True)
class Fallback:
    """Why a kernel cannot run natively this time (an argument with no native form: a lookup table
    too large, a gradient not computed): the value that binding returns instead of an argument,
    and each caller checks, so the kernel runs with the evaluator; never an exception."""

    reason: str


#: the error bit of a native read of a key or sample the tensor lacks (codegen/templates/module.cpp.j2:
#: `mt_read`, and the LLVM backend's): the read gives 0 and the run goes on
MISSING_READ = 1


def error_bits(error, bindings) -> int:
    """A native run's error bits as the runtime takes them: under structural sparsity (LANGUAGE.md
    §3) a read of a key or sample the tensor lacks is *absent*, which the kernel read as 0, as the
    evaluator does (`runtime/blocks.py`: 0 where missing), so its bit is no error and the buffer
    stands; dense bindings keep it (the evaluator then reports the read)."""
    error = int(error)
    if error and getattr(bindings, "sparse", False):
        return error & ~MISSING_READ
    return error


# ---- block access tables -------------------------------------------------------------------------


def _group_table(slots, label_arrays, bindings, what: str):
    """Dense lookup `[block, slot values...] -> position` of one label group, with per-slot (min, size)."""
    widths = [SLOT_WIDTH[kind] for kind, _ in slots]
    n_columns = label_arrays[0].shape[1] if label_arrays else sum(widths)
    if sum(widths) != n_columns:
        raise RunError(f"{what}: {sum(widths)} label values for {n_columns} labels")
    candidates, mins, sizes = [], [], []
    column = 0
    for kind, source in slots:
        if kind == "atoms":
            batch = bindings.systems[source]
            rows = np.stack([to_numpy(batch.system), to_numpy(batch.atom)], axis=1).astype(np.int64)
            mins.append(0)
        elif kind == "pairs":
            rows = bindings.pairs[source].label_values().astype(np.int64)
            mins.append(0)
        else:
            values = np.concatenate([a[:, column] for a in label_arrays]) if label_arrays else np.zeros(0)
            low = int(values.min()) if len(values) else 0
            high = int(values.max()) if len(values) else -1
            rows = np.arange(low, high + 1, dtype=np.int64)[:, None]
            mins.append(low)
        sizes.append(len(rows))
        candidates.append(rows)
        column += SLOT_WIDTH[kind]
    total = int(np.prod(sizes, dtype=np.int64)) if sizes else 1
    if total * max(len(label_arrays), 1) > MAX_TABLE:
        return Fallback(f"{what}: lookup table too large")
    if all(kind != "pairs" for kind, _ in slots):
        return _direct_table(slots, label_arrays, bindings, mins, sizes, total), mins, sizes, total
    # every combination of slot values, as label rows
    grids = np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij") if sizes else []
    parts = [c[g.reshape(-1)] for c, g in zip(candidates, grids)]
    rows = np.concatenate(parts, axis=1) if parts else np.zeros((1, 0), dtype=np.int64)
    table = np.full((max(len(label_arrays), 1), total), -1, dtype=np.int64)
    for block, labels in enumerate(label_arrays):
        if total == 0:
            continue
        found = _positions(labels, rows)
        if isinstance(found, Fallback):
            return found
        table[block] = found
    return table.reshape(-1), mins, sizes, total


def _direct_table(slots, label_arrays, bindings, mins, sizes, total) -> np.ndarray:
    """The lookup table by scattering each block's label rows to their slot-value index (no search):
    an atoms slot's `(system, atom)` labels give the batch index, a value slot's label its offset."""
    table = np.full((max(len(label_arrays), 1), total), -1, dtype=np.int64)
    for block, labels in enumerate(label_arrays):
        labels = labels.astype(np.int64)
        index = np.zeros(len(labels), dtype=np.int64)
        inside = np.ones(len(labels), dtype=bool)
        column = 0
        for (kind, source), low, size in zip(slots, mins, sizes):
            if kind == "atoms":
                batch = bindings.systems[source]
                offsets = np.asarray(to_numpy(batch.atom_offsets), dtype=np.int64)
                system, atom = labels[:, column], labels[:, column + 1]
                ok = (system >= 0) & (system < batch.n_systems)
                safe = np.where(ok, system, 0)
                ok &= (atom >= 0) & (atom < offsets[safe + 1] - offsets[safe])
                value = np.where(ok, offsets[safe] + atom, 0)
            else:
                value = labels[:, column] - low
                ok = (value >= 0) & (value < size)
            inside &= ok
            index = index * size + np.where(ok, value, 0)
            column += SLOT_WIDTH[kind]
        table[block, index[inside]] = np.nonzero(inside)[0]
    return table.reshape(-1)


def _positions(labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Position of each row of `rows` among the rows of `labels` (-1 when absent)."""
    if labels.shape[1] == 0:
        return np.full(len(rows), 0 if len(labels) else -1, dtype=np.int64)
    if len(labels) == 0:
        return np.full(len(rows), -1, dtype=np.int64)
    low = np.minimum(labels.min(axis=0), rows.min(axis=0)).astype(np.int64)
    span = (np.maximum(labels.max(axis=0), rows.max(axis=0)).astype(np.int64) - low + 1)
    if np.prod(span.astype(float)) < 2**62:
        def encode(a):
            code = np.zeros(len(a), dtype=np.int64)
            for k in range(a.shape[1]):
                code = code * span[k] + (a[:, k].astype(np.int64) - low[k])
            return code
        keys, queries = encode(labels), encode(rows)
    else:
        return Fallback("label values too spread out")
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    where = np.clip(np.searchsorted(sorted_keys, queries), 0, len(sorted_keys) - 1)
    found = sorted_keys[where] == queries
    return np.where(found, order[where], -1).astype(np.int64)


class BlockLookup:
    """The arrays and sizes a compiled block access reads (see `codegen/schedule/reads.py`, `_render_BlockRef`);
    `.fallback` says why there are none (a `Fallback`), or is None."""

    def __init__(self, key, tensor, bindings: Bindings, dtype):
        self.fallback = None
        name, bound_keys, sample_slots, component_slots, property_slots = key
        blocks = tensor.blocks()
        key_names = list(tensor.keys.names)
        what = f"block access to {name}"
        for label in bound_keys:
            if label not in key_names:
                raise RunError(f"{what}: it has no key {label!r} (keys are {key_names})")
        key_array = np.asarray(tensor.keys.array, dtype=np.int64).reshape(len(blocks), len(key_names))
        for column, label in enumerate(key_names):
            if label not in bound_keys and len(np.unique(key_array[:, column])) > 1:
                raise RunError(f"{what} does not bind the key {label!r}, which takes several values")
        self.arrays, self.scalars = {}, {}
        bound = key_array[:, [key_names.index(label) for label in bound_keys]] if bound_keys else np.zeros((len(blocks), 0), np.int64)
        mins = bound.min(axis=0) if len(blocks) else np.zeros(len(bound_keys), np.int64)
        sizes = (bound.max(axis=0) - mins + 1) if len(blocks) else np.zeros(len(bound_keys), np.int64)
        total = int(np.prod(sizes, dtype=np.int64))
        if total > MAX_TABLE:
            self.fallback = Fallback(f"{what}: key table too large")
            return
        key_table = np.full(max(total, 1), -1, dtype=np.int64)
        if len(blocks):
            index = np.zeros(len(blocks), dtype=np.int64)
            for k in range(len(bound_keys)):
                index = index * sizes[k] + (bound[:, k] - mins[k])
            key_table[index] = np.arange(len(blocks))
        self.arrays["key_table"] = key_table
        for k in range(len(bound_keys)):
            self.scalars[("key_min", k)] = int(mins[k])
            self.scalars[("key_size", k)] = int(sizes[k])

        n_components = len(tensor.component_names) if blocks else len(component_slots)
        if len(component_slots) != n_components:
            raise RunError(f"{what}: {len(component_slots)} component indices for {n_components} components")
        groups = [("sample", sample_slots, [np.asarray(b.samples.array) for b in blocks])]
        for k, slot in enumerate(component_slots):
            groups.append((f"component{k}", (slot,), [np.asarray(b.components[k].array) for b in blocks]))
        groups.append(("property", property_slots, [np.asarray(b.properties.array) for b in blocks]))
        for group, slots, arrays in groups:
            found = _group_table(slots, arrays, bindings, what)
            if isinstance(found, Fallback):
                self.fallback = found
                return
            table, group_mins, group_sizes, stride = found
            self.arrays[f"{group}_table"] = table if len(table) else np.full(1, -1, np.int64)
            self.scalars[(f"{group}_stride", 0)] = stride
            for k, (low, size) in enumerate(zip(group_mins, group_sizes)):
                self.scalars[(f"{group}_min", k)] = low
                self.scalars[(f"{group}_size", k)] = size

        shapes = np.array([b.values.shape for b in blocks], dtype=np.int64).reshape(len(blocks), n_components + 2)
        sizes_per_block = np.prod(shapes, axis=1) if len(blocks) else np.zeros(0, np.int64)
        self.arrays["shape"] = shapes.reshape(-1) if len(blocks) else np.zeros(1, np.int64)
        base = np.zeros(max(len(blocks), 1), dtype=np.int64)
        if len(blocks):
            base[1:] = np.cumsum(sizes_per_block)[:-1]
        self.arrays["base"] = base
        values = [np.asarray(to_numpy(b.values), dtype=dtype).reshape(-1) for b in blocks]
        self.arrays["values"] = np.concatenate(values) if values else np.zeros(1, dtype=dtype)
