"""A kernel whose body is a sum of terms, rendered term by term (`first_terms`).

The plan's `accumulate` schedule (`plan.py`) needs the body to *be* a sum: then
`sum(p in P.from(i))` is one pass over the pairs scattering into every `(l, m, n)`.
A body `sum(...) A + w * sum(...) B` (the spherical expansion with featomic's
central-atom term, written as a second sum) is a `direct` kernel instead, whose
inner pair sum runs again for every grid point. So a native module renders each
term of such a body as its own kernel (`NAME·part0`, `NAME·part1`, ...; a constant
factor moves into its sum), each with its best schedule, and the run adds their
buffers (`runtime/native/body_parts.py`): the same values, the cost of the terms
apart. The kernel itself is rendered with its first term, so its fused kernels
(values and gradient terms in one pass over pairs) keep the pair sum's schedule;
the whole body stays the kernel's definition for the evaluator and the gradients.

An IR-to-IR step, the first of a native rendering (`codegen/build.py: rendering`),
so that what `mtdsl.codegen.render` and `mtdsl compile --emit` print is what a
model compiles and runs.
"""

from __future__ import annotations

import dataclasses

from mtdsl.ir import nodes as ir
from mtdsl.ir.walk import free_vars

PART_MARK = "·part"


def _terms(expr, sign: int = 1) -> list:
    """The terms of a top-level chain of `+` / `-`, as (sign, term)."""
    if isinstance(expr, ir.Binary) and expr.op in ("add", "sub"):
        return _terms(expr.left, sign) + _terms(expr.right, sign if expr.op == "add" else -sign)
    return [(sign, expr)]


def _as_sum(term, sign: int):
    """`term` (times `sign`) written as one sum when it is a sum times factors free of its binders."""
    factors, node = [], term
    while isinstance(node, ir.Binary) and node.op == "mul":
        if isinstance(node.right, ir.Reduce) or not isinstance(node.left, ir.Reduce) and _has_reduce(node.right):
            factors.append(node.left)
            node = node.right
        else:
            factors.append(node.right)
            node = node.left
    if not isinstance(node, ir.Reduce):
        return ir.Unary("neg", term) if sign < 0 else term
    names = {b.name for b in node.binders}
    if any(free_vars(f) & names for f in factors):
        return ir.Unary("neg", term) if sign < 0 else term
    body = node.body
    for factor in factors:
        body = ir.Binary("mul", factor, body)
    if sign < 0:
        body = ir.Unary("neg", body)
    return ir.Reduce(node.binders, body, node.where)


def _has_reduce(expr) -> bool:
    return isinstance(expr, ir.Reduce) or isinstance(expr, ir.Binary) and expr.op == "mul" and (
        _has_reduce(expr.left) or _has_reduce(expr.right))


def body_parts(module: ir.Module) -> dict[str, tuple[ir.TensorKernel, ...]]:
    """`{kernel name: its part kernels}` for the kernels whose body is two or more terms, one of them a sum."""
    parts = {}
    for kernel in module.kernels:
        terms = _terms(kernel.body)
        if len(terms) < 2 or not any(_has_reduce(term) for _, term in terms):
            continue
        parts[kernel.name] = tuple(
            dataclasses.replace(kernel, name=f"{kernel.name}{PART_MARK}{k}", body=_as_sum(term, sign))
            for k, (sign, term) in enumerate(terms))
    return parts


def first_terms(module: ir.Module) -> tuple[ir.Module, tuple, dict]:
    """What a native module renders: `module` with each kernel of several terms reduced to its
    first term, the kernels of the other terms (to render after the module's, as extra kernels),
    and `body_parts(module)`."""
    parts = body_parts(module)
    if not parts:
        return module, (), parts
    rendered = dataclasses.replace(module, kernels=tuple(
        dataclasses.replace(k, body=parts[k.name][0].body) if k.name in parts else k for k in module.kernels))
    return rendered, tuple(k for kernels in parts.values() for k in kernels[1:]), parts
