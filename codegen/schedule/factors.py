"""Products regrouped by placement, and the zero Clebsch-Gordan coefficients they may skip.

- `product_factors(expr, whole)`: the factors of a real product tree, keeping
  whole the sub-products in `whole` (ids of tabulated or expanded nodes, read
  from a table as one value). The renderers multiply them innermost-placed
  last, so `R(n, l) * fc * Y(l, m)` computes `fc * Y` once per `(p, l, m)`.
- `zero_skips(factors)`: in an accumulated product, the Clebsch-Gordan factors
  whose zero value skips the rest of the iteration (adding zero changes
  nothing), and `triangle_degrees(factor)`: the three degrees `(l1, l2, L)`
  whose triangle rule, tested where they are bound, skips every `m1, m2, M`.
"""

from __future__ import annotations

from mtdsl.ir import nodes as ir

from .plan import REAL, expr_type


def is_real_product(expr) -> bool:
    return isinstance(expr, ir.Binary) and expr.op == "mul" and expr_type(expr) == REAL


def product_factors(expr, whole=()) -> list:
    """The factors of a real product tree; the ids in `whole` are kept as one factor."""
    if is_real_product(expr) and id(expr) not in whole:
        return product_factors(expr.left, whole) + product_factors(expr.right, whole)
    return [expr]


def is_cg(node) -> bool:
    return isinstance(node, ir.Call) and node.function == "cg" and len(node.args) == 6


def zero_skips(factors: list) -> list:
    """The Clebsch-Gordan factors of an accumulated product: where one is zero, the iteration adds zero."""
    return [node for node in factors if is_cg(node)]


def triangle_degrees(node: ir.Call) -> tuple:
    """`(l1, l2, L)` of `cg(l1, m1, l2, m2, L, M)`: zero for every order unless `|l1 - l2| <= L <= l1 + l2`."""
    return node.args[0], node.args[2], node.args[4]
