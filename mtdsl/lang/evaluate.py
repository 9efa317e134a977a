"""Compile-time evaluation of integer and boolean expressions.

The checkers decide questions that depend on index values (an `l` restricted
to 0, a parity filter on `l1 + l2 + L`, the triangle rule of `cg`) by
evaluating the applicable `where` conditions jointly over the finite domains
the hypers determine.  Values that are not known before run time (species,
atoms, pairs, data) evaluate to :data:`UNKNOWN`, and conditions use
three-valued logic: a point is kept unless a condition is certainly false.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Optional

from mtdsl import builtins

from .program import (
    Binary, Call, Const, Dim, Expr, HyperItem, Index, IndexRef, IrrepDim, RangeDim, Ternary, Unary, XyzDim,
    children, index_refs,
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
    try:
        return compiled(expr)(env or {})
    except (ArithmeticError, ValueError, TypeError, OverflowError, RecursionError):
        return UNKNOWN


# expressions are compiled once into Python closures (keyed by identity; the
# expression is kept in the cache so that its id stays valid)
_COMPILED: dict[int, tuple[Expr, object]] = {}
_MAX_CACHE = 200_000


def compiled(expr: Expr):
    """``expr`` as a function of an environment {Index: int}; may raise on
    arithmetic errors (:func:`evaluate` turns those into UNKNOWN)."""
    entry = _COMPILED.get(id(expr))
    if entry is not None and entry[0] is expr:
        return entry[1]
    function = _compile(expr)
    if len(_COMPILED) > _MAX_CACHE:
        _COMPILED.clear()
    _COMPILED[id(expr)] = (expr, function)
    return function


def _unknown(env):
    return UNKNOWN


_ARITHMETIC = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "%": lambda a, b: a % b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _power(a, b):
    if isinstance(a, int) and isinstance(b, int) and b >= 0:
        if b > 4096:
            return UNKNOWN
        return a**b
    return float(a) ** float(b)


def _compile(expr: Expr):
    if isinstance(expr, Const):
        value = expr.value
        return lambda env: value
    if isinstance(expr, IndexRef):
        index = expr.index
        return lambda env: env.get(index, UNKNOWN)
    if isinstance(expr, Unary):
        operand = compiled(expr.operand)
        if expr.op == "-":
            def negate(env):
                value = operand(env)
                return UNKNOWN if value is UNKNOWN else -value
            return negate

        def invert(env):
            value = operand(env)
            return UNKNOWN if value is UNKNOWN else not value
        return invert
    if isinstance(expr, Binary):
        left, right = compiled(expr.left), compiled(expr.right)
        op = expr.op
        if op == "and":
            def conjunction(env):
                a = left(env)
                if a is not UNKNOWN and not a:
                    return False
                b = right(env)
                if b is not UNKNOWN and not b:
                    return False
                return UNKNOWN if a is UNKNOWN or b is UNKNOWN else True
            return conjunction
        if op == "or":
            def disjunction(env):
                a = left(env)
                if a is not UNKNOWN and a:
                    return True
                b = right(env)
                if b is not UNKNOWN and b:
                    return True
                return UNKNOWN if a is UNKNOWN or b is UNKNOWN else False
            return disjunction
        function = _power if op == "^" else _ARITHMETIC.get(op)
        if function is None:
            return _unknown

        def binary(env):
            a = left(env)
            if a is UNKNOWN:
                return UNKNOWN
            b = right(env)
            if b is UNKNOWN:
                return UNKNOWN
            return function(a, b)
        return binary
    if isinstance(expr, Ternary):
        cond, then, otherwise = compiled(expr.cond), compiled(expr.then), compiled(expr.otherwise)

        def choose(env):
            c = cond(env)
            if c is UNKNOWN:
                return UNKNOWN
            return then(env) if c else otherwise(env)
        return choose
    if isinstance(expr, HyperItem) and expr.keys is not None:  # a table: the value of the key
        table, position = dict(zip(expr.keys, expr.values)), compiled(expr.index)

        def entry(env):
            k = position(env)
            return table.get(k, UNKNOWN) if isinstance(k, int) else UNKNOWN
        return entry
    if isinstance(expr, HyperItem):
        values, position = expr.values, compiled(expr.index)

        def item(env):
            k = position(env)
            if k is UNKNOWN or not isinstance(k, int) or not 0 <= k < len(values):
                return UNKNOWN
            return values[k]
        return item
    builtin = builtins.lookup(expr.function) if isinstance(expr, Call) else None
    if builtin is not None and builtin.fold is not None and len(expr.args) == 1:
        argument = compiled(expr.args[0])
        function = builtin.fold  # exact, on Python numbers (abs of an int stays an int)

        def call(env):
            value = argument(env)
            return UNKNOWN if value is UNKNOWN else function(value)
        return call
    return _unknown


_REFS: dict[int, tuple[Expr, tuple]] = {}


def refs_of(expr: Expr) -> tuple[Index, ...]:
    """The distinct indices referenced in ``expr`` (cached by identity)."""
    entry = _REFS.get(id(expr))
    if entry is not None and entry[0] is expr:
        return entry[1]
    found = tuple(dict.fromkeys(index_refs(expr)))
    if len(_REFS) > _MAX_CACHE:
        _REFS.clear()
    _REFS[id(expr)] = (expr, found)
    return found


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


def dim_dependencies(dim: Dim) -> tuple[Index, ...]:
    if isinstance(dim, IrrepDim):
        return refs_of(dim.degree)
    return ()


def closure(variables: Iterable[Index], conditions: Iterable[Expr]) -> tuple[list[Index], list[Expr]]:
    """The variables to enumerate for a question about ``variables``: those,
    their dims' dependencies, and the variables of every condition that shares
    a variable with them (transitively).  Returns (variables, conditions used)."""
    wanted: list[Index] = []
    seen: set[Index] = set()
    pending = list(variables)
    conditions = list(conditions)
    cond_vars = [set(refs_of(c)) for c in conditions]
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
    cond_vars = [refs_of(c) for c in conditions]
    position_of = {index: position for position, index in enumerate(ordered)}
    # each condition is checked once its last enumerated variable is assigned
    at_level: list[list[Expr]] = [[] for _ in range(len(ordered) + 1)]
    for condition, refs in zip(conditions, cond_vars):
        level = max((position_of[r] + 1 for r in refs if r in position_of), default=0)
        at_level[level].append(condition)
    counter = [0]

    checks = [[compiled(condition) for condition in level] for level in at_level]

    def ok(level: int, current: dict) -> bool:
        for check in checks[level]:
            try:
                if check(current) is False:
                    return False
            except (ArithmeticError, ValueError, TypeError, OverflowError):
                continue
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


# ---- memoized answers ------------------------------------------------------------------------------
#
# The answer to a question about index values depends only on the structure of
# the expressions involved and on the domains of their variables, not on the
# variables' identities.  A structural key numbers the distinct indices in order
# of appearance (two different indices stay different, renamed ones match), so
# a question asked again for another tensor of the same shape is answered from
# the cache.

_ANSWERS: dict = {}


def structural_key(*items) -> tuple:
    """A hashable key of ``items`` (expressions, dims, tuples of them, plain values)."""
    numbering: dict = {}

    def dim_key(dim):
        if isinstance(dim, RangeDim):
            return ("range", dim.start, dim.stop)
        if isinstance(dim, IrrepDim):
            return ("irrep", key(dim.degree))
        if isinstance(dim, XyzDim):
            return ("xyz",)
        return (type(dim).__name__,)

    def key(item):
        if item is None or isinstance(item, (bool, int, float, str)):
            return item
        if isinstance(item, (tuple, list, set, frozenset)):
            return tuple(key(sub) for sub in item)
        if isinstance(item, IndexRef):
            index = item.index
            number = numbering.get(index)
            if number is None:
                number = numbering[index] = len(numbering)
                return ("index", number, dim_key(index.dim))
            return ("index", number)
        if isinstance(item, Const):
            value = item.value
            return ("const", tuple(value) if isinstance(value, list) else value)
        if isinstance(item, Unary):
            return ("unary", item.op, key(item.operand))
        if isinstance(item, Binary):
            return ("binary", item.op, key(item.left), key(item.right))
        if isinstance(item, Ternary):
            return ("ternary", key(item.cond), key(item.then), key(item.otherwise))
        if isinstance(item, Call):
            return ("call", item.function, key(item.args))
        if isinstance(item, HyperItem):
            return ("item", tuple(item.values), item.keys, key(item.index))
        if isinstance(item, Dim):
            return dim_key(item)
        # data, parameters, blocks: opaque (they evaluate to UNKNOWN); their indices still count
        return ("opaque", type(item).__name__, tuple(key(child) for child in children(item)))

    return tuple(key(item) for item in items)


def memoized(question: str, key_items: tuple, compute):
    """``compute()``, remembered under ``question`` and the structural key of ``key_items``."""
    try:
        key = (question, structural_key(*key_items))
        hash(key)
    except TypeError:
        return compute()
    if key in _ANSWERS:
        return _ANSWERS[key]
    answer = compute()
    if len(_ANSWERS) > _MAX_CACHE:
        _ANSWERS.clear()
    _ANSWERS[key] = answer
    return answer


def clear_caches() -> None:
    """Forget compiled expressions and memoized answers (benchmarks use it to time cold checks)."""
    _ANSWERS.clear()
    _COMPILED.clear()
    _REFS.clear()
