"""The LLVM renderer: loop IR -> LLVM IR through `llvmlite.ir.IRBuilder`, then JIT.

The same plan as the C++ backend (`codegen/plan.py`), the same argument
descriptors and dense body buffer (`runtime/compiled.py` resolves and
assembles them), so a kernel rendered here plugs into `CompiledModule`
unchanged. Each kernel becomes

    i64 @mt_kernel_K(i8** arrays, i64* scalars, i64 lo, i64 hi)

returning the C++ backend's error bits (1 missing block entry, 2 index out of
range, 4 distance beyond a spline). When the plan's outermost loop is a kernel
index (`plan.parallel`), the function runs the positions `[lo, hi)` of that
loop only: LLVM IR has no OpenMP, so `LLVMKernel` splits the driver range into
chunks and calls the function from a thread pool (ctypes releases the GIL);
iterations of the driver write disjoint parts of the buffer.

Placement follows the C++ renderer: every value is emitted in the outermost
loop level where what it reads is bound (a `sph` table once per pair, a
`soap_radial` table once per distance, partial products hoisted factor by
factor). A level has two regions, its *prelude* (before nested loops) and its
*body*; a nested loop is linked into the region that holds it when it closes,
so values hoisted into that region while the loop was being rendered come
before it. Identical operations in one region are emitted once (a memo keyed
by operands, like the C++ renderer's).

The C++ backend's tabulations are mirrored (scalar expansion of `sum(k in
range(K))` bodies, values over a small range index tabulated where their other
variables are bound, zero Clebsch-Gordan coefficients skipping the rest of an
accumulated product), and a dense read of an earlier tensor whose coordinates
are loop variables of the same domains needs no in-grid test.

Optimized with the new pass manager (O3, loop and SLP vectorization;
floating-point adds and multiplies may contract into FMAs, nothing else of
fast-math) for the host CPU and its features, compiled by MCJIT, machine code
kept in the kernel cache directory (`JITLibrary`). IR names reach the IR text
only as sanitized value and block names (`_ident`); values are generated.
Kernels the plan or this renderer cannot handle raise `Unsupported` and run
with the interpreter (`CompiledModule.fallbacks`), exactly as for the C++
backend; a run whose kernel reports an error bit is redone by the interpreter.
"""

from __future__ import annotations

import ctypes
import itertools
import math
import threading
from dataclasses import dataclass
from typing import Optional

import llvmlite.binding as llvm
import llvmlite.ir as ll
import numpy as np

from mtdsl.ir import nodes as ir
from mtdsl.ir.roles import GradientRows, GradientValues, PresenceTable, RowMap

from . import cache
from . import plan as planning
from .cache import _atomic_write, _discard, cache_dir, object_bytes, object_payload
from .plan import BOOL, INT, REAL, VEC, Unsupported, expr_type, free_vars, harmonic_arguments
from .derived import extended_module
from .rendered import RenderedKernel, RenderedModule, ir_text, slim_rendering, with_extra
from .schedule import nest
from .schedule.factors import is_real_product, product_factors, triangle_degrees, zero_skips
from .schedule.grid import proven_coordinate, solve_grid_access
from .schedule.module import render_kernels
from .schedule.sph import sph_routine
from .schedule.tables import ModuleTables
from .schedule.tabulation import expansion_candidates, tabulation_candidates
from .threads import run_chunks

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


#: scalar built-ins that are one LLVM intrinsic of a real
LLVM_INTRINSICS = {
    "sqrt": "llvm.sqrt", "exp": "llvm.exp", "log": "llvm.log", "sin": "llvm.sin", "cos": "llvm.cos",
    "tanh": "llvm.tanh", "acos": "llvm.acos", "asin": "llvm.asin", "floor": "llvm.floor",
    "round": "llvm.roundeven",  # half to even, as numpy, torch and C's nearbyint
}

#: scalar built-ins that are a call of the C library (no LLVM intrinsic for them); with LLVM_INTRINSICS,
#: the primitives of mtdsl/builtins/ (the others reach the printer expanded, codegen/schedule/module.py)
LIBM_FUNCTIONS = ("erf", "erfc", "atan2", "log1p")


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


# ---- the kernel -----------------------------------------------------------------------------------------


