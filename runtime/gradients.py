"""Gradient blocks from the gradient kernels of `mtdsl.ir.autodiff`, in the reference interpreter.

Each term of a gradient kernel is evaluated like a kernel body, over the term's
binders (pairs, rows of a read tensor's gradient), the direction variables and
the kernel indices its aliases do not fix; its points are then scattered to
the gradient rows `(parent sample, target)` of the block their keys pick, and
summed (`np.bincount`): the rows of a block are the distinct (sample, atom) pairs
that receive a contribution, sorted, in metatensor's layout:

- positions: samples `sample, system, atom`, components `xyz` + the block's;
- strain: samples `sample`, components `xyz_2, xyz_1` + the block's (featomic's
  convention: entry `[.., a, b, ..]` is d/d eps_ab for `r -> r (1 + eps)`);
- cell: samples `sample`, components `xyz, abc` + the block's (featomic's
  "cell" gradient: entry `[.., a, x, ..]` is d/d H_ax at fixed positions, with
  the lattice vectors as the rows of H).

The values computed earlier (`bindings.tensors`) receive the gradient blocks,
so a later kernel's block access reads them through `GradValue`.
"""

from __future__ import annotations

import numpy as np

from mtdsl.ir import autodiff as ad
from mtdsl.ir import nodes as ir
from mtdsl.tensor import Labels, TensorBlock

from .bindings import RunError
from .blocks import SLOT_WIDTH, _block_labels, expand_slot
from .interpreter import Interpreter, Scope, _contract
from .named import VECTOR_AXIS, Named, apply, union_axes

#: gradient component labels, in the order of the gradient arrays' direction axes
DIRECTION_LABELS = {"positions": ("xyz",), "strain": ("xyz_2", "xyz_1"), "cell": ("xyz", "abc")}

#: for each gradient, the order of the direction variables in the stored array
#: (strain: d/d eps_ab stored at [a, b]; cell: directions (x, a) of d/d H_ax stored at [a, x])
_STORED_ORDER = {"positions": (0,), "strain": (0, 1), "cell": (1, 0)}


class GradientInterpreter(Interpreter):
    """The interpreter, plus the derivative IR nodes and gradient tables of computed tensors."""

    def __init__(self, module, bindings, kernels: dict):
        super().__init__(module, bindings)
        self.kernels = {k.name: k for k in module.kernels}
        self.gradient_tables: dict = {}
        self.gradient_kernels = kernels

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

    def domain_values(self, domain) -> np.ndarray:
        if isinstance(domain, ad.GradRows):
            return np.arange(self.gradient_tables[(domain.tensor, domain.wrt)].n_rows, dtype=np.int64)
        return self.bindings.domain_values(domain)


