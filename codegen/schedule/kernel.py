"""Plan + middle decisions -> a complete `nest.Kernel`: the target-neutral kernel lowering.

`ModuleLowering(module, dtype).lower_kernel(k, kernel)` / `.lower_fused(k, fused, plan)`
give a `LoweredKernel`: the nest of one native function, whose `params` are the
kernel's run-time arguments in order (their `schedule/abi.py` arguments,
`abi.PairsField("P", "vectors")`..., are what `runtime/native/compiled.py` binds), and what the runtime
needs besides (the plan, the driver of a scatter kernel). A backend prints it
(`codegen/cpp/`), deciding nothing.

The loop nest follows `codegen/schedule/plan.py`. Every value is placed in the
outermost block where the variables it reads are bound (loop-invariant code
motion over the IR: `hoist`), named once per block (`emit`: common
subexpressions per region); products are regrouped by placement level
(`schedule/factors.py`), `sph` and `soap_radial` fill a table for every
`(l, m)` / `(l, n)` once where their vector / distance is known, values over a
small range index are tabulated (`schedule/tabulation.py`), zero
Clebsch-Gordan factors and their triangle rule skip iterations, block accesses
split into block, sample, component and property lookups placed by what each
reads or read an earlier kernel's dense buffer (`schedule/reads.py`), and the
innermost kernel-index loop is marked `simd` where that is safe.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

from mtdsl.ir import nodes as ir

from . import plan as planning
from .plan import Unsupported, expr_type, free_vars
from . import abi, nest
from .bounds import mark_in_bounds
from .calls import CallLowering
from .exprs import Value, VarInfo, as_bool, as_int, as_real, both, call, either, iadd, iconst, imul, isub, compare, ref, \
    rconst, skip_if, vec_operand
from .factors import is_real_product, product_factors, triangle_degrees, zero_skips
from .module import render_kernels
from .nest import BOOL, INT, REAL, VEC
from .reads import ReadLowering
from .sph import sph_routine
from .tables import ModuleTables
from .tabulation import expansion_candidates, interchangeable, tabulation_candidates

_SIMD_DOMAINS = (ir.RangeDomain, ir.XyzDomain, ir.IrrepDomain)
PARALLEL_KERNEL, PARALLEL_FUSED = "dynamic, 4", "guided"


@dataclass(frozen=True)
class LoweredKernel:
    name: str  # the IR tensor name (of a fused kernel: its own)
    nest: nest.Kernel
    plan: object  # planning.KernelPlan or FusedPlan
    driver_count: object = None  # scatter kernels: the size of their driver (RenderedKernel.driver_count)
    driver_var: object = None  # and its variable

    @property
    def arrays(self) -> list:
        return [p.argument for p in self.nest.params if p.group != "scalar"]

    @property
    def scalars(self) -> list:
        return [p.argument for p in self.nest.params if p.group == "scalar"]


def simd_safe(plan: planning.KernelPlan, level: "Level", statement) -> bool:
    """Whether the innermost loop may be vectorized (`simd`): it is a kernel index (each iteration
    writes its own entry of the buffer or of the local accumulator, which no input aliases: the
    buffer is a fresh array), not the parallel driver, over a range / xyz / irrep; its block holds
    only `Let`s and the statement, none of which reads or sets the error flags or leaves the loop.
    g++ then vectorizes the short channel loops it kept scalar (the power spectrum's gradient:
    `A[n2] += drho[α, m, n1] * rho[m, n2]` over 6 channels), as LLVM's vectorizer does."""
    loop = plan.loops[-1]
    if loop.kind != "domain" or not loop.is_index or not isinstance(loop.domain, _SIMD_DOMAINS) or loop.guards:
        return False
    if len(plan.loops) == 1 or (plan.parallel and loop is plan.loops[0]):
        return False
    items = level.prelude + level.body
    if not items or items[-1] is not statement:
        return False
    for item in items:
        if item is statement:
            if nest.sets_error(item.value) or (not isinstance(item.index, int) and nest.sets_error(item.index)):
                return False
        elif not isinstance(item, nest.Let) or nest.sets_error(item.value):
            return False
    return True


class Level:
    """One block of the nest while it is built: statements hoisted to it (`prelude`), then its `body`;
    `make(statements, simd)` gives its node (a `Loop`, an `If`; None for the kernel's root)."""

    def __init__(self, make, target: Optional[list]):
        self.make = make
        self.prelude: list = []
        self.body: list = []
        self.target = target  # where the finished block goes (a parent's prelude or body)
        self.simd = False

    def statements(self) -> tuple:
        return tuple(item.freeze() if isinstance(item, Level) else item for item in self.prelude + self.body)

    def freeze(self):
        return self.make(self.statements(), self.simd)


