"""LLVM IR building blocks of the printer: the integer types, 64-bit constants, names as IR
identifiers, and the IRBuilder whose adds and multiplies may contract."""

from __future__ import annotations

import llvmlite.ir as ll

from ..schedule.plan import Unsupported

I1, I32, I64, I8 = ll.IntType(1), ll.IntType(32), ll.IntType(64), ll.IntType(8)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def i64(value: int) -> ll.Constant:
    value = int(value)
    if not INT64_MIN < value <= INT64_MAX:
        raise Unsupported(f"integer {value} outside 64 bits")
    return ll.Constant(I64, value)


def _ident(text) -> str:
    """A value or block name from a nest name: ASCII letters, digits and `_` only (names never reach
    the IR otherwise)."""
    kept = "".join(c for c in str(text) if c.isascii() and (c.isalnum() or c == "_"))[:24]
    return kept or "x"


def _sanitize(text) -> str:
    return "".join(c if (c.isascii() and (c.isalnum() or c in "_-.")) else "_" for c in str(text))[:64] or "m"


class Builder(ll.IRBuilder):
    """An IRBuilder whose floating-point adds and multiplies may contract into fused multiply-adds
    (what g++ -O3 does by default for the C++ backend); no other fast-math freedom."""

    def fadd(self, lhs, rhs, name="", flags=("contract",)):
        return ll.IRBuilder.fadd(self, lhs, rhs, name, flags)

    def fsub(self, lhs, rhs, name="", flags=("contract",)):
        return ll.IRBuilder.fsub(self, lhs, rhs, name, flags)

    def fmul(self, lhs, rhs, name="", flags=("contract",)):
        return ll.IRBuilder.fmul(self, lhs, rhs, name, flags)