class GradientTable:
    """The gradient rows of a computed tensor, concatenated over its blocks, for `GradLabel`/`GradValue`."""

    def __init__(self, kernel: ir.TensorKernel, tensor, wrt: str, targets: list[np.ndarray], bindings):
        blocks = tensor.blocks()
        gradients = [block.gradient(wrt) for block in blocks]
        counts = [len(g.samples) for g in gradients]
        self.n_rows = int(sum(counts))
        self.row_block = np.repeat(np.arange(len(blocks), dtype=np.int64), counts)
        self.row_local = np.concatenate([np.arange(c, dtype=np.int64) for c in counts]) if blocks else np.zeros(0, np.int64)
        parent = [g.samples.array[:, 0].astype(np.int64) for g in gradients]
        self.row_target = np.concatenate(targets).astype(np.int64) if targets else np.zeros(0, np.int64)
        self.keys = np.asarray(tensor.keys.array, dtype=np.int64)
        self.key_names = list(tensor.keys.names)
        width = len(tensor.sample_names)
        self.sample_values = (
            np.concatenate([b.samples.array[rows].astype(np.int64) for b, rows in zip(blocks, parent)])
            if blocks else np.zeros((0, width), np.int64)
        )
        self.entries = kernel.samples
        self.bindings = bindings
        self.flat = np.concatenate([np.asarray(g.values).reshape(-1) for g in gradients]) if blocks else np.zeros(0)
        sizes = [int(np.prod(g.values.shape)) for g in gradients]
        self.base = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.shapes = np.array([g.values.shape for g in gradients], dtype=np.int64).reshape(len(blocks), -1)
        self.n_directions = len(ad.DIRECTIONS[wrt])
        n_components = len(tensor.component_names)
        self.components = [_block_labels([b.components[k].array for b in blocks]) for k in range(n_components)]
        self.properties = _block_labels([b.properties.array for b in blocks])

    def label(self, expr: ad.GradLabel, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if expr.what == "target":
            return self.row_target[rows]
        if expr.what == "key":
            return self.keys[self.row_block[rows], self.key_names.index(expr.label)]
        # the value of the slot-th sample entry: a batch atom index for atoms entries
        start = sum(SLOT_WIDTH.get(e.kind, 1) for e in self.entries[: expr.slot])
        entry = self.entries[expr.slot]
        columns = self.sample_values[rows, start : start + SLOT_WIDTH.get(entry.kind, 1)]
        if entry.kind == "atoms":
            batch = self.bindings.systems[entry.source]
            offsets = np.asarray(batch.atom_offsets, dtype=np.int64)
            return offsets[columns[..., 0]] + columns[..., 1]
        if entry.kind == "pairs":
            labels = Labels([f"c{k}" for k in range(6)], self.bindings.pairs[entry.source].label_values(),
                            assume_unique=True)
            return labels.positions(columns.reshape(-1, 6).astype(np.int32)).reshape(columns.shape[:-1])
        return columns[..., 0]

    def gather(self, row: Named, directions, components, properties) -> Named:
        arrays = [row] + directions + components + properties
        axes = union_axes(*arrays)
        sizes = {}
        for array in arrays:
            for axis, size in zip(array.axes, array.data.shape):
                if size != 1:
                    sizes[axis] = size
        shape = tuple(sizes.get(a, 1) for a in axes)

        def flat(named: Named) -> np.ndarray:
            return np.broadcast_to(named.expand(axes), shape).reshape(-1).astype(np.int64)

        rows = flat(row)
        block = self.row_block[rows]
        offset = self.row_local[rows]
        for k, direction in enumerate(directions):
            offset = offset * self.shapes[block, 1 + k] + flat(direction)
        missing = np.zeros(len(rows), dtype=bool)
        first = 1 + len(directions)
        for k, value in enumerate(components):
            position = self.components[k].positions(np.stack([block, flat(value)], axis=1))
            missing |= position < 0
            local = np.where(position >= 0, position - self.components[k].offsets[block], 0)
            offset = offset * self.shapes[block, first + k] + local
        columns = [block] + [flat(v) for v in properties]
        position = self.properties.positions(np.stack(columns, axis=1))
        missing |= position < 0
        local = np.where(position >= 0, position - self.properties.offsets[block], 0)
        offset = offset * self.shapes[block, -1] + local + self.base[block]
        values = np.where(missing, 0.0, self.flat[np.where(missing, 0, offset)]) if len(self.flat) else np.zeros(len(rows))
        return Named(axes, values.reshape(shape))


def compute_gradients(module: ir.Module, bindings, gradient_kernels: dict, wrt: str, outputs) -> None:
    """Attach gradient blocks w.r.t. `wrt` to the `outputs` (and the tensors they read) in `bindings.tensors`."""
    needed = _needed(module, gradient_kernels, outputs)
    interpreter = GradientInterpreter(module, bindings, gradient_kernels)
    for kernel in module.kernels:
        if kernel.name not in needed:
            continue
        tensor = bindings.tensors[kernel.name]
        blocks, targets = kernel_gradient(interpreter, kernel, gradient_kernels[kernel.name], tensor)
        for block, gradient in zip(tensor.blocks(), blocks):
            block.add_gradient(wrt, gradient)
        interpreter.gradient_tables[(kernel.name, wrt)] = GradientTable(kernel, tensor, wrt, targets, bindings)


def _needed(module, gradient_kernels, outputs) -> set:
    needed, stack = set(), [o for o in outputs if o in gradient_kernels]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        for term in gradient_kernels[name].terms:
            for binder in term.binders:
                if isinstance(binder.domain, ad.GradRows) and binder.domain.tensor not in needed:
                    stack.append(binder.domain.tensor)
    return needed


def kernel_gradient(interpreter: GradientInterpreter, kernel: ir.TensorKernel, gradient: ad.GradientKernel, tensor):
    """The gradient blocks of `tensor` (the values of `kernel`), and the target of each of their rows."""
    bindings = interpreter.bindings
    wrt = gradient.wrt
    points = [_term_points(interpreter, kernel, gradient, term, tensor) for term in gradient.terms]
    columns = {name: np.concatenate([p[name] for p in points]) for name in points[0]} if points else {}
    n_directions = len(gradient.directions)
    batch = next(iter(bindings.systems.values()))
    n_targets = batch.n_atoms if wrt == "positions" else batch.n_systems
    blocks, targets = [], []
    order = _STORED_ORDER[wrt]
    for index, block in enumerate(tensor.blocks()):
        chosen = columns["block"] == index if columns else np.zeros(0, bool)
        sample = columns["sample"][chosen] if columns else np.zeros(0, np.int64)
        target = columns["target"][chosen] if columns else np.zeros(0, np.int64)
        if wrt == "positions":
            row_keys = sample * n_targets + target
        else:
            row_keys = sample
        unique, inverse = np.unique(row_keys, return_inverse=True)
        inverse = inverse.reshape(-1)
        n_rows = len(unique)
        component_shape = tuple(len(c) for c in block.components)
        n_properties = len(block.properties)
        n_columns = int(np.prod(component_shape, dtype=np.int64)) * n_properties
        direction_size = 3 ** n_directions
        size = n_rows * direction_size * n_columns
        values = np.zeros(size, dtype=bindings.dtype)
        if len(inverse):
            column = columns["column"][chosen]
            weights = columns["values"][chosen].reshape(len(inverse), direction_size)
            index_ = (inverse[:, None] * direction_size + np.arange(direction_size)[None, :]) * n_columns + column[:, None]
            values = np.bincount(index_.reshape(-1), weights=weights.reshape(-1), minlength=size).astype(bindings.dtype)
        values = values.reshape((n_rows,) + (3,) * n_directions + component_shape + (n_properties,))
        if order != tuple(range(n_directions)):
            values = np.moveaxis(values, [1 + k for k in range(n_directions)], [1 + k for k in order])
        if wrt == "positions":
            atoms = unique % n_targets
            rows = np.stack([unique // n_targets, np.asarray(batch.system)[atoms], np.asarray(batch.atom)[atoms]], axis=1)
            row_targets = atoms
            names = ["sample", "system", "atom"]
        else:
            rows = unique.reshape(-1, 1)
            first = np.zeros(n_rows, dtype=np.int64)
            if len(inverse):
                first[inverse] = target
            row_targets = first
            names = ["sample"]
        direction_labels = [Labels([name], np.arange(3, dtype=np.int32).reshape(-1, 1))
                            for name in DIRECTION_LABELS[wrt]]
        blocks.append(TensorBlock(
            values,
            Labels(names, rows.astype(np.int32).reshape(n_rows, len(names)), assume_unique=True),
            direction_labels + list(block.components),
            block.properties,
        ))
        targets.append(row_targets)
    return blocks, targets


def _term_points(interpreter: GradientInterpreter, kernel, gradient, term: ad.Term, tensor) -> dict:
    """Every contribution of one term: block, parent sample row, target, flat column, values [n, 3^k]."""
    bindings = interpreter.bindings
    aliased = {name for name, _ in term.aliases}
    scope = Scope()
    for binder in term.binders:
        scope = scope.bind(binder.name, binder.domain, interpreter.domain_values(binder.domain))
    for name in gradient.directions:
        scope = scope.bind(name, ir.XyzDomain(), np.arange(3, dtype=np.int64))
    for binder in kernel.indices:
        if binder.name not in aliased:
            scope = scope.bind(binder.name, binder.domain, bindings.domain_values(binder.domain))
    for name, expr in term.aliases:
        scope = scope.alias(name, interpreter.evaluate(expr, scope))

    coefficient = interpreter.evaluate(term.coefficient, scope)
    if VECTOR_AXIS in coefficient.axes:
        raise RunError(f"gradient of {kernel.name}: a vector-valued coefficient ({term.coefficient})")
    masks = []
    for condition in (kernel.where, term.where):
        if condition is not None:
            masks.append(interpreter.evaluate(condition, scope))
    for binder in kernel.indices + term.binders:
        if binder.name not in aliased:
            valid = interpreter.validity(binder.name, scope)
            if valid is not None:
                masks.append(valid)

    def evaluate_entries(entries):
        return [(entry, interpreter.evaluate(entry.expr, scope)) for entry in entries]

    keys = evaluate_entries(kernel.keys)
    samples = evaluate_entries(kernel.samples)
    components = evaluate_entries(kernel.components)
    properties = evaluate_entries(kernel.properties)
    target = interpreter.evaluate(term.target, scope)
    labelled = [v for _, v in keys + samples + components + properties] + [target]
    directions = tuple(gradient.directions)
    point_axes = tuple(a for a in union_axes(*labelled) if a not in directions)
    if any(a in directions for a in union_axes(*labelled)):
        raise RunError(f"gradient of {kernel.name}: a label depends on a direction")

    # contributions summed over the axes no label depends on
    summed = [a for a in union_axes(coefficient, *masks) if a not in point_axes and a not in directions]
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
        return _at(named, coordinates, n_points)

    key_matrix = np.stack([at(v) for _, v in keys], axis=1).astype(np.int64)
    block = tensor.keys.positions(key_matrix.astype(np.int32)) if len(tensor) else np.full(n_points, -1)
    if np.any(block < 0):
        raise RunError(f"gradient of {kernel.name}: a contribution to a block the values do not have")

    blocks = tensor.blocks()
    sample_labels = _block_labels([b.samples.array for b in blocks])
    sample_columns = [block]
    for entry, v in samples:
        sample_columns += expand_slot(entry.kind, entry.source, at(v).astype(np.int64), bindings)
    position = sample_labels.positions(np.stack(sample_columns, axis=1))
    if np.any(position < 0):
        raise RunError(f"gradient of {kernel.name}: a contribution to a sample the values do not have")
    sample = position - sample_labels.offsets[block]

    shapes = np.array([b.values.shape for b in blocks], dtype=np.int64).reshape(len(blocks), -1)
    column = np.zeros(n_points, dtype=np.int64)
    for k, (entry, v) in enumerate(components):
        labels = _block_labels([b.components[k].array for b in blocks])
        found = labels.positions(np.stack([block, at(v).astype(np.int64)], axis=1))
        column = column * shapes[block, 1 + k] + (found - labels.offsets[block])
    property_columns = [block]
    for entry, v in properties:
        property_columns += expand_slot(entry.kind, entry.source, at(v).astype(np.int64), bindings)
    labels = _block_labels([b.properties.array for b in blocks])
    found = labels.positions(np.stack(property_columns, axis=1))
    column = column * shapes[block, -1] + (found - labels.offsets[block])

    data = value.expand(tuple(a for a in value.axes if a not in directions) + directions)
    present = tuple(a for a in value.axes if a not in directions)
    index = tuple(
        coordinates[a] if data.shape[k] != 1 else np.zeros(n_points, dtype=np.int64)
        for k, a in enumerate(present)
    )
    gathered = data[index] if present else np.broadcast_to(data, (n_points,) + data.shape)
    gathered = np.broadcast_to(gathered, (n_points,) + (3,) * len(directions))
    return {
        "block": block.astype(np.int64),
        "sample": sample.astype(np.int64),
        "target": at(target).astype(np.int64),
        "column": column,
        "values": np.ascontiguousarray(gathered).reshape(n_points, -1),
    }


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