def _loop_maker(var, start, stop, kind="domain", parallel="", note=""):
    return lambda body, simd: nest.Loop(var, start, stop, body, kind, parallel, simd, note)


class KernelLowering(ReadLowering, CallLowering):
    def __init__(self, context: "ModuleLowering", kernel: ir.TensorKernel, symbol: str):
        self.context = context
        self.module = context.module
        self.kernel = kernel
        self.symbol = symbol
        self.params: list = []  # nest.Param in order of first use (outputs first)
        self.arrays: "OrderedDict[tuple, str]" = OrderedDict()
        self.scalars: "OrderedDict[tuple, str]" = OrderedDict()
        self.driver_count = None
        self.driver_var = None
        self.counter = 0
        self.memo: dict = {}
        self.env: dict[str, VarInfo] = {}
        self.domains: dict[str, object] = {}
        self.expanded: dict = {}  # id of an IR node -> (table, start, variable): see expand_tables
        self.tabulated: dict = {}  # id of an IR node -> (index, level): see tabulation_candidates
        self.systems = {s.name for s in self.module.systems}
        self.pairs = {p.name: p for p in self.module.pairs}

    # -- names and arguments --------------------------------------------------------------------
    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def array(self, argument: abi.ArrayArgument, type_: str, note: str) -> str:
        """The name of the array argument `argument` (elements of `type_`: real, f64, int, i32)."""
        if argument not in self.arrays:
            name = f"a{len(self.arrays) + 1}"
            self.arrays[argument] = name
            self.params.append(nest.Param(name, "array", type_, argument, note))
        return self.arrays[argument]

    def scalar(self, argument: abi.ScalarArgument, note: str) -> nest.Ref:
        if argument not in self.scalars:
            name = f"s{len(self.scalars)}"
            self.scalars[argument] = name
            self.params.append(nest.Param(name, "scalar", INT, argument, note))
        return ref(self.scalars[argument])

    # -- placement ----------------------------------------------------------------------------------
    def emit(self, expr, place: tuple, hint: str = "t") -> nest.Ref:
        """`expr` named once in the block (and part) `place` says: a `Let` there, reused after."""
        level, body = place
        block = self.stack[level]
        key = (id(block), body, expr)
        if key in self.memo:
            return self.memo[key]
        name = self.fresh(hint)
        (block.body if body else block.prelude).append(nest.Let(name, expr))
        self.memo[key] = result = nest.Ref(name, expr.type)
        return result

    def hoist(self, value: Value, hint: str = "t") -> Value:
        """Bind a non-trivial value to a name in the block where it belongs, if outside the current one."""
        if isinstance(value.expr, (nest.Ref, nest.Const)) or value.level >= len(self.stack) - 1:
            return value
        return Value(self.emit(value.expr, value.place, hint), value.level, value.body)

    def statement(self, place: tuple, statement) -> None:
        level, body = place
        block = self.stack[level]
        (block.body if body else block.prelude).append(statement)

    def open(self, make, target: list) -> int:
        self.stack.append(Level(make, target))
        return len(self.stack) - 1

    def close(self) -> None:
        block = self.stack.pop()
        self.memo = {k: v for k, v in self.memo.items() if k[0] != id(block)}
        block.target.append(block)

    def here(self) -> tuple:
        return (len(self.stack) - 1, True)

    @staticmethod
    def join(*values: Value) -> tuple:
        place = (0, False)
        for value in values:
            place = max(place, value.place)
        return place

    # -- loops --------------------------------------------------------------------------------------
    def open_loop(self, loop: planning.Loop, target: list, chunk=None, parallel: str = "") -> None:
        """Open the block of one loop and bind its variable (value and position); `chunk`: the
        scalars (lo, hi) that restrict a driver loop to its positions `[lo, hi)`."""
        var = self.fresh("v")
        domain = loop.domain
        note = f"{loop.var} in {domain}" + (f" = {loop.expr}" if loop.expr is not None else "")
        position, pre, kind, loop_var = ref(var), [], "domain", var
        if loop.kind == "domain":
            if isinstance(domain, ir.RangeDomain):
                start, stop = iconst(domain.start), iconst(domain.stop)
                position = isub(ref(var), iconst(domain.start))
            elif isinstance(domain, ir.SpeciesDomain):
                loop_var = var + "_rank"
                species = self.species_array(domain)
                start, stop = iconst(0), self.scalar(abi.SpeciesCount(domain), f"number of {domain}")
                pre = [nest.Let(var, nest.Load(species, ref(loop_var), INT))]
                position = ref(loop_var)
            elif isinstance(domain, ir.IrrepDomain):
                degree = self.index(domain.degree)
                limit = self.emit(call("imin", degree.expr, iconst(domain.max_degree)), degree.place, "d")
                start, stop = nest.Unary("neg", limit, INT), iadd(limit, iconst(1))
                position = iadd(ref(var), iconst(domain.max_degree))
            else:
                count = self.domain_size(domain)
                if chunk is not None:
                    lo, hi = chunk
                    start, stop = call("imax", lo, iconst(0)), call("imin", hi, count)
                else:
                    start, stop = iconst(0), count
        elif loop.kind in ("pairs_of", "atoms_of"):
            owner = self.index(loop.expr)
            if loop.kind == "pairs_of":
                offsets = self.array(abi.PairsField(loop.source, "offsets"), INT, f"{loop.source} CSR offsets")
                count = self.n_atoms(self.pairs[loop.source].systems)
            else:
                offsets = self.array(abi.SystemsField(loop.source, "atom_offsets"), INT, f"{loop.source} atom offsets")
                count = self.scalar(abi.SystemCount(loop.source), f"systems in {loop.source}")
            start = self.emit(call("seg", nest.Ref(offsets, nest.ARRAY), count, owner.expr, iconst(0)), owner.place, "lo")
            stop = self.emit(call("seg", nest.Ref(offsets, nest.ARRAY), count, owner.expr, iconst(1)), owner.place, "hi")
            kind = "segment"
        elif loop.kind == "equal":
            value = self.index(loop.expr)
            start, stop, kind = value.expr, None, "equal"
            position, pre = self.membership(domain, var)
        else:
            raise Unsupported(f"loop kind {loop.kind}")
        level = self.open(_loop_maker(loop_var, start, stop, kind, parallel, note), target)
        self.stack[level].prelude.extend(pre)
        self.env[loop.var] = VarInfo(ref(var), position, level, domain)
        self.domains[loop.var] = domain
        for guard in loop.guards:
            condition = self.render(guard)
            self.statement((level, False), nest.Guard(as_bool(condition.expr), f"where {guard}"))

    def open_range(self, var: str, domain, note: str, target: list) -> int:
        """A loop over a range or irrep domain's values, opened (the tables' fill loops)."""
        return self.open(_loop_maker(var, iconst(domain.start), iconst(domain.stop), note=note), target)

    def membership(self, domain, var: str) -> tuple:
        """(position expression, statements that skip values outside the domain) of an equality-bound variable."""
        value = ref(var)
        if isinstance(domain, ir.RangeDomain):
            start, stop = iconst(domain.start), iconst(domain.stop)
            return isub(value, start), [skip_if(either(compare("lt", value, start), compare("ge", value, stop)))]
        if isinstance(domain, ir.SpeciesDomain):
            table = self.array(abi.SpeciesRank(domain), INT, f"rank of each atomic number in {domain}")
            size = self.scalar(abi.SpeciesRankSize(domain), "size of that table")
            rank = var + "_rank"
            lookup = call("at", nest.Ref(table, nest.ARRAY), iconst(0), iconst(0), call("dense", iconst(0), value, iconst(0), size))
            return ref(rank), [nest.Let(rank, lookup), skip_if(compare("lt", ref(rank), iconst(0)))]
        if isinstance(domain, ir.IrrepDomain):
            degree = self.index(domain.degree)
            limit = call("imin", degree.expr, iconst(domain.max_degree))
            return iadd(value, iconst(domain.max_degree)), [skip_if(compare("gt", call("iabs", value), limit))]
        if isinstance(domain, ir.XyzDomain):
            return value, [skip_if(either(compare("lt", value, iconst(0)), compare("gt", value, iconst(2))))]
        count = self.domain_size(domain)
        return value, [skip_if(either(compare("lt", value, iconst(0)), compare("ge", value, count)))]

    def domain_size(self, domain):
        if isinstance(domain, ir.AtomsDomain):
            return self.n_atoms(domain.systems)
        if isinstance(domain, ir.SystemsDomain):
            return self.scalar(abi.SystemCount(domain.systems), f"systems in {domain.systems}")
        if isinstance(domain, ir.PairsDomain):
            return self.scalar(abi.PairCount(domain.pairs), f"pairs in {domain.pairs}")
        if isinstance(domain, ir.XyzDomain):
            return iconst(3)
        if isinstance(domain, ir.RangeDomain):
            return iconst(domain.stop - domain.start)
        if isinstance(domain, ir.IrrepDomain):
            return iconst(2 * domain.max_degree + 1)
        if isinstance(domain, ir.SpeciesDomain):
            return self.scalar(abi.SpeciesCount(domain), f"number of {domain}")
        raise Unsupported(f"domain {domain}")

    def n_atoms(self, systems: str):
        return self.scalar(abi.AtomCount(systems), f"atoms in {systems}")

    def species_array(self, domain) -> str:
        return self.array(abi.SpeciesValues(domain), INT, f"values of {domain}")

    # -- the kernel -----------------------------------------------------------------------------------
    def lower_kernel(self) -> LoweredKernel:
        plan = self.plan = planning.plan_kernel(self.kernel)
        self.params.append(nest.Param("mt_buffer", "output", REAL, abi.OutputBuffer(), "the output buffer"))
        root = Level(None, None)
        self.stack = [root]
        strides = self.strides(self.kernel, "st")
        for guard in plan.pre_guards:
            condition = self.render(guard)
            root.prelude.append(nest.Guard(as_bool(condition.expr), f"where {guard}", "return"))
        self.lower_nest(plan, "mt_buffer", strides, 0)
        driver = plan.loops[0].var if plan.loops and plan.parallel else ""
        kernel = nest.Kernel(self.kernel.name, self.symbol, plan.schedule, self._ordered_params(), root.statements(), driver)
        return LoweredKernel(self.kernel.name, kernel, plan, self.driver_count, self.driver_var)

    def lower_fused(self, fused: planning.FusedPlan) -> LoweredKernel:
        """One function for the members of a fused kernel (`planning.plan_fused`): the shared loops
        once, then inside them each member's own loops adding into its own buffer (output `j`);
        what the members compute at the shared levels (a pair's tables) is emitted once."""
        self.plan = fused
        for j, plan in enumerate(fused.plans):
            self.params.append(nest.Param(f"mt_buffer{j}", "output", REAL, abi.OutputBuffer(j),
                                          f"the buffer of {plan.kernel.name}"))
        root = Level(None, None)
        self.stack = [root]
        strides = [self.strides(plan.kernel, f"st{j}_") for j, plan in enumerate(fused.plans)]
        first = fused.plans[0]
        self.kernel = first.kernel
        depth0 = len(self.stack)
        for number, loop in enumerate(first.loops[:fused.shared]):
            chunk, parallel = None, ""
            if number == 0 and fused.parallel:
                parallel = PARALLEL_FUSED
                size = planning.driver_size(loop.domain)
                if isinstance(size, abi.ScalarArgument):  # ranges of the driver on threads of their own, as scatter kernels
                    chunk = (self.scalar(abi.FIRST, "first driver position"),
                             self.scalar(abi.PAST, "driver position past the last"))
                    self.driver_count, self.driver_var = size, loop.var
            self.open_loop(loop, self.stack[-1].body, chunk, parallel)
        env, domains = dict(self.env), dict(self.domains)
        for j, plan in enumerate(fused.plans):
            self.env, self.domains = dict(env), planning.member_domains(plan, domains)
            self.lower_nest(plan, f"mt_buffer{j}", strides[j], fused.shared)
        while len(self.stack) > depth0:
            self.close()
        names = ", ".join(plan.kernel.name for plan in fused.plans)
        driver = first.loops[0].var if fused.parallel else ""
        kernel = nest.Kernel(f"{fused.fused.name} = ({names})", self.symbol, "fused", self._ordered_params(),
                             root.statements(), driver)
        return LoweredKernel(fused.fused.name, kernel, fused, self.driver_count, self.driver_var)

    def _ordered_params(self) -> tuple:
        outputs = [p for p in self.params if p.group == "output"]
        return tuple(outputs + [p for p in self.params if p.group != "output"])

    def strides(self, kernel: ir.TensorKernel, prefix: str) -> list:
        """Name the strides of `kernel`'s dense buffer (its last index contiguous); their references."""
        sizes = [self.domain_size(b.domain) for b in kernel.indices]
        names = []
        for k in range(len(sizes)):
            rest = sizes[k + 1:]
            value = rest[0] if rest else iconst(1)
            for size in rest[1:]:
                value = imul(value, size)
            self.stack[0].prelude.append(nest.Let(f"{prefix}{k}", value, f"stride of {kernel.indices[k].name}"))
            names.append(ref(f"{prefix}{k}"))
        return names

    def lower_nest(self, plan: planning.KernelPlan, buffer: str, strides: list, start: int) -> None:
        """Open `plan.loops[start:]` inside the current block, add (or store) the body into `buffer`
        at its kernel indices, and close them again."""
        self.kernel, self.plan = plan.kernel, plan
        self.tabulated = tabulation_candidates(plan)
        depth0 = len(self.stack)
        local = None  # (level, array, [(kernel index k, its size)] in loop order): planning.local_accumulator
        for number, loop in enumerate(plan.loops[start:], start):
            target = self.stack[-1].body
            if number == plan.local:
                indices = [(k, planning.static_size(l.domain)) for l in plan.loops[number:] if l.is_index
                           for k, b in enumerate(self.kernel.indices) if b.name == l.var]
                size = 1
                for _, extent in indices:
                    size *= extent
                local = (len(self.stack) - 1, self.fresh("A"), indices)
                target.append(nest.Alloc(local[1], size, REAL, True, "the sums below, added into the buffer once"))
            chunk, parallel = None, ""
            if number == 0 and plan.parallel:
                parallel = PARALLEL_KERNEL
                size = planning.driver_size(loop.domain)
                if planning.is_scatter(self.kernel) and isinstance(size, abi.ScalarArgument) and not loop.is_index:
                    # a scatter kernel whose points may add into one entry runs ranges of its
                    # driver on threads of its own (runtime/native/compiled.py: _scatter_shared)
                    chunk = (self.scalar(abi.FIRST, "first driver position"),
                             self.scalar(abi.PAST, "driver position past the last"))
                    self.driver_count, self.driver_var = size, loop.var
            self.open_loop(loop, target, chunk, parallel)

        # the buffer offset, summed in loop order so that partial sums are hoisted
        inner = {k for k, _ in local[2]} if local else set()
        terms, local_terms, local_stride = [], [], 1
        for k, extent in reversed(local[2] if local else []):
            info = self.env[self.kernel.indices[k].name]
            local_terms.append(Value(imul(info.position, iconst(local_stride)), info.level))
            local_stride *= extent
        for k, binder in enumerate(self.kernel.indices):
            info = self.env[binder.name]
            if k not in inner:
                terms.append(Value(imul(info.position, strides[k]), info.level))
        zero = Value(iconst(0), 0)
        if local:
            offset = self.fold(local_terms, "add", INT, "o") if local_terms else zero
            outer = self.fold(terms, "add", INT, "o") if terms else zero
        else:
            offset = self.fold(terms, "add", INT, "o") if terms else zero
        value = self.lower_accumulated(plan.body) if plan.schedule == "accumulate" else self.render(plan.body)
        statement = nest.Store(local[1] if local else buffer, offset.expr, as_real(value.expr),
                               plan.schedule == "accumulate")
        self.statement(self.here(), statement)
        if (len(plan.loops) > start and len(self.stack) == depth0 + len(plan.loops) - start
                and simd_safe(plan, self.stack[-1], statement)):
            self.stack[-1].simd = True
        if local:
            level, array, indices = local
            while len(self.stack) > level + 1:
                self.close()
            self.stack[level].body.append(self.flush(buffer, array, indices, outer.expr, strides))
        while len(self.stack) > depth0:
            self.close()

    def flush(self, buffer: str, array: str, indices: list, outer, strides: list):
        """The loops adding the local accumulator into the buffer, in the buffer's order (its last index
        innermost: contiguous stores), whatever the loops' order."""
        local_strides, stride = {}, 1
        for k, extent in reversed(indices):
            local_strides[k] = stride
            stride *= extent
        loops, at, flat = [], [outer], []
        for k, extent in sorted(indices):
            q = self.fresh("q")
            loops.append((q, extent))
            at.append(imul(ref(q), strides[k]))
            flat.append(imul(ref(q), iconst(local_strides[k])))
        statement = nest.Store(buffer, nest.total(at), nest.Load(array, nest.total(flat, iconst(0)), REAL), True)
        for q, extent in reversed(loops):
            statement = nest.Loop(q, iconst(0), iconst(extent), (statement,))
        return statement

    def factors(self, expr) -> list:
        """The factors of a real product tree, keeping whole the sub-products read from tables."""
        return product_factors(expr, self.expanded.keys() | self.tabulated.keys())

    def tabulate(self, node) -> Value:
        over, level, row = self.tabulated.pop(id(node))
        domain = self.env[over].domain
        trip = domain.stop - domain.start
        start = iconst(domain.start)
        table = self.fresh("T")
        saved_stack, saved_env, saved_domains = self.stack, dict(self.env), dict(self.domains)
        self.stack = self.stack[: level + 1]
        rows = 1
        if row is not None:
            row_domain = self.env[row].domain
            top = row_domain.max_degree
            rows = 2 * top + 1
        self.stack[level].prelude.append(
            nest.Alloc(table, trip * rows, REAL, False, f"{node} for every {over}" + (f" and {row}" if row is not None else "")))
        fill, fill_level = table, level
        if row is not None:
            degree = self.index(row_domain.degree)
            limit = self.emit(call("imin", degree.expr, iconst(top)), degree.place, "d")
            var = self.fresh("v")
            fill_level = self.open(_loop_maker(var, nest.Unary("neg", limit, INT), iadd(limit, iconst(1)),
                                               note=f"{row} in {row_domain}"), self.stack[level].prelude)
            self.env[row] = VarInfo(ref(var), iadd(ref(var), iconst(top)), fill_level, row_domain)
            fill = self.fresh("R")
            self.stack[fill_level].prelude.append(nest.View(fill, table, imul(iadd(ref(var), iconst(top)), iconst(trip))))
        if interchangeable(node, over):
            self.tabulate_sum(node, over, fill_level, fill)
        else:
            var = self.fresh("v")
            depth = self.open_range(var, domain, f"{over} in {domain}", self.stack[fill_level].prelude)
            self.env[over] = VarInfo(ref(var), isub(ref(var), start), depth, domain)
            value = self.render(node)
            self.statement(self.here(), nest.Store(fill, isub(ref(var), start), as_real(value.expr)))
            self.close()
        if row is not None:
            self.close()
        self.stack, self.env, self.domains = saved_stack, saved_env, saved_domains
        info = self.env[over]
        if row is None:
            return Value(nest.Load(table, isub(info.code, start), REAL), info.level)
        row_info = self.env[row]
        index = iadd(imul(row_info.position, iconst(trip)), isub(info.code, start))
        return Value(nest.Load(table, index, REAL), max(info.level, row_info.level))

    def tabulate_sum(self, node: ir.Reduce, over: str, level: int, table: str) -> None:
        """`T[q] = sum(k...) body(k, q)` as: T = 0; for k...: for q: T[q] += body (stack cut at `level`)."""
        domain = self.env[over].domain
        trip = domain.stop - domain.start
        start = iconst(domain.start)
        target = self.stack[level].prelude
        target.append(nest.Loop("mt_z", iconst(0), iconst(trip), (nest.Store(table, ref("mt_z"), rconst(0.0)),)))
        bound = {name for name, info in self.env.items() if info.level <= level and name != over}
        loops, pre = planning.schedule_loops([(b, False) for b in node.binders], planning.conjuncts(node.where),
                                             bound | {over})
        depth0 = len(self.stack)
        if pre:  # conditions on outer variables and the tabulated index: tested inside its loop below
            loops = loops[:-1] + (planning.Loop(loops[-1].var, loops[-1].domain, loops[-1].kind, loops[-1].expr,
                                                loops[-1].source, False, loops[-1].guards + tuple(pre)),) if loops else loops
        saved_over = self.env.pop(over)
        self.expand_tables(node, level, bound)
        later = []  # guards that read the tabulated index: tested inside its loop
        for loop in loops:
            now = tuple(g for g in loop.guards if over not in free_vars(g))
            later += [g for g in loop.guards if over in free_vars(g)]
            self.open_loop(planning.Loop(loop.var, loop.domain, loop.kind, loop.expr, loop.source, False, now), target)
            target = self.stack[-1].body
        var = self.fresh("v")
        self.open_range(var, domain, f"{over} in {domain}", target)
        self.env[over] = VarInfo(ref(var), isub(ref(var), start), len(self.stack) - 1, saved_over.domain)
        for guard in later:
            condition = self.render(guard)
            self.statement((len(self.stack) - 1, False), nest.Guard(as_bool(condition.expr), f"where {guard}"))
        value = self.render(node.body)
        self.statement(self.here(), nest.Store(table, isub(ref(var), start), as_real(value.expr), True))
        for key in [k for k, (_, _, name) in self.expanded.items() if name in {b.name for b in node.binders}]:
            del self.expanded[key]
        while len(self.stack) > depth0:
            self.close()

    def lower_accumulated(self, body) -> Value:
        """The value added into the buffer; a product with a Clebsch-Gordan factor skips the
        loops below that factor when it is zero (adding zero changes nothing): only the
        non-zero coefficients are visited, like an unrolled sparse CG."""
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
                zero = rconst(0.0) if factor.type == REAL else iconst(0)
                self.statement(factor.place, skip_if(compare("eq", as_int(factor.expr), zero), "a zero coefficient"))
        factors = [Value(as_real(f.expr), f.level, f.body) for f in factors]
        return self.fold(factors, "mul", REAL, "p")

    def triangle(self, node: ir.Call) -> None:
        """Skip the iterations where a Clebsch-Gordan factor's degrees `(l1, l2, L)` fail the triangle
        rule: the coefficient is zero for every `m1, m2, M`, so the loops below the degrees' (and the
        values tabulated there, such as radial weights per `(l1, l2, L)`) are not entered at all.
        Tested first in the block where the three degrees are bound, before anything placed there."""
        l1, l2, big_l = (self.index(degree) for degree in triangle_degrees(node))
        level, body = self.join(l1, l2, big_l)
        if level >= 1 and not body:
            a, b, c = l1.expr, l2.expr, big_l.expr
            fails = either(compare("gt", isub(a, b), c), compare("gt", isub(b, a), c), compare("gt", c, iadd(a, b)))
            self.statement((level, False), skip_if(fails, f"triangle rule of {node}"))

    def fold(self, values: list, operator: str, type_: str, hint: str) -> Value:
        """Combine `values` with `operator`, innermost-placed last, hoisting every partial result."""
        ordered = sorted(values, key=lambda v: v.place)
        result = ordered[0]
        for value in ordered[1:]:
            place = max(result.place, value.place)
            combined = Value(nest.Binary(operator, result.expr, value.expr, type_), *place)
            result = self.hoist(combined, hint) if place[0] < len(self.stack) - 1 else combined
        return self.hoist(result, hint)

    # -- expressions ------------------------------------------------------------------------------
    def render(self, expr) -> Value:
        if self.tabulated and id(expr) in self.tabulated:
            return self.tabulate(expr)
        if self.expanded and id(expr) in self.expanded:
            table, start, name = self.expanded[id(expr)]
            info = self.env[name]
            return Value(nest.Load(table, isub(info.code, start), REAL), info.level)
        method = getattr(self, f"_render_{type(expr).__name__}", None)
        if method is None:
            raise Unsupported(f"expression {type(expr).__name__}")
        return method(expr)

    def index(self, expr) -> Value:
        value = self.render(expr)
        if value.type == BOOL:
            return Value(nest.Cast(value.expr, INT), value.level, value.body)
        if value.type != INT:
            raise Unsupported(f"a {value.type} value used as an index: {expr}")
        return value

    def _render_Const(self, expr: ir.Const) -> Value:
        if isinstance(expr.value, bool):
            return Value(nest.Const(expr.value, BOOL), 0)
        if isinstance(expr.value, int):
            return Value(iconst(expr.value), 0)
        if isinstance(expr.value, float):
            return Value(rconst(expr.value), 0)
        raise Unsupported(f"constant {expr.value!r}")

    def _render_Var(self, expr: ir.Var) -> Value:
        if expr.name not in self.env:
            raise Unsupported("a variable that is not bound")
        info = self.env[expr.name]
        return Value(info.code, info.level)

    def _render_Unary(self, expr: ir.Unary) -> Value:
        operand = self.render(expr.operand)
        if expr.op == "neg":
            return Value(nest.Unary("neg", as_int(operand.expr), INT if operand.type == BOOL else operand.type), *operand.place)
        if expr.op == "not":
            return Value(nest.Unary("not", as_bool(operand.expr), BOOL), *operand.place)
        raise Unsupported(f"unary {expr.op}")

    def _render_Binary(self, expr: ir.Binary) -> Value:
        result_type = expr_type(expr)
        if expr.op == "mul" and result_type == REAL:
            factors = [self.render(f) for f in self.factors(expr)]
            factors = [Value(as_real(f.expr), f.level, f.body) for f in factors]
            return self.fold(factors, "mul", REAL, "p")
        left, right = self.render(expr.left), self.render(expr.right)
        place = self.join(left, right)
        a, b = left.expr, right.expr
        op = expr.op
        if op in ("add", "sub", "mul", "div", "mod", "pow"):
            if result_type == VEC:
                if op not in ("add", "sub", "mul", "div"):
                    raise Unsupported(f"binary {op} of vectors")
                a, b = vec_operand(a), vec_operand(b)
            elif result_type == REAL or op == "div":
                a, b, result_type = as_real(a), as_real(b), REAL
            else:
                a, b = as_int(a), as_int(b)
            code = nest.Binary(op, a, b, result_type)
        elif op in ("eq", "ne", "lt", "le", "gt", "ge"):
            if REAL in (left.type, right.type):
                a, b = as_real(a), as_real(b)
            elif left.type != right.type:
                a, b = as_int(a), as_int(b)
            code = nest.Binary(op, a, b, BOOL)
        elif op in ("and", "or"):
            code = nest.Binary(op, as_bool(a), as_bool(b), BOOL)
        else:
            raise Unsupported(f"binary {op}")
        return self.hoist(Value(code, *place), "t")

    def _render_Select(self, expr: ir.Select) -> Value:
        result_type = expr_type(expr)
        condition = self.render(expr.condition)
        yes, no = self.render(expr.if_true), self.render(expr.if_false)
        a, b = yes.expr, no.expr
        if result_type == REAL:
            a, b = as_real(a), as_real(b)
        elif result_type == INT:
            a, b = as_int(a), as_int(b)
        code = nest.Select(as_bool(condition.expr), a, b, result_type)
        return self.hoist(Value(code, *self.join(condition, yes, no)), "t")

    # -- sums ---------------------------------------------------------------------------------------
    def _render_Reduce(self, expr: ir.Reduce) -> Value:
        free = free_vars(expr)
        if not free <= set(self.env):
            raise Unsupported("a sum reads a variable that is not bound")
        level = max((self.env[name].level for name in free), default=0)
        # open the sum's loops under `level` (its value is loop-invariant below it)
        saved_stack, saved_env, saved_domains = self.stack, dict(self.env), dict(self.domains)
        self.stack = self.stack[: level + 1]
        accumulator = self.fresh("acc")
        target = self.stack[level].prelude
        vector = expr_type(expr) == VEC
        target.append(nest.Local(accumulator, nest.Const(0.0, VEC) if vector else rconst(0.0), str(expr)))
        bound = {name for name, info in self.env.items() if info.level <= level}
        items = [(b, False) for b in expr.binders]
        loops, pre = planning.schedule_loops(items, planning.conjuncts(expr.where), bound)
        depth0 = len(self.stack)
        if pre:
            condition = both(*(as_bool(self.render(c).expr) for c in pre))
            skip = self.open(lambda body, simd: nest.If(condition, body), target)
            target = self.stack[skip].body
        expanded = self.expand_tables(expr, level, bound)
        for loop in loops:
            self.open_loop(loop, target)
            target = self.stack[-1].body
        body = self.render(expr.body)
        for key in expanded:
            del self.expanded[key]
        self.statement(self.here(), nest.Update(accumulator, vec_operand(body.expr) if vector else as_real(body.expr)))
        while len(self.stack) > depth0:
            self.close()
        self.stack, self.env, self.domains = saved_stack, saved_env, saved_domains
        return Value(nest.Ref(accumulator, VEC if vector else REAL), level)

    def expand_tables(self, expr: ir.Reduce, level: int, bound: set) -> list:
        """Scalar expansion: in `sum(k in range(K))`, a part of the body that reads `k` and only
        variables of loops outside the sum's block (`gto(P.distance[p], k)` in a sum placed inside
        loops over `l1, l2, L, q`) is tabulated for every `k` where those variables are bound, and
        read as `T[k]` in the sum. Returns the keys registered in `self.expanded`."""
        keys = []
        for node, outer in expansion_candidates(expr, level, bound, lambda name: self.env[name].level):
            binder = expr.binders[0]
            domain = binder.domain
            trip = domain.stop - domain.start
            table = self.fresh("T")
            saved_stack, saved_env, saved_domains = self.stack, dict(self.env), dict(self.domains)
            self.stack = self.stack[: outer + 1]
            self.stack[outer].prelude.append(nest.Alloc(table, trip, REAL, False, f"{node} for every {binder.name}"))
            var = self.fresh("v")
            start = iconst(domain.start)
            depth = self.open_range(var, domain, f"{binder.name} in {domain}", self.stack[outer].prelude)
            self.env[binder.name] = VarInfo(ref(var), isub(ref(var), start), depth, domain)
            self.domains[binder.name] = domain
            value = self.render(node)
            self.statement(self.here(), nest.Store(table, isub(ref(var), start), as_real(value.expr)))
            self.close()
            self.stack, self.env, self.domains = saved_stack, saved_env, saved_domains
            key = id(node)
            self.expanded[key] = (table, start, binder.name)
            keys.append(key)
        return keys


