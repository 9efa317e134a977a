"""A kernel whose body is a sum of terms, computed term by term (`body_parts`).

The plan's `accumulate` schedule (codegen/schedule/plan.py) needs the body to *be* a sum: then
`sum(p in P.from(i))` is one pass over the pairs scattering into every `(l, m, n)`.
A body `sum(...) A + w * sum(...) B` (the spherical expansion with featomic's
central-atom term, written as a second sum) is a `direct` kernel instead, whose
inner pair sum runs again for every grid point. So a compiled module also renders
each term of such a body as its own kernel (`NAME·part0`, `NAME·part1`, ...; a
constant factor moves into its sum), each with its best schedule, and the run adds
their buffers: the same values, the cost of the terms apart. The kernel itself is
rendered with its first term (`first_terms`), so its fused kernels (values and
gradient terms in one pass over pairs) keep the pair sum's schedule; the whole
body stays the kernel's definition for the interpreter and the gradients.
"""

from __future__ import annotations

import dataclasses

from mtdsl.ir.walk import free_vars
from mtdsl.ir import nodes as ir

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
    """What a compiled module renders: `module` with each kernel of several terms reduced to its
    first term, the kernels of the other terms (to compile beside it), and `body_parts(module)`."""
    parts = body_parts(module)
    if not parts:
        return module, (), parts
    rendered = dataclasses.replace(module, kernels=tuple(
        dataclasses.replace(k, body=parts[k.name][0].body) if k.name in parts else k for k in module.kernels))
    return rendered, tuple(k for kernels in parts.values() for k in kernels[1:]), parts


def reads_pairs(kernel: ir.TensorKernel) -> bool:
    """Whether a kernel sums over or reads a pair list (its work grows with the pairs)."""
    stack = [kernel.body, kernel.where, kernel.indices]
    while stack:
        node = stack.pop()
        if isinstance(node, (tuple, list)):
            stack.extend(node)
        elif isinstance(node, (ir.PairsFrom, ir.PairsDomain)):
            return True
        elif dataclasses.is_dataclass(node) and not isinstance(node, type):
            stack.extend(getattr(node, f.name) for f in dataclasses.fields(node))
    return False


def with_parts(compiled, original: ir.Module, parts: dict):
    """`compiled` (a `runtime/native/compiled.py` CompiledModule rendered from the kernels' first terms) as a module of `original`: each kernel of
    `parts` adds its other terms' buffers; one whose parts did not all render is left to the
    interpreter (its native kernel alone computes only the first term)."""
    compiled.module = original
    compiled.parts = {}
    for name, kernels in parts.items():
        if all(k.name in compiled.kernels for k in kernels[1:]):
            # a term without pairs (the central atom's) is a few operations per atom: one thread,
            # not a parallel region whose threads may wait for a busy machine's cores
            compiled.parts[name] = tuple((compiled.kernels[k.name], 0 if reads_pairs(k) else 1)
                                         for k in kernels[1:])
        elif name in compiled.kernels:
            del compiled.kernels[name]
            compiled.fallbacks[name] = "a term of its body has no compiled form"
    return compiled