class KernelBuilder:
    def __init__(self, renderer: "ModuleRenderer", kernel: ir.TensorKernel, symbol: str):
        self.renderer = renderer
        self.module = renderer.module
        self.kernel = kernel
        self.symbol = symbol
        self.real = renderer.real
        self.arrays: dict = {}  # descriptor -> (position, pointer value)
        self.scalars: dict = {}  # descriptor -> (position, value)
        self.n_outputs = 1  # buffers before the arrays read (a fused kernel has one per member)
        self.memo: dict = {}
        self.env: dict[str, VarInfo] = {}
        self.domains: dict = {}
        self.systems = {s.name for s in self.module.systems}
        self.pairs = {p.name: p for p in self.module.pairs}
        self.driver_count = None  # how many driver positions (int or scalar descriptor), parallel kernels only
        self.driver_var = None  # the driver's variable
        self.expanded: dict = {}  # id of an IR node -> (table, index name): see expand_tables
        self.tabulated: dict = {}  # id of an IR node -> (index name, level): see tabulation_candidates

    # -- emission ---------------------------------------------------------------------------------------
    def at(self, place) -> ll.IRBuilder:
        level, body = place
        node = self.stack[level]
        self.b.position_at_end((node.body if body else node.prelude).tail)
        return self.b

    def emit(self, place, name: str, make, *operands):
        """`make(builder, *operands)` in the region of `place`, once per identical operation there."""
        level, body = place
        key = (self.stack[level].uid, body, name, _key(operands))
        if key not in self.memo:
            self.memo[key] = make(self.at(place), *operands)
        return self.memo[key]

    def flag(self, place, bits) -> None:
        """`err |= bits` (an i64) where `place` says."""
        b = self.at(place)
        b.store(b.or_(b.load(self.err), bits), self.err)

    def alloca(self, type_, name: str = ""):
        return ll.IRBuilder(self.allocas).alloca(type_, name=name)

    def here(self):
        return (len(self.stack) - 1, True)

    @staticmethod
    def join(*values) -> tuple:
        place = (0, False)
        for value in values:
            place = max(place, value.place)
        return place

    def rconst(self, value: float):
        return ll.Constant(self.real, float(value))

    # -- arguments ----------------------------------------------------------------------------------------
    def array(self, descriptor: tuple, kind: str):
        """A pointer to the argument array `descriptor` (`kind`: "real", "i64" or "i32"), loaded once
        in the function's argument block (never moves the main builder)."""
        if descriptor not in self.arrays:
            position = self.n_outputs + len(self.arrays)
            element = {"real": self.real, "i64": I64, "i32": I32, "f64": ll.DoubleType()}[kind]
            b = self.arguments
            raw = b.load(b.gep(self.arrays_arg, [i64(position)]))
            self.arrays[descriptor] = (position, b.bitcast(raw, element.as_pointer()))
        return self.arrays[descriptor][1]

    def scalar(self, descriptor: tuple):
        if descriptor not in self.scalars:
            position = len(self.scalars)
            b = self.arguments
            self.scalars[descriptor] = (position, b.load(b.gep(self.scalars_arg, [i64(position)])))
        return self.scalars[descriptor][1]

    def load(self, place, pointer, index):
        return self.emit(place, "load", lambda b, p, k: b.load(b.gep(p, [k])), pointer, index)

    # -- small helpers as instructions --------------------------------------------------------------------------
    def check(self, value: Value, count) -> Value:
        """`value` when `0 <= value < count`, else 0 and error bit 2."""
        place = value.place
        bad = self.emit(place, "uge", lambda b, x, n: b.icmp_unsigned(">=", x, n), value.v, count)
        key = (self.stack[place[0]].uid, place[1], "check-flag", _key((bad,)))
        if key not in self.memo:
            self.flag(place, self.at(place).shl(self.at(place).zext(bad, I64), i64(1)))
            self.memo[key] = True
        safe = self.emit(place, "select", lambda b, c, x: b.select(c, i64(0), x), bad, value.v)
        return Value(safe, INT, *place)

    def dense(self, place, acc, v, lo, n):
        """`mt_dense`: -1 when `acc < 0` or `v - lo` outside `[0, n)`, else `acc * n + v - lo`."""
        def make(b, acc, v, lo, n):
            shifted = b.sub(v, lo)
            bad = b.or_(b.icmp_signed("<", acc, i64(0)), b.icmp_unsigned(">=", shifted, n))
            return b.select(bad, i64(-1), b.add(b.mul(acc, n), shifted))
        return self.emit(place, "dense", make, acc, v, lo, n)

    def at_table(self, place, table, blk, stride, idx):
        """`mt_at`: -1 when `blk < 0` or `idx < 0`, else `table[blk * stride + idx]`."""
        def make(b, table, blk, stride, idx):
            bad = b.or_(b.icmp_signed("<", blk, i64(0)), b.icmp_signed("<", idx, i64(0)))
            offset = b.select(bad, i64(0), b.add(b.mul(blk, stride), idx))
            return b.select(bad, i64(-1), b.load(b.gep(table, [offset])))
        return self.emit(place, "at", make, table, blk, stride, idx)

    def read(self, place, flat, offset):
        """`mt_read`: `flat[offset]`, or 0 and error bit 1 when `offset < 0`."""
        bad = self.emit(place, "slt0", lambda b, o: b.icmp_signed("<", o, i64(0)), offset)
        key = (self.stack[place[0]].uid, place[1], "read-flag", _key((bad,)))
        if key not in self.memo:
            self.flag(place, self.at(place).zext(bad, I64))
            self.memo[key] = True
        real = self.real

        def make(b, flat, offset, bad):
            value = b.load(b.gep(flat, [b.select(bad, i64(0), offset)]))
            return b.select(bad, ll.Constant(real, 0.0), value)
        return self.emit(place, "read", make, flat, offset, bad)

    def intrinsic(self, name: str, type_=None):
        type_ = type_ or self.real
        return self.llmodule.declare_intrinsic(name, [type_])

    def libm(self, name: str, arity: int):
        """A function of the C library (`erf`, `atan2`...; `erff`... in float32), resolved by the JIT."""
        symbol = name + ("f" if self.real == ll.FloatType() else "")
        existing = self.llmodule.globals.get(symbol)
        if existing is not None:
            return existing
        return ll.Function(self.llmodule, ll.FunctionType(self.real, [self.real] * arity), symbol)

    def call1(self, place, name: str, x):
        function = self.intrinsic(name)
        return self.emit(place, name, lambda b, x: b.call(function, [x]), x)

    # -- loops ----------------------------------------------------------------------------------------------
    def open_level(self, target: Region, start, stop, label: str = "once"):
        """A counted loop `k in [start, stop)` on a new level; linked into `target` when it closes."""
        f = self.function
        pre, header, entry, body, latch, exit_ = (f.append_basic_block(f"{label}.{part}") for part in
                                                  ("pre", "head", "entry", "body", "latch", "exit"))
        b = self.b
        b.position_at_end(pre)
        b.branch(header)
        b.position_at_end(header)
        k = b.phi(I64, name=f"{label}.k")
        k.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", k, stop), entry, exit_)
        b.position_at_end(latch)
        k.add_incoming(b.add(k, i64(1)), latch)
        b.branch(header)
        level = Level(entry, body)
        level.pre, level.latch, level.exit, level.target = pre, latch, exit_, target
        self.stack.append(level)
        return level, k

    def close(self) -> None:
        level = self.stack.pop()
        b = self.b
        b.position_at_end(level.prelude.tail)
        b.branch(level.body_head)
        b.position_at_end(level.body.tail)
        b.branch(level.latch)
        b.position_at_end(level.target.tail)
        b.branch(level.pre)
        level.target.tail = level.exit

    def skip_unless(self, level: Level, condition) -> None:
        """`if (!condition) continue;` in the prelude of `level`."""
        b = self.b
        b.position_at_end(level.prelude.tail)
        go = self.function.append_basic_block()
        b.cbranch(condition, go, level.latch)
        level.prelude.tail = go

    def open_loop(self, loop: planning.Loop, target: Region, chunk=None) -> None:
        domain = loop.domain
        position = None
        derive = None  # var from the counter k
        if loop.kind == "domain":
            if isinstance(domain, ir.IrrepDomain):
                degree = self.index(domain.degree)
                limit = self.emit(degree.place, "smin", lambda b, x: b.select(
                    b.icmp_signed("<", x, i64(domain.max_degree)), x, i64(domain.max_degree)), degree.v)
                count = self.emit(degree.place, "irrep-count", lambda b, x: b.add(b.mul(x, i64(2)), i64(1)), limit)
                base = limit
                derive = ("irrep", base)
            else:
                count = self.domain_size(domain)
            start, stop = i64(0), count
            if chunk is not None:
                lo, hi = chunk
                b = self.at((0, False))
                start = b.select(b.icmp_signed(">", lo, i64(0)), lo, i64(0))
                stop = b.select(b.icmp_signed("<", hi, count), hi, count)
        elif loop.kind in ("pairs_of", "atoms_of"):
            owner = self.index(loop.expr)
            if loop.kind == "pairs_of":
                offsets = self.array(("pairs", loop.source, "offsets"), "i64")
                n = self.n_atoms(self.pairs[loop.source].systems)
            else:
                offsets = self.array(("systems", loop.source, "atom_offsets"), "i64")
                n = self.scalar(("n_systems", loop.source))

            def segment(end):
                def make(b, offsets, n, a):
                    ok = b.icmp_unsigned("<", a, n)
                    value = b.load(b.gep(offsets, [b.add(b.select(ok, a, i64(0)), i64(end))]))
                    return b.select(ok, value, i64(0))
                return self.emit(owner.place, f"seg{end}", make, offsets, n, owner.v)
            start, stop = segment(0), segment(1)
        elif loop.kind == "equal":
            start, stop = i64(0), i64(1)
        else:
            raise Unsupported(f"loop kind {loop.kind}")
        level, k = self.open_level(target, start, stop, "loop_" + _ident(loop.var))
        depth = len(self.stack) - 1
        b = self.at((depth, False))
        if loop.kind == "domain":
            if isinstance(domain, ir.RangeDomain):
                var = b.add(k, i64(domain.start), name=_ident(loop.var))
                position = k
            elif isinstance(domain, ir.SpeciesDomain):
                var = b.load(b.gep(self.species_array(domain), [k]), name=_ident(loop.var))
                position = k
            elif derive is not None:
                var = b.sub(k, derive[1], name=_ident(loop.var))
                position = b.add(var, i64(domain.max_degree))
            else:
                var = position = k
        elif loop.kind == "equal":
            value = self.index(loop.expr)
            var = value.v
            self.env[loop.var] = VarInfo(var, var, depth, domain)  # for a degree read by the membership test
            position, ok = self.membership(domain, var, depth)
            if ok is not None:
                self.skip_unless(level, ok)
        else:
            var = position = k
        self.env[loop.var] = VarInfo(var, position, depth, domain)
        self.domains[loop.var] = domain
        for guard in loop.guards:
            condition = self.as_bool(self.render(guard))
            self.skip_unless(level, condition)

    def membership(self, domain, var, depth):
        """(position, in-domain condition or None) of an equality-bound variable, at level `depth`."""
        b = self.at((depth, False))
        if isinstance(domain, ir.RangeDomain):
            shifted = b.sub(var, i64(domain.start))
            return shifted, b.icmp_unsigned("<", shifted, i64(domain.stop - domain.start))
        if isinstance(domain, ir.SpeciesDomain):
            table = self.array(("species_rank", domain), "i64")
            size = self.scalar(("n_species_rank", domain))
            b = self.at((depth, False))
            rank = self.species_rank(b, table, size, var)
            return rank, b.icmp_signed(">=", rank, i64(0))
        if isinstance(domain, ir.IrrepDomain):
            degree = self.index(domain.degree)
            b = self.at((depth, False))
            limit = b.select(b.icmp_signed("<", degree.v, i64(domain.max_degree)), degree.v, i64(domain.max_degree))
            magnitude = b.select(b.icmp_signed("<", var, i64(0)), b.neg(var), var)
            return b.add(var, i64(domain.max_degree)), b.icmp_signed("<=", magnitude, limit)
        if isinstance(domain, ir.XyzDomain):
            return var, b.icmp_unsigned("<", var, i64(3))
        count = self.domain_size(domain)
        b = self.at((depth, False))
        return var, b.icmp_unsigned("<", var, count)

    @staticmethod
    def species_rank(b, table, size, var):
        """`rank[var]`, -1 outside the table."""
        ok = b.icmp_unsigned("<", var, size)
        value = b.load(b.gep(table, [b.select(ok, var, i64(0))]))
        return b.select(ok, value, i64(-1))

    def domain_size(self, domain):
        if isinstance(domain, ir.AtomsDomain):
            return self.n_atoms(domain.systems)
        if isinstance(domain, ir.SystemsDomain):
            return self.scalar(("n_systems", domain.systems))
        if isinstance(domain, ir.PairsDomain):
            return self.scalar(("n_pairs", domain.pairs))
        if isinstance(domain, ir.XyzDomain):
            return i64(3)
        if isinstance(domain, ir.RangeDomain):
            return i64(max(domain.stop - domain.start, 0))
        if isinstance(domain, ir.IrrepDomain):
            return i64(2 * domain.max_degree + 1)
        if isinstance(domain, ir.SpeciesDomain):
            return self.scalar(("n_species", domain))
        raise Unsupported(f"domain {domain}")

    @staticmethod
    def size_descriptor(domain):
        """The driver count as a scalar descriptor or an int (for the thread pool)."""
        return planning.driver_size(domain)

    def n_atoms(self, systems: str):
        return self.scalar(("n_atoms", systems))

    def species_array(self, domain):
        return self.array(("species", domain), "i64")

    # -- the kernel ---------------------------------------------------------------------------------------
    def build(self) -> ll.Function:
        plan = self.plan = planning.plan_kernel(self.kernel)
        self.tabulated = tabulation_candidates(plan)
        f, lo, hi, done = self.begin_function()
        root = self.stack[0]
        buffer, strides = self.output(self.kernel, 0)
        for guard in plan.pre_guards:
            condition = self.as_bool(self.render(guard))
            go = f.append_basic_block()
            b = self.at((0, False))
            b.cbranch(condition, go, done)
            root.prelude.tail = go
        self.build_nest(plan, buffer, strides, 0, (lo, hi))
        return self.end_function(done)

    def build_fused(self, fused: planning.FusedPlan) -> ll.Function:
        """One function for the members of a fused kernel (`planning.plan_fused`, as the C++
        `render_fused`): the shared loops once (the first restricted to `[lo, hi)` when parallel),
        then inside them each member's own loops adding into its own buffer (`arrays[j]`, the
        arrays read come after the members' buffers); what the members compute at the shared
        levels (a pair's tables) is emitted once, the memo being per level."""
        self.plan = fused
        self.n_outputs = len(fused.plans)
        first = fused.plans[0]
        self.kernel = first.kernel
        f, lo, hi, done = self.begin_function()
        outputs = [self.output(plan.kernel, j) for j, plan in enumerate(fused.plans)]
        if first.pre_guards:
            raise Unsupported("a condition without variables in a fused kernel")
        self.tabulated = {}
        for number, loop in enumerate(first.loops[:fused.shared]):
            chunk = None
            if number == 0 and fused.parallel:
                chunk = self.driver_chunk(loop, lo, hi)
            self.open_loop(loop, self.stack[-1].body, chunk)
        env, domains = dict(self.env), dict(self.domains)
        for j, plan in enumerate(fused.plans):
            self.env, self.domains = dict(env), planning.member_domains(plan, domains)
            self.kernel = plan.kernel
            self.tabulated = tabulation_candidates(plan)
            self.build_nest(plan, *outputs[j], fused.shared)
        self.kernel = first.kernel
        return self.end_function(done)

    def begin_function(self):
        """The function `(arrays, scalars, lo, hi) -> err` with its entry, argument, root and exit
        blocks; returns `(function, lo, hi, done)`."""
        module = self.llmodule = self.renderer.llmodule
        fnty = ll.FunctionType(I64, [I8.as_pointer().as_pointer(), I64.as_pointer(), I64, I64])
        f = self.function = ll.Function(module, fnty, self.symbol)
        f.args[0].add_attribute("noalias")
        f.args[1].add_attribute("noalias")
        self.arrays_arg, self.scalars_arg, lo, hi = f.args
        self.allocas = f.append_basic_block("entry")
        arguments = f.append_basic_block("arguments")
        self.arguments = Builder(arguments)
        root = Level(f.append_basic_block("prelude"), f.append_basic_block("body"))
        done = f.append_basic_block("done")
        self.stack = [root]
        self.b = Builder(root.prelude.tail)
        self.err = self.alloca(I64, "err")
        ll.IRBuilder(self.allocas).store(i64(0), self.err)
        return f, lo, hi, done

    def end_function(self, done) -> ll.Function:
        """Close the open levels and link the function's blocks; returns the function."""
        while len(self.stack) > 1:
            self.close()
        root, f = self.stack[0], self.function
        b = self.b
        b.position_at_end(root.prelude.tail)
        b.branch(root.body_head)
        b.position_at_end(root.body.tail)
        b.branch(done)
        b.position_at_end(self.allocas)
        b.branch(self.arguments.block)
        self.arguments.branch(f.blocks[2])
        b.position_at_end(done)
        b.ret(b.load(self.err))
        return f

    def output(self, kernel: ir.TensorKernel, j: int) -> tuple:
        """`kernel`'s output buffer `arrays[j]` (a fused kernel has one per member) and the strides of
        its dense layout (its last index contiguous), computed in the argument block."""
        sizes = [self.domain_size(b.domain) for b in kernel.indices]
        b = self.arguments
        buffer = b.bitcast(b.load(b.gep(self.arrays_arg, [i64(j)])), self.real.as_pointer())
        strides = []
        for k in range(len(sizes)):
            stride = i64(1)
            for size in sizes[k + 1:]:
                stride = b.mul(stride, size)
            strides.append(stride)
        return buffer, strides

    def driver_chunk(self, loop: planning.Loop, lo, hi):
        """The range `[lo, hi)` of a parallel kernel's first loop (None when its size is not known to
        the runtime); records `driver_count` and `driver_var` (RenderedKernel)."""
        self.driver_count = self.size_descriptor(loop.domain)
        self.driver_var = loop.var
        if self.driver_count is None:
            return None
        if isinstance(self.driver_count, tuple):
            self.scalar(self.driver_count)
        return (lo, hi)

    def build_nest(self, plan: planning.KernelPlan, buffer, strides: list, start: int, chunk=None) -> None:
        """Open `plan.loops[start:]` inside the current level, add (or store) the body into `buffer`
        at the kernel's indices, and close them again (the C++ `render_nest`); `chunk`: the range
        `(lo, hi)` of a parallel kernel's first loop."""
        depth0 = len(self.stack)
        local = None  # (level, array, [(kernel index k, its size)] in loop order): planning.local_accumulator
        for k, loop in enumerate(plan.loops[start:], start):
            range_ = None
            if k == 0 and plan.parallel and chunk is not None:
                range_ = self.driver_chunk(loop, *chunk)
            if k == plan.local:
                indices = [(j, planning.static_size(l.domain)) for l in plan.loops[k:] if l.is_index
                           for j, binder in enumerate(self.kernel.indices) if binder.name == l.var]
                size = 1
                for _, extent in indices:
                    size *= extent
                array = self.alloca(ll.ArrayType(self.real, size), "local")
                local = (len(self.stack) - 1, array, indices)
                _, q = self.open_level(self.stack[-1].body, i64(0), i64(size), "zero")  # the sums below: 0
                b = self.at(self.here())
                b.store(self.rconst(0.0), b.gep(array, [i64(0), q]))
                self.close()
            level = self.stack[-1]
            self.open_loop(loop, level.body, range_)
        inner = {j for j, _ in local[2]} if local else set()
        terms = [Value(self.env[binder.name].position, INT, self.env[binder.name].level)
                 for j, binder in enumerate(self.kernel.indices) if j not in inner]
        terms = [Value(self.emit(t.place, "mul", lambda b, x, s: b.mul(x, s), t.v, stride), INT, *t.place)
                 for t, stride in zip(terms, [s for j, s in enumerate(strides) if j not in inner])]
        offset = self.fold(terms, "add") if terms else Value(i64(0), INT, 0)
        if local:
            outer, local_terms, local_stride = offset, [], 1
            for j, extent in reversed(local[2]):
                info = self.env[self.kernel.indices[j].name]
                local_terms.append(Value(self.emit((info.level, False), "mul", lambda b, x, s: b.mul(x, s),
                                                   info.position, i64(local_stride)), INT, info.level))
                local_stride *= extent
            offset = self.fold(local_terms, "add") if local_terms else Value(i64(0), INT, 0)
        if plan.schedule == "accumulate":
            value = self.as_real(self.render_accumulated(plan.body))
        else:
            value = self.as_real(self.render(plan.body))
        place = self.here()
        b = self.at(place)
        pointer = b.gep(local[1], [i64(0), offset.v]) if local else b.gep(buffer, [offset.v])
        if plan.schedule == "accumulate":
            b.store(b.fadd(b.load(pointer), value), pointer)
        else:
            b.store(value, pointer)
        if local:  # add the local sums into the buffer, once per entry
            level, array, indices = local
            while len(self.stack) > level + 1:
                self.close()
            # in the buffer's order (its last index innermost: contiguous stores), whatever the loops' order
            local_strides, stride = {}, 1
            for j, extent in reversed(indices):
                local_strides[j] = stride
                stride *= extent
            target, flat, at = self.stack[level].body, i64(0), outer.v
            for j, extent in sorted(indices):
                _, q = self.open_level(target, i64(0), i64(extent), "flush")
                b = self.at(self.here())
                flat = b.add(flat, b.mul(q, i64(local_strides[j])))
                at = b.add(at, b.mul(q, strides[j]))
                target = self.stack[-1].body
            b = self.at(self.here())
            pointer = b.gep(buffer, [at])
            b.store(b.fadd(b.load(pointer), b.load(b.gep(array, [i64(0), flat]))), pointer)
            while len(self.stack) > level + 1:
                self.close()
        while len(self.stack) > depth0:
            self.close()

    def fold(self, values: list, operator: str) -> Value:
        """Combine `values` (all of one type) with `operator`, innermost-placed last, each partial
        result in the outermost region where it can be computed."""
        ordered = sorted(values, key=lambda v: v.place)
        result = ordered[0]
        makers = {"add": lambda b, x, y: b.add(x, y), "fmul": lambda b, x, y: b.fmul(x, y),
                  "and": lambda b, x, y: b.and_(x, y)}
        for value in ordered[1:]:
            place = max(result.place, value.place)
            result = Value(self.emit(place, operator, makers[operator], result.v, value.v), result.type, *place)
        return result

    # -- expressions ------------------------------------------------------------------------------------------
    def render(self, expr) -> Value:
        if self.tabulated and id(expr) in self.tabulated:
            return self.tabulate(expr)
        if self.expanded and id(expr) in self.expanded:
            table, name = self.expanded[id(expr)]
            info = self.env[name]
            return Value(self.table_index((info.level, False), table, info.position), REAL, info.level)
        method = getattr(self, f"_render_{type(expr).__name__}", None)
        if method is None:
            raise Unsupported(f"expression {type(expr).__name__}")
        return method(expr)

    def index(self, expr) -> Value:
        value = self.render(expr)
        if value.type == BOOL:
            return Value(self.emit(value.place, "zext", lambda b, x: b.zext(x, I64), value.v), INT, *value.place)
        if value.type != INT:
            raise Unsupported(f"a {value.type} value used as an index: {expr}")
        return value

    def as_real(self, value: Value):
        if value.type == INT:
            return self.emit(value.place, "sitofp", lambda b, x: b.sitofp(x, self.real), value.v)
        if value.type == BOOL:
            return self.emit(value.place, "uitofp", lambda b, x: b.uitofp(x, self.real), value.v)
        if value.type == VEC:
            raise Unsupported("a vector used as a number")
        return value.v

    def as_int(self, value: Value):
        if value.type == BOOL:
            return self.emit(value.place, "zext", lambda b, x: b.zext(x, I64), value.v)
        return value.v

    def as_bool(self, value: Value):
        if value.type == BOOL:
            return value.v
        if value.type == INT:
            return self.emit(value.place, "ne0", lambda b, x: b.icmp_signed("!=", x, i64(0)), value.v)
        if value.type == REAL:
            return self.emit(value.place, "fne0", lambda b, x: b.fcmp_unordered("!=", x, self.rconst(0.0)), value.v)
        raise Unsupported("a vector used as a condition")

    def vec_parts(self, value: Value):
        return value.v if value.type == VEC else (self.as_real(value),) * 3

    def _render_Const(self, expr: ir.Const) -> Value:
        if isinstance(expr.value, bool):
            return Value(ll.Constant(I1, int(expr.value)), BOOL, 0)
        if isinstance(expr.value, int):
            return Value(i64(expr.value), INT, 0)
        if isinstance(expr.value, float):
            return Value(self.rconst(expr.value), REAL, 0)
        raise Unsupported(f"constant {expr.value!r}")

    def _render_Var(self, expr: ir.Var) -> Value:
        if expr.name not in self.env:
            raise Unsupported("a variable that is not bound")
        info = self.env[expr.name]
        return Value(info.value, INT, info.level)

    def _in_range(self, expr, kind: str, source: str) -> bool:
        """Whether `expr` is provably an atom (kind "atoms") of systems `source` / a pair of pairs `source`."""
        if isinstance(expr, ir.Var) and expr.name in self.domains:
            domain = self.domains[expr.name]
            if kind == "atoms":
                return isinstance(domain, ir.AtomsDomain) and domain.systems == source
            if kind == "systems":
                return isinstance(domain, ir.SystemsDomain) and domain.systems == source
            return (isinstance(domain, ir.PairsDomain) and domain.pairs == source) or (
                isinstance(domain, ir.PairsFrom) and domain.pairs == source)
        if (kind == "atoms" and isinstance(expr, ir.Data) and expr.source in self.pairs
                and expr.field in ("first", "second")):
            return self.pairs[expr.source].systems == source and self._in_range(expr.index[0], "pairs", expr.source)
        return False

    def checked(self, expr, kind: str, source: str, count) -> Value:
        value = self.index(expr)
        if self._in_range(expr, kind, source):
            return value
        return self.check(value, count)

    def _render_Data(self, expr: ir.Data) -> Value:
        if expr.source in self.systems:
            fields = {"type": ("types", "i32", INT), "system": ("system", "i64", INT),
                      "positions": ("positions", "real", VEC)}
            if expr.field not in fields:
                raise Unsupported(f"{expr.source}.{expr.field}")
            kind, count = "atoms", self.n_atoms(expr.source)
        elif expr.source in self.pairs:
            fields = {"first": ("first", "i64", INT), "second": ("second", "i64", INT),
                      "vector": ("vectors", "real", VEC), "distance": ("distances", "real", REAL),
                      "cell_shift": ("cell_shifts", "real", VEC)}  # read by gradients w.r.t. the cell
            if expr.field not in fields:
                raise Unsupported(f"{expr.source}.{expr.field}")
            kind, count = "pairs", self.scalar(("n_pairs", expr.source))
        elif isinstance(expr.source, GradientRows):
            return self.rows_data(expr)
        elif isinstance(expr.source, RowMap):
            return self.row_map(expr)
        elif isinstance(expr.source, PresenceTable):  # codegen/schedule/presence.py
            return self.row_map(expr, ("present", expr.source), self.scalar(("n_present", expr.source)))
        elif isinstance(expr.source, GradientValues):
            return self.dense_gradient(expr)
        else:
            raise Unsupported(f"unknown data source {expr.source}")
        name, element, vtype = fields[expr.field]
        group = "systems" if kind == "atoms" else "pairs"
        array = self.array((group, expr.source, name), element)
        if not expr.index or len(expr.index) > 2 or (len(expr.index) == 2 and vtype != VEC):
            raise Unsupported(f"{expr.source}.{expr.field} with {len(expr.index)} indices")
        index = self.checked(expr.index[0], kind, expr.source, count)
        if vtype == VEC:
            if len(expr.index) == 2:
                c = self.check(self.index(expr.index[1]), i64(3))
                place = self.join(index, c)
                flat = self.emit(place, "vec-index", lambda b, i, c: b.add(b.mul(i, i64(3)), c), index.v, c.v)
                return Value(self.load(place, array, flat), REAL, *place)
            base = self.emit(index.place, "x3", lambda b, i: b.mul(i, i64(3)), index.v)
            parts = tuple(self.load(index.place, array, self.emit(index.place, "add", lambda b, x, y: b.add(x, y),
                                                                  base, i64(c))) for c in range(3))
            return Value(parts, VEC, *index.place)
        value = self.load(index.place, array, index.v)
        if element == "i32":
            value = self.emit(index.place, "sext", lambda b, x: b.sext(x, I64), value)
        return Value(value, vtype, *index.place)

    def dense_gradient(self, expr: ir.Data) -> Value:
        """A gradient value from the buffer its scatter kernels wrote (as the C++ backend)."""
        sizes = [int(x) for x in expr.field.split(":", 1)[1].split(",") if x]
        if len(expr.index) != len(sizes) + 1:
            raise Unsupported("a dense gradient read with the wrong number of positions")
        array = self.array(("dense", expr.source), "real")
        rows_source = expr.source.rows
        row = self.checked(expr.index[0], "pairs", rows_source, self.scalar(("n_pairs", rows_source)))
        values = [row]
        for index, size in zip(expr.index[1:], sizes):
            value = self.index(index)
            found = planning.bounds(index, self.domains)
            if found is None or found[0] < 0 or found[1] >= size:
                value = self.check(value, i64(size))
            values.append(value)
        place = self.join(*values)

        def make(b, *operands):
            flat = operands[0]
            for operand, size in zip(operands[1:], sizes):
                flat = b.add(b.mul(flat, i64(size)), operand)
            return flat
        flat = self.emit(place, ("dense-flat", tuple(sizes)), make, *(v.v for v in values))
        return Value(self.load(place, array, flat), REAL, *place)

    def row_map(self, expr: ir.Data, descriptor: Optional[tuple] = None, bound=None) -> Value:
        """The gradient row of a scatter kernel's point (`mtdsl/ir/passes/terms.py`), as the C++ backend
        (with `bound`: a presence table read within its size, 0 past it)."""
        array = self.array(descriptor or ("out", expr.source, expr.field), "i64")
        positions, sizes, levels = [], [], []
        for index in expr.index:
            if not isinstance(index, ir.Var) or index.name not in self.env:
                raise Unsupported("a row map indexed by something else than a bound variable")
            info = self.env[index.name]
            positions.append(info.position)
            sizes.append(self.domain_size(self.domains[index.name]))
            levels.append(Value(info.value, INT, info.level))
        place = self.join(*levels) if levels else (0, False)

        def make(b, *operands):
            n = len(operands) // 2
            flat = i64(0)
            for k in range(n):
                flat = b.add(b.mul(flat, operands[n + k]), operands[k])
            return flat
        flat = self.emit(place, "row-flat", make, *positions, *sizes) if positions else i64(0)
        if bound is None:
            return Value(self.load(place, array, flat), INT, *place)

        def bounded(b, p, k, n):
            inside = b.icmp_signed("<", k, n)
            return b.select(inside, b.load(b.gep(p, [b.select(inside, k, i64(0))])), i64(0))
        return Value(self.emit(place, "bounded-load", bounded, array, flat, bound), INT, *place)

    def rows_data(self, expr: ir.Data) -> Value:
        """An integer label of a gradient row (`mtdsl/ir/passes/terms.py`): one int64 array per field."""
        if len(expr.index) != 1:
            raise Unsupported(f"{expr.source}.{expr.field} with {len(expr.index)} indices")
        array = self.array(("rows", expr.source, expr.field), "i64")
        count = self.scalar(("n_pairs", expr.source))
        index = self.checked(expr.index[0], "pairs", expr.source, count)
        return Value(self.load(index.place, array, index.v), INT, *index.place)

    def _render_ParamRef(self, expr: ir.ParamRef) -> Value:
        declaration = next((p for p in self.module.params if p.name == expr.name), None)
        if declaration is None or len(declaration.domains) != len(expr.index):
            raise Unsupported(f"parameter {expr.name}")
        array = self.array(("param", expr.name), "real")
        offset: Optional[Value] = None
        for k, (index_expr, domain) in enumerate(zip(expr.index, declaration.domains)):
            index = self.index(index_expr)
            size = self.scalar(("param_dim", expr.name, k))
            place = index.place
            if isinstance(domain, ir.RangeDomain):
                position = self.emit(place, "sub", lambda b, x, y: b.sub(x, y), index.v, i64(domain.start))
            elif isinstance(domain, ir.SpeciesDomain):
                table = self.array(("species_rank", domain), "i64")
                count = self.scalar(("n_species_rank", domain))
                position = self.emit(place, "rank", lambda b, t, n, x: self.species_rank(b, t, n, x),
                                     table, count, index.v)
            elif isinstance(domain, ir.IrrepDomain):
                position = self.emit(place, "add", lambda b, x, y: b.add(x, y), index.v, i64(domain.max_degree))
            elif isinstance(domain, ir.XyzDomain):
                position = index.v
            else:
                raise Unsupported(f"parameter indexed by {domain}")
            # the runtime checks parameter shapes against their domains: an index variable of the
            # declared domain itself needs no bounds check
            proven = isinstance(index_expr, ir.Var) and self.domains.get(index_expr.name) == domain
            part = Value(position, INT, *place) if proven else self.check(Value(position, INT, *place), size)
            if offset is None:
                offset = part
            else:
                place = self.join(offset, part)
                offset = Value(self.emit(place, "madd", lambda b, o, n, p: b.add(b.mul(o, n), p),
                                         offset.v, size, part.v), INT, *place)
        if offset is None:
            offset = Value(i64(0), INT, 0)
        return Value(self.load(offset.place, array, offset.v), REAL, *offset.place)

    def _render_BlockRef(self, expr: ir.BlockRef) -> Value:
        direct = self.direct_access(expr)
        if direct is not None:
            return direct
        ref = self.renderer.tables.block_ref_key(expr)

        def meta(field_name, k=0):
            return self.scalar(("block", ref, field_name, k))

        def table(field_name):
            return self.array(("block", ref, field_name), "i64")

        def dense(values: list, group: str) -> Value:
            acc = Value(i64(0), INT, 0)
            for k, v in enumerate(values):
                place = max(acc.place, v.place)
                acc = Value(self.dense(place, acc.v, v.v, meta(group + "_min", k), meta(group + "_size", k)),
                            INT, *place)
            return acc

        keys = [self.index(e) for _, e in expr.keys]
        key_index = dense(keys, "key")
        block = Value(self.at_table(key_index.place, table("key_table"), i64(0), i64(0), key_index.v), INT,
                      *key_index.place)

        def lookup(values, group, field_name):
            index = dense(values, group)
            place = max(index.place, block.place)
            value = self.at_table(place, table(field_name), block.v, meta(group + "_stride"), index.v)
            return Value(value, INT, *place)

        row = lookup([self.index(s.expr) for s in expr.samples], "sample", "sample_table")
        components = []
        for k, slot in enumerate(expr.components):
            components.append(lookup([self.index(slot.expr)], f"component{k}", f"component{k}_table"))
        column = lookup([self.index(s.expr) for s in expr.properties], "property", "property_table")
        shape = table("shape")
        width = len(expr.components) + 2
        base = table("base")
        parts = [block, row] + components + [column]
        place = self.join(*parts)

        def make(b, *values):
            blk, row, *rest = values
            comps, col = rest[:-1], rest[-1]
            missing = b.icmp_signed("<", blk, i64(0))
            for p in values[1:]:
                missing = b.or_(missing, b.icmp_signed("<", p, i64(0)))
            safe_blk = b.select(missing, i64(0), blk)
            offset = row
            for k, c in enumerate(list(comps) + [col]):
                extent = b.load(b.gep(shape, [b.add(b.mul(safe_blk, i64(width)), i64(k + 1))]))
                offset = b.add(b.mul(offset, extent), c)
            start = b.load(b.gep(base, [safe_blk]))
            return b.select(missing, i64(-1), b.add(start, offset))
        offset = self.emit(place, "block-offset", make, *[p.v for p in parts])
        flat = self.array(("block", ref, "values"), "real")
        return Value(self.read(place, flat, offset), REAL, *place)

    def direct_access(self, expr: ir.BlockRef):
        """A block access to a tensor computed natively earlier, read from its dense buffer
        when `schedule.grid.solve_grid_access` names its point."""
        source = self.renderer.grids.get(expr.tensor)
        access = solve_grid_access(expr, source) if source is not None else None
        if access is None:
            return None
        indices, solved, checks = access.indices, access.solved, access.checks
        try:
            values = {name: self.index(value_expr) for name, value_expr in solved.items()}
        except Unsupported:
            return None
        saved_env, saved_domains = dict(self.env), dict(self.domains)
        try:
            for name, value in values.items():
                self.env[name] = VarInfo(value.v, value.v, value.level, indices[name])
            self.domains = access.scope_domains(saved_domains)
            conditions, offset_terms = [], []
            grid = self.array(("grid", expr.tensor), "real")
            for k, binder in enumerate(source.indices):
                proven = proven_coordinate(binder.domain, solved[binder.name], solved, saved_env, saved_domains)
                if proven is not None:  # a loop variable ranging inside the same domain: always a grid point
                    position = Value(saved_env[proven].position, INT, saved_env[proven].level)
                else:
                    position, condition = self.grid_position(binder.domain, values[binder.name])
                    conditions.append(condition)
                size = self.scalar(("grid_size", expr.tensor, k))
                offset_terms.append((position, size))
            for entry_expr, access_expr in checks:
                mine, theirs = self.index(entry_expr), self.index(access_expr)
                if mine.v is not theirs.v:
                    place = self.join(mine, theirs)
                    conditions.append(Value(self.emit(place, "ieq", lambda b, x, y: b.icmp_signed("==", x, y),
                                                      mine.v, theirs.v), BOOL, *place))
        finally:
            self.env, self.domains = saved_env, saved_domains
        offset = None
        for position, size in offset_terms:
            if offset is None:
                offset = position
            else:
                place = self.join(offset, position)
                offset = Value(self.emit(place, "madd", lambda b, o, n, p: b.add(b.mul(o, n), p),
                                         offset.v, size, position.v), INT, *place)
        if offset is None:
            offset = Value(i64(0), INT, 0)
        if not conditions:
            return Value(self.load(offset.place, grid, offset.v), REAL, *offset.place)
        ok = self.fold(conditions, "and")
        # error bit 1 where the point is missing, flagged where that is known (often outside the
        # innermost loops, which LLVM then unswitches on `ok`)
        key = (self.stack[ok.level].uid, ok.body, "grid-flag", _key((ok.v,)))
        if key not in self.memo:
            b = self.at(ok.place)
            self.flag(ok.place, b.zext(b.not_(ok.v), I64))
            self.memo[key] = True
        place = self.join(offset, ok)
        real = self.real

        def make(b, grid, offset, ok):
            value = b.load(b.gep(grid, [b.select(ok, offset, i64(0))]))
            return b.select(ok, value, ll.Constant(real, 0.0))
        return Value(self.emit(place, "grid-read", make, grid, offset.v, ok.v), REAL, *place)

    def grid_position(self, domain, value: Value):
        """(position in the buffer, in-domain condition) of a coordinate of another kernel's grid."""
        v, place = value.v, value.place
        if isinstance(domain, ir.RangeDomain):
            def make(b, v):
                shifted = b.sub(v, i64(domain.start))
                return shifted, b.icmp_unsigned("<", shifted, i64(domain.stop - domain.start))
            position, ok = self.emit(place, ("range", domain.start, domain.stop), make, v)
            return Value(position, INT, *place), Value(ok, BOOL, *place)
        if isinstance(domain, ir.SpeciesDomain):
            table = self.array(("species_rank", domain), "i64")
            size = self.scalar(("n_species_rank", domain))
            rank = self.emit(place, "rank", lambda b, t, n, x: self.species_rank(b, t, n, x), table, size, v)
            ok = self.emit(place, "sge0", lambda b, r: b.icmp_signed(">=", r, i64(0)), rank)
            return Value(rank, INT, *place), Value(ok, BOOL, *place)
        if isinstance(domain, ir.IrrepDomain):
            degree = self.index(domain.degree)
            top = domain.max_degree
            joined = self.join(value, degree)
            position = self.emit(place, "add", lambda b, x, y: b.add(x, y), v, i64(top))

            def make(b, v, d):
                limit = b.select(b.icmp_signed("<", d, i64(top)), d, i64(top))
                magnitude = b.select(b.icmp_signed("<", v, i64(0)), b.neg(v), v)
                return b.icmp_signed("<=", magnitude, limit)
            ok = self.emit(joined, "irrep-ok", make, v, degree.v)
            return Value(position, INT, *place), Value(ok, BOOL, *joined)
        if isinstance(domain, ir.XyzDomain):
            count = i64(3)
        else:
            count = self.domain_size(domain)
        ok = self.emit(place, "ult", lambda b, x, n: b.icmp_unsigned("<", x, n), v, count)
        return Value(v, INT, *place), Value(ok, BOOL, *place)

    def _render_Unary(self, expr: ir.Unary) -> Value:
        operand = self.render(expr.operand)
        place = operand.place
        if expr.op == "neg":
            if operand.type == VEC:
                parts = tuple(self.emit(place, "fneg", lambda b, x: b.fneg(x), p) for p in operand.v)
                return Value(parts, VEC, *place)
            if operand.type == REAL:
                return Value(self.emit(place, "fneg", lambda b, x: b.fneg(x), operand.v), REAL, *place)
            return Value(self.emit(place, "neg", lambda b, x: b.neg(x), self.as_int(operand)), INT, *place)
        if expr.op == "not":
            return Value(self.emit(place, "not", lambda b, x: b.not_(x), self.as_bool(operand)), BOOL, *place)
        raise Unsupported(f"unary {expr.op}")

    def _render_Binary(self, expr: ir.Binary) -> Value:
        result_type = expr_type(expr)
        op = expr.op
        if op == "mul" and result_type == REAL:
            factors = [self.render(f) for f in self.factors(expr)]
            factors = [Value(self.as_real(f), REAL, *f.place) for f in factors]
            return self.fold(factors, "fmul")
        left, right = self.render(expr.left), self.render(expr.right)
        place = self.join(left, right)
        if result_type == VEC:
            if op not in ("add", "sub", "mul", "div"):
                raise Unsupported(f"vector {op}")
            name = {"add": "fadd", "sub": "fsub", "mul": "fmul", "div": "fdiv"}[op]
            parts = tuple(self.emit(place, name, lambda b, x, y: getattr(b, name)(x, y), x, y)
                          for x, y in zip(self.vec_parts(left), self.vec_parts(right)))
            return Value(parts, VEC, *place)
        if op in ("add", "sub", "mul", "div") and result_type == REAL:
            name = {"add": "fadd", "sub": "fsub", "mul": "fmul", "div": "fdiv"}[op]
            v = self.emit(place, name, lambda b, x, y: getattr(b, name)(x, y), self.as_real(left), self.as_real(right))
            return Value(v, REAL, *place)
        if op in ("add", "sub", "mul"):
            v = self.emit(place, op, lambda b, x, y: getattr(b, op)(x, y), self.as_int(left), self.as_int(right))
            return Value(v, INT, *place)
        if op == "mod":
            if result_type == INT:
                def imod(b, x, y):
                    zero = b.icmp_signed("==", y, i64(0))
                    r = b.srem(x, b.select(zero, i64(1), y))
                    fix = b.and_(b.icmp_signed("!=", r, i64(0)),
                                 b.icmp_signed("!=", b.icmp_signed("<", r, i64(0)), b.icmp_signed("<", y, i64(0))))
                    return b.select(zero, i64(0), b.select(fix, b.add(r, y), r))
                return Value(self.emit(place, "imod", imod, self.as_int(left), self.as_int(right)), INT, *place)

            def fmod(b, x, y):
                r = b.frem(x, y)
                zero = self.rconst(0.0)
                fix = b.and_(b.fcmp_unordered("!=", r, zero),
                             b.icmp_signed("!=", b.fcmp_ordered("<", r, zero), b.fcmp_ordered("<", y, zero)))
                return b.select(fix, b.fadd(r, y), r)
            return Value(self.emit(place, "fmod", fmod, self.as_real(left), self.as_real(right)), REAL, *place)
        if op == "pow":
            if result_type == INT:
                exponent = int(expr.right.value)
                return Value(self.emit(place, ("ipow", exponent), lambda b, x: _ipow(b, x, exponent),
                                       self.as_int(left)), INT, *place)
            function = self.intrinsic("llvm.pow")
            v = self.emit(place, "pow", lambda b, x, y: b.call(function, [x, y]),
                          self.as_real(left), self.as_real(right))
            return Value(v, REAL, *place)
        if op in ("eq", "ne", "lt", "le", "gt", "ge"):
            symbol = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[op]
            if REAL in (left.type, right.type):
                if op == "ne":
                    make = lambda b, x, y: b.fcmp_unordered(symbol, x, y)  # noqa: E731
                else:
                    make = lambda b, x, y: b.fcmp_ordered(symbol, x, y)  # noqa: E731
                v = self.emit(place, ("fcmp", op), make, self.as_real(left), self.as_real(right))
            elif left.type == BOOL and right.type == BOOL:
                v = self.emit(place, ("ucmp", op), lambda b, x, y: b.icmp_unsigned(symbol, x, y), left.v, right.v)
            else:
                v = self.emit(place, ("icmp", op), lambda b, x, y: b.icmp_signed(symbol, x, y),
                              self.as_int(left), self.as_int(right))
            return Value(v, BOOL, *place)
        if op in ("and", "or"):
            name = op + "_"
            v = self.emit(place, op, lambda b, x, y: getattr(b, name)(x, y), self.as_bool(left), self.as_bool(right))
            return Value(v, BOOL, *place)
        raise Unsupported(f"binary {op}")

    def factors(self, expr) -> list:
        """The factors of a real product tree, keeping whole the sub-products read from tables."""
        return product_factors(expr, self.expanded.keys() | self.tabulated.keys())

    def render_accumulated(self, body) -> Value:
        """The value added into the buffer; in a product with a Clebsch-Gordan factor, the rest of
        the iteration is skipped where that coefficient is zero (adding zero changes nothing):
        only the non-zero coefficients are visited, like an unrolled sparse CG (as the C++ backend)."""
        if not is_real_product(body):
            return self.render(body)
        nodes = self.factors(body)
        skips = zero_skips(nodes)
        for node in skips:
            self.triangle(node)
        skips = {id(node) for node in skips}
        factors = [self.render(f) for f in nodes]
        for node, factor in zip(nodes, factors):
            if id(node) in skips and factor.level >= 1:
                nonzero = self.emit(factor.place, "nonzero",
                                    lambda b, x: b.fcmp_unordered("!=", x, self.rconst(0.0)), factor.v)
                self.skip_at(factor.place, nonzero)
        return self.fold([Value(self.as_real(f), REAL, *f.place) for f in factors], "fmul")

    def triangle(self, node: ir.Call) -> None:
        """Skip the iterations where a Clebsch-Gordan factor's degrees fail the triangle rule (zero for
        every m1, m2, M), first in the block where the degrees are bound (as the C++ backend)."""
        l1, l2, big_l = (self.index(degree) for degree in triangle_degrees(node))
        place = self.join(l1, l2, big_l)
        if place[0] < 1 or place[1]:
            return

        def make(b, a, c, e):
            low = b.and_(b.icmp_signed("<=", b.sub(a, c), e), b.icmp_signed("<=", b.sub(c, a), e))
            return b.and_(low, b.icmp_signed("<=", e, b.add(a, c)))

        self.skip_at(place, self.emit(place, "triangle", make, l1.v, l2.v, big_l.v))

    def skip_at(self, place, condition) -> None:
        """`if (!condition) continue;` at the end of the region of `place` (a loop level)."""
        level, body = place
        node = self.stack[level]
        region = node.body if body else node.prelude
        b = self.b
        b.position_at_end(region.tail)
        go = self.function.append_basic_block()
        b.cbranch(condition, go, node.latch)
        region.tail = go

    def _render_Select(self, expr: ir.Select) -> Value:
        result_type = expr_type(expr)
        condition = self.render(expr.condition)
        yes, no = self.render(expr.if_true), self.render(expr.if_false)
        place = self.join(condition, yes, no)
        c = self.as_bool(condition)
        if result_type == VEC:
            parts = tuple(self.emit(place, "select", lambda b, c, x, y: b.select(c, x, y), c, x, y)
                          for x, y in zip(yes.v, no.v))
            return Value(parts, VEC, *place)
        if result_type == REAL:
            a, b_ = self.as_real(yes), self.as_real(no)
        else:
            a, b_ = self.as_int(yes), self.as_int(no)
        return Value(self.emit(place, "select", lambda b, c, x, y: b.select(c, x, y), c, a, b_), result_type, *place)

    # -- built-in functions ------------------------------------------------------------------------------------
    def _render_Call(self, expr: ir.Call) -> Value:
        name = expr.function
        if name in LLVM_INTRINSICS:
            x = self.unary_argument(expr)
            return Value(self.call1(x.place, LLVM_INTRINSICS[name], self.as_real(x)), REAL, *x.place)
        if name in LIBM_FUNCTIONS:
            xs = [self.scalar_argument(expr, k) for k in range(len(expr.args))]
            function = self.libm(name, len(xs))
            place = self.join(*xs)
            value = self.emit(place, name, lambda b, *x: b.call(function, list(x)), *(self.as_real(x) for x in xs))
            return Value(value, REAL, *place)
        if name == "cross":
            u, v = self.vector_argument(expr, 0), self.vector_argument(expr, 1)
            place = self.join(u, v)

            def make(b, u, v):
                return tuple(b.fsub(b.fmul(u[(k + 1) % 3], v[(k + 2) % 3]), b.fmul(u[(k + 2) % 3], v[(k + 1) % 3]))
                             for k in range(3))
            return Value(self.emit(place, "cross", make, u.v, v.v), VEC, *place)
        if name == "to_irrep":
            v = self.vector_argument(expr, 0)
            axis = self.render(ir.irrep1_axis(expr.args[1], self.module.convention))
            place = self.join(v, axis)

            def make(b, v, k):
                return b.select(b.icmp_signed("==", k, i64(0)), v[0],
                                b.select(b.icmp_signed("==", k, i64(1)), v[1], v[2]))
            return Value(self.emit(place, "to_irrep", make, v.v, self.as_int(axis)), REAL, *place)
        if name == "abs":
            x = self.unary_argument(expr)
            if x.type in (INT, BOOL):
                v = self.emit(x.place, "iabs", lambda b, x: b.select(b.icmp_signed("<", x, i64(0)), b.neg(x), x),
                              self.as_int(x))
                return Value(v, INT, *x.place)
            return Value(self.call1(x.place, "llvm.fabs", x.v), REAL, *x.place)
        if name == "norm":
            v = self.vector_argument(expr, 0)
            d = self.dot(v, v)
            return Value(self.call1(v.place, "llvm.sqrt", d), REAL, *v.place)
        if name == "dot":
            u, v = self.vector_argument(expr, 0), self.vector_argument(expr, 1)
            return Value(self.dot(u, v), REAL, *self.join(u, v))
        if name == "gto":
            return self.call_gto(expr)
        if name == "cosine_cutoff":
            return self.call_cosine_cutoff(expr)
        if name == "sph":
            return self.call_sph(expr)
        if name == "soap_radial":
            return self.call_soap_radial(expr)
        if name == "cg":
            return self.call_cg(expr)
        if name == "d_sph":
            return self.call_d_sph(expr)
        if name == "d_soap_radial":
            return self.call_soap_radial(expr, derivative=True)
        if name == "d_cosine_cutoff":
            return self.call_cosine_cutoff(expr, derivative=True)
        if name == "d_gto":
            return self.call_d_gto(expr)
        raise Unsupported(f"function {name}")

    def call_d_gto(self, expr) -> Value:
        """d gto(r, n) / dr = (n r^(n-1) - r^(n+1) / w^2) exp(-r^2 / (2 w^2))."""
        width = float(self.option(expr, "width"))
        r, n = self.scalar_argument(expr, 0), self.scalar_argument(expr, 1)
        exp, pow_ = self.intrinsic("llvm.exp"), self.intrinsic("llvm.pow")
        one, zero = self.rconst(1.0), self.rconst(0.0)
        scale, w2 = self.rconst(2.0 * width * width), self.rconst(width * width)

        def make(b, x, y):
            lower = b.select(b.fcmp_ordered(">", y, zero), b.fmul(y, b.call(pow_, [x, b.fsub(y, one)])), zero)
            upper = b.fdiv(b.call(pow_, [x, b.fadd(y, one)]), w2)
            gaussian = b.call(exp, [b.fdiv(b.fneg(b.fmul(x, x)), scale)])
            return b.fmul(b.fsub(lower, upper), gaussian)
        place = self.join(r, n)
        return Value(self.emit(place, ("d_gto", width), make, self.as_real(r), self.as_real(n)), REAL, *place)

    def fill_routine(self, b, routine: nest.Routine, args: dict, array_type):
        """A routine of the loop-nest IR (`schedule/nest.py`) inline at `b`, its output a new local
        array of `array_type`; `args`: its parameters' values (a vector: a tuple of three)."""
        table = self.alloca(array_type, routine.name)
        values = dict(args)
        for statement in routine.body:
            if isinstance(statement, nest.Let):
                values[statement.name] = self.nest_value(b, statement.value, values)
            elif isinstance(statement, nest.Store):
                b.store(self.nest_value(b, statement.value, values), b.gep(table, [i64(0), i64(statement.index)]))
            else:
                raise Unsupported(f"nest statement {type(statement).__name__}")
        return table

    def nest_value(self, b, expr, values: dict):
        """A nest expression as instructions at `b` (`values`: what its names are bound to)."""
        if isinstance(expr, nest.Const):
            if expr.type == nest.BOOL:
                return ll.Constant(I1, int(bool(expr.value)))
            return i64(expr.value) if expr.type == nest.INT else self.rconst(expr.value)
        if isinstance(expr, nest.Ref):
            return values[expr.name]
        if isinstance(expr, nest.Lane):
            return self.nest_value(b, expr.vector, values)[expr.lane]
        if isinstance(expr, nest.Unary) and expr.op == "neg":
            return b.fneg(self.nest_value(b, expr.operand, values))
        if isinstance(expr, nest.Binary):
            left, right = self.nest_value(b, expr.left, values), self.nest_value(b, expr.right, values)
            if expr.op == "eq":
                return b.fcmp_ordered("==", left, right)
            return {"add": b.fadd, "sub": b.fsub, "mul": b.fmul, "div": b.fdiv}[expr.op](left, right)
        if isinstance(expr, nest.Select):
            return b.select(*(self.nest_value(b, e, values) for e in (expr.condition, expr.if_true, expr.if_false)))
        if isinstance(expr, nest.Intrinsic) and expr.name == "sqrt":
            return b.call(self.intrinsic("llvm.sqrt"), [self.nest_value(b, expr.args[0], values)])
        raise Unsupported(f"nest expression {type(expr).__name__}")

    def dot(self, u: Value, v: Value):
        place = self.join(u, v)

        def make(b, u, v):
            total = b.fmul(u[0], v[0])
            total = b.fadd(total, b.fmul(u[1], v[1]))
            return b.fadd(total, b.fmul(u[2], v[2]))
        return self.emit(place, "dot", make, u.v, v.v)

    def unary_argument(self, expr) -> Value:
        if len(expr.args) != 1:
            raise Unsupported(f"{expr.function} with {len(expr.args)} arguments")
        value = self.render(expr.args[0])
        if value.type == VEC:
            raise Unsupported(f"{expr.function} of a vector")
        return value

    def vector_argument(self, expr, k) -> Value:
        value = self.render(expr.args[k])
        if value.type != VEC:
            raise Unsupported(f"{expr.function} needs a vector")
        return value

    def scalar_argument(self, expr, k) -> Value:
        value = self.render(expr.args[k])
        if value.type == VEC:
            raise Unsupported(f"{expr.function}: argument {k} is a vector")
        return value

    @staticmethod
    def option(expr, name) -> float:
        value = expr.option(name)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Unsupported(f"{expr.function} without a numeric option {name}")
        return value

    def call_gto(self, expr) -> Value:
        width = float(self.option(expr, "width"))
        r, n = self.scalar_argument(expr, 0), self.scalar_argument(expr, 1)
        x = self.as_real(r)
        exp, pow_ = self.intrinsic("llvm.exp"), self.intrinsic("llvm.pow")
        scale = self.rconst(2.0 * width * width)
        gaussian = self.emit(r.place, ("gauss", width),
                             lambda b, x: b.call(exp, [b.fdiv(b.fneg(b.fmul(x, x)), scale)]), x)
        place = self.join(r, n)
        power = self.emit(place, "pow", lambda b, x, y: b.call(pow_, [x, y]), x, self.as_real(n))
        return Value(self.emit(place, "fmul", lambda b, x, y: b.fmul(x, y), power, gaussian), REAL, *place)

    def call_cosine_cutoff(self, expr, derivative: bool = False) -> Value:
        width = float(self.option(expr, "width"))
        r = self.scalar_argument(expr, 0)
        if len(expr.args) > 1:
            cutoff = self.scalar_argument(expr, 1)
        else:
            cutoff = Value(self.rconst(float(self.option(expr, "cutoff"))), REAL, 0)
        cos = self.intrinsic("llvm.cos")
        w, one, half, pi = self.rconst(width), self.rconst(1.0), self.rconst(0.5), self.rconst(math.pi)
        if derivative:
            sin = self.intrinsic("llvm.sin")

            def slope(b, r, c):
                flat = b.or_(b.fcmp_ordered("<=", r, b.fsub(c, w)), b.fcmp_ordered(">=", r, c))
                s = b.fdiv(b.fmul(pi, b.fadd(b.fsub(r, c), w)), w)
                value = b.fdiv(b.fmul(b.fmul(self.rconst(-0.5), pi), b.call(sin, [s])), w)
                return b.select(flat, self.rconst(0.0), value)
            place = self.join(r, cutoff)
            value = self.emit(place, ("d_cosine_cutoff", width), slope, self.as_real(r), self.as_real(cutoff))
            return Value(value, REAL, *place)

        def make(b, r, c):
            inside = b.fcmp_ordered("<=", r, b.fsub(c, w))
            outside = b.fcmp_ordered(">=", r, c)
            s = b.fdiv(b.fmul(pi, b.fadd(b.fsub(r, c), w)), w)
            smooth = b.fmul(half, b.fadd(one, b.call(cos, [s])))
            return b.select(inside, one, b.select(outside, self.rconst(0.0), smooth))
        place = self.join(r, cutoff)
        value = self.emit(place, ("cosine_cutoff", width), make, self.as_real(r), self.as_real(cutoff))
        return Value(value, REAL, *place)

    def bounded(self, expr, what: str):
        value = self.index(expr)
        found = planning.bounds(expr, self.domains)
        if found is None:
            raise Unsupported(f"{what}: the bounds of {expr} are not known at compile time")
        return value, found

    def table_index(self, place, table, index):
        return self.emit(place, "load", lambda b, t, k: b.load(b.gep(t, [i64(0), k])), table, index)

    def call_sph(self, expr) -> Value:
        """`sph(v, l, m)`, and `d_sph(v, l, m, c)` (component `c` of d sph(v, l, m) / d v): an entry of
        a table of every (l, m) (and c), filled once where `v` is known."""
        v, integers = harmonic_arguments(self, expr)
        (l, (l_lo, l_hi)), (m, (m_lo, m_hi)) = integers[:2]
        if l_hi < 0:
            return Value(self.rconst(0.0), REAL, 0)
        top = l_hi
        width = 2 * top + 1
        if len(integers) == 3:  # d_sph: 3 components per (l, m)
            c = integers[2][0]
            array_type = ll.ArrayType(self.real, (top + 1) * width * 3)
            routine = sph_routine(f"dsph{top}", top, self.module.convention, gradient=True)
            table = self.emit(v.place, ("dsph", top), lambda b, *xyz: self.fill_routine(b, routine, {"v": xyz},
                                                                                         array_type), *v.v)
            place = self.join(v, l, m, c)
            index = self.emit(place, ("dsph-index", top),
                              lambda b, l, m, c: b.add(b.mul(b.add(b.mul(l, i64(width)), b.add(m, i64(top))), i64(3)), c),
                              l.v, m.v, c.v)
            checked = "dsph-checked"
        else:
            array_type = ll.ArrayType(self.real, (top + 1) * width)
            routine = sph_routine(f"sph{top}", top, self.module.convention)
            table = self.emit(v.place, ("sph", top), lambda b, *xyz: self.fill_routine(b, routine, {"v": xyz},
                                                                                        array_type), *v.v)
            place = self.join(v, l, m)
            index = self.emit(place, ("sph-index", top),
                              lambda b, l, m: b.add(b.mul(l, i64(width)), b.add(m, i64(top))), l.v, m.v)
            checked = "sph-checked"
        if l_lo < 0 or m_lo < -top or m_hi > top:
            def make(b, t, l, m, k):
                magnitude = b.select(b.icmp_signed("<", m, i64(0)), b.neg(m), m)
                ok = b.and_(b.icmp_signed(">=", l, i64(0)), b.icmp_signed("<=", magnitude, l))
                value = b.load(b.gep(t, [i64(0), b.select(ok, k, i64(0))]))
                return b.select(ok, value, self.rconst(0.0))
            return Value(self.emit(place, checked, make, table, l.v, m.v, index), REAL, *place)
        return Value(self.table_index(place, table, index), REAL, *place)

    call_d_sph = call_sph

    def call_soap_radial(self, expr, derivative: bool = False) -> Value:
        if len(expr.args) != 3:
            raise Unsupported("soap_radial with a wrong number of arguments")
        n_radial = int(self.option(expr, "n_radial"))
        cutoff = float(self.option(expr, "cutoff"))
        width = float(self.option(expr, "density_width"))
        r = self.scalar_argument(expr, 0)
        n, (n_lo, n_hi) = self.bounded(expr.args[1], "soap_radial")
        l, (l_lo, l_hi) = self.bounded(expr.args[2], "soap_radial")
        if n_lo < 0 or n_hi >= n_radial or l_lo < 0:
            raise Unsupported("soap_radial indices outside the table")
        name, spline = self.renderer.tables.spline(l_hi, n_radial, cutoff, width)
        if derivative:  # it differences neighbouring knots: float64 tables and arithmetic whatever the dtype
            values = self.array(("const64", name + "_values"), "f64")
            derivatives = self.array(("const64", name + "_derivatives"), "f64")
        else:
            values = self.array(("const", name + "_values"), "real")
            derivatives = self.array(("const", name + "_derivatives"), "real")
        count = (l_hi + 1) * n_radial
        table = self.emit(r.place, ("spline", name, count, derivative),
                          lambda b, x, v, d: self.fill_spline(r.place, x, v, d, spline, count, derivative),
                          self.as_real(r), values, derivatives)
        place = self.join(r, n, l)
        index = self.emit(place, ("radial-index", n_radial), lambda b, l, n: b.add(b.mul(l, i64(n_radial)), n),
                          l.v, n.v)
        return Value(self.table_index(place, table, index), REAL, *place)

    def fill_spline(self, place, r, values, derivatives, spline, count: int, derivative: bool = False):
        """The cubic Hermite spline of `soap_radial` for every `(l, n)` at once (`mt_spline` of the
        C++ backend): a vectorizable loop into a new table, error bit 4 beyond the cutoff."""
        table = self.alloca(ll.ArrayType(self.real, count), "radial")
        if derivative:
            return self.fill_spline_derivative(place, r, values, derivatives, spline, count, table)
        c = self.rconst
        b = self.at(place)
        k, t, scale = self.spline_interval(b, r, spline, self.real)
        t2 = b.fmul(t, t)
        t3 = b.fmul(t2, t)
        h00 = b.fadd(b.fsub(b.fmul(c(2.0), t3), b.fmul(c(3.0), t2)), c(1.0))
        h10 = b.fmul(b.fadd(b.fsub(t3, b.fmul(c(2.0), t2)), t), c(spline.step))
        h01 = b.fadd(b.fmul(c(-2.0), t3), b.fmul(c(3.0), t2))
        h11 = b.fmul(b.fsub(t3, t2), c(spline.step))
        h00, h10, h01, h11 = (b.fmul(h, scale) for h in (h00, h10, h01, h11))

        def entry(b, v0, v1, d0, d1):
            return b.fadd(b.fadd(b.fmul(h00, v0), b.fmul(h10, d0)), b.fadd(b.fmul(h01, v1), b.fmul(h11, d1)))
        self.spline_loop(place, "spline", k, count, values, derivatives, table, entry)
        return table

    def fill_spline_derivative(self, place, r, values, derivatives, spline, count: int, table):
        """d/dr of the spline (`mt_spline_derivative` of the C++ backend), in double precision from
        float64 tables: 6 (t^2 - t) / step (p0 - p1) + (3 t^2 - 4 t + 1) d0 + (3 t^2 - 2 t) d1."""
        f64 = ll.DoubleType()

        def c(value):
            return ll.Constant(f64, float(value))
        b = self.at(place)
        k, t, scale = self.spline_interval(b, r, spline, f64)
        t2 = b.fmul(t, t)
        a = b.fmul(b.fdiv(b.fmul(c(6.0), b.fsub(t2, t)), c(spline.step)), scale)
        h0 = b.fmul(b.fadd(b.fsub(b.fmul(c(3.0), t2), b.fmul(c(4.0), t)), c(1.0)), scale)
        h1 = b.fmul(b.fsub(b.fmul(c(3.0), t2), b.fmul(c(2.0), t)), scale)

        def entry(b, v0, v1, d0, d1):
            value = b.fadd(b.fmul(a, b.fsub(v0, v1)), b.fadd(b.fmul(h0, d0), b.fmul(h1, d1)))
            return value if self.real == f64 else b.fptrunc(value, self.real)
        self.spline_loop(place, "dspline", k, count, values, derivatives, table, entry)
        return table

    def spline_interval(self, b, r, spline, real):
        """The spline's interval `k` of `r`, the position `t` in it and the scale (0 beyond the
        cutoff, where error bit 4 is set); the cutoff is checked in the kernel's precision, `t`
        computed in the float type `real`."""

        def c(value):
            return ll.Constant(real, float(value))
        ok = b.fcmp_ordered("<=", r, self.rconst(spline.cutoff))
        b.store(b.or_(b.load(self.err), b.select(ok, i64(0), i64(4))), self.err)
        x = b.fdiv(r if real == self.real else b.fpext(r, real), c(spline.step))
        k = b.fptosi(b.call(self.intrinsic("llvm.floor", real), [b.select(ok, x, c(0.0))]), I64)
        k = b.select(b.icmp_signed(">", k, i64(spline.n_intervals - 1)), i64(spline.n_intervals - 1), k)
        k = b.select(b.icmp_signed("<", k, i64(0)), i64(0), k)
        t = b.fsub(b.select(ok, x, c(0.0)), b.sitofp(k, real))
        return k, t, b.select(ok, c(1.0), c(0.0))

    def spline_loop(self, place, name: str, k, count: int, values, derivatives, table, entry):
        """The loop `j in [0, count)` storing `entry(b, values[p0], values[p1], derivatives[p0],
        derivatives[p1])` (`p0 = k count + j`, `p1 = p0 + count`) into `table`, linked into the
        region of `place` at once."""
        b = self.at(place)
        start = b.mul(k, i64(count))
        level, body = place
        region = self.stack[level].body if body else self.stack[level].prelude
        f = self.function
        header, loop, exit_ = (f.append_basic_block(f"{name}.{part}") for part in ("head", "body", "exit"))
        entry_block = region.tail
        b.branch(header)
        b.position_at_end(header)
        j = b.phi(I64, name=f"{name}.j")
        j.add_incoming(i64(0), entry_block)
        b.cbranch(b.icmp_signed("<", j, i64(count)), loop, exit_)
        b.position_at_end(loop)
        p0 = b.add(start, j)
        p1 = b.add(p0, i64(count))
        value = entry(b, b.load(b.gep(values, [p0])), b.load(b.gep(values, [p1])),
                      b.load(b.gep(derivatives, [p0])), b.load(b.gep(derivatives, [p1])))
        b.store(value, b.gep(table, [i64(0), j]))
        j.add_incoming(b.add(j, i64(1)), loop)
        b.branch(header)
        region.tail = exit_

    def call_cg(self, expr) -> Value:
        if len(expr.args) != 6:
            raise Unsupported("cg with a wrong number of arguments")
        parts = [self.bounded(a, "cg") for a in expr.args]
        degrees = [parts[0], parts[2], parts[4]]
        orders = [parts[1], parts[3], parts[5]]
        if any(lo < 0 for _, (lo, _) in degrees):
            raise Unsupported("cg with possibly negative degrees")
        top = max(hi for _, (_, hi) in degrees)
        if any(lo < -top or hi > top for _, (lo, hi) in orders):
            raise Unsupported("cg orders outside the table")
        name = self.renderer.tables.cg_table(top)
        array = self.array(("const", name), "real")
        size, width = top + 1, 2 * top + 1
        (l1, _), (l2, _), (big_l, _) = degrees
        (m1, _), (m2, _), (big_m, _) = orders

        def make(b, l1, l2, big_l, m1, m2, big_m):
            index = b.add(b.mul(b.add(b.mul(l1, i64(size)), l2), i64(size)), big_l)
            for m in (m1, m2, big_m):
                index = b.add(b.mul(index, i64(width)), b.add(m, i64(top)))
            return b.load(b.gep(array, [index]))
        ordered = [l1, l2, big_l, m1, m2, big_m]
        place = self.join(*ordered)
        return Value(self.emit(place, ("cg", top), make, *[v.v for v in ordered]), REAL, *place)

    # -- sums -----------------------------------------------------------------------------------------------
    def tabulate(self, node) -> Value:
        """A value of `tabulation_candidates`: a table over its index, filled at its level, then read."""
        over, level, row = self.tabulated.pop(id(node))
        domain = self.env[over].domain
        trip = domain.stop - domain.start
        rows = 1 if row is None else 2 * self.env[row].domain.max_degree + 1
        table = self.alloca(ll.ArrayType(self.real, trip * rows), "tabulated")
        saved_stack, saved_env, saved_domains = self.stack, dict(self.env), dict(self.domains)
        self.stack = self.stack[: level + 1]
        if row is not None:  # a row per value of the irrep index (see planning.tabulation_place)
            self.open_loop(planning.Loop(row, self.env[row].domain), self.stack[level].prelude)
        self.open_loop(planning.Loop(over, domain), self.stack[-1].prelude)
        value = self.as_real(self.render(node))
        b = self.at(self.here())
        slot = self.env[over].position
        if row is not None:
            slot = b.add(b.mul(self.env[row].position, i64(trip)), slot)
        b.store(value, b.gep(table, [i64(0), slot]))
        self.close()
        if row is not None:
            self.close()
        self.stack, self.env, self.domains = saved_stack, saved_env, saved_domains
        info = self.env[over]
        if row is None:
            return Value(self.table_index((info.level, False), table, info.position), REAL, info.level)
        row_info = self.env[row]
        place = (max(info.level, row_info.level), False)
        slot = self.emit(place, "row-slot", lambda b, r, k: b.add(b.mul(r, i64(trip)), k), row_info.position, info.position)
        return Value(self.table_index(place, table, slot), REAL, place[0])

    def expand_tables(self, expr: ir.Reduce, level: int, bound: set) -> list:
        """Scalar expansion (as the C++ backend): in `sum(k in range(K))`, a part of the body that
        reads `k` and only variables of loops outside the sum's level (`gto(P.distance[p], k)` in
        a sum placed inside loops over `l1, l2, L, q`) is tabulated for every `k` where those
        variables are bound, and read as `T[k]` in the sum. Returns the keys of `self.expanded`."""
        keys = []
        for node, outer in expansion_candidates(expr, level, bound, lambda name: self.env[name].level):
            binder = expr.binders[0]
            domain = binder.domain
            table = self.alloca(ll.ArrayType(self.real, domain.stop - domain.start), "expanded")
            saved_stack, saved_env, saved_domains = self.stack, dict(self.env), dict(self.domains)
            self.stack = self.stack[: outer + 1]
            self.open_loop(planning.Loop(binder.name, domain), self.stack[outer].prelude)
            value = self.as_real(self.render(node))
            b = self.at(self.here())
            b.store(value, b.gep(table, [i64(0), self.env[binder.name].position]))
            self.close()
            self.stack, self.env, self.domains = saved_stack, saved_env, saved_domains
            self.expanded[id(node)] = (table, binder.name)
            keys.append(id(node))
        return keys

    def _render_Reduce(self, expr: ir.Reduce) -> Value:
        free = free_vars(expr)
        if not free <= set(self.env):
            raise Unsupported("a sum reads a variable that is not bound")
        level = max((self.env[name].level for name in free), default=0)
        saved_stack, saved_env, saved_domains = self.stack, dict(self.env), dict(self.domains)
        self.stack = self.stack[: level + 1]
        vector = expr_type(expr) == VEC
        accumulators = [self.alloca(self.real, "sum") for _ in range(3 if vector else 1)]
        for accumulator in accumulators:
            self.at((level, False)).store(self.rconst(0.0), accumulator)
        target = self.stack[level].prelude
        bound = {name for name, info in self.env.items() if info.level <= level}
        items = [(b, False) for b in expr.binders]
        loops, pre = planning.schedule_loops(items, planning.conjuncts(expr.where), bound)
        expanded = self.expand_tables(expr, level, bound)
        depth0 = len(self.stack)
        if pre:
            conditions = [self.as_bool(self.render(c)) for c in pre]
            skip, _ = self.open_level(target, i64(0), i64(1))
            b = self.at((len(self.stack) - 1, False))
            condition = conditions[0]
            for other in conditions[1:]:
                condition = b.and_(condition, other)
            self.skip_unless(skip, condition)
            target = skip.body
        for loop in loops:
            self.open_loop(loop, target)
            target = self.stack[-1].body
        body = self.render(expr.body)
        values = self.vec_parts(body) if vector else (self.as_real(body),)
        b = self.at(self.here())
        for accumulator, value in zip(accumulators, values):
            b.store(b.fadd(b.load(accumulator), value), accumulator)
        while len(self.stack) > depth0:
            self.close()
        for key in expanded:
            self.expanded.pop(key, None)
        b = self.at((level, False))
        results = tuple(b.load(accumulator) for accumulator in accumulators)
        self.stack, self.env, self.domains = saved_stack, saved_env, saved_domains
        return Value(results, VEC, level) if vector else Value(results[0], REAL, level)


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