# ---- the module ---------------------------------------------------------------------------------


class ModuleLowering(ModuleTables):
    """The module's tables (`schedule.tables.ModuleTables`), its helper routines (the `sph` tables), and
    the lowering of each of its kernels."""

    def __init__(self, module: ir.Module, dtype: str = "float64"):
        super().__init__(module, dtype)
        self.routines: "OrderedDict[tuple, nest.Routine]" = OrderedDict()

    def sph_function(self, top: int, gradient: bool = False) -> str:
        key = (top, gradient)
        if key not in self.routines:
            name = f"mt_dsph{top}" if gradient else f"mt_sph{top}"
            self.routines[key] = sph_routine(name, top, self.module.convention, gradient=gradient)
        return self.routines[key].name

    def lower_kernel(self, k: int, kernel: ir.TensorKernel) -> LoweredKernel:
        return _in_bounds(KernelLowering(self, kernel, f"mt_kernel_{k}").lower_kernel())

    def lower_fused(self, k: int, fused: ir.FusedKernel, plan: planning.FusedPlan) -> LoweredKernel:
        return _in_bounds(KernelLowering(self, fused.kernels[0], f"mt_fused_{k}").lower_fused(plan))

    def lower(self, print_kernel=None) -> tuple:
        """`(kernels, unsupported)`: every kernel and fused kernel with a native form, in the order
        `schedule/module.py` gives, each as `print_kernel(lowered)` (the `LoweredKernel` itself by default)."""
        finish = print_kernel or (lambda lowered: lowered)
        return render_kernels(self.module, self.grids, lambda k, kernel: finish(self.lower_kernel(k, kernel)),
                              lambda k, fused, plan: finish(self.lower_fused(k, fused, plan)))


def _in_bounds(lowered: LoweredKernel) -> LoweredKernel:
    """`lowered` with the reads its bounds keep inside their local array marked (`schedule/bounds.py`)."""
    return dataclasses.replace(lowered, nest=mark_in_bounds(lowered.nest))
