"""Compile-time evaluation of integer and boolean expressions.

The checkers decide questions that depend on index values (an `l` restricted
to 0, a parity filter on `l1 + l2 + L`, the triangle rule of `cg`) by
evaluating the applicable `where` conditions jointly over the finite domains
the hypers determine.  Values that are not known before run time (species,
atoms, pairs, data) evaluate to :data:`UNKNOWN`, and conditions use
three-valued logic: a point is kept unless a condition is certainly false.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator, Optional

from .program import (
    Binary, Call, Const, Dim, Expr, Index, IndexRef, IrrepDim, RangeDim, Ternary, Unary, XyzDim,
    index_refs,
)


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:  # pragma: no cover - guard against accidental truth tests
        raise TypeError("UNKNOWN has no truth value")


UNKNOWN = _Unknown()

#: most points the checkers enumerate for one question; beyond, the answer is "unknown"
MAX_POINTS = 200_000


class TooManyPoints(Exception):
    pass


def evaluate(expr: Expr, env: Optional[dict] = None):
    """The value of ``expr`` with the indices of ``env`` ({Index: int}) fixed, or UNKNOWN."""
    env = env or {}
    try:
        return _eval(expr, env)
    except (ArithmeticError, ValueError, TypeError, OverflowError):
        return UNKNOWN


def _eval(expr: Expr, env: dict):
    if isinstance(expr, Const):
        return expr.value
    if isinstance(expr, IndexRef):
        return env.get(expr.index, UNKNOWN)
    if isinstance(expr, Unary):
        value = _eval(expr.operand, env)
        if value is UNKNOWN:
            return UNKNOWN
        if expr.op == "-":
            return -value
        return not value
    if isinstance(expr, Binary):
        return _binary(expr, env)
    if isinstance(expr, Ternary):
        cond = _eval(expr.cond, env)
        if cond is UNKNOWN:
            return UNKNOWN
        return _eval(expr.then if cond else expr.otherwise, env)
    if isinstance(expr, Call):
        if expr.function == "abs" and len(expr.args) == 1:
            value = _eval(expr.args[0], env)
            return UNKNOWN if value is UNKNOWN else abs(value)
        if expr.function == "sqrt" and len(expr.args) == 1:
            value = _eval(expr.args[0], env)
            return UNKNOWN if value is UNKNOWN else math.sqrt(value)
        return UNKNOWN
    return UNKNOWN


def _binary(expr: Binary, env: dict):
    op = expr.op
    if op in ("and", "or"):
        left = _eval(expr.left, env)
        if op == "and" and left is not UNKNOWN and not left:
            return False
        if op == "or" and left is not UNKNOWN and left:
            return True
        right = _eval(expr.right, env)
        if right is not UNKNOWN:
            if op == "and" and not right:
                return False
            if op == "or" and right:
                return True
        if left is UNKNOWN or right is UNKNOWN:
            return UNKNOWN
        return bool(right)
    left = _eval(expr.left, env)
    right = _eval(expr.right, env)
    if left is UNKNOWN or right is UNKNOWN:
        return UNKNOWN
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "/":
        return left / right
    if op == "%":
        return left % right
    if op == "^":
        if isinstance(left, int) and isinstance(right, int) and right >= 0:
            if abs(right) > 4096:
                return UNKNOWN
            return left**right
        return float(left) ** float(right)
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    return UNKNOWN


def truth(value) -> Optional[bool]:
    """True, False, or None when unknown."""
    if value is UNKNOWN:
        return None
    return bool(value)


def dim_values(dim: Dim, env: dict) -> Optional[range]:
    """The values of ``dim`` under ``env``, or None when not known before run time."""
    if isinstance(dim, RangeDim):
        return range(dim.start, dim.stop)
    if isinstance(dim, XyzDim):
        return range(3)
    if isinstance(dim, IrrepDim):
        degree = evaluate(dim.degree, env)
        if degree is UNKNOWN or not isinstance(degree, int) or degree < 0:
            return None
        return range(-degree, degree + 1)
    return None


def dim_dependencies(dim: Dim) -> list[Index]:
    if isinstance(dim, IrrepDim):
        return index_refs(dim.degree)
    return []


def closure(variables: Iterable[Index], conditions: Iterable[Expr]) -> tuple[list[Index], list[Expr]]:
    """The variables to enumerate for a question about ``variables``: those,
    their dims' dependencies, and the variables of every condition that shares
    a variable with them (transitively).  Returns (variables, conditions used)."""
    wanted: list[Index] = []
    seen: set[Index] = set()
    pending = list(variables)
    conditions = list(conditions)
    cond_vars = [set(index_refs(c)) for c in conditions]
    used = [False] * len(conditions)
    while pending:
        index = pending.pop()
        if index in seen:
            continue
        seen.add(index)
        wanted.append(index)
        pending.extend(dim_dependencies(index.dim))
        for position, refs in enumerate(cond_vars):
            if not used[position] and index in refs:
                used[position] = True
                pending.extend(refs)
    # conditions without any variable (constant filters) apply too
    for position, refs in enumerate(cond_vars):
        if not refs:
            used[position] = True
    return wanted, [c for c, u in zip(conditions, used) if u]


def _order(variables: list[Index]) -> list[Index]:
    """Variables ordered so that every dim's dependencies come first."""
    ordered: list[Index] = []
    placed: set[Index] = set()
    remaining = list(variables)
    while remaining:
        progress = False
        for index in list(remaining):
            deps = [d for d in dim_dependencies(index.dim) if d in remaining and d is not index]
            if all(d in placed for d in deps):
                ordered.append(index)
                placed.add(index)
                remaining.remove(index)
                progress = True
        if not progress:
            ordered.extend(remaining)
            break
    return ordered


