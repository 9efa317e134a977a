"""Reverse (VJP) and tangent (JVP) products of computed tensors with respect to the positions and
the cell, as generated native kernels: the forward-mode gradient terms contracted with a
cotangent or a tangent inside the kernels, so that the tensor's own gradient is never
materialized (`docs/gradients.md`, "Reverse products").

For a tensor `T` of the module with forward-mode gradient blocks `G` (`docs/gradients.md`):

    positions_bar[atom, x] = sum over the rows r of atom, over T's columns, of G[r, x, cols] C[sample(r), cols]
    cell_bar[system, a, x] = sum over the rows r of system, ...,            of G[r, a, x, cols] C[sample(r), cols]

(`cell_bar[s, a, x] = d<C, T>/dH_ax` at fixed Cartesian positions, H's rows the lattice vectors,
the layout of the `cell` gradient blocks.) Each term of `T`'s gradient becomes a *VJP kernel*
(`mtdsl/ir/passes/products.py: vjp_kernel`): the term's columns are summed binders, its coefficient is
multiplied by the cotangent read at `T`'s own entry from a dense grid of `T`'s layout (filled
here from the cotangent's blocks), and its output rows are the term's targets: atoms x 3 or
systems x 3 x 3. When `T` reads computed tensors that depend on the positions or the cell (the
power spectrum reads the spherical expansion), the VJP goes *through* them (`self.through`): a
reverse sweep computes the cotangent of each tensor read from its readers' (`mtdsl/ir/passes/products.py:
tensor_vjp_kernel`, from `autodiff.differentiate_tensor`, the derivative with respect to the
entries of a computed tensor), then contracts each tensor's own terms (those that read no
gradient rows) with its cotangent; the JVP is the forward sweep (`tensor_jvp_kernel`). No
gradient of any tensor is materialized. Where a sweep does not lower (or `through=False`), the
gradients of the tensors `T` reads are materialized as for `model(frames, gradients=...)`, by
their scatter kernels, and read by `T`'s VJP kernels from their buffers.

A *JVP kernel* (`mtdsl/ir/passes/products.py: jvp_kernel`) has `T`'s own dense layout: it sums each term
over its binders and directions, times the tangent read at the term's target, into the entry
its aliases pick (`T_dot[sample, cols] = sum_r G[r, x, cols] positions_dot[atom(r), x] + ...`).

    products = NativeProducts(module, ["ps"], backend="cpp", dtype=np.float64)
    products.run(bindings)                                   # values (through=False: + the gradients ps reads)
    positions_bar, cell_bar = products.vjp(bindings, {"ps": [c0, c1, ...]})   # one array per block of ps
    ps_dot = products.jvp(bindings, positions_dot, cell_dot)["ps"]             # one array per block of ps

`names` must be pure functions of the structure (no params, no input tensormaps), unless
`constants=True`: the params and input tensormaps the names read are then constants of the
products (taken from `bindings`, as `Model.bind` fills them), which is what a VJP with respect to
the positions and the cell needs (`Model.__call__`'s reverse gradient blocks).
"""

from __future__ import annotations

import ctypes
import dataclasses
from dataclasses import dataclass, field

import numpy as np

from mtdsl.errors import Unsupported
from mtdsl.ir.passes.products import (
    cotangent_kernel,
    cotangent_tensor,
    gradient_reads,
    jvp_kernel,
    sweep_kernels,
    tangent_kernel,
    tangent_tensor,
    tensor_tangent,
    vjp_kernel,
)
from mtdsl.ir.passes import autodiff as ad
from mtdsl.ir import nodes as ir
from mtdsl.codegen.schedule.fuse import fused_group
from mtdsl.codegen.schedule import abi
from mtdsl.ir.passes.terms import ScatterTerm
from mtdsl.ir.reads import kernel_reads, read_closure
from mtdsl.ir.roles import FusedName, JvpKernel, RowMap
from mtdsl.tensor import TensorBlock, TensorMap

