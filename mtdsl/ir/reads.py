"""What a kernel reads: the params and the tensors (block accesses) of its expressions.

Used to tell the *structural* tensors (functions of the systems alone) from those
that depend on params or input tensormaps (runtime/descriptors.py,
runtime/gradients/native_products.py).
"""

from __future__ import annotations

from . import nodes as ir
from .walk import children


def expression_reads(expr, found: set) -> None:
    """Add to `found` the params (`("param", name)`) and tensors (`("tensor", name)`) `expr` reads."""
    if expr is None or isinstance(expr, (ir.Const, ir.Var)):
        return
    if isinstance(expr, ir.ParamRef):
        found.add(("param", expr.name))
    elif isinstance(expr, ir.BlockRef):
        found.add(("tensor", expr.tensor))
    if isinstance(expr, ir.Reduce):
        for binder in expr.binders:
            domain_reads(binder.domain, found)
        expression_reads(expr.body, found)
        expression_reads(expr.where, found)
        return
    for child in children(expr):
        expression_reads(child, found)


def domain_reads(domain, found: set) -> None:
    if isinstance(domain, ir.PairsFrom):
        expression_reads(domain.atom, found)
    elif isinstance(domain, ir.IrrepDomain):
        expression_reads(domain.degree, found)


def kernel_reads(kernel: ir.TensorKernel) -> set:
    """`{("param", name), ("tensor", name)...}`: what the kernel's body, condition, labels and
    index domains read."""
    found: set = set()
    for binder in kernel.indices:
        domain_reads(binder.domain, found)
    expression_reads(kernel.body, found)
    expression_reads(kernel.where, found)
    for entry in kernel.keys + kernel.samples + kernel.components + kernel.properties:
        expression_reads(entry.expr, found)
    return found


def read_closure(module: ir.Module, names, stop=frozenset()) -> list[ir.TensorKernel]:
    """The kernels of `module` that `names` read, directly or not, themselves included, in the
    module's order (not looking into what the tensors of `stop` read; input tensormaps are not
    kernels)."""
    kernels = {k.name: k for k in module.kernels}
    needed, stack = set(), list(names)
    while stack:
        name = stack.pop()
        if name in needed or name not in kernels:
            continue
        needed.add(name)
        if name not in stop:
            stack += [n for kind, n in kernel_reads(kernels[name]) if kind == "tensor"]
    return [k for k in module.kernels if k.name in needed]
