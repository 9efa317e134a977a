"""The kernel walk (`KernelBuilder`): a kernel's plan (`codegen/plan.py`) to one LLVM function

    i64 @mt_kernel_K(i8** arrays, i64* scalars, i64 lo, i64 hi)

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
are loop variables of the same domains needs no in-grid test. What a kernel
reads is in `reads.py`, the built-in functions in `calls.py`.
"""

from __future__ import annotations

import llvmlite.ir as ll

from mtdsl.ir import nodes as ir

from .. import plan as planning
from ..plan import BOOL, INT, REAL, VEC, Unsupported, expr_type, free_vars
from ..schedule.factors import is_real_product, product_factors, triangle_degrees, zero_skips
from ..schedule.tabulation import expansion_candidates, tabulation_candidates
from .calls import Calls
from .emit import I1, I32, I64, I8, Builder, Level, Region, Value, VarInfo, _ident, _ipow, _key, i64
from .reads import Reads


# ---- the kernel -----------------------------------------------------------------------------------------


class KernelBuilder(Reads, Calls):
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