# ---- the module --------------------------------------------------------------------------------------------


class ModuleRenderer:
    def __init__(self, module: ir.Module, dtype: str = "float64"):
        # compile-time tables (radial splines, Clebsch-Gordan) and block-access keys (checks dtype, convention)
        self.tables = ModuleTables(module, dtype)
        self.module = module
        self.dtype = dtype
        self.real = ll.DoubleType() if dtype == "float64" else ll.FloatType()
        self.grids = self.tables.grids
        self.llmodule = ll.Module(name=_sanitize(module.name))
        self.llmodule.triple = llvm.get_process_triple()

    def render(self) -> RenderedModule:
        kernels, unsupported = render_kernels(self.module, self.grids, self.render_kernel, self.render_fused)
        return RenderedModule(self.module, self.dtype, str(self.llmodule), kernels, unsupported,
                              dict(self.tables.constants))

    def rendered(self, name: str, symbol: str, plan, builder: "KernelBuilder", buffers: list, function):
        arrays = buffers + sorted(builder.arrays, key=lambda d: builder.arrays[d][0])
        scalars = sorted(builder.scalars, key=lambda d: builder.scalars[d][0])
        return RenderedKernel(name, symbol, plan, arrays, scalars, str(function), builder.driver_count,
                              builder.driver_var)

    def render_kernel(self, k: int, kernel: ir.TensorKernel) -> RenderedKernel:
        symbol = f"mt_kernel_{k}"
        builder = KernelBuilder(self, kernel, symbol)
        try:
            function = builder.build()
        except Unsupported:
            _drop_function(self.llmodule, symbol)
            raise
        return self.rendered(kernel.name, symbol, builder.plan, builder, [("buffer",)], function)

    def render_fused(self, k: int, fused: ir.FusedKernel, plan: planning.FusedPlan) -> RenderedKernel:
        symbol = f"mt_fused_{k}"
        try:
            builder = KernelBuilder(self, fused.kernels[0], symbol)
            function = builder.build_fused(plan)
        except Unsupported:
            _drop_function(self.llmodule, symbol)
            raise
        return self.rendered(fused.name, symbol, plan, builder, [("buffer", j) for j in range(len(plan.plans))],
                             function)