from ..bindings import Bindings, RunError
from ..native.block_lookup import error_bits
from ..native.compiled import Fallback, compile_module, default_threads
from .forward import _needed, compute_gradients
from ..evaluate.evaluator import Evaluator

#: the gradients products are taken with respect to, and the shape of each product per target
PRODUCTS_WRT = ("positions", "cell")


#: a VJP kernel has no row map (its targets are bound by equality): never cut by owner
_NO_ROW_MAP = ScatterTerm("", "", (), ())


def _parallel_over_an_index(rendered) -> bool:
    """Whether a rendered kernel runs serially or in parallel over one of its own indices, so that
    threads never share an entry and it may be called on every thread as it is (C++: no driver
    range, the OpenMP loop if any is over an index; LLVM: the driver variable is an index)."""
    if abi.FIRST in rendered.scalars:
        return False
    if rendered.driver_var is not None:
        return all(rendered.driver_var in {b.name for b in plan.kernel.indices} for plan in _member_plans(rendered))
    return True


def _member_plans(rendered) -> list:
    """The plans of a rendered kernel's members (a fused kernel's, `codegen/schedule/plan.py: FusedPlan`),
    or its own plan."""
    return list(rendered.plan.plans) if hasattr(rendered.plan, "plans") else [rendered.plan]


class ProductUnsupported(Unsupported):
    """A term of a tensor's gradient that has no VJP kernel (or whose kernel does not render)."""


@dataclass
class _State:
    """What `run(bindings)` leaves for `vjp(bindings, ...)`."""

    bindings: Bindings
    tables: dict = field(default_factory=dict)  # wrt -> {(tensor, wrt): GradientTable}
    dense: dict = field(default_factory=dict)  # wrt -> {(tensor, wrt): buffer written by scatter kernels}
    index: dict = field(default_factory=dict)  # name -> [int64 array per block: flat grid position of each entry]
    sizes: dict = field(default_factory=dict)  # name -> the grid's shape


def check_pure(module: ir.Module, name: str) -> None:
    """`name` and the tensors it reads must not read params or input tensormaps (ValueError)."""
    inputs = {t.name for t in module.tensormaps}
    for kernel in read_closure(module, [name]):
        for kind, what in sorted(kernel_reads(kernel)):
            if kind == "param":
                raise ValueError(f"native products of {name}: it reads the parameter {what} (through {kernel.name})")
            if what in inputs:
                raise ValueError(f"native products of {name}: it reads the input tensormap {what} "
                                 f"(through {kernel.name})")


