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

Only the rendered kernel carries the guard: the runtime's module, the interpreter,
the fused kernels and the gradient terms keep the kernel as written (an absent
point of the dense buffer holds 0 either way, the value of an empty sum).
"""

from __future__ import annotations

import dataclasses

from mtdsl.ir import nodes as ir
from mtdsl.ir.reads import expression_reads
from mtdsl.ir.roles import PresenceTable, RoleName

from ..plan import free_vars

FIELD = "present"


def guard_variables(kernel: ir.TensorKernel) -> tuple[str, ...]:
    """The kernel indices its keys and samples depend on, in index order: the axes of its table."""
    used = set()
    for entry in kernel.keys + kernel.samples:
        used |= free_vars(entry.expr)
    return tuple(b.name for b in kernel.indices if b.name in used)


def guarded(kernel: ir.TensorKernel) -> ir.TensorKernel:
    """`kernel` with its presence guard when it reads a tensor by block access, else itself."""
    if isinstance(kernel.name, RoleName):  # gradient terms, products, fused kernels: their own rows
        return kernel
    reads: set = set()
    expression_reads(kernel.body, reads)
    variables = guard_variables(kernel)
    if not variables or not any(kind == "tensor" for kind, _ in reads):
        return kernel
    table = ir.Data(PresenceTable(str(kernel.name)), FIELD, tuple(ir.Var(v) for v in variables))
    guard = ir.Binary("ge", table, ir.Const(0))
    where = guard if kernel.where is None else ir.Binary("and", kernel.where, guard)
    return dataclasses.replace(kernel, where=where)