def _drop_function(module: ll.Module, symbol: str) -> None:
    """Remove a half-built function (its kernel runs with the interpreter)."""
    module.globals.pop(symbol, None)


def render_module(module: ir.Module, dtype: str = "float64") -> RenderedModule:
    """Every kernel of `module` as LLVM IR (kernels without a compiled form in `.unsupported`)."""
    return ModuleRenderer(module, dtype).render()


def render(module: ir.Module, dtype: str = "float64") -> str:
    """The LLVM IR of a module (`mtdsl compile --emit llvm`), after a comment naming the tensor of
    each kernel's function (gradient kernels included: `·scatter·dT/dwrt#k`, `mtdsl/ir/passes/terms.py`)."""
    rendered = render_module(module, dtype)

    def shown(text):  # as the IR's identifiers: names never reach the IR as they are
        return "".join(c if c.isascii() and (c.isalnum() or c in "_-./#") or c == "·" else "_" for c in str(text))

    lines = [f"; {r.symbol}: tensor {shown(name)}" for name, r in rendered.kernels.items()]
    lines += [f"; not compiled (runs in the interpreter): tensor {shown(name)}" for name in rendered.unsupported]
    return "\n".join(lines) + "\n\n" + rendered.source


# ---- JIT and the thread pool -----------------------------------------------------------------------------

