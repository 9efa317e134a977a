"""The LLVM printer of the loop-nest IR (`codegen/schedule/nest.py`): a `nest.Kernel` to one function

    i64 @symbol(i8** arrays, i64* scalars, i64 lo, i64 hi)

returning the error flags (1 missing block entry, 2 index out of range, 4 distance beyond a
spline). Every decision (placement by loop level, common subexpressions, tables, skips, checked
reads) was taken by the lowering; this only prints, node by node:

- parameters: outputs and arrays are `arrays[k]` in order, cast to their element type, scalars
  `scalars[k]`, all loaded once in an argument block;
- `Let` an SSA value; `Local` a stack slot (`Update` adds into it), promoted to registers by LLVM;
  `Alloc` a stack array in the entry block (zeroed where it stands when `zero`), `View` a pointer
  into one;
- `Loop` basic blocks: a header with the counter's phi, the body, a latch (where `continue`
  goes) and an exit; a domain loop counts from 0 (`var = start + k`: LLVM unrolls and unswitches
  such a loop better, issue #15); an "equal" loop is its body once (`continue` goes to its exit); the parallel
  driver runs only the positions `[lo, hi)` of its range (`LLVMKernel` calls it on chunks; the
  range scalars a scatter kernel's driver is bounded by are these `lo` and `hi`);
- `Guard` a branch to the innermost loop's latch (or to the return); `If` a branch around its body;
- `Intrinsic` and `Fill` through the tables of `primitives.py`, errors or-ed into a stack slot
  returned at the end;
- `Select` computes both sides and selects: a read on the side not chosen reads entry 0 (a masked
  index), except a read the lowering marked `in_bounds` (`schedule/bounds.py`: a local array
  read at an index constants bound inside it), which stays a plain read that LLVM vectorizes as
  a contiguous load (issue #15).

Adds and multiplies may contract into FMAs (`Builder`), nothing else of fast-math, as the kernel
walk did. Vectorization is left to LLVM's loop and SLP vectorizers (`jit.optimize`), as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ll

from ..schedule.plan import Unsupported
from ..schedule import abi, nest
from .emit import I1, I32, I64, I8, Builder, _ident, i64
from .primitives import FILLS, PRIMITIVES, fmod, imod, ipow

_FLOAT_OPS = {"add": "fadd", "sub": "fsub", "mul": "fmul", "div": "fdiv"}
_INT_OPS = {"add": "add", "sub": "sub", "mul": "mul", "div": "sdiv"}
_GUARDED = {name for name, primitive in nest.INTRINSICS.items() if primitive.error or nest.ARRAY in primitive.args}
_COMPARE = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def driver_range(param: nest.Param):
    """0 or 1 for the scalars bounding a driver's range (`abi.DriverRange`: C++ takes a scatter
    kernel's range so), which LLVM takes as the function's own `lo` and `hi`; else None."""
    if param.group == "scalar" and isinstance(param.argument, abi.DriverRange):
        return param.argument.end
    return None


def _statements(body):
    """Every statement of `body`, those inside loops and ifs included."""
    for statement in body:
        yield statement
        if isinstance(statement, (nest.Loop, nest.If)):
            yield from _statements(statement.body)


def scalars(kernel: nest.Kernel) -> list:
    """The ABI arguments of a printed kernel's `scalars[k]`, in order."""
    return [p.argument for p in kernel.params if p.group == "scalar" and driver_range(p) is None]


class _Loop:
    """Where `continue` goes in a loop being printed."""

    def __init__(self, latch):
        self.latch = latch


