"""The native runner: modules compiled by a native backend (C++ or LLVM), with the evaluator as fallback.

`compile_module(module, backend="cpp", dtype=np.float64)` renders the module
and compiles it through the kernel cache (`mtdsl.codegen.build`) and returns a `CompiledModule` whose
`.run(bindings)` takes the same `Bindings` as the evaluator and returns
`{tensor name: TensorMap}`.

Per kernel, the native function fills the dense body buffer over the kernel's
index grid and `runtime.assemble.evaluate_kernel(..., body=...)` builds the
blocks, exactly as for the evaluator. A kernel runs with the evaluator
(runtime/evaluate/) instead when the renderer has no compiled form for it
(`.fallbacks` says why), when an argument has no native form (binding returns
a `Fallback` value, runtime/native/block_lookup.py), or when its native run reports an
error bit (a missing block entry, an index out of range, a distance beyond a
spline): the evaluator then raises the precise error, or decides the case, so
results always equal the oracle's. `.last_run_fallbacks` says why, per kernel.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

import numpy as np

from mtdsl.codegen import threads as native_threads
from mtdsl.codegen.backends import backend as native_backend
from mtdsl.codegen.schedule import abi
from mtdsl.ir import nodes as ir
from mtdsl.ir.roles import GradientBlocks, GradientRows, RowField
from mtdsl.tensor import Labels, TensorBlock, TensorMap
from mtdsl.tensor._array import to_numpy

from ..gradients import forward as gradient_blocks  # called through the module: tests spy on entries_owned
from ..gradients.arena import GradientArena
from ..assemble import evaluate_kernel, separable_layout
from ..bindings import Bindings, RunError
from .block_lookup import BlockLookup, Fallback, error_bits
from .body_parts import with_parts
from ..evaluate.evaluator import Evaluator
from ..named import Named
from ..presence import presence_table


def default_threads() -> int:
    value = os.environ.get("OMP_NUM_THREADS", "")
    try:
        return max(1, int(value.split(",")[0]))
    except ValueError:
        return os.cpu_count() or 1


# ---- argument binding ----------------------------------------------------------------------------


class Arguments:
    """Binds the arguments of rendered kernels (`codegen/schedule/abi.py`, by type) to one run's `Bindings`."""

    def __init__(self, compiled: "CompiledModule", bindings: Bindings):
        self.compiled = compiled
        self.bindings = bindings
        self.dtype = compiled.dtype
        self.cache: dict = {}
        self.lookups: dict = {}
        self.grids: dict = {}  # tensor name -> dense buffer of a kernel run natively
        self.gradient_tables: dict = {}  # (tensor, wrt) -> runtime.gradients.GradientTable
        self.out_rows: dict = {}  # scatter kernel row source -> (row map, number of rows)
        self.dense_gradients: dict = {}  # (tensor, wrt) -> the buffer its scatter kernels filled

    def _real(self, array):
        return np.ascontiguousarray(to_numpy(array), dtype=self.dtype)

    def _int(self, array):
        return np.ascontiguousarray(to_numpy(array), dtype=np.int64)

    def presence(self, source) -> np.ndarray:
        """The presence table of a guarded kernel (`runtime/presence.py: presence_table`, source a
        `PresenceTable`); a part kernel (`runtime/native/body_parts.py`) reads its whole kernel's."""
        if ("presence", source) not in self.cache:
            name = self.compiled.part_of.get(source.kernel, source.kernel)
            present = (getattr(self.bindings, "kernels_present", None) or {}).get(name) \
                if getattr(self.bindings, "sparse", False) else None
            table = np.zeros(0, np.int64)
            if present is not None:
                kernel = self.compiled.module.kernel(name)
                sizes = {b.name: len(self.bindings.domain_values(b.domain)) for b in kernel.indices}
                table = presence_table(kernel, present, sizes)
            self.cache[("presence", source)] = table
        return self.cache[("presence", source)]

    def rows(self, source: GradientRows, field: str):
        """Integer labels of the rows of a computed gradient (`mtdsl/ir/passes/terms.py`: `GradLabel` as data)."""
        tensor, wrt = source.tensor, source.wrt
        table = self.gradient_tables.get((tensor, wrt))
        if table is None:
            return Fallback(f"the gradient of {tensor} with respect to {wrt} is not available")
        # the gradient table reads a row field for the evaluator too (`row_field`): one reader
        return self._int(table.column(field))

    def gradient_tensor(self, name: GradientBlocks):
        """T's gradient blocks as a TensorMap for block accesses (`mtdsl/ir/passes/terms.py`: `GradValue`):
        key `block`, samples `row` (the row in its block), the gradient's components and properties."""
        tensor, wrt = name.tensor, name.wrt
        values = self.bindings.tensors.get(tensor)
        if values is None or (tensor, wrt) not in self.gradient_tables:
            return Fallback(f"the gradient of {tensor} with respect to {wrt} is not available")
        blocks = []
        for block in values.blocks():
            gradient = block.gradient(wrt)
            rows = Labels(["row"], np.arange(len(gradient.samples), dtype=np.int32).reshape(-1, 1), assume_unique=True)
            blocks.append(TensorBlock(gradient.values, rows, list(gradient.components), gradient.properties))
        keys = Labels(["block"], np.arange(len(blocks), dtype=np.int32).reshape(-1, 1), assume_unique=True)
        return TensorMap(keys, blocks)

    def lookup(self, key):
        """The `BlockLookup` of a block access, or a `Fallback` (not kept: a gradient's table may come later)."""
        if key not in self.lookups:
            if isinstance(key[0], GradientBlocks):
                tensor = self.gradient_tensor(key[0])
                if isinstance(tensor, Fallback):
                    return tensor
            else:
                tensor = self.bindings.tensors.get(key[0])
                if tensor is None:
                    raise RunError(f"block access to {key[0]}: no such tensor")
            found = BlockLookup(key, tensor, self.bindings, self.dtype)
            if found.fallback is not None:
                return found.fallback
            self.lookups[key] = found
        return self.lookups[key]

    def bind(self, rendered, outputs: list, scalar=None):
        """`(arrays, scalars)` of a rendered kernel, `outputs` its first arrays, or the `Fallback`
        of the first argument without a native form. `scalar(arguments, argument)`: how the
        caller resolves scalars (`Arguments.scalar` by default)."""
        arrays = list(outputs)
        for argument in rendered.arrays[len(outputs):]:
            arrays.append(self.array(argument))
            if isinstance(arrays[-1], Fallback):
                return arrays[-1]
        scalars = [scalar(self, d) if scalar else self.scalar(d) for d in rendered.scalars]
        found = next((s for s in scalars if isinstance(s, Fallback)), None)
        return found if found is not None else (arrays, scalars)

    def array(self, argument):
        """The array `argument` (`codegen/schedule/abi.py`) of this run, or a `Fallback`."""
        if argument in self.cache:
            return self.cache[argument]
        value = _ARRAYS[type(argument)](self, argument)
        if isinstance(value, Fallback):
            return value
        if value.size == 0:  # never read, but its address must be valid
            value = np.zeros(1, dtype=value.dtype)
        self.cache[argument] = value
        return value

    def scalar(self, argument):
        """The integer `argument` (`codegen/schedule/abi.py`) of this run, or a `Fallback`."""
        return _SCALARS[type(argument)](self, argument)

    # -- arrays, by argument type --------------------------------------------------------------------
    def _systems_field(self, argument: abi.SystemsField):
        batch = self.bindings.systems[argument.systems]
        if argument.field == "types":
            return np.ascontiguousarray(to_numpy(batch.types), dtype=np.int32)
        if argument.field == "positions":
            return self._real(batch.positions).reshape(-1)
        return self._int(getattr(batch, argument.field))

    def _pairs_field(self, argument: abi.PairsField):
        pairs = self.bindings.pairs[argument.pairs]
        if argument.field in ("vectors", "distances", "cell_shifts"):
            return self._real(getattr(pairs, argument.field)).reshape(-1)
        return self._int(getattr(pairs, argument.field))

    def _species_rank(self, argument: abi.SpeciesRank):
        species = self.bindings.species(argument.domain)
        value = np.full(int(species.max()) + 1 if len(species) else 1, -1, dtype=np.int64)
        value[species] = np.arange(len(species))
        return value

    def _param(self, argument: abi.ParamValues):
        bindings = self.bindings
        value = self._real(bindings.params[argument.name])
        declaration = next(p for p in self.compiled.module.params if p.name == argument.name)
        expected = tuple(len(bindings.domain_values(d)) for d in declaration.domains)
        if value.shape != expected:
            return Fallback(f"parameter {argument.name} has shape {value.shape}, its domains {expected}")
        return value.reshape(-1)

    def _const(self, argument: abi.ConstTable):
        # the f64 tables (spline derivatives of gradient kernels) are float64 whatever the dtype
        dtype = np.float64 if argument.f64 else self.dtype
        return np.ascontiguousarray(self.compiled.rendered.constants[argument.name], dtype=dtype).reshape(-1)

    def _block_table(self, argument: abi.BlockTable):
        found = self.lookup(argument.key)
        return found if isinstance(found, Fallback) else found.arrays[argument.field]

    def _dense_gradient(self, argument: abi.DenseGradient):
        # a gradient as its scatter kernels wrote it (runtime/gradients/ keeps it)
        buffer = self.dense_gradients.get((argument.source.tensor, argument.source.wrt))
        if buffer is None:
            return Fallback(f"{argument.source} was not written by scatter kernels")
        return buffer.reshape(-1)

    def _grid(self, argument: abi.Grid):
        if argument.tensor not in self.grids:
            return Fallback(f"the dense values of {argument.tensor} are not available")
        return self.grids[argument.tensor].reshape(-1)

    # -- scalars, by argument type -------------------------------------------------------------------
    def _pair_count(self, argument: abi.PairCount):
        source = argument.source
        if source in self.out_rows:  # the rows a scatter kernel writes (mtdsl/ir/passes/terms.py)
            return int(self.out_rows[source][1])
        if source not in self.bindings.pairs:  # the rows of a gradient (mtdsl/ir/passes/terms.py)
            rows = self.rows(source, RowField("block"))
            return rows if isinstance(rows, Fallback) else len(rows)
        return self.bindings.pairs[source].n_pairs

    def _param_dim(self, argument: abi.ParamDim):
        shape = np.shape(self.bindings.params[argument.name])
        return int(shape[argument.axis]) if argument.axis < len(shape) else 1

    def _block_scalar(self, argument: abi.BlockScalar):
        found = self.lookup(argument.key)
        return found if isinstance(found, Fallback) else int(found.scalars[(argument.field, argument.k)])

    def _grid_size(self, argument: abi.GridSize):
        kernel = self.compiled.module.kernel(argument.tensor)
        return len(self.bindings.domain_values(kernel.indices[argument.axis].domain))


