"""Walks over IR expressions: their children, the variables they read, their `where` conjuncts.

Facts of the nodes alone, of the plain IR (`nodes.py`) and of the derivative IR
(`derivative_nodes.py`) alike, used by the derivative passes, the planner
(`codegen/schedule/plan.py`) and the runtime, so they live with the IR. A walker meets a
derivative node only where a pass put one; a stage that must not see any (the planner: its
kernels are lowered IR) asks `derivative_node` once, instead of relying on a walker to fail.
"""

from __future__ import annotations

import functools
from typing import Optional

from . import nodes as ir
from .derivative_nodes import DERIVATIVE_NODES, GradLabel, GradValue, UnitVector


def children(expr) -> tuple:
    """The sub-expressions of `expr`, any expression node but a `Reduce` (whose binders scope its
    body and condition: a walker treats it itself). A `TypeError` for anything else."""
    if isinstance(expr, (ir.Const, ir.Var)):
        return ()
    if isinstance(expr, (ir.Data, ir.ParamRef)):
        return expr.index
    if isinstance(expr, ir.BlockRef):
        return tuple(e for _, e in expr.keys) + tuple(s.expr for s in expr.samples + expr.components + expr.properties)
    if isinstance(expr, ir.Unary):
        return (expr.operand,)
    if isinstance(expr, ir.Binary):
        return (expr.left, expr.right)
    if isinstance(expr, ir.Select):
        return (expr.condition, expr.if_true, expr.if_false)
    if isinstance(expr, ir.Call):
        return expr.args
    if isinstance(expr, UnitVector):
        return (expr.direction,)
    if isinstance(expr, GradLabel):
        return (expr.row,)
    if isinstance(expr, GradValue):
        return (expr.row,) + expr.directions + tuple(s.expr for s in expr.components + expr.properties)
    raise TypeError(f"unknown IR node {type(expr).__name__}")


@functools.lru_cache(maxsize=None)
def free_vars(expr) -> frozenset:
    """The names of the variables `expr` reads and does not bind itself (the binders of its sums
    excluded, the variables their domains read included); empty for None (no condition).

    Any expression of the plain or the derivative IR (`children`); memoised, since the derivative
    passes ask again for the same sub-expressions of every term they build."""
    if expr is None:
        return frozenset()
    if isinstance(expr, ir.Var):
        return frozenset((expr.name,))
    if isinstance(expr, ir.Reduce):
        inner = free_vars(expr.body) | free_vars(expr.where)
        outer = frozenset()
        names = set()
        for binder in expr.binders:  # a binder's domain may read earlier binders and outer variables
            outer |= domain_vars(binder.domain) - names
            names.add(binder.name)
        return (inner - names) | outer
    return union_free_vars(children(expr))


def union_free_vars(exprs) -> frozenset:
    """The variables any of `exprs` reads."""
    result = frozenset()
    for e in exprs:
        result |= free_vars(e)
    return result


def domain_vars(domain) -> frozenset:
    """The variables a domain reads (the atom of `P.from(i)`, the degree of an irrep)."""
    if isinstance(domain, ir.IrrepDomain):
        return free_vars(domain.degree)
    if isinstance(domain, ir.PairsFrom):
        return free_vars(domain.atom)
    return frozenset()


def derivative_node(expr) -> Optional[object]:
    """The first node of the derivative IR in `expr` (an expression, a domain or a kernel: its
    indices, labels, condition and body), None when it is plain IR."""
    if expr is None:
        return None
    if isinstance(expr, DERIVATIVE_NODES):
        return expr
    if isinstance(expr, ir.TensorKernel):
        parts = [b.domain for b in expr.indices] + [e.expr for e in expr.keys + expr.samples + expr.components
                                                     + expr.properties] + [expr.where, expr.body]
    elif isinstance(expr, ir.Reduce):
        parts = [b.domain for b in expr.binders] + [expr.where, expr.body]
    elif isinstance(expr, ir.PairsFrom):
        parts = [expr.atom]
    elif isinstance(expr, ir.IrrepDomain):
        parts = [expr.degree]
    elif isinstance(expr, (ir.RangeDomain, ir.SpeciesDomain, ir.AtomsDomain, ir.SystemsDomain, ir.PairsDomain,
                           ir.XyzDomain)):
        return None
    else:
        parts = children(expr)
    for part in parts:
        found = derivative_node(part)
        if found is not None:
            return found
    return None


def conjuncts(expr) -> list:
    """`a and b and c` as `[a, b, c]` (None: no condition)."""
    if expr is None:
        return []
    if isinstance(expr, ir.Binary) and expr.op == "and":
        return conjuncts(expr.left) + conjuncts(expr.right)
    return [expr]
