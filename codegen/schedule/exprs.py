"""Small builders of typed nest expressions for the kernel lowering (`schedule/kernel.py`).

Each builder gives its node the type of its result and casts operands where the
nest requires one type (a bool used as an int, an int used as a real): a
printer then needs no type rules of its own beyond the node's `type`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .plan import Unsupported
from . import nest
from .nest import BOOL, INT, REAL, VEC

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Value:
    """A lowered expression and where it can be computed: the nest level of the outermost block whose
    variables it reads (`level`), in that block's body (after its nested loops) when `body`."""

    expr: object
    level: int
    body: bool = False

    @property
    def type(self) -> str:
        return self.expr.type

    @property
    def place(self) -> tuple:
        return (self.level, self.body)


@dataclass(frozen=True)
class VarInfo:
    """A bound loop variable: its value and buffer / parameter coordinate (value - start, m + max,
    species rank) as nest expressions, its level, its domain."""

    code: object
    position: object
    level: int
    domain: object


def iconst(value: int) -> nest.Const:
    value = int(value)
    if not INT64_MIN < value <= INT64_MAX:
        raise Unsupported(f"integer {value} outside 64 bits")
    return nest.Const(value, INT)


def rconst(value: float) -> nest.Const:
    return nest.Const(float(value), REAL)


def ref(name: str, type_: str = INT) -> nest.Ref:
    return nest.Ref(name, type_)


def array(name: str) -> nest.Ref:
    return nest.Ref(name, nest.ARRAY)


def as_real(expr):
    return nest.Cast(expr, REAL) if expr.type in (INT, BOOL) else expr


def as_int(expr):
    return nest.Cast(expr, INT) if expr.type == BOOL else expr


def as_bool(expr):
    return nest.Cast(expr, BOOL) if expr.type != BOOL else expr


def binary(op: str, left, right, type_: str = INT):
    return nest.Binary(op, left, right, type_)


def iadd(a, b):
    return nest.Binary("add", a, b, INT)


def isub(a, b):
    return nest.Binary("sub", a, b, INT)


def imul(a, b):
    return nest.Binary("mul", a, b, INT)


def compare(op: str, a, b):
    return nest.Binary(op, a, b, BOOL)


def either(*conditions):
    result = conditions[0]
    for condition in conditions[1:]:
        result = nest.Binary("or", result, condition, BOOL)
    return result


def both(*conditions):
    result = conditions[0]
    for condition in conditions[1:]:
        result = nest.Binary("and", result, condition, BOOL)
    return result


def call(name: str, *args, type_: str = None):
    return nest.Intrinsic(name, tuple(args), type_ or nest.INTRINSICS[name].result)


def skip_if(condition, why: str = "") -> nest.Guard:
    """`continue` where `condition` holds (a guard on its negation)."""
    return nest.Guard(nest.Unary("not", condition, BOOL), why)


def vec_operand(expr):
    return expr if expr.type == VEC else as_real(expr)