_ARRAYS = {
    abi.SystemsField: Arguments._systems_field,
    abi.PairsField: Arguments._pairs_field,
    abi.SpeciesValues: lambda self, a: self._int(self.bindings.species(a.domain)),
    abi.SpeciesRank: Arguments._species_rank,
    abi.ParamValues: Arguments._param,
    abi.ConstTable: Arguments._const,
    abi.BlockTable: Arguments._block_table,
    # codegen/schedule/presence.py: empty when unknown, all computed
    abi.Presence: lambda self, a: self.presence(a.source),
    abi.RowMapArray: lambda self, a: self._int(self.out_rows[a.source][0]),
    abi.DenseGradient: Arguments._dense_gradient,
    abi.GradientRowField: lambda self, a: self.rows(a.source, a.field),
    abi.Grid: Arguments._grid,
}

_SCALARS = {
    abi.AtomCount: lambda self, a: self.bindings.systems[a.systems].n_atoms,
    abi.SystemCount: lambda self, a: self.bindings.systems[a.systems].n_systems,
    abi.PairCount: Arguments._pair_count,
    abi.SpeciesCount: lambda self, a: len(self.bindings.species(a.domain)),
    abi.PresenceCount: lambda self, a: len(self.presence(a.source)),
    abi.SpeciesRankSize: lambda self, a: len(self.array(abi.SpeciesRank(a.domain))),
    abi.ParamDim: Arguments._param_dim,
    abi.BlockScalar: Arguments._block_scalar,
    # a scatter kernel's driver positions [lo, hi): all of them
    abi.DriverRange: lambda self, a: 0 if a.end == 0 else INT64_MAX,
    abi.GridSize: Arguments._grid_size,
}