def points(variables: Iterable[Index], conditions: Iterable[Expr], env: Optional[dict] = None,
           limit: int = MAX_POINTS) -> Iterator[dict]:
    """Every assignment of the enumerable ``variables`` that no condition rules
    out.  Variables whose domain is unknown stay unassigned (UNKNOWN).  Raises
    :class:`TooManyPoints` beyond ``limit`` visited assignments."""
    base = dict(env or {})
    ordered = _order([v for v in dict.fromkeys(variables) if v not in base])
    conditions = list(conditions)
    cond_vars = [set(index_refs(c)) for c in conditions]
    position_of = {index: position for position, index in enumerate(ordered)}
    # each condition is checked once its last enumerated variable is assigned
    at_level: list[list[Expr]] = [[] for _ in range(len(ordered) + 1)]
    for condition, refs in zip(conditions, cond_vars):
        level = max((position_of[r] + 1 for r in refs if r in position_of), default=0)
        at_level[level].append(condition)
    counter = [0]

    def ok(level: int, current: dict) -> bool:
        for condition in at_level[level]:
            if evaluate(condition, current) is False:
                return False
        return True

    def recurse(level: int, current: dict) -> Iterator[dict]:
        if level == len(ordered):
            yield current
            return
        index = ordered[level]
        values = dim_values(index.dim, current)
        if values is None:
            if ok(level + 1, current):
                yield from recurse(level + 1, current)
            return
        for value in values:
            counter[0] += 1
            if counter[0] > limit:
                raise TooManyPoints
            current[index] = value
            if ok(level + 1, current):
                yield from recurse(level + 1, current)
            del current[index]

    if not ok(0, base):
        return
    yield from recurse(0, base)


def always(predicate, variables: Iterable[Index], conditions: Iterable[Expr],
           env: Optional[dict] = None) -> Optional[bool]:
    """Whether ``predicate(env)`` holds at every point the conditions allow:
    True, False (a counterexample exists), or None (unknown / too many points).
    ``predicate`` returns True, False or None (unknown at that point)."""
    variables, used = closure(variables, conditions)
    unknown = False
    try:
        for point in points(variables, used, env):
            result = predicate(point)
            if result is False:
                return False
            if result is None:
                unknown = True
    except TooManyPoints:
        return None
    return None if unknown else True


def exists(variables: Iterable[Index], conditions: Iterable[Expr], env: Optional[dict] = None
           ) -> Optional[bool]:
    """Whether some point satisfies (or may satisfy) the conditions; None when too many."""
    variables, used = closure(variables, conditions)
    try:
        for _ in points(variables, used, env):
            return True
    except TooManyPoints:
        return None
    return False
