"""The middle passes, named in the order they apply to a kernel (as Halide lists its lowering passes).

Each is written once. The kernel lowering (`schedule/kernel.py`) applies them
while it walks the plan and emits the loop nest that both renderers (C++ and
LLVM) only print (a pass here is a decision over the plan, the IR or the nest;
docs/codegen.md, "The middle").
"""

from __future__ import annotations

from dataclasses import dataclass

from . import plan as planning
from . import bounds, factors, grid, kernel, presence, reads, tables, tabulation


@dataclass(frozen=True)
class Pass:
    name: str
    function: object  # what decides it
    what: str


MIDDLE = (
    Pass("presence guard", presence.guarded, "a kernel reading a tensor by block access skips its absent points"),
    Pass("fuse", planning.fused_plans, "kernels sharing their outer loops become one function (their plans)"),
    Pass("schedule", planning.plan_kernel, "loops, their order, segments, equality bindings, guards"),
    Pass("local accumulator", planning.local_accumulator, "inner sums added into a stack array, flushed once"),
    Pass("tabulation", tabulation.tabulation_candidates, "values over a small range index, filled where their other variables are bound"),
    Pass("scalar expansion", tabulation.expansion_candidates, "the parts of a sum's body over its range binder, filled outside the sum"),
    Pass("product regrouping", factors.product_factors, "factors multiplied innermost-placed last"),
    Pass("zero-CG skipping", factors.zero_skips, "iterations whose Clebsch-Gordan factor is zero, and its triangle rule"),
    Pass("direct grid access", grid.solve_grid_access, "block accesses read from an earlier kernel's dense buffer"),
    Pass("block lookups and checked reads", reads.ReadLowering.checked,
         "lookups placed by what each reads; indices not proven in range checked, misses read through error bits"),
    Pass("hoisting", kernel.KernelLowering.hoist, "each value placed in the outermost block where its variables are bound"),
    Pass("common subexpressions", kernel.KernelLowering.emit, "a value named once per block (a `Let`), reused after"),
    Pass("simd", kernel.simd_safe, "innermost kernel-index loops whose iterations write their own entry, no error flag"),
    Pass("reads in bounds", bounds.mark_in_bounds,
         "reads of a local array whose index constant bounds keep inside it (no mask where computed speculatively)"),
    Pass("compile-time tables", tables.ModuleTables, "radial splines, Clebsch-Gordan tables, block-access keys"),
)