# ---- the compiled module ------------------------------------------------------------------------

INT64_MAX = 2**63 - 1
# bytes of the per-thread buffers of a shared-entry scatter kernel that cannot be cut by owner (beyond: one thread)
PRIVATE_LIMIT = 16 * 2**20


def owner_splits(row_map: np.ndarray, shape: tuple, axis: int, n_rows: int, threads: int):
    """Bounds `[0, b1, ..., n]` of `threads` contiguous ranges of the driver (axis `axis` of the row
    map, of size n) such that no row receives points of two ranges, each cut the allowed one
    nearest to `n * t / threads`; None when the ranges would be empty or the largest more than
    1.5 times even (a strain row per system receiving every pair: no cut)."""
    n = shape[axis]
    if np.size(row_map) != int(np.prod(shape)):
        return None
    rows = np.moveaxis(np.asarray(row_map).reshape(shape), axis, 0).reshape(n, -1)
    valid = rows >= 0
    row = rows[valid]
    driver = np.broadcast_to(np.arange(n, dtype=np.int64)[:, None], rows.shape)[valid]
    first = np.full(n_rows, n, dtype=np.int64)
    last = np.full(n_rows, -1, dtype=np.int64)
    np.minimum.at(first, row, driver)
    np.maximum.at(last, row, driver)
    used = last >= 0
    # a cut b (between driver positions b - 1 and b) splits a row with first < b <= last
    crossing = np.zeros(n + 1, dtype=np.int64)
    np.add.at(crossing, first[used] + 1, 1)
    np.add.at(crossing, last[used] + 1, -1)
    allowed = np.flatnonzero(np.cumsum(crossing)[:n + 1] == 0)
    bounds = [0]
    for t in range(1, threads):
        ideal = n * t // threads
        k = int(np.searchsorted(allowed, ideal))
        near = [allowed[j] for j in (k - 1, k) if 0 <= j < len(allowed)]
        cut = int(min(near, key=lambda b: abs(b - ideal))) if near else 0
        bounds.append(cut)
    bounds.append(n)
    sizes = np.diff(bounds)
    if np.any(sizes <= 0) or sizes.max() > 1.5 * n / threads:
        return None
    return bounds



@dataclass
class Computed:
    """A tensor computed by a run: its dense buffer, its TensorMap when it was assembled, and its
    labels (`assemble.SeparableLayout`) when known (`CompiledModule.computed`)."""

    buffer: np.ndarray
    tensor: object = None
    layout: object = None


@dataclass
class NativeKernel:
    rendered: object  # codegen.cpp.RenderedKernel
    function: object  # ctypes function


