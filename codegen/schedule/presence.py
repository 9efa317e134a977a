"""Presence guards: a values kernel skips its structurally absent points before its inner loops.

Which blocks and samples a tensor has is known before the kernels run
(`runtime/presence.py`, from structure alone). A kernel whose body reads a tensor
by block access (the power spectrum reads the expansion) would otherwise fill its
whole dense grid: every pair of species of every centre, most of them absent
in a many-species batch, then dropped by `restrict()`. So the kernel is rendered
with one more `where` conjunct, `present[v...] >= 0`, a read of its presence
table (a `PresenceTable` data source, -1 at an absent point) over the kernel indices its keys
and samples depend on: the plan tests it at the first loop where those are
bound, as any condition, so the loops inside it are skipped. The renderers read
the table bounded by its size (`n_present`): a run that passes no table (`dense=True`,
an export, a kernel whose presence was not computed) passes size 0, and every
point is computed. Kernels that only sum over pairs are left alone: their pair
loops visit the present (centre, neighbour-species) segments only.

A fused kernel (`codegen/schedule/fuse.py`: the values with the gradient terms that join
their pass over pairs) guards its values member the same way (`guarded_plan`):
the plan tests a condition the other members lack at the member's first own loop
(`plan.plan_fused`), so the values skip their absent points while the terms, whose
rows at absent samples are -1 already, share the pass; when the guard cannot be
placed so, the fused kernel is planned unguarded, as before.

The reverse products' kernels (`mtdsl/ir/passes/products.py`) test the same table
of the tensor whose terms they contract, so a VJP skips the tensor's absent points.

Only the rendered kernels carry the guard: the runtime's module, the interpreter
and the gradient terms keep the kernel as written (an absent point of the dense
buffer holds 0 either way, the value of an empty sum).
"""

from __future__ import annotations

import dataclasses

from mtdsl.ir import nodes as ir
from mtdsl.ir.passes.products import presence_variables
from mtdsl.ir.reads import expression_reads
from mtdsl.ir.roles import PresenceTable, RoleName

from . import plan as planning
from .plan import Unsupported

FIELD = "present"



def guarded(kernel: ir.TensorKernel) -> ir.TensorKernel:
    """`kernel` with its presence guard when it reads a tensor by block access, else itself."""
    if isinstance(kernel.name, RoleName):  # gradient terms, products, fused kernels: their own rows
        return kernel
    reads: set = set()
    expression_reads(kernel.body, reads)
    variables = presence_variables(kernel)
    if not variables or not any(kind == "tensor" for kind, _ in reads):
        return kernel
    table = ir.Data(PresenceTable(str(kernel.name)), FIELD, tuple(ir.Var(v) for v in variables))
    guard = ir.Binary("ge", table, ir.Const(0))
    where = guard if kernel.where is None else ir.Binary("and", kernel.where, guard)
    return dataclasses.replace(kernel, where=where)


def guarded_plan(fused: ir.FusedKernel, pair_systems: dict) -> "planning.FusedPlan":
    """The plan of `fused` with its values member (the first) guarded as `guarded` does, else
    (nothing to guard, or the guard cannot move to that member's own loops) of `fused` as it is;
    the plan's `.fused` is the kernel planned (`plan.fused_plans`' `planner`)."""
    values = fused.kernels[0]
    guard = guarded(values)
    if guard is not values:
        try:
            return planning.plan_fused(dataclasses.replace(fused, kernels=(guard,) + fused.kernels[1:]), pair_systems)
        except Unsupported:
            pass
    return planning.plan_fused(fused, pair_systems)
