"""The LLVM IR building blocks of the kernel walk: 64-bit constants, names, a value and the
loop level it is placed at, and the IRBuilder whose adds and multiplies may contract."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import llvmlite.ir as ll

from ..plan import Unsupported

I1, I32, I64, I8 = ll.IntType(1), ll.IntType(32), ll.IntType(64), ll.IntType(8)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def i64(value: int) -> ll.Constant:
    value = int(value)
    if not INT64_MIN < value <= INT64_MAX:
        raise Unsupported(f"integer {value} outside 64 bits")
    return ll.Constant(I64, value)


def _ident(text) -> str:
    """A value or block name from an IR name: ASCII letters, digits and `_` only (names never reach
    the IR otherwise)."""
    kept = "".join(c for c in str(text) if c.isascii() and (c.isalnum() or c == "_"))[:24]
    return kept or "x"


def _sanitize(text) -> str:
    return "".join(c if (c.isascii() and (c.isalnum() or c in "_-.")) else "_" for c in str(text))[:64] or "m"



# ---- values and levels ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    v: object  # an LLVM value, or a tuple of three for a vector
    type: str
    level: int
    body: bool = False

    @property
    def place(self):
        return (self.level, self.body)


@dataclass(frozen=True)
class VarInfo:
    value: object  # i64
    position: object  # i64: the buffer / parameter coordinate
    level: int
    domain: object


class Region:
    """A chain of blocks that grows at its `tail` (unterminated while the kernel is built)."""

    def __init__(self, block):
        self.tail = block


class Level:
    _uids = itertools.count()

    def __init__(self, prelude, body):
        self.uid = next(Level._uids)
        self.prelude = Region(prelude)
        self.body = Region(body)
        self.body_head = body
        self.pre = self.latch = self.exit = self.target = None


class Builder(ll.IRBuilder):
    """An IRBuilder whose floating-point adds and multiplies may contract into fused multiply-adds
    (what g++ -O3 does by default for the C++ backend); no other fast-math freedom."""

    def fadd(self, lhs, rhs, name="", flags=("contract",)):
        return ll.IRBuilder.fadd(self, lhs, rhs, name, flags)

    def fsub(self, lhs, rhs, name="", flags=("contract",)):
        return ll.IRBuilder.fsub(self, lhs, rhs, name, flags)

    def fmul(self, lhs, rhs, name="", flags=("contract",)):
        return ll.IRBuilder.fmul(self, lhs, rhs, name, flags)


def _key(operand):
    if isinstance(operand, tuple):
        return tuple(_key(o) for o in operand)
    if isinstance(operand, ll.Constant):
        return ("const", str(operand))
    if isinstance(operand, (int, float, str)):
        return ("py", operand)
    return ("value", id(operand))



def _ipow(b, x, exponent: int):
    """`x ** exponent` (a non-negative constant) by squaring."""
    result, base = i64(1), x
    while exponent:
        if exponent & 1:
            result = b.mul(result, base)
        exponent >>= 1
        if exponent:
            base = b.mul(base, base)
    return result