_INIT = threading.Lock()
_READY = False


def _target_machine():
    global _READY
    with _INIT:
        if not _READY:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            _READY = True
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(),
                                        opt=3, reloc="default", codemodel="jitdefault")


def optimize(source: str):
    """Parse, verify and optimize LLVM IR text (O3, loop and SLP vectorization, host CPU)."""
    machine = _target_machine()
    parsed = llvm.parse_assembly(source)
    parsed.verify()
    parsed.triple = llvm.get_process_triple()
    parsed.data_layout = str(machine.target_data)
    tuning = llvm.PipelineTuningOptions(speed_level=3)
    tuning.loop_vectorization = True
    tuning.slp_vectorization = True
    tuning.loop_unrolling = True
    builder = llvm.create_pass_builder(machine, tuning)
    builder.getModulePassManager().run(parsed, builder)
    return parsed, machine


CHUNKS_PER_THREAD = 4
_KERNEL_TYPE = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)


class LLVMKernel:
    """A JIT-compiled kernel with the C++ kernels' calling convention `(arrays, scalars, threads)`:
    the driver range split into chunks, run from a thread pool (ctypes releases the GIL)."""

    def __init__(self, address: int, rendered: RenderedKernel):
        self.raw = _KERNEL_TYPE(address)
        self.rendered = rendered
        count = rendered.driver_count
        self.count = count if isinstance(count, int) or count is None else rendered.scalars.index(count)
        self.parallel = rendered.plan.parallel and count is not None
        self.argtypes = self.restype = None  # set by CompiledModule, unused

    def size(self, scalars) -> int:
        if isinstance(self.rendered.driver_count, tuple):
            return int(scalars[self.count])
        return int(self.count or 0)

    def __call__(self, arrays, scalars, threads: int) -> int:
        arrays_address = ctypes.cast(arrays, ctypes.c_void_p).value
        scalars_address = ctypes.cast(scalars, ctypes.c_void_p).value
        if not self.parallel:
            return int(self.raw(arrays_address, scalars_address, 0, INT64_MAX))
        n = self.size(scalars)
        threads = min(max(1, int(threads)), n)
        if threads <= 1:
            return int(self.raw(arrays_address, scalars_address, 0, n))
        # a few chunks per thread, taken in turn by the pool's threads and this one (dynamic schedule)
        chunks = min(n, CHUNKS_PER_THREAD * threads)
        bounds = [n * k // chunks for k in range(chunks + 1)]
        raw = self.raw
        return run_chunks(chunks, lambda k: raw(arrays_address, scalars_address, bounds[k], bounds[k + 1]),
                          threads, "llvm")


def object_key(source: str) -> str:
    """The object-code cache key: the IR, llvmlite and LLVM versions, the pipeline, the host CPU."""
    import hashlib

    import llvmlite

    digest = hashlib.sha256()
    for part in (source, llvmlite.__version__, ".".join(map(str, llvm.llvm_version_info)), "O3 loop+slp mcjit",
                 llvm.get_process_triple(), llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _cached_object(path) -> Optional[bytes]:
    """The object code of a cache entry; None when absent or corrupted (its sha256 prefix disagrees)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    payload = object_payload(data, path.stem)  # the hash covers the key: another entry's object is refused
    if payload is None:
        _discard(path, "hash mismatch")  # removed with a warning, rebuilt by the caller
    return payload


class JITLibrary:
    """What `CompiledModule` expects of a loaded library: one callable attribute per kernel symbol.

    The machine code goes through the kernel cache (`codegen/cache.py`'s directory, under
    `llvm/`): an entry is the sha256 of the object then the object, written atomically, so a
    reader never loads a half-written or corrupted entry (it is rebuilt). A hit skips the
    optimization passes and code generation.
    """

    def __init__(self, rendered: RenderedModule, use_cache: bool = True):
        path = cache_dir() / "llvm" / f"{object_key(rendered.source)}.o"
        cached = _cached_object(path) if use_cache else None
        self.cache_hit = cached is not None
        if cached is not None:
            machine = _target_machine()
            self.optimized = llvm.parse_assembly(rendered.source)
            self.optimized.triple = llvm.get_process_triple()
            self.optimized.data_layout = str(machine.target_data)
        else:
            self.optimized, machine = optimize(rendered.source)
        self.engine = llvm.create_mcjit_compiler(self.optimized, machine)

        def notify(module, data):
            if use_cache and not self.cache_hit:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    _atomic_write(path, object_bytes(bytes(data), path.stem))
                except OSError:
                    pass  # a read-only cache: compile every time

        self.engine.set_object_cache(notify, lambda module: cached)
        self.engine.finalize_object()
        self.path = path
        for kernel in rendered.kernels.values():
            address = self.engine.get_function_address(kernel.symbol)
            setattr(self, kernel.symbol, LLVMKernel(address, kernel))


def build(module: ir.Module, dtype=np.float64, gradients: dict | None = None, extra: tuple = ()) -> tuple:
    """Render, optimize and JIT `module` with the terms of its gradient kernels (`mtdsl/ir/passes/terms.py`)
    and the `extra` kernels: `(rendered, library, path, cache_hit, terms)`, which
    `runtime.compiled.compile_module` wraps in a `CompiledModule` (`codegen/build.py`)."""
    # a cache hit skips rendering (and lowering the gradient terms) too: the rendered module is
    # stored by its IR, its gradient kernels, the dtype and the renderers
    gradients = gradients or {}
    dtype_name = np.dtype(dtype).name
    text = ir_text(module, gradients, extra)
    key = cache.rendering_key(f"llvm:{_renderer_version()}", text, dtype_name)
    stored = cache.load_rendering(key)
    if not (isinstance(stored, tuple) and len(stored) == 3 and stored[0] == text
            and isinstance(stored[1], RenderedModule) and stored[1].dtype == dtype_name):
        extended, terms = extended_module(with_extra(module, extra), gradients)
        stored = (text, render_module(extended, dtype_name), terms)
        try:
            cache.store_rendering(key, slim_rendering(stored, module))
        except OSError:
            pass  # a read-only cache: render every time
    _, rendered, terms = stored
    library = JITLibrary(rendered)
    return rendered, library, library.path, library.cache_hit, terms


def _renderer_version() -> str:
    """A hash of this file: a rendering cached by IR is valid only for the same LLVM renderer."""
    import hashlib
    from pathlib import Path

    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
