"""The order in which a backend renders a module's kernels, and what it records of each: once for both.

Each kernel in the module's order (a kernel with no compiled form is listed in
`unsupported` with the reason, and the interpreter runs it; one with no `where`
becomes a grid that later kernels may read densely, `schedule/grid.py`), then
each fused kernel whose members all rendered (`plan.fused_plans`). A kernel reading a
tensor by block access is rendered with its presence guard (`schedule/presence.py`), in a
fused kernel too. Built-ins with a native expansion (softplus, sigmoid, silu: mtdsl/builtins/) are
replaced by it first (`mtdsl/ir/passes/native_forms.py`), so a renderer prints only its table of
primitives.
"""

from __future__ import annotations

from mtdsl.ir import nodes as ir
from mtdsl.ir.passes.native_forms import expand_native_forms

from . import plan as planning
from .plan import Unsupported
from .presence import guarded, guarded_plan


def render_kernels(module: ir.Module, grids: dict, render_kernel, render_fused) -> tuple[dict, dict]:
    """`(kernels, unsupported)`: `render_kernel(k, kernel)` and `render_fused(k, fused, plan)` give a
    backend's `RenderedKernel` or raise `Unsupported`; `grids` gains the kernels later ones may read."""
    kernels, unsupported = {}, {}
    module = expand_native_forms(module)  # the printers know only primitives (mtdsl/builtins/)
    for k, kernel in enumerate(module.kernels):
        try:
            kernels[kernel.name] = render_kernel(k, guarded(kernel))  # absent points skipped (presence.py)
        except Unsupported as error:
            unsupported[kernel.name] = str(error)
            continue
        if kernel.where is None:
            grids[kernel.name] = kernel
    for k, fused, plan in planning.fused_plans(module, unsupported, guarded_plan):
        try:
            kernels[fused.name] = render_fused(k, fused, plan)
        except Unsupported as error:
            unsupported[fused.name] = str(error)
    return kernels, unsupported
