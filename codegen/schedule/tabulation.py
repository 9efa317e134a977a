"""Tabulation and scalar expansion: which values of a kernel are computed into small local tables.

Two decisions, taken here once for every backend (docs/codegen.md, "Tabulation"):

- `tabulation_candidates(plan)`: a value of the body that reads one small range
  index and otherwise only variables of loops at least one real loop further
  out is computed for every value of that index where its other variables are
  bound, then read as `T[q]` (the convolution's radial weights
  `sum(k) R[k] w[k, l1, l2, L, q]` once per `(p, l1, l2, L)` for every `q`);
  `interchangeable(node, over)` says when a tabulated sum may run its own loops
  outside the index's (`T[q] += a[k] w[k, q]`, contiguous in `q`).
- `expansion_candidates(sum, level, bound, level_of)`: in `sum(k in range(K))`,
  a part of the body that reads `k` and only variables of loops outside the
  sum's block (`gto(P.distance[p], k)`) is tabulated for every `k` there.

The renderers only fill and read the tables these name.
"""

from __future__ import annotations

from mtdsl.ir import nodes as ir

from . import plan as planning
from .plan import REAL, expr_type, free_vars


def children(node) -> list:
    """The operands of an elementwise expression (calls, arithmetic, selects); none for other nodes."""
    if isinstance(node, ir.Call):
        return list(node.args)
    if isinstance(node, ir.Binary):
        return [node.left, node.right]
    if isinstance(node, ir.Unary):
        return [node.operand]
    if isinstance(node, ir.Select):
        return [node.condition, node.if_true, node.if_false]
    return []


def has_call(node) -> bool:
    """Whether an elementwise expression calls a built-in (only those are worth a table)."""
    return isinstance(node, ir.Call) or any(has_call(child) for child in children(node))


def tabulation_candidates(plan: planning.KernelPlan) -> dict:
    """`id(node) -> (index, level of the table, irrep row index or None)` for the values of `plan`'s
    body to tabulate over a small range index (`planning.tabulated_variable`, `tabulation_place`)."""
    position = {loop.var: k for k, loop in enumerate(plan.loops)}
    domains = {loop.var: loop.domain for loop in plan.loops if loop.kind == "domain"}
    found = {}

    def visit(node):
        variables = free_vars(node)
        if (isinstance(node, (ir.Reduce, ir.Call, ir.Binary, ir.Unary, ir.Select, ir.BlockRef))
                and expr_type(node) == REAL and (isinstance(node, (ir.Reduce, ir.BlockRef)) or has_call(node))
                and variables <= set(position)):
            over = planning.tabulated_variable(variables, domains)
            if over is not None:
                outer = max((position[v] for v in variables if v != over), default=-1)
                between = [loop for loop in plan.loops[outer + 1: position[over]] if loop.kind != "equal"]
                if between:
                    found[id(node)] = planning.tabulation_place(variables, over, outer, plan.loops, position)
                    return
        if not isinstance(node, ir.Reduce):
            for child in children(node):
                visit(child)

    visit(plan.body)
    return found


def interchangeable(node, over: str) -> bool:
    """A tabulated real sum whose binders do not depend on the tabulated index: its loops can go
    outside the index's loop (`T[q] += a[k] w[k, q]`: the innermost loop is contiguous)."""
    return (isinstance(node, ir.Reduce) and expr_type(node) == REAL
            and all(over not in planning.domain_vars(b.domain) and b.name != over for b in node.binders)
            and not any(isinstance(b.domain, ir.PairsFrom) for b in node.binders))


def expansion_candidates(expr: ir.Reduce, level: int, bound: set, level_of) -> list:
    """`[(node, outer level)]`: the parts of the body of `sum(k in range(K))` (one binder, no `where`,
    at most `TABULATE_LIMIT` values) that read `k` and only variables bound at levels `< level`
    (`level_of(name)`), each to be tabulated over `k` at its outer level."""
    if len(expr.binders) != 1 or expr.where is not None:
        return []
    binder = expr.binders[0]
    domain = binder.domain
    if not isinstance(domain, ir.RangeDomain) or not 0 < domain.stop - domain.start <= planning.TABULATE_LIMIT:
        return []
    candidates = []

    def visit(node):
        variables = free_vars(node)
        if binder.name not in variables or isinstance(node, ir.Reduce):
            return
        others = variables - {binder.name}
        if (isinstance(node, (ir.Call, ir.Binary, ir.Unary, ir.Select)) and expr_type(node) == REAL
                and has_call(node) and others <= bound):
            outer = max((level_of(name) for name in others), default=0)
            if outer < level:
                candidates.append((node, outer))
                return
        for child in children(node):
            visit(child)

    visit(expr.body)
    return candidates
