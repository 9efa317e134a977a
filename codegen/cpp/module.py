"""A module's C++ source: its kernels lowered (`codegen/schedule/kernel.py`), printed
(`codegen/cpp/printer.py`), and assembled with the helper routines into `module.cpp.j2`."""

from __future__ import annotations

import math

from mtdsl.ir import nodes as ir

from ..rendered import RenderedKernel, RenderedModule
from ..schedule.kernel import LoweredKernel, ModuleLowering
from ..schedule.lower import kernel_text, module_text
from ..schedule.sph import sph_routine
from . import printer
from .templates import templates


def _rendered(lowered: LoweredKernel) -> RenderedKernel:
    kernel = lowered.nest
    return RenderedKernel(lowered.name,
                          kernel.symbol, lowered.plan, lowered.arrays, lowered.scalars, printer.kernel(kernel),
                          lowered.driver_count, lowered.driver_var, kernel_text(lowered))


def render_module(module: ir.Module, dtype: str = "float64") -> RenderedModule:
    """Render every kernel of `module` (kernels without a compiled form are listed in `.unsupported`)."""
    lowering = ModuleLowering(module, dtype)
    kernels, unsupported = lowering.lower(_rendered)
    text = templates().get_template("module.cpp.j2").render(
        module_comment=printer.comment(module.name),
        real="double" if dtype == "float64" else "float",
        pi=repr(math.pi),
        sph_functions=[printer.routine(routine) for routine in lowering.routines.values()],
        kernels=[kernel.source for kernel in kernels.values()],
    )
    return RenderedModule(module, dtype, text, kernels, unsupported, dict(lowering.constants),
                          module_text(lowering.routines.values(), kernels, unsupported))


def render(module: ir.Module, dtype: str = "float64") -> str:
    """The C++ source of a module (`mtdsl compile --emit cpp`)."""
    return render_module(module, dtype).source


def render_sph_function(name: str, top: int, convention: str) -> str:
    """Real spherical harmonics up to `top` (`schedule/sph.py`), padded layout `out[l * (2 top + 1) + m + top]`."""
    return printer.routine(sph_routine(name, top, convention))


def render_sph_gradient_function(name: str, top: int, convention: str) -> str:
    """d sph(v, l, m) / d v for every (l, m) up to `top`: `out[(l * (2 top + 1) + m + top) * 3 + c]`."""
    return printer.routine(sph_routine(name, top, convention, gradient=True))
