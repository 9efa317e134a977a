"""The LLVM printer of the loop-nest IR (`codegen/schedule/nest.py`): nest expressions as
instructions, a nest routine inline into a new local array."""

from __future__ import annotations

import llvmlite.ir as ll

from ..plan import Unsupported
from ..schedule import nest
from .emit import I1, i64


class NestPrinter:
    """Prints nest code at an IRBuilder's position: `real` is the kernel's float type,
    `intrinsic(name)` declares an LLVM intrinsic of it, `alloca(type, name)` makes a local array in
    the function's entry block."""

    def __init__(self, real, intrinsic, alloca):
        self.real, self.intrinsic, self.alloca = real, intrinsic, alloca

    def routine(self, b, routine: nest.Routine, args: dict, array_type):
        """`routine` inline at `b`, its output a new local array of `array_type`; `args`: its
        parameters' values (a vector: a tuple of three)."""
        table = self.alloca(array_type, routine.name)
        values = dict(args)
        for statement in routine.body:
            if isinstance(statement, nest.Let):
                values[statement.name] = self.value(b, statement.value, values)
            elif isinstance(statement, nest.Store):
                b.store(self.value(b, statement.value, values), b.gep(table, [i64(0), i64(statement.index)]))
            else:
                raise Unsupported(f"nest statement {type(statement).__name__}")
        return table

    def value(self, b, expr, values: dict):
        """A nest expression as instructions at `b` (`values`: what its names are bound to)."""
        if isinstance(expr, nest.Const):
            if expr.type == nest.BOOL:
                return ll.Constant(I1, int(bool(expr.value)))
            return i64(expr.value) if expr.type == nest.INT else ll.Constant(self.real, float(expr.value))
        if isinstance(expr, nest.Ref):
            return values[expr.name]
        if isinstance(expr, nest.Lane):
            return self.value(b, expr.vector, values)[expr.lane]
        if isinstance(expr, nest.Unary) and expr.op == "neg":
            return b.fneg(self.value(b, expr.operand, values))
        if isinstance(expr, nest.Binary):
            left, right = self.value(b, expr.left, values), self.value(b, expr.right, values)
            if expr.op == "eq":
                return b.fcmp_ordered("==", left, right)
            return {"add": b.fadd, "sub": b.fsub, "mul": b.fmul, "div": b.fdiv}[expr.op](left, right)
        if isinstance(expr, nest.Select):
            return b.select(*(self.value(b, e, values) for e in (expr.condition, expr.if_true, expr.if_false)))
        if isinstance(expr, nest.Intrinsic) and expr.name == "sqrt":
            return b.call(self.intrinsic("llvm.sqrt"), [self.value(b, expr.args[0], values)])
        raise Unsupported(f"nest expression {type(expr).__name__}")