class CompiledModule:
    """A module whose kernels run as native code; `.run(bindings)` like the interpreter."""

    def __init__(self, module: ir.Module, rendered, library, path, cache_hit: bool, threads=None,
                 terms: dict | None = None):
        self.module = module
        # gradient terms rendered as kernels (mtdsl/ir/passes/terms.py), by (kernel, wrt, term index): a dense
        # buffer over the term's axes (`terms`: kernel name), or written into the rows (`scatters`)
        terms = terms or {}
        self.terms = dict(terms.get("terms", {}))
        self.scatters = dict(terms.get("scatters", {}))
        # a tensor's values and terms of its gradients in one pass (codegen/schedule/fuse.py):
        # {(kernel, (wrt, ...)): (fused kernel name, term keys)}, those that were rendered
        self.fused = {key: value for key, value in terms.get("fused", {}).items() if value[0] in rendered.kernels}
        # terms of one gradient over the same driver in one pass: {(kernel, wrt): [(name, keys, drivers)]}
        self.fused_terms = {key: [group for group in groups if group[0] in rendered.kernels]
                            for key, groups in terms.get("fused_terms", {}).items()}
        self.fuse = os.environ.get("MTDSL_FUSE", "1") != "0"  # False: values and gradient terms apart
        fused_names = {name for name, _ in terms.get("fused", {}).values()}
        fused_names |= {group[0] for groups in terms.get("fused_terms", {}).values() for group in groups}
        term_names = set(self.terms.values()) | {s.name for s in self.scatters.values()} | fused_names
        self.rendered = rendered
        self.library = library
        self.path = path
        self.cache_hit = cache_hit
        self.dtype = np.dtype(rendered.dtype)
        self.threads = threads
        self.fast_assembly = True  # runtime/assemble.py for separable kernels
        # tensor name -> why the interpreter evaluates it
        self.fallbacks = {k: v for k, v in rendered.unsupported.items() if k not in term_names}
        self.last_run_fallbacks: dict = {}
        values = [k for name, k in rendered.kernels.items() if name not in term_names]
        # tensors some kernel reads as a TensorMap (through lookup tables, or the interpreter)
        self.read_as_tensormap = {d.key[0] for k in values for d in k.arrays if isinstance(d, abi.BlockTable)}
        if self.fallbacks:
            self.read_as_tensormap |= {k.name for k in module.kernels}
        self.kernels = {}
        self.term_kernels = {}
        self.fused_kernels = {}
        for name, kernel in rendered.kernels.items():
            function = getattr(library, kernel.symbol)
            function.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int64), ctypes.c_int64]
            function.restype = ctypes.c_int64
            if name in fused_names:
                self.fused_kernels[name] = NativeKernel(kernel, function)
            elif name in term_names:
                self.term_kernels[name] = NativeKernel(kernel, function)
            else:
                self.kernels[name] = NativeKernel(kernel, function)
        self._arguments = None  # the last run's, for its gradient terms
        # (bindings, {tensor: SeparableLayout}) of the last run: the labels of its assemblies, and of a
        # fused run's values computed before the kernel (`_run_fused`); `layout()`, `_assemble()`
        self._run_layouts = (None, {})
        self.run_threads = threads or default_threads()
        #: {tensor: its part kernels}: computed term by term, the buffers added (runtime/native/body_parts.py)
        self.parts: dict = {}
        self.part_of: dict = {}  # {part kernel: the kernel it is a term of}
        # gradient terms run natively since the last run: {(kernel, wrt, k): "scatter" | "term"}
        self.last_gradient_terms: dict = {}
        # the gradient rows' buffers, kept between calls: a fresh one's page zeroing costs more than
        # zeroing a kept one (runtime/gradients/arena.py)
        self.gradient_arena = GradientArena()

    @property
    def source(self) -> str:
        return self.rendered.source

    def run(self, bindings: Bindings, threads: int | None = None, all_tensors: bool = False, fused=None,
            precomputed: dict | None = None) -> dict:
        """Every kernel in order; returns the outputs (every tensor with `all_tensors=True`, or when none is declared).

        A native kernel's TensorMap is assembled only when something needs it: an
        output, a block access through lookup tables, or the interpreter. Kernels
        that read it from its dense buffer do not.

        `fused` (`{wrt: runtime/gradients.py: FusedGradients}`): the gradients about to be
        computed; a kernel with a fused kernel for some of them (`codegen/schedule/fuse.py`; the one of the
        most gradients) runs that one instead, which adds the terms of those gradients into the
        rows each `FusedGradients` prepares, in the same pass over pairs.

        `precomputed`: `{tensor: Computed}` of an earlier run at the same values (the torch
        module's plan, for the descriptors' products): those kernels are not run again.
        """
        if np.dtype(bindings.dtype) != self.dtype:
            raise ValueError(f"the module was compiled for {self.dtype}, the bindings are {np.dtype(bindings.dtype)}")
        threads = threads or self.threads or default_threads()
        self.run_threads = threads  # the gradient terms of this run use as many
        names = [o.name for o in self.module.outputs]
        if all_tensors or not names:
            names = [k.name for k in self.module.kernels]
        interpreter = Evaluator(self.module, bindings)
        arguments = self._arguments = Arguments(self, bindings)
        self.last_run_fallbacks = {}
        self.last_gradient_terms = {}
        self._run_layouts = (bindings, {})
        pending = {}  # tensor name -> (kernel, buffer) not assembled yet
        needed = set(names) | self.read_as_tensormap

        def materialize():
            for name, (kernel, buffer) in list(pending.items()):
                bindings.tensors[name] = self._assemble(interpreter, kernel, buffer)
            pending.clear()

        for kernel in self.module.kernels:
            given = (precomputed or {}).get(kernel.name)
            if given is not None:
                arguments.grids[kernel.name] = given.buffer
                if given.layout is not None:
                    self._run_layouts[1][kernel.name] = given.layout
                if given.tensor is not None:
                    bindings.tensors[kernel.name] = given.tensor
                elif kernel.name in needed:
                    bindings.tensors[kernel.name] = self._assemble(interpreter, kernel, given.buffer)
                else:
                    pending[kernel.name] = (kernel, given.buffer)
                continue
            native = self.kernels.get(kernel.name)
            buffer = None
            if native is not None:  # (None from each step: the evaluator runs it, `last_run_fallbacks` says why)
                wrts = self._fused_choice(kernel.name, fused) if fused and self.fuse else None
                if wrts is not None:
                    buffer = self._run_fused(kernel, wrts, fused, interpreter, arguments, threads)
                if buffer is None:
                    buffer = self._run_native(native, kernel, arguments, threads)
                if buffer is not None and kernel.name in self.parts:
                    buffer = self._add_parts(kernel, buffer, arguments, threads)
            if buffer is None:
                materialize()
                bindings.tensors[kernel.name] = evaluate_kernel(interpreter, kernel)
                continue
            arguments.grids[kernel.name] = buffer
            if kernel.name in needed:
                bindings.tensors[kernel.name] = self._assemble(interpreter, kernel, buffer)
            else:
                pending[kernel.name] = (kernel, buffer)
        for name in names:
            if name in pending:
                kernel, buffer = pending.pop(name)
                bindings.tensors[name] = self._assemble(interpreter, kernel, buffer)
        return {name: bindings.tensors[name] for name in names}

    __call__ = run

    def _run_native(self, native: NativeKernel, kernel, arguments: Arguments, threads: int):
        """The kernel's dense body buffer, or None when an argument has no native form or the
        native run reports an error (the reason in `last_run_fallbacks`)."""
        bindings = arguments.bindings
        sizes = tuple(len(bindings.domain_values(b.domain)) for b in kernel.indices)
        buffer = np.zeros(sizes, dtype=self.dtype)
        bound = arguments.bind(native.rendered, [buffer])
        if isinstance(bound, Fallback):
            self.last_run_fallbacks[kernel.name] = bound.reason
            return None
        arrays, scalars = bound
        pointers = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        values = (ctypes.c_int64 * max(len(scalars), 1))(*scalars)
        error = error_bits(native.function(pointers, values, int(threads)), bindings)
        del arrays
        if error:
            self.last_run_fallbacks[kernel.name] = f"native run reported error bits {error}"
            return None
        return buffer

    def _add_parts(self, kernel, buffer: np.ndarray, arguments: Arguments, threads: int):
        """`buffer` (the first term of the kernel's body) plus its other terms' buffers, or None
        when one reports an error."""
        for part, part_threads in self.parts[kernel.name]:
            more = self._run_native(part, kernel, arguments, part_threads or threads)
            if more is None:
                return None
            buffer += more
        return buffer

    def _fused_choice(self, name: str, fused: dict):
        """The gradients of the fused kernel of tensor `name` that covers the most of the asked
        ones (`fused`: their `FusedGradients`), or None."""
        found = [wrts for kernel, wrts in self.fused if kernel == name and set(wrts) <= set(fused)]
        return max(found, key=len) if found else None

    def _run_fused(self, kernel, wrts: tuple, fused: dict, interpreter, arguments: Arguments, threads: int):
        """The values' buffer of `kernel` from its fused kernel for the gradients `wrts`, which also
        adds their terms into the gradient rows each `fused[wrt].prepare` gives (those terms are
        then marked done), or None (not prepared, an argument without a native form, or an error
        bit: the caller runs the values' kernel alone and the terms apart).

        The rows need the values' labels, which do not depend on the values: they are computed
        first (`SeparableLayout`), and the values' TensorMap is filled from them after the run.
        The kernel runs on every thread only when each entry the terms add into has points of
        one driver position, else on one thread."""
        name, keys = self.fused[(kernel.name, wrts)]
        plan = self.fused_kernels[name].rendered.plan
        bindings = arguments.bindings
        sizes = tuple(len(bindings.domain_values(b.domain)) for b in kernel.indices)
        buffer = np.zeros(sizes, dtype=self.dtype)
        layout = separable_layout(interpreter, kernel) if self.fast_assembly else None
        labels = layout.labels() if layout is not None else self._assemble(interpreter, kernel, buffer)
        rows = {}
        for wrt in wrts:
            rows[wrt] = fused[wrt].prepare(kernel, labels)
        if any(found is None for found in rows.values()):
            for wrt in wrts:
                fused[wrt].discard(kernel.name)
            return None
        if layout is not None:
            self._run_layouts[1][kernel.name] = layout  # the values' TensorMap is filled from it after the run
        driver = plan.plans[0].loops[0].var
        for wrt in wrts:
            mine = [key for key in keys if key[1] == wrt]
            if threads > 1 and not self._owned(plan, mine, [driver] * len(mine), rows[wrt], bindings):
                threads = 1
        error = self._call_fused(name, keys, rows, arguments, [buffer] + [rows[key[1]].buffer for key in keys], threads)
        if error != 0:
            for wrt in wrts:
                fused[wrt].discard(kernel.name)
            return None
        for key in keys:
            rows[key[1]].done.add(key[2])
        return buffer

    def run_fused_terms(self, name: str, keys, drivers, rows, bindings, tables: dict, dense: dict | None) -> str:
        """Add the terms `keys` of one gradient into `rows.buffer` with their fused kernel (one pass
        over their common driver; `drivers`: each term's own name of it). "done"; "skipped" when
        it cannot run on this run's threads (an entry with points of two driver positions) or an
        argument has no native form (nothing written: run the terms apart); "failed" when the run
        reports an error (the buffer is unreliable)."""
        plan = self.fused_kernels[name].rendered.plan
        arguments = self.arguments_for(bindings)
        arguments.gradient_tables = tables
        arguments.dense_gradients = dense if dense is not None else {}
        threads = int(self.run_threads or 1)
        if threads > 1 and not self._owned(plan, keys, drivers, rows, bindings):
            return "skipped"
        error = self._call_fused(name, keys, {keys[0][1]: rows}, arguments, [rows.buffer] * len(keys), threads)
        if error is None:
            return "skipped"
        if error:
            return "failed"
        rows.done |= {key[2] for key in keys}
        return "done"

    def _call_fused(self, name: str, keys, rows: dict, arguments: Arguments, outputs: list, threads: int):
        """Run fused kernel `name` into `outputs` (its members' buffers), the terms `keys` bound to
        their row maps in `rows` (by gradient): its error bits, or None when an argument has no
        native form (recorded in `last_run_fallbacks`, as an error is)."""
        native = self.fused_kernels[name]
        for key in keys:
            found = rows[key[1]]
            arguments.out_rows[self.scatters[key].source] = (found.row_maps[key[2]], found.buffer.shape[0])
        bound = arguments.bind(native.rendered, outputs)
        for key in keys:
            arguments.cache.pop(abi.RowMapArray(self.scatters[key].source, "row"), None)
        if isinstance(bound, Fallback):
            self.last_run_fallbacks[name] = bound.reason
            return None
        arrays, scalars = bound
        pointers = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        values = (ctypes.c_int64 * max(len(scalars), 1))(*scalars)
        error = error_bits(native.function(pointers, values, int(threads)), arguments.bindings)
        if error:
            self.last_run_fallbacks[name] = f"native run reported error bits {error}"
        return error

    def _owned(self, plan, keys, drivers, rows, bindings) -> bool:
        """Whether every entry the terms `keys` of a fused kernel add into has points of one
        position of its driver (each term's own name of it in `drivers`): then its threads may
        share the driver (`runtime/gradients.py: entries_owned`)."""
        owners = [self._fused_owners(plan, key, rows, bindings, driver) for key, driver in zip(keys, drivers)]
        return gradient_blocks.entries_owned(rows, [key[2] for key in keys], owners)

    def _fused_owners(self, plan, key, rows, bindings, driver: str):
        """The driver position (the fused kernel's first loop, named `driver` in term `key`) of each
        point of the term's row grid, flat, or None: the driver itself when it is a row variable,
        else the first atom of a row variable's pair that the shared segment loop `P.from(driver)`
        enumerates."""
        k = key[2]
        scatter = self.scatters[key]
        shape = rows.row_shapes[k]
        loops = plan.plans[0].loops[:plan.shared]
        for axis, var in enumerate(scatter.row_vars):
            if var == driver:
                along = np.arange(shape[axis], dtype=np.int64)
            else:
                segment = [loop for loop in loops if loop.var == var and loop.kind == "pairs_of"
                           and loop.expr == ir.Var(driver)]
                if not segment:
                    continue
                along = np.asarray(bindings.pairs[segment[0].source].first, dtype=np.int64)
                if len(along) != shape[axis]:
                    return None
            index = [None] * len(shape)
            index[axis] = slice(None)
            return np.broadcast_to(along[tuple(index)], shape).reshape(-1)
        return None

    def arguments_for(self, bindings) -> "Arguments":
        """The arguments of the last run when it was on `bindings` (its lookups reused), else new ones."""
        if self._arguments is None or self._arguments.bindings is not bindings:
            self._arguments = Arguments(self, bindings)
        return self._arguments

    def gradient_term(self, kernel: str, wrt: str, k: int, scope, bindings, tables: dict):
        """The values of term `k` of `kernel`'s gradient w.r.t. `wrt` over its axes (a `Named`), filled by
        its native kernel; None when it has none, the scope does not match it, or its run reports an error.

        `scope` binds the term's axes as `runtime/gradients.py` does; each axis of the native
        kernel must be one plain variable of the scope (not a joined binder)."""
        name = self.terms.get((kernel, wrt, k))
        native = self.term_kernels.get(name)
        if native is None:
            return None
        arguments = self.arguments_for(bindings)
        arguments.gradient_tables = tables
        term = native.rendered.plan.kernel
        sizes = []
        for binder in term.indices:
            if binder.name in scope.aliases or binder.name not in scope.values:
                return None
            sizes.append(len(scope.values[binder.name]))
        buffer = np.zeros(tuple(sizes), dtype=self.dtype)
        bound = arguments.bind(native.rendered, [buffer])
        if isinstance(bound, Fallback):
            self.last_run_fallbacks[name] = bound.reason
            return None
        arrays, scalars = bound
        for binder, size in zip(term.indices, sizes):  # the rows domain: its size is the rows'
            if isinstance(binder.domain, ir.PairsDomain) and binder.domain.pairs not in bindings.pairs:
                if size != arguments.scalar(abi.PairCount(binder.domain.pairs)):
                    return None
        pointers = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        values = (ctypes.c_int64 * max(len(scalars), 1))(*scalars)
        error = error_bits(native.function(pointers, values, int(self.run_threads)), bindings)
        del arrays
        if error:
            self.last_run_fallbacks[name] = f"native run reported error bits {error}"
            return None
        return Named(tuple(b.name for b in term.indices), buffer)

    def scatter_term(self, key, buffer: np.ndarray, row_map: np.ndarray, bindings, tables: dict,
                     dense: dict | None = None, threads: int | None = None, shared: bool = False,
                     row_shape: tuple | None = None) -> bool:
        """Add term `key` = (kernel, wrt, k) into `buffer` (rows, columns..., directions) with its
        scatter kernel; `row_map` (over its row variables' domains) gives each point's row.
        `shared`: two points of the driver may add into one entry (`runtime/gradients.py:
        _one_to_one` said no); then the threads run ranges of the driver (`_scatter_shared`;
        `row_shape`: the shape of `row_map`, over the scatter's row variables).
        False when it has none or its run reports an error (`buffer` is then unreliable)."""
        scatter = self.scatters.get(key)
        native = self.term_kernels.get(scatter.name) if scatter is not None else None
        if native is None:
            return False
        arguments = self.arguments_for(bindings)
        arguments.gradient_tables = tables
        arguments.dense_gradients = dense if dense is not None else {}
        bound = self._scatter_arguments(native, scatter, arguments, buffer, row_map)
        if bound is None:
            return False
        arrays, scalars = bound
        threads = int(threads or self.run_threads)
        if shared and threads > 1:
            error = self._scatter_shared(native, scatter, arguments, arrays, scalars, threads, row_map, row_shape)
        else:
            pointers = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
            values = (ctypes.c_int64 * max(len(scalars), 1))(*scalars)
            error = native.function(pointers, values, threads)
        del arrays
        error = error_bits(error, bindings)
        if error:
            self.last_run_fallbacks[scatter.name] = f"native run reported error bits {error}"
            return False
        return True

    def scatter_driver(self, key):
        """`(driver size, driver variable)` of term `key`'s scatter kernel when it can run ranges of its
        driver (`[lo, hi)`: C++ `driver_range` scalars, LLVM `raw(..., lo, hi)`), else None."""
        scatter = self.scatters.get(key)
        native = self.term_kernels.get(scatter.name) if scatter is not None else None
        if native is None:
            return None
        rendered = native.rendered
        llvm = hasattr(native.function, "raw")
        ranged = native.function.parallel if llvm else abi.FIRST in rendered.scalars
        if not ranged or rendered.driver_count is None:
            return None
        return rendered.driver_count, rendered.driver_var

    def scatter_interleaved(self, keys, buffer: np.ndarray, row_maps, bindings, tables: dict, dense: dict | None,
                            chunk: int, threads: int | None = None) -> bool:
        """Add the terms `keys` (of one tensor, each one-to-one, their drivers the same domain) into
        `buffer` in one pass over their common driver: chunk by chunk (`chunk` positions), every
        term on a chunk before the next chunk, so that what the terms read per driver position
        (the rows of the gradient they read, `rho`'s values) and the rows they write are still in
        cache for the next term. Chunks run on `threads` threads (dynamic: each thread takes the
        next chunk and runs every term on it); the caller checks that no entry receives points
        of two chunks (`runtime/gradients.py: _chunk_owned`). False when a kernel cannot run
        (`buffer` is then unreliable: the caller falls back to the interpreter)."""
        arguments = self.arguments_for(bindings)
        arguments.gradient_tables = tables
        arguments.dense_gradients = dense if dense is not None else {}
        prepared = []
        n = None
        for key, row_map in zip(keys, row_maps):
            scatter = self.scatters[key]
            native = self.term_kernels[scatter.name]
            bound = self._scatter_arguments(native, scatter, arguments, buffer, row_map)
            if bound is None:
                return False
            arrays, scalars = bound
            count = native.rendered.driver_count
            size = int(arguments.scalar(count) if isinstance(count, abi.ScalarArgument) else count)
            if n is not None and size != n:
                raise ValueError("interleaved scatter kernels over drivers of different sizes")
            n = size
            llvm = hasattr(native.function, "raw")
            pointers = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
            where = None if llvm else [native.rendered.scalars.index(end) for end in (abi.FIRST, abi.PAST)]
            prepared.append((scatter, native, llvm, arrays, pointers, scalars, where))
        n = n or 0
        chunks = max(1, -(-n // max(1, chunk)))
        threads = max(1, min(int(threads or self.run_threads), chunks))

        def run(lo: int, hi: int) -> int:
            error = 0
            for scatter, native, llvm, arrays, pointers, scalars, where in prepared:
                values = (ctypes.c_int64 * max(len(scalars), 1))(*scalars)
                if llvm:
                    error |= int(native.function.raw(ctypes.cast(pointers, ctypes.c_void_p).value,
                                                     ctypes.cast(values, ctypes.c_void_p).value, lo, hi))
                else:
                    values[where[0]], values[where[1]] = lo, hi
                    error |= int(native.function(pointers, values, 1))
            return error

        error = native_threads.run_chunks(chunks, lambda k: run(k * chunk, min(n, (k + 1) * chunk)), threads, "scatter")
        error = error_bits(error, bindings)
        del prepared
        if error:
            for key in keys:
                self.last_run_fallbacks[self.scatters[key].name] = f"native run reported error bits {error}"
            return False
        return True

    def _scatter_arguments(self, native: NativeKernel, scatter, arguments, buffer: np.ndarray, row_map):
        """The arrays and scalars of a scatter kernel adding into `buffer` through `row_map`, or None
        when an argument cannot be given natively (the reason in `last_run_fallbacks`)."""
        arguments.out_rows[scatter.source] = (row_map, buffer.shape[0])
        bound = arguments.bind(native.rendered, [buffer])
        arguments.cache.pop(abi.RowMapArray(scatter.source, "row"), None)
        if isinstance(bound, Fallback):
            self.last_run_fallbacks[scatter.name] = bound.reason
            return None
        return bound

    def _scatter_shared(self, native: NativeKernel, scatter, arguments, arrays: list, scalars: list,
                        threads: int, row_map: np.ndarray, row_shape, n_outputs: int = 1) -> int:
        """A scatter kernel whose points may share an entry, on `threads` threads, each running a
        contiguous range of the driver (the kernel's outer loop, a variable of the row map):
        - by owner where possible: the ranges are cut where no row has points on both sides
          (`owner_splits`), so the threads add into distinct rows of the one buffer;
        - else, where the buffers fit in `PRIVATE_LIMIT` bytes (a strain or cell gradient: a row
          per system), thread t adds into its own zeroed buffer (thread 0 into the output) and
          the buffers are added into the output in thread order;
        - else on one thread.
        Deterministic for a given number of threads."""
        buffer = arrays[0]
        rendered = native.rendered
        count = rendered.driver_count
        llvm = hasattr(native.function, "raw")  # codegen/llvm/driver.py: LLVMKernel(arrays, scalars, lo, hi)
        ranged = native.function.parallel if llvm else abi.FIRST in rendered.scalars
        n = (arguments.scalar(count) if isinstance(count, abi.ScalarArgument) else count) if ranged else None
        bounds = None
        if n is not None and n > 1 and rendered.driver_var in scatter.row_vars and row_shape is not None:
            threads = min(threads, int(n))
            axis = scatter.row_vars.index(rendered.driver_var)
            if row_shape[axis] == n:
                bounds = owner_splits(row_map, row_shape, axis, buffer.shape[0], threads)
        buffers = [buffer] * (threads if bounds is not None else 0)
        if bounds is None and n is not None and n > 1 and buffer.nbytes * (threads - 1) <= PRIVATE_LIMIT:
            n = int(n)
            bounds = [n * t // threads for t in range(threads + 1)]
            buffers = [buffer] + [np.zeros_like(buffer) for _ in range(threads - 1)]
        if bounds is None:
            pointers = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
            values = (ctypes.c_int64 * max(len(scalars), 1))(*scalars)
            return int(native.function(pointers, values, 1))
        where = [rendered.scalars.index(end) for end in (abi.FIRST, abi.PAST)] if not llvm else None

        def work(t: int) -> int:
            own = [buffers[t]] * n_outputs + arrays[n_outputs:]
            pointers = (ctypes.c_void_p * len(own))(*[a.ctypes.data for a in own])
            mine = list(scalars)
            if llvm:
                values = (ctypes.c_int64 * max(len(mine), 1))(*mine)
                return int(native.function.raw(ctypes.cast(pointers, ctypes.c_void_p).value,
                                               ctypes.cast(values, ctypes.c_void_p).value, bounds[t], bounds[t + 1]))
            mine[where[0]], mine[where[1]] = bounds[t], bounds[t + 1]
            values = (ctypes.c_int64 * max(len(mine), 1))(*mine)
            return int(native.function(pointers, values, 1))

        parts = len(bounds) - 1
        pool = native_threads.pool("scatter", parts - 1)
        helpers = [pool.submit(work, t) for t in range(1, parts)]
        error = work(0)
        for helper in helpers:
            error |= helper.result()
        for private in buffers[1:]:
            if private is not buffer:
                buffer += private
        return error

    def _assemble(self, interpreter, kernel, buffer):
        """The TensorMap of `kernel` from a `buffer` of its grid: the labels of the last run's
        assembly at these bindings when there is one (`layout()`), else computed and kept."""
        body = Named(tuple(b.name for b in kernel.indices), buffer)
        layout = self.layout(interpreter.bindings, kernel.name)
        if layout is None and self.fast_assembly:
            layout = separable_layout(interpreter, kernel)
            if layout is not None and self._run_layouts[0] is interpreter.bindings:
                self._run_layouts[1][kernel.name] = layout
        return evaluate_kernel(interpreter, kernel, body, layout=layout)

    def computed(self, bindings, names) -> dict | None:
        """`{name: Computed}` of the last run at `bindings` for the tensors `names` (their dense
        buffers, TensorMaps when assembled, labels), or None when one has no buffer (the
        interpreter computed it) or the last run was elsewhere."""
        if self._arguments is None or self._arguments.bindings is not bindings:
            return None
        found = {}
        for name in names:
            buffer = self._arguments.grids.get(name)
            if buffer is None:
                return None
            found[name] = Computed(buffer, bindings.tensors.get(name), self.layout(bindings, name))
        return found

    def layout(self, bindings, name: str):
        """The labels of tensor `name` as the last run at `bindings` assembled them (a
        `SeparableLayout`: `.fill(body)` makes a TensorMap of any body), or None."""
        found, layouts = self._run_layouts
        return layouts.get(name) if found is bindings else None


def compile_module(module: ir.Module, backend: str = "cpp", dtype=np.float64, threads: int | None = None,
                   gradients: dict | None = None, extra: tuple = ()) -> CompiledModule:
    """Render, compile (through the kernel cache) and load `module`, with the terms of its
    gradient kernels (`gradients`: `{wrt: {kernel: GradientKernel}}`, `mtdsl.ir.passes.autodiff`) as
    kernels of the same library (`mtdsl/ir/passes/terms.py`). `extra`: more kernels compiled in the same
    library after the module's (reverse and tangent products, `runtime/gradients/native_products.py`); they
    are in `.kernels` but `.run()` never runs them (it runs `module.kernels`). The building is
    the backend's (`codegen/backends.py`: `Backend.load`); this wraps the library in the runtime's `CompiledModule`.

    A kernel whose body is several terms renders its first term (with its fused kernels), the
    others are kernels of their own whose buffers the run adds (runtime/native/body_parts.py); the
    rendering is `mtdsl.codegen.render`'s and `mtdsl compile --emit`'s (`codegen/build.py: rendering`)."""
    rendered, library, path, hit, terms, parts = native_backend(backend).load(
        module, dtype=dtype, gradients=gradients, extra=extra)
    return with_parts(CompiledModule(module, rendered, library, path, hit, threads, terms), parts)


def model_arguments(model, gradients: dict | None = None) -> dict:
    """What a model (`runtime/model.py`) gives `compile_module`: its module, backend, dtype and
    gradient kernels (every declared gradient's unless `gradients`, `{wrt: {kernel: GradientKernel}}`,
    says; `{}`: the values only, as for a call without gradients). `mtdsl compile --emit` renders the
    same through `mtdsl.codegen.render`."""
    return {"module": model.module, "backend": model.backend, "dtype": model.dtype,
            "gradients": model.gradient_kernels if gradients is None else gradients}

