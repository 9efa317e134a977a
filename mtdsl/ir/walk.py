"""The variables an IR expression reads, and its `where` conditions as conjuncts.

Facts of the IR alone, used by the planner (`codegen/schedule/plan.py`) and by the
runtime (`runtime/native/body_parts.py`) alike, so they live with the IR.
"""

from __future__ import annotations

from mtdsl.errors import Unsupported

from . import nodes as ir


def free_vars(expr) -> frozenset:
    """The index variables an expression reads (binders of inner sums excluded)."""
    if expr is None:
        return frozenset()
    if isinstance(expr, ir.Var):
        return frozenset((expr.name,))
    if isinstance(expr, ir.Const):
        return frozenset()
    if isinstance(expr, ir.Data):
        return union_free_vars(expr.index)
    if isinstance(expr, ir.ParamRef):
        return union_free_vars(expr.index)
    if isinstance(expr, ir.BlockRef):
        parts = [e for _, e in expr.keys] + [s.expr for s in expr.samples + expr.components + expr.properties]
        return union_free_vars(parts)
    if isinstance(expr, ir.Unary):
        return free_vars(expr.operand)
    if isinstance(expr, ir.Binary):
        return free_vars(expr.left) | free_vars(expr.right)
    if isinstance(expr, ir.Select):
        return free_vars(expr.condition) | free_vars(expr.if_true) | free_vars(expr.if_false)
    if isinstance(expr, ir.Call):
        return union_free_vars(expr.args)
    if isinstance(expr, ir.Reduce):
        inner = free_vars(expr.body) | free_vars(expr.where)
        outer = frozenset()
        names = set()
        for binder in expr.binders:  # a binder's domain may read earlier binders and outer variables
            outer |= frozenset(v for v in domain_vars(binder.domain) if v not in names)
            names.add(binder.name)
        return (inner - names) | outer
    raise Unsupported(f"unknown expression {type(expr).__name__}")


def union_free_vars(exprs) -> frozenset:
    """The index variables any of `exprs` reads."""
    result = frozenset()
    for e in exprs:
        result |= free_vars(e)
    return result


def domain_vars(domain) -> frozenset:
    if isinstance(domain, ir.IrrepDomain):
        return free_vars(domain.degree)
    if isinstance(domain, ir.PairsFrom):
        return free_vars(domain.atom)
    return frozenset()


def conjuncts(expr) -> list:
    """`a and b and c` as `[a, b, c]` (None: no condition)."""
    if expr is None:
        return []
    if isinstance(expr, ir.Binary) and expr.op == "and":
        return conjuncts(expr.left) + conjuncts(expr.right)
    return [expr]
