"""Reads that stay inside their local array: a fact of the loop nest, decided once for every target.

A read `Load(array, index)` of a local array (an `Alloc` of `size` entries) is marked
`in_bounds` where the constants that bound the index (loop ranges with constant ends, and `Let`s
of sums, differences and products of them) keep it inside the array, wherever the read stands.
Reads whose index may leave its range are not marked: an index read from memory, one of a
parameter or a CSR segment, one that the bounds put outside (`sph` at l = -1, `t[m - 1]` at
m = 0), a read through a `View` (its size unknown).

A printer that computes both sides of a `Select` (the LLVM one) masks the reads of the side not
chosen to entry 0 so that they cannot leave their array; a read marked here needs no mask and
keeps a contiguous load its vectorizer handles (a masked index made the convolution's column
table a gather: issue #15). The C++ printer has no use for it (`?:` evaluates one side).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from . import nest


def mark_in_bounds(kernel: nest.Kernel) -> nest.Kernel:
    """`kernel` with every read of a local array that its index's constant bounds keep inside it
    marked `in_bounds` (every other node as it was)."""
    return dataclasses.replace(kernel, body=_Scope({}, {}).block(kernel.body))


class _Scope:
    """What is known where a statement stands: `ranges` (an int name -> its least and greatest
    value, where constants bound it) and `sizes` (a local array -> its number of entries)."""

    def __init__(self, ranges: dict, sizes: dict):
        self.ranges, self.sizes = ranges, sizes

    def inner(self) -> "_Scope":
        """The scope of a loop's or an `If`'s body: what it binds is forgotten after it."""
        return _Scope(dict(self.ranges), dict(self.sizes))

    def bound(self, name: str, interval) -> None:
        if interval is None:
            self.ranges.pop(name, None)
        else:
            self.ranges[name] = interval

    # -- statements ----------------------------------------------------------------------------------------
    def block(self, body) -> tuple:
        return tuple(self.statement(s) for s in body)

    def statement(self, s):
        if isinstance(s, nest.Let):
            marked = dataclasses.replace(s, value=self.expr(s.value))
            self.bound(s.name, interval(s.value, self.ranges))
            return marked
        if isinstance(s, (nest.Local, nest.Update)):
            if isinstance(s, nest.Local):
                self.ranges.pop(s.name, None)  # a mutable value: no bounds
            return dataclasses.replace(s, value=self.expr(s.value))
        if isinstance(s, nest.Alloc):
            self.sizes[s.name] = max(int(s.size), 1)
            return s
        if isinstance(s, nest.View):
            self.sizes.pop(s.name, None)
            return dataclasses.replace(s, offset=self.expr(s.offset))
        if isinstance(s, nest.Store):
            return dataclasses.replace(s, index=self.expr(s.index), value=self.expr(s.value))
        if isinstance(s, nest.Fill):
            return dataclasses.replace(s, args=tuple(self.expr(a) for a in s.args))
        if isinstance(s, nest.Guard):
            return dataclasses.replace(s, condition=self.expr(s.condition))
        if isinstance(s, nest.If):
            return dataclasses.replace(s, condition=self.expr(s.condition), body=self.inner().block(s.body))
        if isinstance(s, nest.Loop):
            return self.loop(s)
        raise TypeError(f"not a nest statement: {s!r}")

    def loop(self, s: nest.Loop) -> nest.Loop:
        start = self.expr(s.start)
        stop = None if s.stop is None else self.expr(s.stop)
        if s.kind == "equal":  # `var = start`
            values = interval(s.start, self.ranges)
        else:  # [start, stop): a parallel driver's chunks run a part of it
            first = interval(s.start, self.ranges)
            last = None if s.stop is None else interval(s.stop, self.ranges)
            values = None if first is None or last is None else (first[0], last[1] - 1)
        body = self.inner()
        body.bound(s.var, values)
        return dataclasses.replace(s, start=start, stop=stop, body=body.block(s.body))

    # -- expressions -------------------------------------------------------------------------------------
    def expr(self, e):
        if isinstance(e, int) or isinstance(e, (nest.Const, nest.Ref)):
            return e
        if isinstance(e, nest.Load):
            index = self.expr(e.index)
            return dataclasses.replace(e, index=index, in_bounds=self.inside(e))
        if isinstance(e, nest.Lane):
            return dataclasses.replace(e, vector=self.expr(e.vector))
        if isinstance(e, (nest.Unary, nest.Cast)):
            return dataclasses.replace(e, operand=self.expr(e.operand))
        if isinstance(e, nest.Binary):
            return dataclasses.replace(e, left=self.expr(e.left), right=self.expr(e.right))
        if isinstance(e, nest.Select):
            return dataclasses.replace(e, condition=self.expr(e.condition), if_true=self.expr(e.if_true),
                                       if_false=self.expr(e.if_false))
        if isinstance(e, nest.Intrinsic):
            return dataclasses.replace(e, args=tuple(self.expr(a) for a in e.args))
        raise TypeError(f"not a nest expression: {e!r}")

    def inside(self, e: nest.Load) -> bool:
        """Whether the read `e` of a local array stays inside it (a vector read: its three entries)."""
        size = self.sizes.get(e.array)
        values = interval(e.index, self.ranges) if size is not None else None
        if values is None:
            return False
        width = 3 if e.type == nest.VEC else 1
        return values[0] >= 0 and (values[1] + 1) * width <= size


def interval(expr, ranges: dict) -> Optional[tuple]:
    """`(lo, hi)`, the least and greatest value of the int expression `expr` given the `ranges` of
    the names it uses (constants, sums, differences and products); None where unknown."""
    if isinstance(expr, int) and not isinstance(expr, bool):
        return expr, expr
    if isinstance(expr, nest.Const) and expr.type == nest.INT:
        return int(expr.value), int(expr.value)
    if isinstance(expr, nest.Ref):
        return ranges.get(expr.name)
    if isinstance(expr, nest.Binary) and expr.type == nest.INT and expr.op in ("add", "sub", "mul"):
        x, y = interval(expr.left, ranges), interval(expr.right, ranges)
        if x is None or y is None:
            return None
        if expr.op == "add":
            return x[0] + y[0], x[1] + y[1]
        if expr.op == "sub":
            return x[0] - y[1], x[1] - y[0]
        products = [a * c for a in x for c in y]
        return min(products), max(products)
    return None
