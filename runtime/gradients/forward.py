"""Gradient blocks from the gradient kernels of `mtdsl.ir.passes.autodiff`, in the reference evaluator.

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

(A block with its own `xyz` component gets `xyz_gradient` directions.)

The values computed earlier (`bindings.tensors`, by any backend) receive the
gradient blocks, so a later kernel's block access reads them through `GradValue`.

Nothing is enumerated as a dense product where a sparse relation exists:
binders related by an equality of a term's condition are joined (sort-merge),
sums over `P.from(atom)` with a varying `atom` walk ragged CSR segments, and
block accesses or sums that depend on gradient rows only through a few
distinct values (the centre of each row) are evaluated once per value.
Label lookups use dense tables over the small ranges of label values.

The terms run in the one evaluator (runtime/evaluate/), each as its derived
term kernel (mtdsl/ir/passes/terms.py: the kernel the native runner compiles),
over its scope (`points.py`: the term's scope and contributions), with the
evaluator's row rules (`over_rows`); the gradient rows of computed tensors,
which later terms read, are `runtime/gradients/tables.py`'s tables, kept by the
run (`run.py: GradientRun`). This module owns the rest: the rows of a gradient
(the values' layout, the scatter kernels' row maps, the fused gradients the
values' pass prepares) and the assembly of the contributions into blocks.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

import numpy as np

from mtdsl.codegen.schedule import abi
from mtdsl.ir.derivative_nodes import GradRows, GradientKernel, Term
from mtdsl.ir import nodes as ir
from mtdsl.tensor import Labels, TensorBlock

from ..assemble import signature_values
from ..bindings import RunError
from .points import term_masks, term_points, term_scope
from .run import GradientRun
from .tables import _STORED_ORDER, DenseLookup, GradientTable, _lookup
from .tables import _broadcast  # noqa: F401 - tests read it here
from ..named import Named, apply, union_axes
from ..presence import present_rows

#: gradient component labels, in the order of the gradient arrays' direction axes
DIRECTION_LABELS = {"positions": ("xyz",), "strain": ("xyz_2", "xyz_1"), "cell": ("xyz", "abc")}


def compute_gradients(module: ir.Module, bindings, gradient_kernels: dict, wrt: str, outputs, native=None,
                      fused: "FusedGradients | None" = None):
    """Attach gradient blocks w.r.t. `wrt` to the `outputs` (and the tensors they read) in `bindings.tensors`.

    With `native` (a `runtime.native.compiled.CompiledModule`), the terms it compiled are filled by
    their native kernels (`mtdsl/ir/passes/terms.py`) and only scattered here; the others are evaluated
    by the evaluator. `fused`: the rows prepared for the values' run, whose fused kernels added
    some terms already. Returns the `GradientRun` (`.native_terms` lists the native terms)."""
    needed = _needed(module, gradient_kernels, outputs)
    if fused is not None and fused.wrt == wrt:
        run = fused.run
    else:
        run = GradientRun(module, bindings, native)
    for kernel in module.kernels:
        if kernel.name not in needed:
            continue
        tensor = bindings.tensors[kernel.name]
        blocks, targets = kernel_gradient(run, kernel, gradient_kernels[kernel.name], tensor)
        for block, gradient in zip(tensor.blocks(), blocks):
            block.add_gradient(wrt, gradient)
        run.gradient_tables[(kernel.name, wrt)] = GradientTable(kernel, tensor, wrt, targets, bindings)
    if native is not None:  # what ran natively: "scatter" (written into the rows) or "term" (scattered here)
        native.last_gradient_terms.update(run.native_terms)
    return run


class FusedGradients:
    """The gradient w.r.t. `wrt` whose terms the values' pass may add (`codegen/schedule/fuse.py`: a tensor's
    values and the scatter kernels of its gradient in one pass over pairs).

    `CompiledModule.run(..., fused=self)` calls `prepare(kernel, labels)` with the values' labels
    before it runs a fused kernel: the gradient rows, their row maps and the zeroed buffer the
    fused kernel adds into; `compute_gradients(..., fused=self)` then runs the other terms only."""

    def __init__(self, module: ir.Module, bindings, gradient_kernels: dict, wrt: str, outputs, native):
        self.wrt = wrt
        self.needed = _needed(module, gradient_kernels, outputs)
        self.gradient_kernels = gradient_kernels
        self.run = GradientRun(module, bindings, native)

    def prepare(self, kernel: ir.TensorKernel, labels) -> "GradientRows | None":
        """The rows of `kernel`'s gradient from its values' `labels` (a TensorMap: only its labels are
        read), kept for `compute_gradients`; None when it is not needed or has no scatter kernels."""
        if kernel.name not in self.needed or len(labels) == 0:
            return None
        rows = _gradient_rows(self.run, kernel, self.gradient_kernels[kernel.name], _Layout(labels))
        if rows is not None:
            self.run.prepared[kernel.name] = rows
        return rows

    def discard(self, name: str) -> None:
        """Forget the rows of `name` (its fused run failed: the buffer is unreliable)."""
        self.run.prepared.pop(name, None)


def entries_owned(rows: "GradientRows", terms, owners) -> bool:
    """Whether every entry (row, aliased columns) that the `terms` add into receives points of one
    owner only: `owners[j]` gives the owner (a driver position) of each point of term `terms[j]`'s
    row grid (flat), or is None (unknown: not owned). A fused kernel runs on several threads only
    then, each thread taking whole owners."""
    codes, parts = [], []
    aliased = [rows.found[k][5] for k in terms]
    n_columns = max((len(a) for a in aliased), default=0)
    lows = [min((int(a[c][rows.found[k][0]].min()) for k, a in zip(terms, aliased) if rows.found[k][0].any()),
                default=0) for c in range(n_columns)]
    highs = [max((int(a[c][rows.found[k][0]].max()) for k, a in zip(terms, aliased) if rows.found[k][0].any()),
                 default=0) for c in range(n_columns)]
    for k, owner in zip(terms, owners):
        if owner is None or len(aliased[terms.index(k)]) != n_columns:
            return False
        where = rows.found[k][0]
        code = np.asarray(rows.row_maps[k]).reshape(-1).astype(np.int64)
        for c, values in enumerate(aliased[terms.index(k)]):
            code = code * (highs[c] - lows[c] + 1) + (values - lows[c])
        codes.append(code[where])
        parts.append(np.asarray(owner).reshape(-1)[where])
    every = np.concatenate(codes) if codes else np.zeros(0, np.int64)
    if len(every) == 0:
        return True
    order = np.argsort(every, kind="stable")
    code, owner = every[order], np.concatenate(parts)[order]
    same = code[1:] == code[:-1]
    return not np.any(same & (owner[1:] != owner[:-1]))


def _needed(module, gradient_kernels, outputs) -> set:
    needed, stack = set(), [o for o in outputs if o in gradient_kernels]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        for term in gradient_kernels[name].terms:
            for binder in term.binders:
                if isinstance(binder.domain, GradRows) and binder.domain.tensor not in needed:
                    stack.append(binder.domain.tensor)
    return needed


class _Layout:
    """Lookups into the blocks of a kernel's values: keys, samples, components, properties.

    The lookups are built on first use: the assembly of rows prepared before the values' pass
    (`FusedGradients`) reads the sample offsets only."""

    def __init__(self, tensor):
        blocks = tensor.blocks()
        self.tensor = tensor
        self._blocks = blocks
        self.n_samples = np.array([len(b.samples) for b in blocks], dtype=np.int64)
        self.sample_offsets = np.concatenate([[0], np.cumsum(self.n_samples)]).astype(np.int64)
        n_components = len(tensor.component_names)
        self.component_sizes = np.array([[len(c) for c in b.components] for b in blocks], dtype=np.int64).reshape(len(blocks), n_components)
        self.n_properties = np.array([len(b.properties) for b in blocks], dtype=np.int64)
        self.n_columns = np.prod(self.component_sizes, axis=1).astype(np.int64) * self.n_properties

    def present_rows(self, bindings, name: str):
        """Whether each sample row (numbered over the blocks, as `sample_offsets`) of output `name`
        is present (runtime/presence.py), or None when every row counts (dense bindings, or not
        an output: an intermediate tensor keeps the rows of its samples, so the rows an output
        reaches through it do not depend on the path, runtime/model.py's reverse mode included)."""
        if not getattr(bindings, "sparse", False) or name not in getattr(bindings, "present", {}):
            return None  # the dense layout (the reverse products' runs)
        present = getattr(bindings, "outputs_present", {}).get(name)
        if present is None:
            return None
        if getattr(self, "_present_rows", None) is None:
            self._present_rows = present_rows(self.tensor, present)
        return self._present_rows

    def present_points(self, bindings, name: str, block: np.ndarray, sample: np.ndarray):
        """Whether each point (its block, and sample in that block) adds into a present row, or None
        when every point does. A point on an absent row adds a structural zero: it is skipped, so
        the rows are laid out on the present blocks (and an output's present samples) only."""
        rows = self.present_rows(bindings, name)
        if rows is None:
            if name in getattr(bindings, "present", {}):  # assembled on its present blocks only
                return block >= 0
            return None
        found = (block >= 0) & (sample >= 0)
        code = self.sample_offsets[np.maximum(block, 0)] + np.maximum(sample, 0)
        return found & rows[np.minimum(code, max(len(rows) - 1, 0))] if len(rows) else np.zeros(len(block), bool)

    @functools.cached_property
    def keys(self):
        return DenseLookup([np.asarray(self.tensor.keys.array)]) if len(self.tensor) else None

    @functools.cached_property
    def samples(self):
        return DenseLookup([b.samples.array for b in self._blocks])

    @functools.cached_property
    def components(self):
        return [DenseLookup([b.components[k].array for b in self._blocks])
                for k in range(len(self.tensor.component_names))]

    @functools.cached_property
    def properties(self):
        return DenseLookup([b.properties.array for b in self._blocks])


def kernel_gradient(run: GradientRun, kernel: ir.TensorKernel, gradient: GradientKernel, tensor):
    """The gradient blocks of `tensor` (the values of `kernel`), and the target of each of their rows."""
    bindings = run.bindings
    wrt = gradient.wrt
    if len(tensor) == 0:
        return [], []
    layout = _Layout(tensor)
    fused = _fused_gradient(run, kernel, gradient, tensor, layout)
    if fused is not None:
        return fused
    points = [term_points(run, kernel, gradient, term, layout, k) for k, term in enumerate(gradient.terms)]
    n_directions = len(gradient.directions)
    direction_size = 3 ** n_directions
    batch = next(iter(bindings.systems.values()))
    n_targets = batch.n_atoms if wrt == "positions" else batch.n_systems
    blocks_list = tensor.blocks()
    n_blocks = len(blocks_list)

    def column(name):
        return np.concatenate([p[name] for p in points]) if points else np.zeros(0, np.int64)

    block, sample, target, columns = column("block"), column("sample"), column("target"), column("column")
    weights = np.concatenate([p["values"] for p in points]) if points else np.zeros((0, direction_size))
    # gradient rows: distinct (block, sample, target) [positions] or (block, sample), sorted
    global_sample = layout.sample_offsets[block] + sample
    per_sample = n_targets if wrt == "positions" else 1
    keys = global_sample * per_sample + (target if wrt == "positions" else 0)
    space = int(layout.sample_offsets[-1]) * per_sample
    if space <= DenseLookup.LIMIT * 4:
        present = np.zeros(space, dtype=bool)
        present[keys] = True
        unique = np.flatnonzero(present)
        ranks = np.cumsum(present) - 1
        row = ranks[keys]
    else:
        unique, row = np.unique(keys, return_inverse=True)
        row = row.reshape(-1)
    unique_sample = unique // per_sample
    unique_block = np.searchsorted(layout.sample_offsets, unique_sample, side="right") - 1
    rows_per_block = np.bincount(unique_block, minlength=n_blocks).astype(np.int64)
    first_row = np.concatenate([[0], np.cumsum(rows_per_block)]).astype(np.int64)
    sizes = rows_per_block * layout.n_columns
    base = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    # accumulate as [rows, columns, directions] per block (one bincount per direction)
    position = base[block] + (row - first_row[block]) * layout.n_columns[block] + columns
    total = int(base[-1])
    flat = np.empty((total, direction_size), dtype=bindings.dtype)
    for d in range(direction_size):
        flat[:, d] = np.bincount(position, weights=weights[:, d], minlength=total)
    row_targets_all = np.zeros(len(unique), dtype=np.int64)
    if wrt == "positions":
        row_targets_all = unique % n_targets
    elif len(row):
        row_targets_all[row] = target

    component_shapes = [tuple(len(c) for c in block.components) for block in blocks_list]
    parts = [
        flat[base[b] : base[b + 1]].reshape((int(rows_per_block[b]),) + component_shapes[b]
                                           + (len(block.properties),) + (3,) * n_directions)
        for b, block in enumerate(blocks_list)
    ]
    return _gradient_blocks(tensor, wrt, n_directions, parts, unique_sample, first_row, layout, row_targets_all,
                            batch)


def _term_rows(run: GradientRun, kernel, gradient, term: Term, layout: _Layout, scatter):
    """The rows of one term for its scatter kernel: over the grid of `scatter.row_vars`, whether the
    term has a point there (its conditions, as in `term_points`), and the row's block, parent
    sample and target. None when the scope does not have the kernel's variables as plain axes."""
    bindings = run.bindings
    scope = term_scope(run, kernel, gradient, term)
    row_vars = scatter.row_vars
    if any(v in scope.aliases or v not in scope.values for v in row_vars):
        return None
    sizes = {v: len(scope.values[v]) for v in row_vars}
    masks = term_masks(run, kernel, term, scope)
    exists = _exists(masks, row_vars)
    keys, samples, _, _ = signature_values(run.evaluator, kernel, scope)
    target = run.evaluator.evaluate(term.target, scope)
    if any(a not in row_vars for a in union_axes(*(v for _, v in keys + samples), target)):
        return None
    key_values = [v for _, v in keys]
    found_block = _lookup(layout.keys, Named.scalar(0), key_values) if layout.keys is not None else Named.scalar(-1)
    block = Named(found_block.axes, np.maximum(found_block.data, 0))
    sample = _lookup(layout.samples, block, [v for _, v in samples], [e for e, _ in samples], bindings)
    shape = tuple(sizes[v] for v in row_vars)

    def grid(named: Named) -> np.ndarray:
        named = Named(named.axes, np.asarray(named.data))
        return np.broadcast_to(named.expand(row_vars), shape).reshape(-1)

    where = grid(exists).astype(bool)
    found_block, sample, target = grid(found_block), grid(sample), grid(target).astype(np.int64)
    present = layout.present_points(bindings, kernel.name, found_block, sample)
    if present is not None:  # the points on absent rows add zeros: skipped (row -1)
        where = where & present
    everywhere = bool(where.all())  # (the usual case: no boolean selection to copy)
    if np.any((found_block if everywhere else found_block[where]) < 0):
        raise RunError(f"gradient of {kernel.name}: a contribution to a block the values do not have")
    if np.any((sample if everywhere else sample[where]) < 0):
        raise RunError(f"gradient of {kernel.name}: a contribution to a sample the values do not have")
    aliased_columns = [grid(scope.aliases[c]).astype(np.int64) for c in scatter.columns if c in scope.aliases
                       and all(a in row_vars for a in scope.aliases[c].axes)]
    if len(aliased_columns) != len([c for c in scatter.columns if c in scope.aliases]):
        return None
    return where, found_block, sample, target, scope, aliased_columns


def _exists(masks: list[Named], row_vars: tuple) -> Named:
    """Whether some point over the other axes satisfies every mask, over the `row_vars` axes of the masks.

    The masks are AND-ed and reduced (any) per group sharing axes outside `row_vars`: a mask over
    row variables only (the kernel's condition over pairs) never meets the product of the others
    (the irrep bounds over `l, m`), so the product over every axis is never built."""
    groups: list = []  # [axes outside row_vars, masks] of masks linked by such axes
    inside = []
    for mask in masks:
        mask = Named(mask.axes, np.asarray(mask.data).astype(bool))
        extra = {a for a in mask.axes if a not in row_vars}
        if not extra:
            inside.append(mask)
            continue
        linked = [g for g in groups if g[0] & extra]
        for group in linked:
            groups.remove(group)
            extra |= group[0]
        groups.append([extra, [m for g in linked for m in g[1]] + [mask]])
    for extra, members in groups:
        product = members[0]
        for mask in members[1:]:
            product = apply(np.logical_and, product, mask)
        axes = tuple(a for a in product.axes if a not in extra)
        data = np.any(np.asarray(product.data), axis=tuple(product.axes.index(a) for a in product.axes if a in extra))
        inside.append(Named(axes, data))
    exists = Named.scalar(True)
    for mask in sorted(inside, key=lambda m: np.size(m.data)):  # small masks first
        exists = apply(np.logical_and, exists, mask)
    return exists


def _one_to_one(row_map: np.ndarray, where: np.ndarray, aliased_columns: list) -> bool:
    """Whether distinct points of a term's row grid add into distinct entries (row, aliased columns):
    then its scatter kernel runs its outer loop on several threads into one buffer; else each
    thread runs a range of it into its own buffer (`CompiledModule.scatter_term`)."""
    everywhere = bool(where.all())  # (the usual case: no boolean selection to copy)
    code = (row_map if everywhere else row_map[where]).astype(np.int64, copy=False)
    if len(code) == 0:
        return True
    if not aliased_columns and np.all(code[1:] > code[:-1]):  # increasing rows: distinct
        return True
    space = int(code.max()) + 1
    for values in aliased_columns:
        values = values if everywhere else values[where]
        low = int(values.min())
        span = int(values.max()) - low + 1
        code = code * span + (values - low)
        space *= span
    if space > 8 * len(code) + (1 << 20):
        return len(np.unique(code)) == len(code)
    seen = np.zeros(space, dtype=bool)  # distinct iff as many entries marked as points
    seen[code] = True
    return int(np.count_nonzero(seen)) == len(code)


#: driver positions per chunk of interleaved scatter kernels (`_interleaved_groups`): the rows of
#: the gradient they read for a chunk (the power spectrum's: 1.3 kB each) stay in cache between terms
INTERLEAVE_CHUNK = int(os.environ.get("MTDSL_INTERLEAVE_CHUNK", "1024"))


def _interleaved_groups(native, name: str, wrt: str, scatters, shared) -> list:
    """Terms of one gradient whose scatter kernels run interleaved (`CompiledModule.scatter_interleaved`):
    two or more terms, each one-to-one, whose drivers are the same domain (the rows of the
    gradient they read, in the power spectrum's `drho1 * rho2 + rho1 * drho2`), grouped by that
    domain. `MTDSL_INTERLEAVE=0` turns it off (each term runs on its own, over the whole driver)."""
    if os.environ.get("MTDSL_INTERLEAVE", "1") == "0" or not hasattr(native, "scatter_interleaved"):
        return []
    by_driver: dict = {}
    for k, scatter in enumerate(scatters):
        if shared[k]:
            continue
        driver = native.scatter_driver((name, wrt, k))
        if driver is None or not isinstance(driver[0], abi.ScalarArgument):
            continue
        by_driver.setdefault(driver[0], []).append(k)
    return [group for group in by_driver.values() if len(group) > 1]


def _chunk_owned(row_maps, found, row_shapes, axes, chunk: int) -> bool:
    """Whether every entry (row, aliased columns) that the terms of a group add into receives the
    points of one chunk of their common driver only (so chunks may run on different threads):
    each term is one-to-one, so an entry has at most one point per term; compare their chunks."""
    codes, chunks = [], []
    for row_map, rows, shape, axis in zip(row_maps, found, row_shapes, axes):
        if axis < 0 or int(np.prod(shape)) != np.size(row_map):
            return False
        where, aliased = rows[0], rows[5]
        code = np.asarray(row_map).reshape(-1).astype(np.int64)
        position = np.broadcast_to(
            np.arange(shape[axis], dtype=np.int64).reshape((-1,) + (1,) * (len(shape) - 1 - axis)), shape).reshape(-1)
        for values in aliased:
            low = int(values[where].min()) if where.any() else 0
            span = int(values[where].max()) - low + 1 if where.any() else 1
            code = code * span + (values - low)
        codes.append(code[where])
        chunks.append(position[where] // chunk)
    every = np.concatenate(codes) if codes else np.zeros(0, np.int64)
    if len(every) == 0:
        return True
    space = int(every.max()) + 1
    if space > 8 * len(every) + (1 << 22):
        return False
    owner = np.full(space, -1, dtype=np.int64)
    for code, part in zip(codes, chunks):
        previous = owner[code]
        if np.any((previous >= 0) & (previous != part)):
            return False
        owner[code] = part
    return True


@dataclass
class GradientRows:
    """The rows of a gradient's scatter kernels (`_gradient_rows`), its buffer and what each term adds.

    `found[k]`: term k's `_term_rows` (where, block, sample, target, scope, aliased columns) over the
    grid of its row variables; `row_maps[k]`: that grid's row in `buffer` (-1: no point);
    `shared[k]`: two points of term k may add into one entry; `done`: the terms already added
    into `buffer` (by the values' pass, `FusedGradients`)."""

    scatters: list
    found: list
    unique: np.ndarray
    per_sample: int
    row_targets: np.ndarray
    column_values: list
    buffer: np.ndarray
    row_maps: list
    shared: list
    row_shapes: list
    done: set = field(default_factory=set)


def _gradient_rows(run: GradientRun, kernel, gradient, layout: _Layout):
    """The rows of every term of `gradient` for its scatter kernels (`mtdsl/ir/passes/terms.py`), and their
    zeroed buffer `[rows, directions, columns (padded like the kernel's indices)]`, or None when a
    term has no scatter kernel. The rows are the distinct (block, sample, target), sorted as
    `kernel_gradient` sorts them, computed over the few variables each term's rows depend on."""
    native = run.native
    if native is None or not getattr(native, "scatters", None):
        return None
    scatters = [native.scatters.get((kernel.name, gradient.wrt, k)) for k in range(len(gradient.terms))]
    if not scatters or any(s is None or s.name not in native.term_kernels for s in scatters):
        return None
    bindings = run.bindings
    wrt = gradient.wrt
    found = []
    for term, scatter in zip(gradient.terms, scatters):
        rows = _term_rows(run, kernel, gradient, term, layout, scatter)
        if rows is None:
            return None
        found.append(rows)
    batch = next(iter(bindings.systems.values()))
    found_rows = None
    if wrt == "positions" and batch.n_systems > 1:
        # a row's target numbered within its system: the codes span samples x the largest
        # system, not samples x the batch's atoms (a batch of many molecules)
        offsets = np.asarray(batch.atom_offsets, dtype=np.int64)
        system_of = np.asarray(batch.system, dtype=np.int64)
        width = max(1, int(np.diff(offsets).max()))
        found_rows = _row_codes(found, layout, width, lambda t: t - offsets[system_of[np.clip(t, 0, len(system_of) - 1)]])
        if found_rows is not None:  # the order of the batch's numbering: every target of a sample in one system
            unique, row_targets = found_rows[1], found_rows[3]
            same_sample = unique[1:] // width == unique[:-1] // width
            if np.any(same_sample & (system_of[row_targets[1:]] != system_of[row_targets[:-1]])):
                found_rows = None
    if found_rows is None:  # (a sample whose targets are atoms of several systems: the batch's numbering)
        width = batch.n_atoms if wrt == "positions" else 1
        found_rows = _row_codes(found, layout, width, None if wrt == "positions" else (lambda t: 0))
    per_sample = width
    codes, unique, ranks, row_targets_all = found_rows
    # the buffer: rows, then the directions, then the columns as the kernel's indices (padded)
    columns = scatters[0].columns
    if any(s.columns != columns for s in scatters):
        return None
    column_values = [np.asarray(bindings.domain_values(next(b.domain for b in kernel.indices if b.name == c)))
                     for c in columns]
    n_directions = len(gradient.directions)
    shape = (len(unique),) + (3,) * n_directions + tuple(len(v) for v in column_values)
    buffer = native.gradient_arena.zeros((kernel.name, wrt), shape, bindings.dtype)  # kept between calls
    row_maps, shared, row_shapes = [], [], []
    for scatter, code, rows in zip(scatters, codes, found):
        if ranks is not None and rows[0].all():  # (no -1 to mask)
            row_map = np.take(ranks, code).astype(np.int64)
        elif ranks is not None:
            row_map = np.where(code >= 0, ranks[np.maximum(code, 0)], np.int64(-1))  # int64, like `searchsorted`
        else:
            row_map = np.where(code >= 0, np.searchsorted(unique, np.maximum(code, 0)), -1)
        row_maps.append(row_map)
        shared.append(not _one_to_one(row_map, rows[0], rows[5]))
        row_shapes.append(tuple(len(rows[4].values[v]) for v in scatter.row_vars))
    return GradientRows(scatters, found, unique, per_sample, row_targets_all, column_values, buffer, row_maps,
                        shared, row_shapes)


def _row_codes(found, layout: "_Layout", width: int, local):
    """Each term's row code over its grid (-1: no point), the distinct codes sorted, their ranks
    (a dense table, or None) and each row's target: a code is `global sample * width + local(target)`
    (`local` None: the target itself; `width` 1: one row per sample). None when two targets of one
    sample share a local number (the caller then numbers targets over the batch)."""
    codes, points, targets = [], [], []
    for where, block, sample, target, *_ in found:
        number = target if local is None else local(target)
        code = (layout.sample_offsets[block] + sample) * width + number
        if where.all():  # (a term's points often fill its grid: no selection to make)
            codes.append(code)
            points.append(code)
            targets.append(target)
        else:
            codes.append(np.where(where, code, -1))
            points.append(code[where])
            targets.append(target[where])
    space = int(layout.sample_offsets[-1]) * width
    ranks = None
    if space <= DenseLookup.LIMIT * 4:  # distinct codes by marking (no sort); ranks give the row maps
        present = np.zeros(space, dtype=bool)
        for code in points:
            present[code] = True
        unique = np.flatnonzero(present)
        # written (and paged in) at the codes only, not a cumsum; int32 pages in half as much memory
        rank_type = np.int32 if len(unique) < 2**31 else np.int64
        ranks = np.empty(space, dtype=rank_type)
        ranks[unique] = np.arange(len(unique), dtype=rank_type)
    else:
        unique = np.unique(np.concatenate(points)) if points else np.zeros(0, np.int64)
    if local is None:
        return codes, unique, ranks, unique % width
    row_targets = np.zeros(len(unique), np.int64)
    for code, target in zip(points, targets):
        row = ranks[code] if ranks is not None else np.searchsorted(unique, code)
        row_targets[row] = target
    if width > 1:  # several targets per sample: each row must have one
        for code, target in zip(points, targets):
            row = ranks[code] if ranks is not None else np.searchsorted(unique, code)
            if np.any(row_targets[row] != target):
                return None
    return codes, unique, ranks, row_targets


def _fused_gradient(run: GradientRun, kernel, gradient, tensor, layout: _Layout):
    """The gradient blocks written by the scatter kernels of every term (`mtdsl/ir/passes/terms.py`), or None.

    The rows come from `_gradient_rows`, or were prepared before the values' pass that added some
    terms already (`FusedGradients`); the kernels of the other terms add every contribution into
    the buffer; each block is then its row range with its own columns taken."""
    native = run.native
    wrt = gradient.wrt
    prepared = run.prepared.pop(kernel.name, None)
    rows = prepared if prepared is not None else _gradient_rows(run, kernel, gradient, layout)
    if rows is None:
        return None
    bindings = run.bindings
    scatters, found, buffer, row_maps = rows.scatters, rows.found, rows.buffer, rows.row_maps
    shared, row_shapes, unique, per_sample = rows.shared, rows.row_shapes, rows.unique, rows.per_sample
    row_targets_all, column_values, columns = rows.row_targets, rows.column_values, scatters[0].columns
    n_directions = len(gradient.directions)
    batch = next(iter(bindings.systems.values()))
    # terms over one driver in one fused kernel (codegen/schedule/fuse.py), where it can run on this run's threads
    for name, keys, drivers in native.fused_terms.get((kernel.name, wrt), ()) if native.fuse else ():
        if any(key[2] in rows.done for key in keys):
            continue
        outcome = native.run_fused_terms(name, keys, drivers, rows, bindings, run.gradient_tables,
                                         run.dense_gradients)
        if outcome == "failed":
            return None
    done = set(rows.done)
    for group in _interleaved_groups(native, kernel.name, wrt, scatters, shared):
        group = [k for k in group if k not in done]
        if len(group) < 2:
            continue
        threads = int(native.run_threads or 1)
        if threads > 1 and not _chunk_owned([row_maps[k] for k in group], [found[k] for k in group],
                                            [row_shapes[k] for k in group],
                                            [scatters[k].row_vars.index(native.scatter_driver((kernel.name, wrt, k))[1])
                                             if native.scatter_driver((kernel.name, wrt, k))[1] in scatters[k].row_vars
                                             else -1 for k in group], INTERLEAVE_CHUNK):
            continue
        keys = [(kernel.name, wrt, k) for k in group]
        if not native.scatter_interleaved(keys, buffer, [row_maps[k] for k in group], bindings,
                                          run.gradient_tables, run.dense_gradients, INTERLEAVE_CHUNK):
            return None
        done |= set(group)
    for k, scatter in enumerate(scatters):
        if k in done:
            continue
        if not native.scatter_term((kernel.name, wrt, k), buffer, row_maps[k], bindings, run.gradient_tables,
                                   run.dense_gradients, shared=shared[k], row_shape=row_shapes[k]):
            return None
    run.native_terms.extend(((kernel.name, wrt, k), "fused" if k in rows.done else "scatter")
                                    for k in range(len(scatters)))
    run.dense_gradients[(kernel.name, wrt)] = buffer  # read by the scatter kernels of later tensors
    unique_sample = unique // per_sample
    unique_block = np.searchsorted(layout.sample_offsets, unique_sample, side="right") - 1
    n_blocks = len(tensor)
    first_row = np.searchsorted(unique_block, np.arange(n_blocks + 1))
    component_entries = len(kernel.components)
    blocks_list = tensor.blocks()
    parts = []
    first = 1 + n_directions  # the first column axis
    positions: dict = {}  # id(Labels) -> their positions: the blocks share their component and property Labels

    def positions_of(k: int, labels):
        key = (k, id(labels))
        if key not in positions:
            array = np.asarray(labels.array)
            if k < component_entries:
                positions[key] = (labels, _positions_in(column_values[k], array[:, 0]))
            else:
                flat = np.zeros(len(array), dtype=np.int64)
                for j in range(len(columns) - component_entries):
                    position = _positions_in(column_values[component_entries + j], array[:, j])
                    if position is None:
                        flat = None
                        break
                    flat = flat * len(column_values[component_entries + j]) + position
                positions[key] = (labels, flat)
        return positions[key][1]

    for b, value_block in enumerate(blocks_list):
        chosen = slice(first_row[b], first_row[b + 1])
        values = buffer[chosen]
        # components: one kernel index each; properties: the flat position over their indices
        for k, component in enumerate(value_block.components):
            position = positions_of(k, component)
            if position is None:
                return None
            if not _is_range(position, values.shape[first + k]):
                if len(position) and np.all(np.diff(position) == 1):  # a run of the padded axis (m of l): a view
                    index = [slice(None)] * values.ndim
                    index[first + k] = slice(int(position[0]), int(position[-1]) + 1)
                    values = values[tuple(index)]
                else:
                    values = np.take(values, position, axis=first + k)
        head = values.shape[: first + component_entries]
        values = values.reshape(head + (int(np.prod(values.shape[len(head):], dtype=np.int64)),))
        flat = positions_of(component_entries, value_block.properties)
        if flat is None:
            return None
        if not _is_range(flat, values.shape[-1]):
            values = np.take(values, flat, axis=-1)
        parts.append(values)
    # an output's gradient values are contiguous copies; a tensor only read by later terms keeps views
    # of the buffer (the expansion's `drho` padded to 2 lmax + 1 values of m: no copy of 2l + 1 of them)
    outputs = {o.name for o in run.module.outputs}
    return _gradient_blocks(tensor, wrt, n_directions, parts, unique_sample, first_row, layout, row_targets_all,
                            batch, stored=True, contiguous=kernel.name in outputs)


def _is_range(position: np.ndarray, size: int) -> bool:
    return len(position) == size and bool(np.all(position == np.arange(size)))


def _positions_in(values: np.ndarray, labels: np.ndarray):
    """Position of each label among the (sorted, distinct) values of a domain; None if one is absent."""
    values = np.asarray(values, dtype=np.int64)
    order = np.argsort(values, kind="stable")
    found = np.searchsorted(values[order], labels)
    found = np.clip(found, 0, max(len(values) - 1, 0))
    if len(values) == 0 or np.any(values[order][found] != labels):
        return None if len(labels) else np.zeros(0, np.int64)
    return order[found]


def _gradient_blocks(tensor, wrt, n_directions, parts, unique_sample, first_row, layout, row_targets_all, batch,
                     stored: bool = False, contiguous: bool = True):
    """Gradient `TensorBlock`s from each block's values `[rows, components..., properties, directions...]`
    (`[rows, directions in their stored order, components..., properties]` with `stored=True`)."""
    order = _STORED_ORDER[wrt]
    taken = set(tensor.component_names)
    direction_names = [name + "_gradient" if name in taken else name for name in DIRECTION_LABELS[wrt]]
    direction_labels = [Labels([name], np.arange(3, dtype=np.int32).reshape(-1, 1)) for name in direction_names]
    blocks, targets = [], []
    for b, value_block in enumerate(tensor.blocks()):
        values = parts[b]
        n_rows = values.shape[0]
        if not stored:
            last = values.ndim - n_directions
            values = np.moveaxis(values, [last + k for k in range(n_directions)], [1 + k for k in order])
        chosen = slice(first_row[b], first_row[b + 1])
        parent = unique_sample[chosen] - layout.sample_offsets[b]
        row_targets = row_targets_all[chosen]
        if wrt == "positions":
            rows = np.empty((n_rows, 3), dtype=np.int32)  # the labels' type, filled in place (no int64 stack)
            rows[:, 0] = parent
            rows[:, 1] = np.asarray(batch.system)[row_targets]
            rows[:, 2] = np.asarray(batch.atom)[row_targets]
            names = ["sample", "system", "atom"]
        else:
            rows = parent.reshape(-1, 1)
            names = ["sample"]
        blocks.append(TensorBlock(
            np.ascontiguousarray(values) if contiguous else values,
            Labels(names, rows.astype(np.int32, copy=False).reshape(n_rows, len(names)), assume_unique=True),
            direction_labels + list(value_block.components),
            value_block.properties,
        ))
        targets.append(row_targets)
    return blocks, targets