class NativeProducts:
    """Native reverse products (VJP) of tensors `names` of `module` with respect to the positions
    and the cell (see the module's docstring)."""

    def __init__(self, module: ir.Module, names: list[str], backend: str, dtype=np.float64, threads=None,
                 wrt: tuple = PRODUCTS_WRT, through: bool = True, constants: bool = False):
        if backend not in ("cpp", "llvm"):
            raise ValueError(f"native products need a native backend ('cpp' or 'llvm'), got {backend!r}")
        unknown = [w for w in wrt if w not in PRODUCTS_WRT]
        if unknown or not wrt:
            raise ValueError(f"native products are taken with respect to {list(PRODUCTS_WRT)}, not {list(wrt)}")
        #: the products computed (the others are zeros): positions, cell or both
        self.wrt = tuple(w for w in PRODUCTS_WRT if w in wrt)
        self.module = module
        self.names = list(dict.fromkeys(names))
        self.backend = backend
        self.dtype = np.dtype(dtype)
        self.threads = threads
        kernels = {k.name: k for k in module.kernels}
        for name in self.names:
            if name not in kernels:
                raise ValueError(f"native products: {name!r} is not a tensor of module {module.name}")
            if not constants:
                check_pure(module, name)
        product = dataclasses.replace(module, outputs=tuple(ir.Output(n, PRODUCTS_WRT) for n in self.names))
        #: wrt -> {name: GradientKernel} of the names (absent: the name does not depend on wrt)
        self.gradients: dict = {}
        everything: dict = {}  # wrt -> {tensor: GradientKernel} of the names and the tensors they read
        for wrt in self.wrt:
            own, found_all = {}, {}
            for name in self.names:
                if ad.gradient_kernel(product, wrt, name) is None:
                    continue  # it does not depend on wrt: its product is zero
                found = ad.differentiate(product, wrt, outputs=[name])
                own[name] = found[name]
                found_all.update(found)
            self.gradients[wrt] = own
            everything[wrt] = found_all
        refused: set = set() if through else set(self.names)
        while True:
            self._plan(kernels, everything, refused)
            forward = {wrt: kernels_ for wrt, kernels_ in self.forward.items() if kernels_}
            self.compiled = compile_module(module, backend=backend, dtype=self.dtype, threads=threads,
                                           gradients=forward, extra=self.extra + self.fused_extra)
            unsupported = self.compiled.rendered.unsupported
            failed = {name for name, tensors in self.through.items()
                      if any(k in unsupported for k in self._sweep_kernels(tensors))}
            if not failed:
                break
            refused |= failed  # those go through the gradients of the tensors they read, as before
        for key, names_ in list(self.jvp_kernels.items()):
            if key[0] in self.through:
                continue
            failed = [n for n in names_ if n in unsupported]
            if failed:
                self.jvp_unsupported[key] = f"{failed[0]} does not render: {unsupported[failed[0]]}"
                del self.jvp_kernels[key]
        jvp = {n for key, names_ in self.jvp_kernels.items() if key[0] not in self.through for n in names_}
        for kernel in self.extra:
            if kernel.name in unsupported and kernel.name not in jvp and not isinstance(kernel.name, JvpKernel):
                raise ProductUnsupported(f"{kernel.name} does not render: {unsupported[kernel.name]}")
        self._readers: dict = {}
        self._state: _State | None = None

    # -- the plan: which kernels compute which product -------------------------------------------
    def _plan(self, kernels: dict, everything: dict, refused: set) -> None:
        """The kernels of the products. A name that reads computed tensors depending on the
        positions or the cell goes *through* them when every kernel below lowers (`self.through`):
        its VJP is a reverse sweep (`read_vjp`: the cotangent of each tensor read, from the
        cotangent of its reader; `direct_vjp`: each tensor's terms that read no gradient rows,
        contracted with its cotangent), its JVP a forward sweep (`direct_jvp`, `read_jvp`), and
        no gradient of the tensors it reads is computed. The others (`refused`, or whose sweep
        does not lower) read those gradients, materialized by their scatter kernels."""
        module = self.module
        #: wrt -> {tensor: GradientKernel} of the tensors whose gradient blocks the old path reads
        self.forward = {}
        #: wrt -> the tensors read through their gradient rows (forward gradients computed by `run`)
        self.reads = {}
        #: (name, wrt) -> VJP kernel names, one per term (a name going through: its own direct terms)
        self.vjp_kernels = {}
        #: (name, wrt) -> JVP kernel names, one per term (absent: see `jvp_unsupported`)
        self.jvp_kernels = {}
        #: (name, wrt) -> why it has no JVP kernels
        self.jvp_unsupported = {}
        #: name -> the tensors its products go through, in the module's order (the name last)
        self.through = {}
        #: (tensor, wrt) -> the VJP / JVP kernels of the tensor's terms that read no gradient rows
        self.direct_vjp, self.direct_jvp = {}, {}
        #: tensor -> [(tensor read, kernel name, gathered)]: cotangent of the read tensor from the
        #: tensor's (`read_vjp`), the tensor's tangent from the read tensor's (`read_jvp`)
        self.read_vjp, self.read_jvp = {}, {}
        stand_ins = [cotangent_kernel(kernels[n]) for n in self.names]
        stand_ins += [tangent_kernel(module, wrt) for wrt in self.wrt]
        extra: dict = {k.name: k for k in stand_ins}
        built: dict = {}  # tensor -> (kernels, stand-ins) or the error
        for name in self.names:
            if name in refused:
                continue
            try:
                tensors = self._closure(name, kernels, everything, built)
            except (Unsupported, ad.AutodiffError):
                continue
            if len(tensors) == 1:
                continue  # reads no computed tensor: the same kernels either way
            self.through[name] = tensors
        swept = [t for t in kernels if any(t in tensors for tensors in self.through.values())]
        for tensor in swept:  # the stand-ins are rendered before the kernels that read them
            for kernel in built[tensor][1]:
                extra.setdefault(kernel.name, kernel)
        for tensor in swept:
            for kernel in built[tensor][0]:
                extra.setdefault(kernel.name, kernel)
        for tensor in {t for tensors in self.through.values() for t in tensors}:
            self.direct_vjp.update(built[tensor][2]["direct_vjp"])
            self.direct_jvp.update(built[tensor][2]["direct_jvp"])
            self.read_vjp[tensor] = built[tensor][2]["read_vjp"]
            self.read_jvp[tensor] = built[tensor][2]["read_jvp"]
        for name in self.through:
            for wrt in self.wrt:
                if name in self.gradients[wrt]:
                    self.vjp_kernels[(name, wrt)] = list(self.direct_vjp.get((name, wrt), ()))
                    self.jvp_kernels[(name, wrt)] = list(self.direct_jvp.get((name, wrt), ()))
        for wrt in self.wrt:
            own = {n: g for n, g in self.gradients[wrt].items() if n not in self.through}
            reads = []
            for gradient in own.values():
                reads += [t for t in gradient_reads(gradient) if t not in reads]
            needed = _needed(module, everything[wrt], reads)
            self.reads[wrt] = [k.name for k in module.kernels if k.name in reads]
            self.forward[wrt] = {k.name: everything[wrt][k.name] for k in module.kernels if k.name in needed}
            for name, gradient in own.items():
                lowered = []
                for k, term in enumerate(gradient.terms):
                    try:
                        lowered.append(vjp_kernel(module, kernels[name], gradient, k, term))
                    except Unsupported as error:
                        raise ProductUnsupported(f"term {k} of d{name}/d{wrt} has no VJP kernel: {error}") from None
                self.vjp_kernels[(name, wrt)] = [kernel.name for kernel in lowered]
                for kernel in lowered:
                    extra.setdefault(kernel.name, kernel)
                try:  # tangent products: optional (the VJP does not need them)
                    tangents = [jvp_kernel(module, kernels[name], gradient, k, term)
                                for k, term in enumerate(gradient.terms)]
                except Unsupported as error:
                    self.jvp_unsupported[(name, wrt)] = str(error)
                else:
                    self.jvp_kernels[(name, wrt)] = [kernel.name for kernel in tangents]
                    for kernel in tangents:
                        extra.setdefault(kernel.name, kernel)
        stand_in_names = {k.name for k in stand_ins}
        for tensors in self.through.values():
            for tensor in tensors:
                for kernel in built[tensor][1]:
                    stand_in_names.add(kernel.name)
        self.extra = tuple(extra.values())
        #: the stand-in kernels (cotangents, tangents) whose grids the runtime fills, by name
        self.stand_ins = {name: extra[name] for name in stand_in_names}
        #: (product kernel names) -> the name of their fused kernel: the terms of one gradient in one
        #: pass over the pairs (`codegen/schedule/fuse.py: fused_group`), compiled with the product kernels
        self.fused_products, fused = {}, []
        pair_systems = {p.name: p.systems for p in module.pairs}
        for lists in (self.vjp_kernels, self.jvp_kernels, self.direct_vjp, self.direct_jvp):
            for names in lists.values():
                if len(names) > 1 and tuple(names) not in self.fused_products:
                    group = fused_group(FusedName(names[0]), [extra[n] for n in names], pair_systems)
                    if group is not None:
                        self.fused_products[tuple(names)] = group.name
                        fused.append(group)
        self.fused_extra = tuple(fused)

    def _closure(self, name: str, kernels: dict, everything: dict, built: dict) -> list[str]:
        """`name` and the computed tensors it reads through their gradients (recursively), in the
        module's order, each with its sweep kernels built into `built` (raises Unsupported when
        one does not lower)."""
        order = {k.name: position for position, k in enumerate(self.module.kernels)}
        stack, seen = [name], set()
        while stack:
            tensor = stack.pop()
            if tensor in seen:
                continue
            seen.add(tensor)
            if tensor not in built:
                try:
                    built[tensor] = self._sweep(tensor, kernels, everything)
                except (Unsupported, ad.AutodiffError) as error:
                    built[tensor] = error
            if isinstance(built[tensor], Exception):
                raise built[tensor]
            stack += [read for read, _, _ in built[tensor][2]["read_vjp"]]
        return sorted(seen, key=order.__getitem__)

    def _sweep(self, tensor: str, kernels: dict, everything: dict):
        """`(kernels, stand-ins, {"direct_vjp", "direct_jvp", "read_vjp", "read_jvp"})` of one tensor."""
        gradients = {wrt: everything[wrt].get(tensor) for wrt in self.wrt}
        return sweep_kernels(self.module, kernels, tensor, {w: g for w, g in gradients.items() if g is not None})

    def _sweep_kernels(self, tensors) -> list[str]:
        names = []
        for tensor in tensors:
            for key, value in list(self.direct_vjp.items()) + list(self.direct_jvp.items()):
                if key[0] == tensor:
                    names += value
            names += [k for _, k, _ in self.read_vjp.get(tensor, ()) + self.read_jvp.get(tensor, ())]
        return names

    def _swept(self) -> list[str]:
        """The tensors of every name's sweep, in the module's order."""
        swept = {t for tensors in self.through.values() for t in tensors}
        return [k.name for k in self.module.kernels if k.name in swept]

    # -- values and the gradients the products read ----------------------------------------------
    def run(self, bindings: Bindings, precomputed: dict | None = None) -> None:
        """The values at `bindings` (every tensor's TensorMap in `bindings.tensors`), the gradient
        blocks of the tensors the names not going through read (attached to them), and the layout
        of each name. `precomputed`: tensors computed at the same values by another run
        (`CompiledModule.run`)."""
        compiled = self.compiled
        compiled.run(bindings, threads=self.threads, all_tensors=True, precomputed=precomputed)
        state = _State(bindings)
        for wrt in self.wrt:
            if self.reads.get(wrt):
                interpreter = compute_gradients(self.module, bindings, self.forward[wrt], wrt, self.reads[wrt],
                                                native=compiled)
                state.tables[wrt] = dict(interpreter.gradient_tables)
                state.dense[wrt] = dict(interpreter.dense_gradients)
        interpreter = Evaluator(self.module, bindings)
        for name in self.names:
            state.index[name], state.sizes[name] = self._entries(interpreter, name, bindings)
        for tensor in self._swept():
            if tensor not in state.sizes:
                kernel = self.module.kernel(tensor)
                state.sizes[tensor] = tuple(len(bindings.domain_values(b.domain)) for b in kernel.indices)
        self._state = state

    def holds(self, bindings: Bindings) -> bool:
        """Whether the last `run` was at `bindings` (its products can be taken)."""
        return self._state is not None and self._state.bindings is bindings

    def release(self, bindings: Bindings) -> None:
        """Drop the buffers of the run at `bindings` (the gradients it read), if it is the last."""
        if self.holds(bindings):
            self._state = None

    def _entries(self, interpreter, name: str, bindings: Bindings):
        """For each block of `name`, the flat position in its kernel's dense grid of each entry
        (the assembly run on the positions themselves), and the grid's shape."""
        kernel = self.module.kernel(name)
        sizes = tuple(len(bindings.domain_values(b.domain)) for b in kernel.indices)
        total = int(np.prod(sizes, dtype=np.int64))
        exact = 2**53 if self.dtype == np.float64 else 2**24
        positions = np.arange(total, dtype=np.int64)
        if total <= exact:
            parts = [positions]
        else:  # float32 values: positions in two exact halves
            parts = [positions // 4096, positions % 4096]
        assembled = []  # (with the labels of the run's own assembly at these bindings, when it made one)
        for part in parts:
            body = np.ascontiguousarray(part.reshape(sizes), dtype=self.dtype)
            assembled.append(self.compiled._assemble(interpreter, kernel, body))
        tensor = bindings.tensors[name]
        if len(assembled[0]) != len(tensor) or assembled[0].keys != tensor.keys:
            raise RunError(f"native products of {name}: its layout does not match its values")
        index = []
        for b in range(len(tensor)):
            values = [np.rint(np.asarray(t.block(b).values)).astype(np.int64) for t in assembled]
            flat = values[0] if len(values) == 1 else values[0] * 4096 + values[1]
            if flat.shape != tensor.block(b).values.shape:
                raise RunError(f"native products of {name}: its layout does not match its values")
            index.append(flat)
        return index, sizes

    def _index(self, state: _State, tensor: str):
        if tensor not in state.index:
            state.index[tensor], state.sizes[tensor] = self._entries(
                Evaluator(self.module, state.bindings), tensor, state.bindings)
        return state.index[tensor]

    # -- reverse products -------------------------------------------------------------------------
    def vjp(self, bindings: Bindings, cotangents: dict) -> tuple[np.ndarray, np.ndarray]:
        """`(positions_bar [n_atoms, 3], cell_bar [n_systems, 3, 3])`: the sum over the names of the
        products of their gradients with `cotangents[name]` (one array per block, shaped like the
        block's values; a name absent contributes nothing). After `run(bindings)`."""
        state = self._state
        if state is None or state.bindings is not bindings:
            raise RunError("NativeProducts.vjp: call run(bindings) first, with the same bindings")
        unknown = set(cotangents) - set(self.names)
        if unknown:
            raise ValueError(f"NativeProducts.vjp: cotangents of {sorted(unknown)}, products of {self.names}")
        batch = next(iter(bindings.systems.values()))
        outputs = {"positions": np.zeros((batch.n_atoms, 3), dtype=self.dtype),
                   "cell": np.zeros((batch.n_systems, 3, 3), dtype=self.dtype)}
        arguments = self.compiled.arguments_for(bindings)
        grids = {}  # the cotangents of the tensors swept, as grids of their layouts
        for name in self.names:
            if name not in cotangents:
                continue
            grid = self._cotangent_grid(name, cotangents[name])
            if name in self.through:
                grids[name] = grid if name not in grids else grids[name] + grid
                continue
            self._install_grid(arguments, cotangent_tensor(name), name, grid)
            for wrt in PRODUCTS_WRT:
                outputs[wrt] += self._run_products(self.vjp_kernels.get((name, wrt), ()), arguments, state, wrt,
                                                   outputs[wrt].shape)
        for tensor in reversed(self._swept()):  # the reverse sweep: readers before what they read
            if tensor not in grids:
                continue
            self._install_grid(arguments, cotangent_tensor(tensor), tensor, grids.pop(tensor))
            for wrt in self.wrt:
                outputs[wrt] += self._run_products(self.direct_vjp.get((tensor, wrt), ()), arguments, state, wrt,
                                                   outputs[wrt].shape)
            for read, kernel, gathered in self.read_vjp.get(tensor, ()):
                sizes = tuple(state.sizes[read])
                found = self._run_product(kernel, arguments, state, None, sizes if gathered else (1,) + sizes)
                found = found.reshape(sizes)
                grids[read] = found if read not in grids else grids[read] + found
        return outputs["positions"], outputs["cell"]

    def _cotangent_grid(self, name: str, blocks) -> np.ndarray:
        state = self._state
        tensor = state.bindings.tensors[name]
        blocks = list(blocks)
        if len(blocks) != len(tensor):
            raise ValueError(f"cotangent of {name}: {len(blocks)} arrays for {len(tensor)} blocks")
        grid = np.zeros(int(np.prod(state.sizes[name], dtype=np.int64)), dtype=self.dtype)
        for b, (index, values) in enumerate(zip(state.index[name], blocks)):
            values = np.asarray(values)
            if values.shape != index.shape:
                raise ValueError(f"cotangent of {name}, block {b}: shape {values.shape}, the block's values "
                                 f"are {index.shape}")
            grid[index.reshape(-1)] = values.reshape(-1)
        return grid.reshape(state.sizes[name])

    def _install_grid(self, arguments, source: str, tensor: str, grid: np.ndarray) -> None:
        """`grid` (of `tensor`'s layout) as the dense grid of the stand-in `source` (a cotangent or a
        tangent), and as a TensorMap of `tensor`'s blocks for kernels that read it through lookup
        tables."""
        state = self._state
        for argument in [d for d in arguments.cache if isinstance(d, abi.Argument) and (
                d.subject == source or (isinstance(d.subject, tuple) and d.subject and d.subject[0] == source))]:
            del arguments.cache[argument]
        for key in [k for k in arguments.lookups if k[0] == source]:
            del arguments.lookups[key]
        arguments.grids[source] = np.ascontiguousarray(grid, dtype=self.dtype).reshape(state.sizes[tensor])
        if source not in self._readers:
            self._readers[source] = any(
                isinstance(d, abi.BlockTable) and d.key[0] == source for kernel in self.extra
                if kernel.name not in self.stand_ins and kernel.name in self.compiled.kernels
                for d in self.compiled.kernels[kernel.name].rendered.arrays[1:])
        if self._readers[source]:
            values = arguments.grids[source].reshape(-1)
            blocks = state.bindings.tensors[tensor]
            found = [TensorBlock(np.ascontiguousarray(values[index]), block.samples, list(block.components),
                                 block.properties)
                     for index, block in zip(self._index(state, tensor), blocks.blocks())]
            state.bindings.tensors[source] = TensorMap(blocks.keys, found)

    def _run_products(self, names, arguments, state: _State, wrt, shape: tuple) -> np.ndarray:
        """The sum of the product kernels `names` (the terms of one gradient), into a zeroed buffer
        of `shape`: by their fused kernel when they have one (one pass over the pairs for the
        expansion's two terms, `codegen/schedule/fuse.py: fused_group`), else one after the other."""
        fused = self.fused_products.get(tuple(names))
        if fused is not None and fused in self.compiled.kernels:
            return self._run_product(fused, arguments, state, wrt, shape, outputs=len(names))
        total = np.zeros(shape, dtype=self.dtype)
        for name in names:
            total += self._run_product(name, arguments, state, wrt, shape)
        return total

    def _run_product(self, name: str, arguments, state: _State, wrt, shape: tuple, outputs: int = 1) -> np.ndarray:
        """One product kernel into a zeroed buffer of `shape`. A kernel with a one-row or a target
        `·out·` index runs on ranges of its driver, one thread each, into per-thread buffers (its
        points share entries), through `CompiledModule._scatter_shared`; one that gathers (or runs
        over one of its own indices) runs as it is."""
        compiled = self.compiled
        native = compiled.kernels[name]
        rendered = native.rendered
        buffer = np.zeros(shape, dtype=self.dtype)
        arguments.gradient_tables = state.tables.get(wrt, {})
        arguments.dense_gradients = state.dense.get(wrt, {})
        for plan in _member_plans(rendered):
            first = plan.kernel.indices[0].domain
            if isinstance(first, ir.PairsDomain) and isinstance(first.pairs, RowMap):
                arguments.out_rows[first.pairs] = (np.zeros(1, dtype=np.int64), shape[0])
        bound = arguments.bind(rendered, [buffer] * outputs, self._scalar)
        if isinstance(bound, Fallback):
            raise RunError(f"{name}: {bound.reason}")
        arrays, scalars = bound
        threads = int(self.threads or compiled.run_threads or default_threads())
        if threads <= 1 or _parallel_over_an_index(rendered):  # each iteration writes entries of its own
            pointers = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
            values = (ctypes.c_int64 * max(len(scalars), 1))(*scalars)
            error = native.function(pointers, values, threads)
        else:
            error = compiled._scatter_shared(native, _NO_ROW_MAP, arguments, arrays, scalars, threads, None, None,
                                             n_outputs=outputs)
        error = error_bits(error, state.bindings)
        if error:
            raise RunError(f"{name}: the native run reported error bits {error}")
        return buffer

    def _scalar(self, arguments, argument) -> int:
        if isinstance(argument, abi.GridSize) and argument.tensor in self.stand_ins:
            kernel = self.stand_ins[argument.tensor]
            return len(arguments.bindings.domain_values(kernel.indices[argument.axis].domain))
        return arguments.scalar(argument)

    # -- tangent products ------------------------------------------------------------------------
    def jvp(self, bindings: Bindings, positions_dot=None, cell_dot=None) -> dict:
        """`{name: [array per block]}`: the products of the names' gradients with the tangents
        `positions_dot [n_atoms, 3]` and `cell_dot [n_systems, 3, 3]` (`cell_dot[s, a, x]` moves
        `H_ax`; None: zero), in each name's own layout. After `run(bindings)`. Raises
        `ProductUnsupported` for a name some of whose terms have no JVP kernel."""
        state = self._state
        if state is None or state.bindings is not bindings:
            raise RunError("NativeProducts.jvp: call run(bindings) first, with the same bindings")
        batch = next(iter(bindings.systems.values()))
        tangents = {"positions": (positions_dot, (batch.n_atoms, 3)), "cell": (cell_dot, (batch.n_systems, 3, 3))}
        arguments = self.compiled.arguments_for(bindings)
        for wrt, (value, shape) in tangents.items():
            if value is None or wrt not in self.wrt:
                continue
            value = np.ascontiguousarray(value, dtype=self.dtype)
            if value.shape != shape:
                raise ValueError(f"the tangent of the {wrt} has shape {value.shape}, expected {shape}")
            source = tangent_tensor(wrt)
            arguments.cache.pop(abi.Grid(source), None)
            arguments.grids[source] = value
        given = [wrt for wrt in self.wrt if tangents[wrt][0] is not None]
        dots = {}  # the forward sweep: the tangents of the tensors swept, as grids of their layouts
        read = {r for found in self.read_jvp.values() for r, _, _ in found}
        for tensor in self._swept():
            sizes = tuple(state.sizes[tensor])
            grid = np.zeros(sizes, dtype=self.dtype)
            for wrt in given:
                grid += self._run_products(self.direct_jvp.get((tensor, wrt), ()), arguments, state, wrt,
                                           (1,) + sizes).reshape(sizes)
            for _, kernel, gathered in self.read_jvp.get(tensor, ()):
                grid += self._run_product(kernel, arguments, state, None,
                                          sizes if gathered else (1,) + sizes).reshape(sizes)
            dots[tensor] = grid
            if tensor in read:
                self._install_grid(arguments, tensor_tangent(tensor), tensor, grid)
        result = {}
        for name in self.names:
            if name in self.through:
                flat = dots[name].reshape(-1)
                result[name] = [flat[index] for index in state.index[name]]
                continue
            sizes = (1,) + tuple(state.sizes[name])
            grid = np.zeros(sizes, dtype=self.dtype)
            for wrt, (value, _) in tangents.items():
                if value is None or name not in self.gradients.get(wrt, {}):
                    continue
                if (name, wrt) in self.jvp_unsupported:
                    raise ProductUnsupported(f"d{name}/d{wrt} has no JVP kernels: {self.jvp_unsupported[(name, wrt)]}")
                grid += self._run_products(self.jvp_kernels.get((name, wrt), ()), arguments, state, wrt, sizes)
            flat = grid.reshape(-1)
            result[name] = [flat[index] for index in state.index[name]]
        return result
