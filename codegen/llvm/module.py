"""A module's kernels as one LLVM module: each kernel and fused kernel lowered once to a loop nest
(`codegen/schedule/kernel.py`, shared with the C++ backend), printed by `printer.py`; and its
text for `mtdsl compile --emit llvm`."""

from __future__ import annotations

import llvmlite.binding as llvm
import llvmlite.ir as ll

from mtdsl.ir import nodes as ir

from ..schedule import plan as planning
from ..schedule.plan import Unsupported
from ..rendered import RenderedKernel, RenderedModule
from ..schedule.kernel import LoweredKernel, ModuleLowering
from ..schedule.lower import kernel_text, module_text
from .emit import _sanitize
from .printer import NestPrinter, scalars


def render_module(module: ir.Module, dtype: str = "float64") -> RenderedModule:
    """Every kernel of `module` as LLVM IR (kernels without a compiled form in `.unsupported`)."""
    lowering = ModuleLowering(module, dtype)
    llmodule = ll.Module(name=_sanitize(module.name))
    llmodule.triple = llvm.get_process_triple()
    routines: dict = {}  # the sph routines the kernels lowered so far fill, by name
    printer = NestPrinter(llmodule, ll.DoubleType() if dtype == "float64" else ll.FloatType(), routines)

    def rendered(lowered: LoweredKernel) -> RenderedKernel:
        routines.update((routine.name, routine) for routine in lowering.routines.values())
        symbol = lowered.nest.symbol
        try:
            function = printer.kernel(lowered.nest)
        except Unsupported:
            llmodule.globals.pop(symbol, None)  # a half-printed function: the interpreter runs the kernel
            raise
        count, var = driver(lowered.plan)
        return RenderedKernel(lowered.name, symbol, lowered.plan, lowered.arrays, scalars(lowered.nest), str(function),
                              count, var, kernel_text(lowered))

    kernels, unsupported = lowering.lower(rendered)
    return RenderedModule(module, dtype, str(llmodule), kernels, unsupported, dict(lowering.constants),
                          module_text(lowering.routines.values(), kernels, unsupported))


def driver(plan) -> tuple:
    """`(size, variable)` of a parallel kernel's driver, its first loop (the size an int, an `abi`
    scalar argument, or None when the runtime cannot know it): `LLVMKernel` runs chunks `[lo, hi)` of its
    positions on threads. `(None, None)` for a serial kernel."""
    first = plan.plans[0] if isinstance(plan, planning.FusedPlan) else plan
    if not plan.parallel or not first.loops:
        return None, None
    return planning.driver_size(first.loops[0].domain), first.loops[0].var


def render(module: ir.Module, dtype: str = "float64") -> str:
    """The LLVM IR of a module, as `listing` shows it."""
    return listing(render_module(module, dtype))


def listing(rendered: RenderedModule) -> str:
    """The text of `mtdsl compile --emit llvm`: the LLVM IR of a rendered module, after a comment naming
    the tensor of each kernel's function (gradient kernels included: `·scatter·dT/dwrt#k`, `mtdsl/ir/passes/terms.py`)."""

    def shown(text):  # as the IR's identifiers: names never reach the IR as they are
        return "".join(c if c.isascii() and (c.isalnum() or c in "_-./#") or c == "·" else "_" for c in str(text))

    lines = [f"; {r.symbol}: tensor {shown(name)}" for name, r in rendered.kernels.items()]
    lines += [f"; not compiled (runs in the interpreter): tensor {shown(name)}" for name in rendered.unsupported]
    return "\n".join(lines) + "\n\n" + rendered.source