class NestPrinter:
    """Prints nest code into one LLVM module whose floats are `real`; `routines`: the module's
    `nest.Routine`s by name (what a `Fill` may call besides `FILL_FUNCTIONS`)."""

    def __init__(self, llmodule: ll.Module, real, routines: dict | None = None):
        self.llmodule, self.real = llmodule, real
        self.routines = routines if routines is not None else {}
        self.entry = self.err = self.b = None
        self.filled: dict = {}
        self.when = None  # the condition under which the expression being printed is used (Select)
        self.env: dict = {}

    # -- the target's pieces -----------------------------------------------------------------------------
    def rconst(self, value: float):
        return ll.Constant(self.real, float(value))

    def intrinsic(self, name: str, type_=None):
        return self.llmodule.declare_intrinsic(name, [type_ or self.real])

    def libm(self, name: str, arity: int):
        """A function of the C library (`erf`, `atan2`...; `erff`... in float32), resolved by the JIT."""
        symbol = name + ("f" if self.real == ll.FloatType() else "")
        existing = self.llmodule.globals.get(symbol)
        if existing is not None:
            return existing
        return ll.Function(self.llmodule, ll.FunctionType(self.real, [self.real] * arity), symbol)

    def element(self, type_: str):
        types = {nest.REAL: self.real, nest.INT: I64, nest.I32: I32, nest.F64: ll.DoubleType(), nest.BOOL: I1}
        if type_ not in types:
            raise Unsupported(f"an array of {type_}")
        return types[type_]

    def alloca(self, type_, name: str = ""):
        """A stack slot in the function's entry block (allocated once, whatever loop uses it)."""
        return ll.IRBuilder(self.entry).alloca(type_, name=_ident(name))

    def flag(self, bits) -> None:
        """`err |= bits` (an i64) at the current position (only where the side of a `Select` being
        printed is the chosen one)."""
        b = self.b
        if self.when is not None:
            bits = b.select(self.when, bits, i64(0))
        b.store(b.or_(b.load(self.err), bits), self.err)

    def safe(self, index):
        """An index read from memory at the current position: entry 0 where the side of a `Select`
        being printed is not the chosen one (so that both sides can be computed, and selected)."""
        return index if self.when is None else self.b.select(self.when, index, i64(0))

    def block(self, label: str):
        return self.b.function.append_basic_block(_ident(label))

    def counted(self, start, stop, body, label: str = "fill") -> None:
        """A loop `j in [start, stop)` calling `body(builder, j)`, printed at the current position."""
        b = self.b
        before = b.block
        header, inside, exit_ = self.block(label + ".head"), self.block(label + ".body"), self.block(label + ".exit")
        b.branch(header)
        b.position_at_end(header)
        j = b.phi(I64, name=_ident(label + "_j"))
        j.add_incoming(start, before)
        b.cbranch(b.icmp_signed("<", j, stop), inside, exit_)
        b.position_at_end(inside)
        body(b, j)
        j.add_incoming(b.add(j, i64(1)), b.block)
        b.branch(header)
        b.position_at_end(exit_)

    # -- a kernel ----------------------------------------------------------------------------------------
    def kernel(self, kernel: nest.Kernel) -> ll.Function:
        """`kernel` as a new function of the module (its arguments: `kernel.params` in order)."""
        fnty = ll.FunctionType(I64, [I8.as_pointer().as_pointer(), I64.as_pointer(), I64, I64])
        f = ll.Function(self.llmodule, fnty, kernel.symbol)
        f.args[0].add_attribute("noalias")
        f.args[1].add_attribute("noalias")
        arrays_arg, scalars_arg, self.lo, self.hi = f.args
        self.entry = f.append_basic_block("entry")
        arguments = Builder(f.append_basic_block("arguments"))
        start, done = f.append_basic_block("start"), f.append_basic_block("done")
        self.b, self.done, self.loops = Builder(start), done, []
        self.err = self.alloca(I64, "err")
        ll.IRBuilder(self.entry).store(i64(0), self.err)
        self.env: dict = {}
        arrays = scalars = 0
        self.ranged = False  # whether the lowering restricted the driver to its range scalars
        self.filled = {s.output: s.function for s in _statements(kernel.body) if isinstance(s, nest.Fill)}
        for param in kernel.params:
            if driver_range(param) is not None:  # the function's own (lo, hi)
                self.env[param.name] = (self.lo, self.hi)[driver_range(param)]
                self.ranged = True
            elif param.group == "scalar":
                self.env[param.name] = arguments.load(arguments.gep(scalars_arg, [i64(scalars)]), name=_ident(param.name))
                scalars += 1
            elif param.group in ("output", "array"):
                raw = arguments.load(arguments.gep(arrays_arg, [i64(arrays)]))
                arrays += 1
                self.env[param.name] = arguments.bitcast(raw, self.element(param.type).as_pointer(),
                                                         name=_ident(param.name))
            else:
                raise Unsupported(f"a parameter of group {param.group}")
        self.statements(kernel.body)
        self.b.branch(done)
        ll.IRBuilder(self.entry).branch(arguments.block)
        arguments.branch(start)
        self.b.position_at_end(done)
        self.b.ret(self.b.load(self.err))
        return f

    # -- statements ----------------------------------------------------------------------------------------
    def statements(self, body) -> None:
        for statement in body:
            method = getattr(self, "print_" + type(statement).__name__, None)
            if method is None:
                raise Unsupported(f"nest statement {type(statement).__name__}")
            method(statement)

    def scoped(self, body) -> None:
        """`body` with the names it binds forgotten after it (a loop's or an `If`'s)."""
        saved = dict(self.env)
        self.statements(body)
        self.env = saved

    def print_Let(self, s: nest.Let) -> None:
        self.env[s.name] = self.value(s.value)

    def print_Local(self, s: nest.Local) -> None:
        value = self.value(s.value)
        if s.value.type == nest.VEC:
            slots = tuple(self.alloca(self.real, s.name) for _ in range(3))
            for slot, part in zip(slots, value):
                self.b.store(part, slot)
        else:
            slots = self.alloca(value.type, s.name)
            self.b.store(value, slots)
        self.env[s.name] = _Slot(slots, s.value.type)

    def print_Update(self, s: nest.Update) -> None:
        slot, b = self.env[s.name], self.b
        value = self.value(s.value)
        if slot.type == nest.VEC:
            for pointer, part in zip(slot.pointer, value):
                b.store(b.fadd(b.load(pointer), part), pointer)
        else:
            add = b.fadd if slot.type in (nest.REAL, nest.F64) else b.add
            b.store(add(b.load(slot.pointer), value), slot.pointer)

    def print_Alloc(self, s: nest.Alloc) -> None:
        element = self.element(s.type)
        # a table is named in the IR after what fills it (`mt_sph2`, `spline`): read by tests and people
        array = self.alloca(ll.ArrayType(element, max(int(s.size), 1)), self.filled.get(s.name, s.name))
        pointer = ll.IRBuilder(self.entry).gep(array, [i64(0), i64(0)])
        self.env[s.name] = pointer
        if s.zero:
            zero = ll.Constant(element, 0)
            self.counted(i64(0), i64(s.size), lambda b, j: b.store(zero, b.gep(pointer, [j])), "zero")

    def print_View(self, s: nest.View) -> None:
        self.env[s.name] = self.b.gep(self.env[s.array], [self.index(s.offset)])

    def print_Store(self, s: nest.Store) -> None:
        b = self.b
        value = self.value(s.value)
        pointer = b.gep(self.env[s.array], [self.index(s.index)])
        if s.accumulate:
            add = b.add if isinstance(value.type, ll.IntType) else b.fadd
            value = add(b.load(pointer), value)
        b.store(value, pointer)

    def print_Fill(self, s: nest.Fill) -> None:
        output = self.env[s.output]
        if s.function in self.routines:
            self.inline(self.routines[s.function], [self.value(a) for a in s.args], output)
        elif s.function in FILLS:
            FILLS[s.function](self, self.b, [self.value(a) for a in s.args], output, s.template)
        else:
            raise Unsupported(f"fill {s.function}")

    def print_Guard(self, s: nest.Guard) -> None:
        condition = self.value(s.condition)
        if s.exit == "return" or not self.loops:
            target = self.done
        elif s.exit == "continue":
            target = self.loops[-1].latch
        else:
            raise Unsupported(f"guard exit {s.exit}")
        go = self.block("go")
        self.b.cbranch(condition, go, target)
        self.b.position_at_end(go)

    def print_If(self, s: nest.If) -> None:
        condition = self.value(s.condition)
        then, after = self.block("then"), self.block("endif")
        self.b.cbranch(condition, then, after)
        self.b.position_at_end(then)
        self.scoped(s.body)
        self.b.branch(after)
        self.b.position_at_end(after)

    def print_Loop(self, s: nest.Loop) -> None:
        b, label = self.b, "loop_" + _ident(s.var)
        if s.kind == "equal":  # the body once, `continue` to its end
            exit_ = self.block(label + ".exit")
            self.env_loop(s, self.value(s.start), _Loop(exit_))
            self.b.branch(exit_)
            self.b.position_at_end(exit_)
            return
        if s.kind not in ("domain", "segment"):
            raise Unsupported(f"loop kind {s.kind}")
        start, stop = self.value(s.start), self.value(s.stop)
        if s.parallel and not self.ranged:
            start, stop = self.driver_range(s, start, stop)
        # a domain loop counts its trip from 0 (`var = start + k`): a normalized induction variable,
        # which LLVM's runtime unrolling and unswitching handle better (issue #15)
        offset = None
        if s.kind == "domain" and not (isinstance(s.start, nest.Const) and s.start.value == 0):
            offset, start, stop = start, i64(0), b.sub(stop, start)
        before = b.block
        header, inside = self.block(label + ".head"), self.block(label + ".body")
        latch, exit_ = self.block(label + ".latch"), self.block(label + ".exit")
        b.branch(header)
        b.position_at_end(header)
        k = b.phi(I64, name=_ident(s.var) + ("k" if offset is not None else ""))
        k.add_incoming(start, before)
        b.cbranch(b.icmp_signed("<", k, stop), inside, exit_)
        b.position_at_end(inside)
        var = k if offset is None else b.add(offset, k, name=_ident(s.var))
        self.env_loop(s, var, _Loop(latch))
        self.b.branch(latch)
        self.b.position_at_end(latch)
        k.add_incoming(self.b.add(k, i64(1)), latch)
        self.b.branch(header)
        self.b.position_at_end(exit_)

    def env_loop(self, s: nest.Loop, var, loop: _Loop) -> None:
        saved = dict(self.env)
        self.env[s.var] = var
        self.loops.append(loop)
        self.statements(s.body)
        self.loops.pop()
        self.env = saved

    def driver_range(self, s: nest.Loop, start, stop):
        """The positions `[lo, hi)` (the function's arguments) of the parallel driver's range, where
        the lowering did not bound it by its range scalars: `LLVMKernel` calls the function on
        chunks of it from a thread pool."""
        b = self.b
        size = b.sub(stop, start)
        first = b.select(b.icmp_signed(">", self.lo, i64(0)), self.lo, i64(0))
        last = b.select(b.icmp_signed("<", self.hi, size), self.hi, size)
        return b.add(start, first), b.add(start, last)

    def inline(self, routine: nest.Routine, args: list, output) -> None:
        """A straight-line `nest.Routine` at the current position, filling `output`."""
        saved = self.env
        self.env = {name: value for (name, _), value in zip(routine.params, args)}
        for statement in routine.body:
            if isinstance(statement, nest.Let):
                self.env[statement.name] = self.value(statement.value)
            elif isinstance(statement, nest.Store):
                self.b.store(self.value(statement.value), self.b.gep(output, [self.index(statement.index)]))
            else:
                raise Unsupported(f"routine statement {type(statement).__name__}")
        self.env = saved

    # -- expressions -------------------------------------------------------------------------------------
    def index(self, expr):
        return i64(expr) if isinstance(expr, int) else self.value(expr)

    def value(self, expr):
        method = getattr(self, "value_" + type(expr).__name__, None)
        if method is None:
            raise Unsupported(f"nest expression {type(expr).__name__}")
        return method(expr)

    def value_Const(self, e: nest.Const):
        if e.type == nest.BOOL:
            return ll.Constant(I1, int(bool(e.value)))
        if e.type == nest.INT:
            return i64(e.value)
        if e.type == nest.VEC:  # a vector with three equal components (a sum's zero)
            return (self.rconst(e.value),) * 3
        return ll.Constant(self.element(e.type), float(e.value))

    def value_Ref(self, e: nest.Ref):
        if e.name not in self.env:
            raise Unsupported(f"nest name {e.name} not bound")
        bound = self.env[e.name]
        if isinstance(bound, _Slot):
            return tuple(self.b.load(p) for p in bound.pointer) if bound.type == nest.VEC else self.b.load(bound.pointer)
        return bound

    def value_Lane(self, e: nest.Lane):
        return self.value(e.vector)[e.lane]

    def value_Load(self, e: nest.Load):
        b, array = self.b, self.env[e.array]
        index = self.index(e.index)
        if not e.in_bounds:  # entry 0 on the side of a Select not chosen; a read in bounds needs no mask
            index = self.safe(index)
        if e.type == nest.VEC:
            base = b.mul(index, i64(3))
            return tuple(b.load(b.gep(array, [b.add(base, i64(c))])) for c in range(3))
        return b.load(b.gep(array, [index]))

    def value_Unary(self, e: nest.Unary):
        x, b = self.value(e.operand), self.b
        if e.op == "not":
            return b.not_(x)
        if e.op != "neg":
            raise Unsupported(f"unary {e.op}")
        if e.type == nest.VEC:
            return tuple(b.fneg(part) for part in x)
        return b.neg(x) if e.type == nest.INT else b.fneg(x)

    def value_Binary(self, e: nest.Binary):
        b, op = self.b, e.op
        x, y = self.value(e.left), self.value(e.right)
        if op in ("and", "or"):
            return getattr(b, op + "_")(x, y)
        if op in _COMPARE:
            symbol, operand = _COMPARE[op], e.left.type
            if nest.REAL in (e.left.type, e.right.type) or operand == nest.F64:
                return (b.fcmp_unordered if op == "ne" else b.fcmp_ordered)(symbol, x, y)
            return (b.icmp_unsigned if operand == nest.BOOL else b.icmp_signed)(symbol, x, y)
        if e.type == nest.VEC:
            if op not in _FLOAT_OPS:
                raise Unsupported(f"vector {op}")
            xs = x if isinstance(x, tuple) else (x,) * 3
            ys = y if isinstance(y, tuple) else (y,) * 3
            return tuple(getattr(b, _FLOAT_OPS[op])(p, q) for p, q in zip(xs, ys))
        integer = e.type == nest.INT
        if op == "div" and integer and self.when is not None:
            y = b.select(self.when, y, i64(1))  # no division by zero on the side not chosen
        if op in _FLOAT_OPS:
            return getattr(b, (_INT_OPS if integer else _FLOAT_OPS)[op])(x, y)
        if op == "mod":
            return imod(b, x, y) if integer else fmod(self, b, x, y)
        if op == "pow":
            return ipow(b, x, y) if integer else b.call(self.intrinsic("llvm.pow"), [x, y])
        raise Unsupported(f"binary {op}")

    def value_Select(self, e: nest.Select):
        """Both sides computed, then selected (vectorizable, as C++ `?:` compiled); a side that
        reads memory or sets error flags does so only where it is chosen (`when`: its loads read
        entry 0 and its flags are masked otherwise), as C++ evaluates only that side."""
        c = self.value(e.condition)
        x = self.guarded(e.if_true, c)
        y = self.guarded(e.if_false, self.b.not_(c))
        if e.type == nest.VEC:
            return tuple(self.b.select(c, p, q) for p, q in zip(x, y))
        return self.b.select(c, x, y)

    def guarded(self, expr, condition):
        if not _reads_or_flags(expr):
            return self.value(expr)
        saved = self.when
        self.when = condition if saved is None else self.b.and_(saved, condition)
        try:
            return self.value(expr)
        finally:
            self.when = saved

    def value_Cast(self, e: nest.Cast):
        b, x, source = self.b, self.value(e.operand), e.operand.type
        if e.type == source:
            return x
        if e.type in (nest.REAL, nest.F64):
            target = self.element(e.type)
            if source == nest.BOOL:
                return b.uitofp(x, target)
            if source in (nest.INT, nest.I32):
                return b.sitofp(x, target)
            return b.fpext(x, target) if target == ll.DoubleType() else b.fptrunc(x, target)
        if e.type == nest.INT:
            return b.zext(x, I64) if source == nest.BOOL else b.sext(x, I64)
        if e.type == nest.BOOL:
            if source in (nest.REAL, nest.F64):
                return b.fcmp_unordered("!=", x, ll.Constant(x.type, 0.0))
            return b.icmp_signed("!=", x, ll.Constant(x.type, 0))
        raise Unsupported(f"a cast from {source} to {e.type}")

    def value_Intrinsic(self, e: nest.Intrinsic):
        if e.name not in PRIMITIVES:
            raise Unsupported(f"intrinsic {e.name}")
        return PRIMITIVES[e.name](self, self.b, [self.value(a) for a in e.args])


@dataclass(frozen=True)
class _Slot:
    """A `Local`: its stack slot (three for a vector) and its type."""

    pointer: object
    type: str


def _reads_or_flags(expr) -> bool:
    """Whether computing `expr` reads memory through an index (a load, a lookup), may set an error
    flag, or divides integers."""
    if isinstance(expr, nest.Load) or (isinstance(expr, nest.Intrinsic) and expr.name in _GUARDED):
        return True
    if isinstance(expr, nest.Binary) and expr.type == nest.INT and expr.op in ("div", "mod"):
        return True
    return any(_reads_or_flags(child) for child in nest.children(expr))
