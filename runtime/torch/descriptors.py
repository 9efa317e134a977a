"""The structural part of a model: tensors that are functions of the systems alone.

A kernel is *structural* when it reads no `param`, no input TensorMap and only
structural tensors: the spherical expansion and the power spectrum of
`examples/soap_energy.mt`, not its energy. The structural tensors that the rest
of the program (or the caller) reads are the model's *descriptors*. The torch
module (runtime/torch/module.py) computes them with the model's backend and
their vector-Jacobian and Jacobian-vector products from their forward-mode
gradient blocks (positions and cell, compiled like any declared gradient,
docs/gradients.md), so that only the program downstream of them is evaluated
with torch tensors: the scheme of featomic-torch, for every program.

`Descriptors(model)` finds them; `Descriptors.run(batch, pairs, wrt)` computes
their values and prepares their products (a `DescriptorRun`), whose `vjp` and
`jvp` take torch tensors. With a native backend the products are native VJP and
JVP kernels (runtime/gradients/native_products.py: the descriptors' own gradients are
never materialized); otherwise, or when some term has no such kernel, the
gradient blocks are computed and contracted in torch (`BlockRun`):

    vjp: positions_bar[atom, x] = sum_rows(atom) sum_cols G[row, x, cols] C[sample(row), cols]
         cell_bar[system, a, x] = sum_rows(system) sum_cols G[row, a, x, cols] C[sample(row), cols]
    jvp: T_dot[sample, cols] = sum_rows(sample) sum_x G[row, x, cols] r_dot[atom(row), x] (+ the cell's)
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import torch

from mtdsl.errors import Unsupported
from mtdsl.ir.passes import autodiff as ad
from mtdsl.ir import nodes as ir
from mtdsl.ir.reads import kernel_reads, read_closure

from ..assemble import ENTRY_LABELS, evaluate_kernel
from ..bindings import Bindings
from ..gradients.forward import compute_gradients
from ..evaluate.evaluator import Evaluator
from ..gradients.native_products import NativeProducts

#: the gradients a descriptor's products need, in the torch module's terms (cell: d/dH at fixed positions)
WRT = ("positions", "cell")


def descriptor_names(module: ir.Module) -> dict[str, tuple[str, ...]]:
    """`{tensor: gradients it has}` for the structural tensors read by a non-structural kernel or
    output, in the module's order; tensors whose gradient cannot be taken (a comparison of
    distances...) are left out (the torch evaluator computes them), those with no dependence on
    positions nor cell are constants (no gradients)."""
    inputs = {t.name for t in module.tensormaps}
    reads = {k.name: kernel_reads(k) for k in module.kernels}
    structural = set()
    for kernel in module.kernels:
        if all(kind == "tensor" and name not in inputs and name in structural for kind, name in reads[kernel.name]):
            structural.add(kernel.name)
    wanted = {o.name for o in module.outputs}
    for kernel in module.kernels:
        if kernel.name not in structural:
            wanted |= {name for kind, name in reads[kernel.name] if kind == "tensor"}
    result = {}
    for kernel in module.kernels:
        if kernel.name not in structural or kernel.name not in wanted:
            continue
        gradients = []
        try:
            for wrt in WRT:
                if ad.gradient_kernel(module, wrt, kernel.name) is not None:
                    gradients.append(wrt)
        except ad.AutodiffError:
            continue
        if "cell" in gradients and not _has_system_label(kernel):
            continue  # its cell gradient rows could not be gathered by system
        result[kernel.name] = tuple(gradients)
    return result


def _has_system_label(kernel: ir.TensorKernel) -> bool:
    """Whether the samples name the system (cell gradients are gathered by it)."""
    return any(e.kind in ENTRY_LABELS and "system" in ENTRY_LABELS[e.kind] or e.label == "system"
               for e in kernel.samples)


class Descriptors:
    """The descriptors of `model` (see the module docstring); `names` is empty when the program
    has none. Their products are native VJP/JVP kernels (runtime/gradients/native_products.py) with a
    native backend, else (or when a term has no such kernel) contractions of their gradient
    blocks; each is compiled on first use."""

    def __init__(self, model):
        self.gradients = descriptor_names(model.module)
        self.names = list(self.gradients)
        self.backend, self.dtype, self.threads = model.backend, model.dtype, model.threads
        # the descriptors' own model is of the class of the one they come from (runtime.model.Model,
        # which reaches this module through the torch bridge: importing it here would be a cycle)
        self._model_class = type(model)
        #: the module computing the descriptors (their outputs), None without descriptors
        self.module = None
        if self.names:
            self.module = dataclasses.replace(
                model.module, kernels=tuple(read_closure(model.module, self.names)), params=(), tensormaps=(),
                outputs=tuple(ir.Output(name, self.gradients[name]) for name in self.names),
            )
        self._model = None
        self._native: dict = {}

    @property
    def model(self):
        """The descriptors as a model with their gradient blocks (the products' fallback)."""
        if self._model is None:
            self._model = self._model_class(self.module, backend=self.backend, dtype=self.dtype)
            self._model.threads = self.threads
        return self._model

    def native(self, wrt: tuple):
        """The native products w.r.t. `wrt` (VJP and JVP kernels of every descriptor), or None."""
        wrt = tuple(wrt) or ("positions",)  # values only: any of them computes the values
        if self.backend == "interpreter":
            return None
        if wrt not in self._native:
            try:
                products = NativeProducts(self.module, self.names, self.backend, dtype=self.dtype,
                                          threads=self.threads, wrt=wrt)
            except (Unsupported, ValueError):
                products = None
            if products is not None and products.jvp_unsupported:
                products = None  # a JVP (order 2) would have nothing to run
            self._native[wrt] = products
        return self._native[wrt]

    def skipped(self, module: ir.Module) -> set:
        """The kernels of `module` that only the descriptors read (not evaluated when they are given)."""
        kept = read_closure(module, [o.name for o in module.outputs], stop=set(self.names))
        return {k.name for k in module.kernels} - {k.name for k in kept}

    def run(self, batch, pairs: dict, wrt=WRT, precomputed: dict | None = None) -> "DescriptorRun":
        """The descriptors on `batch` with the neighbour lists `pairs`, and their products w.r.t.
        `wrt` (those w.r.t. the others are zeros). `precomputed`: the descriptors' tensors from a
        run of the model at the same values (`CompiledModule.computed`), not computed again."""
        bindings = Bindings({self.module.systems[0].name: batch}, pairs, {}, dtype=self.dtype.type)
        products = self.native(wrt)
        if products is not None:
            products.run(bindings, precomputed)
            return NativeRun(products, bindings, self.names)
        model = self.model
        if model.compiled is not None:
            model.compiled.run(bindings, threads=model.threads, all_tensors=True)
        else:
            interpreter = Evaluator(model.module, bindings)
            for kernel in model.module.kernels:
                bindings.tensors[kernel.name] = evaluate_kernel(interpreter, kernel)
        for gradient in wrt:
            outputs = [name for name in self.names if gradient in self.gradients[name]]
            if outputs:
                compute_gradients(model.module, bindings, model.gradient_kernels[gradient], gradient, outputs,
                                  native=model.compiled)
        return BlockRun({name: bindings.tensors[name] for name in self.names}, batch)


class DescriptorRun:
    """The descriptors' values on one batch (`tensors`), block by block, and their products with
    torch tensors: `vjp(cotangents, positions, cell)` -> (positions_bar, cell_bar), `jvp(positions_dot,
    cell_dot)` -> one tangent per block."""

    def __init__(self, tensors: dict):
        self.tensors = tensors
        self.blocks: list[tuple[str, int]] = [(name, index) for name, tensor in tensors.items()
                                              for index in range(len(tensor))]
        self.shapes = [tuple(tensors[name].block(index).values.shape) for name, index in self.blocks]

    def values(self, dtype) -> list[torch.Tensor]:
        return [torch.from_numpy(np.ascontiguousarray(self.tensors[name].block(index).values)).to(dtype)
                for name, index in self.blocks]

    def close(self) -> None:
        """Free what the run holds outside itself (nothing here)."""


class NativeRun(DescriptorRun):
    """Products by the native VJP / JVP kernels (runtime/gradients/native_products.py)."""

    def __init__(self, products, bindings: Bindings, names: list[str]):
        super().__init__({name: bindings.tensors[name] for name in names})
        self.products = products
        self.bindings = bindings
        self._last_vjp = None  # (products, cotangents, result) of the last VJP: a force loss's backward repeats it

    def close(self) -> None:
        """Free the products' buffers of this run (when the call that made it is released)."""
        self.products.release(self.bindings)

    def _current(self) -> None:
        """The products hold one run: another call's run since this one is redone."""
        if not self.products.holds(self.bindings):
            self.products.run(self.bindings)

    def vjp(self, cotangents: list[torch.Tensor], positions: torch.Tensor, cell: torch.Tensor):
        self._current()
        arrays = [cotangent.detach().cpu().numpy() for cotangent in cotangents]
        # a force loss's backward recomputes the forces' graph: the same VJP with the same cotangents
        last = self._last_vjp
        if last is not None and last[0] is self.products and len(last[1]) == len(arrays) and all(
                a.shape == b.shape and np.array_equal(a, b) for a, b in zip(last[1], arrays)):
            positions_bar, cell_bar = last[2]
        else:
            grouped: dict = {name: [] for name in self.tensors}
            for (name, _), array in zip(self.blocks, arrays):
                grouped[name].append(array)
            positions_bar, cell_bar = self.products.vjp(self.bindings, grouped)
            self._last_vjp = (self.products, [np.array(a, copy=True) for a in arrays], (positions_bar, cell_bar))
        return (torch.from_numpy(np.array(positions_bar, copy=True)).to(positions.dtype),
                torch.from_numpy(np.array(cell_bar, copy=True)).to(cell.dtype))

    def jvp(self, positions_dot: torch.Tensor, cell_dot: torch.Tensor) -> list[torch.Tensor]:
        self._current()
        tangents = self.products.jvp(self.bindings, positions_dot.detach().cpu().numpy(),
                                     cell_dot.detach().cpu().numpy())
        return [torch.from_numpy(np.ascontiguousarray(tangents[name][index])).to(positions_dot.dtype)
                for name, index in self.blocks]


@dataclasses.dataclass
class _Contraction:
    """One gradient block as torch tensors: values [rows, directions..., cols], the parent sample
    of each row, and the atom (positions) or system (cell) it moves."""

    values: torch.Tensor
    sample: torch.Tensor
    target: torch.Tensor


class BlockRun(DescriptorRun):
    """Products as contractions of the gradient blocks (attached to `tensors`' blocks), in torch."""

    def __init__(self, tensors: dict, batch):
        super().__init__(tensors)
        offsets = np.asarray(batch.atom_offsets, dtype=np.int64)
        self.contractions: list[dict[str, Optional[_Contraction]]] = [
            {wrt: _contraction(tensors[name].block(index), wrt, offsets) for wrt in WRT} for name, index in self.blocks
        ]

    def vjp(self, cotangents: list[torch.Tensor], positions: torch.Tensor, cell: torch.Tensor):
        """(positions_bar [atoms, 3], cell_bar [systems, 3, 3]) for one cotangent per block."""
        positions_bar = positions.new_zeros(positions.shape)
        cell_bar = cell.new_zeros(cell.shape)
        for contractions, cotangent in zip(self.contractions, cotangents):
            positions_g, cell_g = contractions["positions"], contractions["cell"]
            if positions_g is not None and positions_g.values.shape[0]:
                rows = cotangent.reshape(cotangent.shape[0], -1)[positions_g.sample]
                product = torch.einsum("rxc,rc->rx", positions_g.values, rows)
                positions_bar.index_add_(0, positions_g.target, product)
            if cell_g is not None and cell_g.values.shape[0]:
                rows = cotangent.reshape(cotangent.shape[0], -1)[cell_g.sample]
                product = torch.einsum("raxc,rc->rax", cell_g.values, rows)
                cell_bar.index_add_(0, cell_g.target, product)
        return positions_bar, cell_bar

    def jvp(self, positions_dot: torch.Tensor, cell_dot: torch.Tensor) -> list[torch.Tensor]:
        """One tangent per block for the tangents of the positions and the cell."""
        result = []
        for contractions in self.contractions:
            shape = self.shapes[len(result)]
            flat = positions_dot.new_zeros((shape[0], int(np.prod(shape[1:], dtype=np.int64))))
            positions_g, cell_g = contractions["positions"], contractions["cell"]
            if positions_g is not None and positions_g.values.shape[0]:
                product = torch.einsum("rxc,rx->rc", positions_g.values, positions_dot[positions_g.target])
                flat.index_add_(0, positions_g.sample, product)
            if cell_g is not None and cell_g.values.shape[0]:
                product = torch.einsum("raxc,rax->rc", cell_g.values, cell_dot[cell_g.target])
                flat.index_add_(0, cell_g.sample, product)
            result.append(flat.reshape(shape))
        return result


def _contraction(block, wrt: str, offsets: np.ndarray) -> Optional[_Contraction]:
    if wrt not in block.gradients_list():
        return None
    gradient = block.gradient(wrt)
    values = torch.from_numpy(np.ascontiguousarray(gradient.values))
    samples = np.asarray(gradient.samples.values, dtype=np.int64).reshape(len(gradient.samples), -1)
    n_directions = 1 if wrt == "positions" else 2
    values = values.reshape(values.shape[0], *values.shape[1:1 + n_directions], -1)
    sample = samples[:, 0]
    if wrt == "positions":
        target = offsets[samples[:, 1]] + samples[:, 2]
    else:
        target = np.asarray(block.samples.column("system"), dtype=np.int64)[sample]
    return _Contraction(values, torch.from_numpy(sample), torch.from_numpy(np.asarray(target, dtype=np.int64)))

