"""A module's kernels and fused kernels as one LLVM module (`ModuleRenderer`), and its text for
`mtdsl compile --emit llvm`."""

from __future__ import annotations

import llvmlite.binding as llvm
import llvmlite.ir as ll

from mtdsl.ir import nodes as ir

from .. import plan as planning
from ..plan import Unsupported
from ..rendered import RenderedKernel, RenderedModule
from ..schedule.module import render_kernels
from ..schedule.tables import ModuleTables
from .emit import _sanitize
from .kernel import KernelBuilder


# ---- the module --------------------------------------------------------------------------------------------


class ModuleRenderer:
    def __init__(self, module: ir.Module, dtype: str = "float64"):
        # compile-time tables (radial splines, Clebsch-Gordan) and block-access keys (checks dtype, convention)
        self.tables = ModuleTables(module, dtype)
        self.module = module
        self.dtype = dtype
        self.real = ll.DoubleType() if dtype == "float64" else ll.FloatType()
        self.grids = self.tables.grids
        self.llmodule = ll.Module(name=_sanitize(module.name))
        self.llmodule.triple = llvm.get_process_triple()

    def render(self) -> RenderedModule:
        kernels, unsupported = render_kernels(self.module, self.grids, self.render_kernel, self.render_fused)
        return RenderedModule(self.module, self.dtype, str(self.llmodule), kernels, unsupported,
                              dict(self.tables.constants))

    def rendered(self, name: str, symbol: str, plan, builder: "KernelBuilder", buffers: list, function):
        arrays = buffers + sorted(builder.arrays, key=lambda d: builder.arrays[d][0])
        scalars = sorted(builder.scalars, key=lambda d: builder.scalars[d][0])
        return RenderedKernel(name, symbol, plan, arrays, scalars, str(function), builder.driver_count,
                              builder.driver_var)

    def render_kernel(self, k: int, kernel: ir.TensorKernel) -> RenderedKernel:
        symbol = f"mt_kernel_{k}"
        builder = KernelBuilder(self, kernel, symbol)
        try:
            function = builder.build()
        except Unsupported:
            _drop_function(self.llmodule, symbol)
            raise
        return self.rendered(kernel.name, symbol, builder.plan, builder, [("buffer",)], function)

    def render_fused(self, k: int, fused: ir.FusedKernel, plan: planning.FusedPlan) -> RenderedKernel:
        symbol = f"mt_fused_{k}"
        try:
            builder = KernelBuilder(self, fused.kernels[0], symbol)
            function = builder.build_fused(plan)
        except Unsupported:
            _drop_function(self.llmodule, symbol)
            raise
        return self.rendered(fused.name, symbol, plan, builder, [("buffer", j) for j in range(len(plan.plans))],
                             function)


def _drop_function(module: ll.Module, symbol: str) -> None:
    """Remove a half-built function (its kernel runs with the interpreter)."""
    module.globals.pop(symbol, None)


def render_module(module: ir.Module, dtype: str = "float64") -> RenderedModule:
    """Every kernel of `module` as LLVM IR (kernels without a compiled form in `.unsupported`)."""
    return ModuleRenderer(module, dtype).render()


def render(module: ir.Module, dtype: str = "float64") -> str:
    """The LLVM IR of a module (`mtdsl compile --emit llvm`), after a comment naming the tensor of
    each kernel's function (gradient kernels included: `·scatter·dT/dwrt#k`, `mtdsl/ir/passes/terms.py`)."""
    rendered = render_module(module, dtype)

    def shown(text):  # as the IR's identifiers: names never reach the IR as they are
        return "".join(c if c.isascii() and (c.isalnum() or c in "_-./#") or c == "·" else "_" for c in str(text))

    lines = [f"; {r.symbol}: tensor {shown(name)}" for name, r in rendered.kernels.items()]
    lines += [f"; not compiled (runs in the interpreter): tensor {shown(name)}" for name in rendered.unsupported]
    return "\n".join(lines) + "\n\n" + rendered.source


