"""The middle passes, named in the order they apply to a kernel (as Halide lists its lowering passes).

Each is written once and used by both renderers; a renderer applies them while
it walks the plan (a pass here is a decision over the plan and the IR, not yet
a rewrite of a loop nest: see docs/codegen.md, "The middle"). Hoisting to the
outermost legal level and common subexpressions are still the renderers' own
(their `emit` / `hoist` by place): they are what the loop-nest IR of issue #15
will take over.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import plan as planning
from . import factors, grid, presence, tables, tabulation


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
    Pass("compile-time tables", tables.ModuleTables, "radial splines, Clebsch-Gordan tables, block-access keys"),
)
