"""The C++ renderer: loop IR -> C++ source text (no compiling here, see `codegen/cache.py`).

Each kernel becomes one `extern "C"` function

    int64_t mt_kernel_K(void** arrays, const int64_t* scalars, int64_t threads)

that fills the dense buffer of the kernel's index grid and returns error bits
(0: fine; otherwise the runtime evaluates the kernel with the interpreter,
which raises the precise error or decides). Its run-time arguments are listed
by `RenderedKernel.arrays` and `.scalars` as *descriptors* (plain tuples such
as `("pairs", "P", "vectors")`) that `runtime/compiled.py` resolves against
`Bindings`; compile-time tables (radial splines, Clebsch-Gordan) are
`("const", name)` arrays kept in `RenderedModule.constants`.

The loop nest follows `codegen/plan.py`. Every value is placed in the
outermost loop where the variables it reads are bound (loop-invariant code
motion over the IR): products are regrouped by placement level, `sph` and
`soap_radial` fill a table for every `(l, m)` / `(l, n)` once where their
vector / distance is known, block accesses split into block, sample,
component and property lookups placed by what each reads.

Safety: IR names never reach the source except inside comments, after
`*/` is escaped; every C++ identifier is generated (`v3`, `t12`, `a4`),
numbers are `repr` of floats and range-checked integers.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from mtdsl.ir import nodes as ir
from mtdsl.ir.roles import GradientRows, GradientValues, PresenceTable, RowMap

from . import plan as planning
from .plan import BOOL, INT, REAL, VEC, Unsupported, expr_type, free_vars, harmonic_arguments
from .rendered import RenderedKernel, RenderedModule
from .schedule import nest
from .schedule.factors import is_real_product, product_factors, triangle_degrees, zero_skips
from .schedule.grid import proven_coordinate, solve_grid_access
from .schedule.module import render_kernels
from .schedule.sph import sph_routine
from .schedule.tables import ModuleTables
from .schedule.tabulation import expansion_candidates, interchangeable, tabulation_candidates

@functools.lru_cache(maxsize=1)
def templates():
    """The jinja2 environment of `codegen/templates` (imported on first use: a cache hit needs none)."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        keep_trailing_newline=True,
        autoescape=False,
        undefined=jinja2.StrictUndefined,
    )

#: the primitive built-ins (mtdsl/builtins/), each one call of a C++ function of reals; the others
#: reach the printer expanded into these (mtdsl/ir/passes/native_forms.py, codegen/schedule/module.py)
CPP_FUNCTIONS = {
    "sqrt": "std::sqrt", "exp": "std::exp", "log": "std::log", "sin": "std::sin", "cos": "std::cos",
    "tanh": "std::tanh", "erf": "std::erf", "erfc": "std::erfc", "log1p": "std::log1p",
    "acos": "std::acos", "asin": "std::asin", "floor": "std::floor",
    "round": "std::nearbyint",  # half to even (the default rounding mode), as numpy and torch
    "atan2": "std::atan2",
}

CTYPES = {INT: "int64_t", BOOL: "bool", REAL: "real", VEC: "mt_vec"}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def comment(text) -> str:
    """Text safe inside a `/* */` or `//` comment: one line, no comment delimiter, no backslash
    (a backslash at the end of a `//` comment would splice the next line into it)."""
    text = "".join(c if c.isprintable() else " " for c in str(text)).replace("\\", "<backslash>")
    return text.replace("*/", "* /").replace("/*", "/ *")


def real_literal(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        return "real(NAN)"
    if math.isinf(value):
        return "real(INFINITY)" if value > 0 else "real(-INFINITY)"
    return f"real({value!r})"


def int_literal(value: int) -> str:
    value = int(value)
    if not INT64_MIN < value <= INT64_MAX:
        raise Unsupported(f"integer {value} outside 64 bits")
    return f"INT64_C({value})"


# ---- rendered output: codegen/rendered.py (a light module: a cache hit unpickles it without this one)

# ---- the loop-nest builder ----------------------------------------------------------------------


_SIMD_DOMAINS = (ir.RangeDomain, ir.XyzDomain, ir.IrrepDomain)


def simd_safe(plan: planning.KernelPlan, level: "Level", statement: str) -> bool:
    """Whether the innermost loop may carry `#pragma omp simd`: it is a kernel index (each iteration
    writes its own entry of the buffer or of the local accumulator, which no input aliases: the
    buffer is a fresh array), not the parallel driver, over a range / xyz / irrep; its block holds
    only `const` values and the statement, none of which reads or sets the error bits or leaves
    the loop. g++ then vectorizes the short channel loops it kept scalar (the power spectrum's
    gradient: `A[n2] += drho[α, m, n1] * rho[m, n2]` over 6 channels), as LLVM's vectorizer does."""
    loop = plan.loops[-1]
    if loop.kind != "domain" or not loop.is_index or not isinstance(loop.domain, _SIMD_DOMAINS) or loop.guards:
        return False
    if len(plan.loops) == 1 or (plan.parallel and loop is plan.loops[0]):
        return False
    items = level.prelude + level.body
    if not items or items[-1] != statement:
        return False
    for item in items:
        if not isinstance(item, str):
            return False
        if item is not statement and not item.startswith("const "):
            return False
        if any(word in item for word in ("err", "continue", "break", "return", "goto", "#")):
            return False
    return True


class Level:
    """One block of the nest: a loop header, statements hoisted to it (`prelude`), then its `body`."""

    def __init__(self, header: Optional[str], target: Optional[list]):
        self.header = header
        self.prelude: list = []
        self.body: list = []
        self.target = target  # where the finished block goes (a parent's prelude or body)
        self.pragma: Optional[str] = None  # a line before the header (`#pragma omp simd`)

    def lines(self, indent: str = "") -> list[str]:
        inner = indent + "    " if self.header else indent
        out = [indent + self.pragma] if self.header and self.pragma else []
        out += [indent + self.header + " {"] if self.header else []
        for item in self.prelude + self.body:
            if isinstance(item, Level):
                out += item.lines(inner)
            else:
                out.append(inner + item)
        if self.header:
            out.append(indent + "}")
        return out


@dataclass(frozen=True)
class Value:
    code: str
    type: str
    level: int  # index in the nest of the outermost block where it can be computed
    body: bool = False  # computed in that block's body (after its nested loops), not its prelude

    @property
    def place(self):
        return (self.level, self.body)


@dataclass(frozen=True)
class VarInfo:
    code: str
    position: str  # the buffer / parameter coordinate (value - start, m + max, species rank)
    level: int
    domain: object


def _trivial(code: str) -> bool:
    """A name or a literal: never worth a temporary."""
    if code.replace("_", "").isalnum():
        return True
    for prefix in ("real(", "INT64_C("):
        if code.startswith(prefix) and code.endswith(")") and "(" not in code[len(prefix):-1]:
            return True
    return False


class KernelRenderer:
    def __init__(self, renderer: "ModuleRenderer", kernel: ir.TensorKernel, symbol: str):
        self.renderer = renderer
        self.module = renderer.module
        self.kernel = kernel
        self.symbol = symbol
        self.arrays: "OrderedDict[tuple, tuple[str, str]]" = OrderedDict()
        self.scalars: "OrderedDict[tuple, str]" = OrderedDict()
        self.driver_count = None  # scatter kernels: the size of their driver (RenderedKernel.driver_count)
        self.driver_var = None  # and its variable
        self.n_outputs = 1  # buffers before the arrays read (a fused kernel has one per member)
        self.declarations: list[str] = []
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

    def array(self, descriptor: tuple, ctype: str, note: str) -> str:
        if descriptor not in self.arrays:
            name = f"a{len(self.arrays) + 1}"
            self.arrays[descriptor] = (name, ctype)
            self.declarations.append(f"const {ctype}* const {name} = (const {ctype}*) "
                                     f"mt_arrays[{self.n_outputs + len(self.arrays) - 1}];  // {comment(note)}")
        return self.arrays[descriptor][0]

    def scalar(self, descriptor: tuple, note: str) -> str:
        if descriptor not in self.scalars:
            name = f"s{len(self.scalars)}"
            self.scalars[descriptor] = name
            self.declarations.append(
                f"const int64_t {name} = mt_scalars[{len(self.scalars) - 1}];  // {comment(note)}")
        return self.scalars[descriptor]

    # -- nest ---------------------------------------------------------------------------------------
    def emit(self, value_code: str, ctype: str, place: tuple, hint: str = "t") -> str:
        level, body = place
        block = self.stack[level]
        key = (id(block), body, value_code)
        if key in self.memo:
            return self.memo[key]
        name = self.fresh(hint)
        (block.body if body else block.prelude).append(f"const {ctype} {name} = {value_code};")
        self.memo[key] = name
        return name

    def hoist(self, value: Value, hint: str = "t") -> Value:
        """Bind a non-trivial value to a name in the block where it belongs, if outside the current one."""
        if _trivial(value.code) or value.level >= len(self.stack) - 1:
            return value
        name = self.emit(value.code, CTYPES[value.type], value.place, hint)
        return Value(name, value.type, value.level, value.body)

    def statement(self, place: tuple, line) -> None:
        level, body = place
        block = self.stack[level]
        (block.body if body else block.prelude).append(line)

    def open(self, header: str, target: list) -> int:
        block = Level(header, target)
        self.stack.append(block)
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
    def open_loop(self, loop: planning.Loop, target: list, chunk=None) -> None:
        """Open the block of one loop and bind its variable (value and position); `chunk`: the
        scalars (lo, hi) that restrict a driver loop to its positions `[lo, hi)`."""
        var = self.fresh("v")
        domain = loop.domain
        note = f"{loop.var} in {domain}" + (f" = {loop.expr}" if loop.expr is not None else "")
        position = var
        if loop.kind == "domain":
            if isinstance(domain, ir.RangeDomain):
                header = f"for (int64_t {var} = {int_literal(domain.start)}; {var} < {int_literal(domain.stop)}; ++{var})"
                position = f"({var} - {int_literal(domain.start)})"
                pre = []
            elif isinstance(domain, ir.SpeciesDomain):
                rank = var + "_rank"
                species = self.species_array(domain)
                count = self.scalar(("n_species", domain), f"number of {domain}")
                header = f"for (int64_t {rank} = 0; {rank} < {count}; ++{rank})"
                pre = [f"const int64_t {var} = {species}[{rank}];"]
                position = rank
            elif isinstance(domain, ir.IrrepDomain):
                degree = self.index(domain.degree)
                limit = self.emit(f"std::min<int64_t>({degree.code}, {int_literal(domain.max_degree)})", "int64_t",
                                  degree.place, "d")
                header = f"for (int64_t {var} = -{limit}; {var} <= {limit}; ++{var})"
                position = f"({var} + {int_literal(domain.max_degree)})"
                pre = []
            else:
                count = self.domain_size(domain)
                if chunk is not None:
                    lo, hi = chunk
                    header = (f"for (int64_t {var} = std::max<int64_t>({lo}, INT64_C(0)); "
                              f"{var} < std::min<int64_t>({hi}, {count}); ++{var})")
                else:
                    header = f"for (int64_t {var} = 0; {var} < {count}; ++{var})"
                pre = []
        elif loop.kind in ("pairs_of", "atoms_of"):
            owner = self.index(loop.expr)
            if loop.kind == "pairs_of":
                offsets = self.array(("pairs", loop.source, "offsets"), "int64_t", f"{loop.source} CSR offsets")
                count = self.n_atoms(self.pairs[loop.source].systems)
            else:
                offsets = self.array(("systems", loop.source, "atom_offsets"), "int64_t", f"{loop.source} atom offsets")
                count = self.scalar(("n_systems", loop.source), f"systems in {loop.source}")
            start = self.emit(f"mt_seg({offsets}, {count}, {owner.code}, 0)", "int64_t", owner.place, "lo")
            stop = self.emit(f"mt_seg({offsets}, {count}, {owner.code}, 1)", "int64_t", owner.place, "hi")
            header = f"for (int64_t {var} = {start}; {var} < {stop}; ++{var})"
            pre = []
        elif loop.kind == "equal":
            value = self.index(loop.expr)
            once = var + "_once"
            header = f"for (int64_t {once} = 0; {once} < 1; ++{once})"
            pre = [f"const int64_t {var} = {value.code};"]
            position, checks = self.membership(domain, var)
            pre += checks
        else:
            raise Unsupported(f"loop kind {loop.kind}")
        level = self.open(f"{header}  /* {comment(note)} */", target)
        self.stack[level].prelude.extend(pre)
        self.env[loop.var] = VarInfo(var, position, level, domain)
        self.domains[loop.var] = domain
        for guard in loop.guards:
            condition = self.render(guard)
            self.statement((level, False), f"if (!({condition.code})) continue;  // where {comment(guard)}")

    def membership(self, domain, var: str) -> tuple[str, list[str]]:
        """(position expression, statements that skip values outside the domain) of an equality-bound variable."""
        if isinstance(domain, ir.RangeDomain):
            return (f"({var} - {int_literal(domain.start)})",
                    [f"if ({var} < {int_literal(domain.start)} || {var} >= {int_literal(domain.stop)}) continue;"])
        if isinstance(domain, ir.SpeciesDomain):
            table = self.array(("species_rank", domain), "int64_t", f"rank of each atomic number in {domain}")
            size = self.scalar(("n_species_rank", domain), "size of that table")
            rank = var + "_rank"
            return rank, [f"const int64_t {rank} = mt_at({table}, 0, 0, mt_dense(0, {var}, 0, {size}));",
                          f"if ({rank} < 0) continue;"]
        if isinstance(domain, ir.IrrepDomain):
            degree = self.index(domain.degree)
            return (f"({var} + {int_literal(domain.max_degree)})",
                    [f"if (std::abs({var}) > std::min<int64_t>({degree.code}, {int_literal(domain.max_degree)})) continue;"])
        if isinstance(domain, ir.XyzDomain):
            return var, [f"if ({var} < 0 || {var} > 2) continue;"]
        count = self.domain_size(domain)
        return var, [f"if ({var} < 0 || {var} >= {count}) continue;"]

    def domain_size(self, domain) -> str:
        if isinstance(domain, ir.AtomsDomain):
            return self.n_atoms(domain.systems)
        if isinstance(domain, ir.SystemsDomain):
            return self.scalar(("n_systems", domain.systems), f"systems in {domain.systems}")
        if isinstance(domain, ir.PairsDomain):
            return self.scalar(("n_pairs", domain.pairs), f"pairs in {domain.pairs}")
        if isinstance(domain, ir.XyzDomain):
            return "INT64_C(3)"
        if isinstance(domain, ir.RangeDomain):
            return int_literal(domain.stop - domain.start)
        if isinstance(domain, ir.IrrepDomain):
            return int_literal(2 * domain.max_degree + 1)
        if isinstance(domain, ir.SpeciesDomain):
            return self.scalar(("n_species", domain), f"number of {domain}")
        raise Unsupported(f"domain {domain}")

    def n_atoms(self, systems: str) -> str:
        return self.scalar(("n_atoms", systems), f"atoms in {systems}")

    def species_array(self, domain) -> str:
        return self.array(("species", domain), "int64_t", f"values of {domain}")

    # -- the kernel -----------------------------------------------------------------------------------
    def render_kernel(self) -> str:
        plan = self.plan = planning.plan_kernel(self.kernel)
        self.declarations = []
        root = Level(None, None)
        self.stack = [root]
        strides = self.strides(self.kernel, "st")
        for guard in plan.pre_guards:
            condition = self.render(guard)
            root.prelude.append(f"if (!({condition.code})) return err;  // where {comment(guard)}")
        self.render_nest(plan, "mt_buffer", strides, 0)
        self.declarations.insert(0, "real* const mt_buffer = (real*) mt_arrays[0];  // the output buffer")
        driver = plan.loops[0].var if plan.loops else ""
        return templates().get_template("kernel.cpp.j2").render(
            comment=comment(self.kernel.name), schedule=plan.schedule, parallel=plan.parallel,
            driver=comment(driver), symbol=self.symbol, declarations=self.declarations, body=root.lines(),
        )

    def render_fused(self, fused: planning.FusedPlan) -> str:
        """One function for the members of a fused kernel (`planning.plan_fused`): the shared loops
        once, then inside them each member's own loops adding into its own buffer (`mt_arrays[j]`);
        what the members compute at the shared levels (a pair's tables) is emitted once."""
        self.plan = fused
        self.declarations = []
        root = Level(None, None)
        self.stack = [root]
        self.n_outputs = len(fused.plans)
        strides = [self.strides(plan.kernel, f"st{j}_") for j, plan in enumerate(fused.plans)]
        first = fused.plans[0]
        self.kernel = first.kernel
        depth0 = len(self.stack)
        for number, loop in enumerate(first.loops[:fused.shared]):
            chunk = None
            if number == 0 and fused.parallel:
                self.stack[-1].body.append(
                    "#pragma omp parallel for schedule(guided) num_threads(mt_threads) reduction(|: err)")
                size = planning.driver_size(loop.domain)
                if isinstance(size, tuple):  # ranges of the driver on threads of their own, as scatter kernels
                    chunk = (self.scalar(("driver_range", 0), "first driver position"),
                             self.scalar(("driver_range", 1), "driver position past the last"))
                    self.driver_count, self.driver_var = size, loop.var
            self.open_loop(loop, self.stack[-1].body, chunk)
        env, domains = dict(self.env), dict(self.domains)
        for j, plan in enumerate(fused.plans):
            self.env, self.domains = dict(env), planning.member_domains(plan, domains)
            self.render_nest(plan, f"mt_buffer{j}", strides[j], fused.shared)
        while len(self.stack) > depth0:
            self.close()
        for j, plan in reversed(list(enumerate(fused.plans))):
            self.declarations.insert(0, f"real* const mt_buffer{j} = (real*) mt_arrays[{j}];  "
                                        f"// the buffer of {comment(plan.kernel.name)}")
        names = ", ".join(plan.kernel.name for plan in fused.plans)
        return templates().get_template("kernel.cpp.j2").render(
            comment=comment(f"{fused.fused.name} = ({names})"), schedule="fused", parallel=fused.parallel,
            driver=comment(first.loops[0].var), symbol=self.symbol, declarations=self.declarations,
            body=root.lines(),
        )

    def strides(self, kernel: ir.TensorKernel, prefix: str) -> list[str]:
        """Declare the strides of `kernel`'s dense buffer (its last index contiguous); their names."""
        sizes = [self.domain_size(b.domain) for b in kernel.indices]
        names = []
        for k in range(len(sizes)):
            rest = sizes[k + 1:]
            names.append(f"{prefix}{k}")
            self.stack[0].prelude.append(f"const int64_t {prefix}{k} = {' * '.join(rest) if rest else 'INT64_C(1)'};  "
                                         f"// stride of {comment(kernel.indices[k].name)}")
        return names

    def render_nest(self, plan: planning.KernelPlan, buffer: str, strides: list[str], start: int) -> None:
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
                target.append(f"real {local[1]}[{size}] = {{}};  // the sums below, added into the buffer once")
            chunk = None
            if number == 0 and plan.parallel:
                self.stack[-1].body.append("#pragma omp parallel for schedule(dynamic, 4) num_threads(mt_threads) reduction(|: err)")
                size = planning.driver_size(loop.domain)
                if planning.is_scatter(self.kernel) and isinstance(size, tuple) and not loop.is_index:
                    # a scatter kernel whose points may add into one entry runs ranges of its
                    # driver on threads of its own (runtime/compiled.py: _scatter_shared)
                    chunk = (self.scalar(("driver_range", 0), "first driver position"),
                             self.scalar(("driver_range", 1), "driver position past the last"))
                    self.driver_count, self.driver_var = size, loop.var
            self.open_loop(loop, target, chunk)

        # the buffer offset, summed in loop order so that partial sums are hoisted
        inner = {k for k, _ in local[2]} if local else set()
        terms, local_terms, local_stride = [], [], 1
        for k, extent in reversed(local[2] if local else []):
            local_terms.append(Value(f"{self.env[self.kernel.indices[k].name].position} * INT64_C({local_stride})",
                                     INT, self.env[self.kernel.indices[k].name].level))
            local_stride *= extent
        for k, binder in enumerate(self.kernel.indices):
            info = self.env[binder.name]
            if k not in inner:
                terms.append(Value(f"{info.position} * {strides[k]}", INT, info.level))
        if local:
            offset = self.fold(local_terms, "+", INT, "o") if local_terms else Value("INT64_C(0)", INT, 0)
            outer = self.fold(terms, "+", INT, "o") if terms else Value("INT64_C(0)", INT, 0)
        else:
            offset = self.fold(terms, "+", INT, "o") if terms else Value("INT64_C(0)", INT, 0)
        value = self.render_accumulated(plan.body) if plan.schedule == "accumulate" else self.render(plan.body)
        value_code = value.code if value.type in (REAL,) else f"(real)({value.code})"
        operator = "+=" if plan.schedule == "accumulate" else "="
        statement = f"{local[1] if local else buffer}[{offset.code}] {operator} {value_code};"
        self.statement(self.here(), statement)
        if (len(plan.loops) > start and len(self.stack) == depth0 + len(plan.loops) - start
                and simd_safe(plan, self.stack[-1], statement)):
            self.stack[-1].pragma = "#pragma omp simd"
        if local:
            level, array, indices = local
            while len(self.stack) > level + 1:
                self.close()
            # in the buffer's order (its last index innermost: contiguous stores), whatever the loops' order
            local_strides, stride = {}, 1
            for k, extent in reversed(indices):
                local_strides[k] = stride
                stride *= extent
            lines, at, flat, indent = [], [outer.code], [], ""
            for k, extent in sorted(indices):
                q = self.fresh("q")
                lines.append(f"{indent}for (int64_t {q} = 0; {q} < INT64_C({extent}); ++{q})")
                at.append(f"{q} * {strides[k]}")
                flat.append(f"{q} * INT64_C({local_strides[k]})")
                indent += "    "
            lines.append(f"{indent}{buffer}[{' + '.join(at)}] += {array}[{' + '.join(flat) or '0'}];")
            self.stack[level].body.extend(lines)
        while len(self.stack) > depth0:
            self.close()

    def factors(self, expr) -> list:
        """The factors of a real product tree, keeping whole the sub-products read from tables."""
        return product_factors(expr, self.expanded.keys() | self.tabulated.keys())

    def tabulate(self, node) -> Value:
        over, level, row = self.tabulated.pop(id(node))
        domain = self.env[over].domain
        trip = domain.stop - domain.start
        start = int_literal(domain.start)
        table = self.fresh("T")
        saved_stack, saved_env, saved_domains = self.stack, dict(self.env), dict(self.domains)
        self.stack = self.stack[: level + 1]
        rows = 1
        if row is not None:
            row_domain = self.env[row].domain
            top = row_domain.max_degree
            rows = 2 * top + 1
        self.stack[level].prelude.append(
            f"real {table}[{trip * rows}];  // {comment(node)} for every {comment(over)}"
            + (f" and {comment(row)}" if row is not None else ""))
        fill, fill_level = table, level
        if row is not None:
            degree = self.index(row_domain.degree)
            limit = self.emit(f"std::min<int64_t>({degree.code}, {int_literal(top)})", "int64_t", degree.place, "d")
            var = self.fresh("v")
            fill_level = self.open(f"for (int64_t {var} = -{limit}; {var} <= {limit}; ++{var})  "
                                   f"/* {comment(row)} in {comment(row_domain)} */", self.stack[level].prelude)
            self.env[row] = VarInfo(var, f"({var} + {int_literal(top)})", fill_level, row_domain)
            fill = self.fresh("R")
            self.stack[fill_level].prelude.append(
                f"real* const {fill} = {table} + ({var} + {int_literal(top)}) * {int_literal(trip)};")
        if interchangeable(node, over):
            self.tabulate_sum(node, over, fill_level, fill)
        else:
            var = self.fresh("v")
            depth = self.open(f"for (int64_t {var} = {start}; {var} < {int_literal(domain.stop)}; ++{var})  "
                              f"/* {comment(over)} in {comment(domain)} */", self.stack[fill_level].prelude)
            self.env[over] = VarInfo(var, f"({var} - {start})", depth, domain)
            value = self.render(node)
            self.statement(self.here(), f"{fill}[{var} - {start}] = {self.as_real(value)};")
            self.close()
        if row is not None:
            self.close()
        self.stack, self.env, self.domains = saved_stack, saved_env, saved_domains
        info = self.env[over]
        if row is None:
            return Value(f"{table}[{info.code} - {start}]", REAL, info.level)
        row_info = self.env[row]
        return Value(f"{table}[{row_info.position} * {int_literal(trip)} + {info.code} - {start}]", REAL,
                     max(info.level, row_info.level))

    def tabulate_sum(self, node: ir.Reduce, over: str, level: int, table: str) -> None:
        """`T[q] = sum(k...) body(k, q)` as: T = 0; for k...: for q: T[q] += body (stack cut at `level`)."""
        domain = self.env[over].domain
        trip = domain.stop - domain.start
        start = int_literal(domain.start)
        target = self.stack[level].prelude
        target.append(f"for (int64_t mt_z = 0; mt_z < {trip}; ++mt_z) {table}[mt_z] = 0;")
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
        self.open(f"for (int64_t {var} = {start}; {var} < {int_literal(domain.stop)}; ++{var})  "
                  f"/* {comment(over)} in {comment(domain)} */", target)
        self.env[over] = VarInfo(var, f"({var} - {start})", len(self.stack) - 1, saved_over.domain)
        for guard in later:
            condition = self.render(guard)
            self.statement((len(self.stack) - 1, False), f"if (!({condition.code})) continue;  // where {comment(guard)}")
        value = self.render(node.body)
        self.statement(self.here(), f"{table}[{var} - {start}] += {self.as_real(value)};")
        for key in [k for k, (_, _, name) in self.expanded.items() if name in {b.name for b in node.binders}]:
            del self.expanded[key]
        while len(self.stack) > depth0:
            self.close()

    def render_accumulated(self, body) -> Value:
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
                self.statement(factor.place, f"if ({factor.code} == 0) continue;  // a zero coefficient")
        factors = [Value(f"(real)({f.code})", REAL, f.level, f.body) if f.type in (INT, BOOL) else f for f in factors]
        return self.fold(factors, "*", REAL, "p")

    def triangle(self, node: ir.Call) -> None:
        """Skip the iterations where a Clebsch-Gordan factor's degrees `(l1, l2, L)` fail the triangle
        rule: the coefficient is zero for every `m1, m2, M`, so the loops below the degrees' (and the
        values tabulated there, such as radial weights per `(l1, l2, L)`) are not entered at all.
        Tested first in the block where the three degrees are bound, before anything placed there."""
        l1, l2, big_l = (self.index(degree) for degree in triangle_degrees(node))
        level, body = self.join(l1, l2, big_l)
        if level >= 1 and not body:
            self.statement((level, False), f"if ({l1.code} - {l2.code} > {big_l.code} || {l2.code} - {l1.code} > {big_l.code} || "
                                           f"{big_l.code} > {l1.code} + {l2.code}) continue;  // triangle rule of {comment(node)}")

    def fold(self, values: list[Value], operator: str, ctype_type: str, hint: str) -> Value:
        """Combine `values` with `operator`, innermost-placed last, hoisting every partial result."""
        ordered = sorted(values, key=lambda v: v.place)
        result = ordered[0]
        for value in ordered[1:]:
            place = max(result.place, value.place)
            combined = Value(f"{result.code} {operator} {value.code}", ctype_type, *place)
            result = self.hoist(combined, hint) if place[0] < len(self.stack) - 1 else Value(f"({combined.code})", ctype_type, *place)
        return self.hoist(result, hint)

    # -- expressions ------------------------------------------------------------------------------
    def render(self, expr) -> Value:
        if self.tabulated and id(expr) in self.tabulated:
            return self.tabulate(expr)
        if self.expanded and id(expr) in self.expanded:
            table, start, name = self.expanded[id(expr)]
            info = self.env[name]
            return Value(f"{table}[{info.code} - {start}]", REAL, info.level)
        method = getattr(self, f"_render_{type(expr).__name__}", None)
        if method is None:
            raise Unsupported(f"expression {type(expr).__name__}")
        return method(expr)

    def index(self, expr) -> Value:
        value = self.render(expr)
        if value.type == BOOL:
            return Value(f"(int64_t)({value.code})", INT, value.level, value.body)
        if value.type != INT:
            raise Unsupported(f"a {value.type} value used as an index: {expr}")
        return value

    def _render_Const(self, expr: ir.Const) -> Value:
        if isinstance(expr.value, bool):
            return Value("true" if expr.value else "false", BOOL, 0)
        if isinstance(expr.value, int):
            return Value(int_literal(expr.value), INT, 0)
        if isinstance(expr.value, float):
            return Value(real_literal(expr.value), REAL, 0)
        raise Unsupported(f"constant {expr.value!r}")

    def _render_Var(self, expr: ir.Var) -> Value:
        if expr.name not in self.env:
            raise Unsupported("a variable that is not bound")
        info = self.env[expr.name]
        return Value(info.code, INT, info.level)

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
        if kind == "atoms" and isinstance(expr, ir.Data) and expr.source in self.pairs and expr.field in ("first", "second"):
            return self.pairs[expr.source].systems == source and self._in_range(expr.index[0], "pairs", expr.source)
        return False

    def checked(self, expr, kind: str, source: str, count: str) -> Value:
        value = self.index(expr)
        if self._in_range(expr, kind, source):
            return value
        return Value(f"mt_check({value.code}, {count}, err)", INT, value.level, value.body)

    def _render_Data(self, expr: ir.Data) -> Value:
        if expr.source in self.systems:
            fields = {"type": ("types", "int32_t", INT), "system": ("system", "int64_t", INT),
                      "positions": ("positions", "real", VEC)}
            if expr.field not in fields:
                raise Unsupported(f"{expr.source}.{expr.field}")
            kind, count = "atoms", self.n_atoms(expr.source)
        elif expr.source in self.pairs:
            fields = {"first": ("first", "int64_t", INT), "second": ("second", "int64_t", INT),
                      "vector": ("vectors", "real", VEC), "distance": ("distances", "real", REAL),
                      "cell_shift": ("cell_shifts", "real", VEC)}  # read by gradients w.r.t. the cell
            if expr.field not in fields:
                raise Unsupported(f"{expr.source}.{expr.field}")
            kind, count = "pairs", self.scalar(("n_pairs", expr.source), f"pairs in {expr.source}")
        elif isinstance(expr.source, GradientRows):
            return self.rows_data(expr)
        elif isinstance(expr.source, RowMap):
            return self.row_map(expr)
        elif isinstance(expr.source, PresenceTable):  # codegen/schedule/presence.py
            return self.row_map(expr, ("present", expr.source), self.scalar(("n_present", expr.source), "presence table size"))
        elif isinstance(expr.source, GradientValues):
            return self.dense_gradient(expr)
        else:
            raise Unsupported(f"unknown data source {expr.source}")
        name, ctype, vtype = fields[expr.field]
        group = "systems" if kind == "atoms" else "pairs"
        array = self.array((group, expr.source, name), ctype, f"{expr.source}.{expr.field}")
        if not expr.index or len(expr.index) > 2 or (len(expr.index) == 2 and vtype != VEC):
            raise Unsupported(f"{expr.source}.{expr.field} with {len(expr.index)} indices")
        index = self.checked(expr.index[0], kind, expr.source, count)
        if vtype == VEC:
            if len(expr.index) == 2:
                component = self.index(expr.index[1])
                c = Value(f"mt_check({component.code}, INT64_C(3), err)", INT, component.level, component.body)
                value = Value(f"{array}[3 * {index.code} + {c.code}]", REAL, *self.join(index, c))
            else:
                value = Value(f"mt_vec_at({array}, {index.code})", VEC, *index.place)
        else:
            code = f"{array}[{index.code}]" if ctype != "int32_t" else f"(int64_t) {array}[{index.code}]"
            value = Value(code, vtype, *index.place)
        return self.hoist(value, "d")

    def rows_data(self, expr: ir.Data) -> Value:
        """An integer label of a gradient row (`mtdsl/ir/passes/terms.py`): one int64 array per field."""
        if len(expr.index) != 1:
            raise Unsupported(f"{expr.source}.{expr.field} with {len(expr.index)} indices")
        array = self.array(("rows", expr.source, expr.field), "int64_t", f"gradient rows: {expr.field}")
        count = self.scalar(("n_pairs", expr.source), "gradient rows")
        index = self.checked(expr.index[0], "pairs", expr.source, count)
        return self.hoist(Value(f"{array}[{index.code}]", INT, *index.place), "d")

    def dense_gradient(self, expr: ir.Data) -> Value:
        """A gradient value from the buffer its scatter kernels wrote (`mtdsl/ir/passes/terms.py`): the row,
        then positions along axes of the sizes the field names; each position is checked."""
        sizes = [int(x) for x in expr.field.split(":", 1)[1].split(",") if x]
        if len(expr.index) != len(sizes) + 1:
            raise Unsupported("a dense gradient read with the wrong number of positions")
        array = self.array(("dense", expr.source), "real", f"{expr.source} as written")
        rows = self.scalar(("n_pairs", expr.source.rows), "gradient rows")
        row = self.checked(expr.index[0], "pairs", expr.source.rows, rows)
        parts, flat = [row], row.code
        for index, size in zip(expr.index[1:], sizes):
            value = self.index(index)
            found = planning.bounds(index, self.domains)
            code = value.code
            if found is None or found[0] < 0 or found[1] >= size:
                code = f"mt_check({code}, {int_literal(size)}, err)"
            parts.append(value)
            flat = f"({flat}) * {int_literal(size)} + {code}"
        return self.hoist(Value(f"{array}[{flat}]", REAL, *self.join(*parts)), "g")

    def row_map(self, expr: ir.Data, descriptor: Optional[tuple] = None, bound: Optional[str] = None) -> Value:
        """The gradient row of a scatter kernel's point (`mtdsl/ir/passes/terms.py`): a dense map over the
        positions of the variables the row depends on (-1 where the term has no point). With
        `bound`, a presence table read within its size, 0 past it (a run that passes none)."""
        array = self.array(descriptor or ("out", expr.source, expr.field), "int64_t", "gradient row of each point")
        flat, parts = None, []
        for index in expr.index:
            if not isinstance(index, ir.Var) or index.name not in self.env:
                raise Unsupported("a row map indexed by something else than a bound variable")
            info = self.env[index.name]
            size = self.domain_size(self.domains[index.name])
            parts.append(Value(info.code, INT, info.level))
            flat = info.position if flat is None else f"({flat}) * {size} + {info.position}"
        flat = flat or "0"
        code = f"{array}[{flat}]" if bound is None else f"(({flat}) < {bound} ? {array}[{flat}] : INT64_C(0))"
        return self.hoist(Value(code, INT, *self.join(*parts)) if parts else Value(code, INT, 0), "row")

    def _render_ParamRef(self, expr: ir.ParamRef) -> Value:
        declaration = next((p for p in self.module.params if p.name == expr.name), None)
        if declaration is None or len(declaration.domains) != len(expr.index):
            raise Unsupported(f"parameter {expr.name}")
        array = self.array(("param", expr.name), "real", f"param {expr.name}")
        offset: Optional[Value] = None
        for k, (index_expr, domain) in enumerate(zip(expr.index, declaration.domains)):
            index = self.index(index_expr)
            size = self.scalar(("param_dim", expr.name, k), f"size {k} of param {expr.name}")
            if isinstance(domain, ir.RangeDomain):
                position = f"{index.code} - {int_literal(domain.start)}"
            elif isinstance(domain, ir.SpeciesDomain):
                table = self.array(("species_rank", domain), "int64_t", f"rank of each atomic number in {domain}")
                count = self.scalar(("n_species_rank", domain), "size of that table")
                position = f"mt_at({table}, 0, 0, mt_dense(0, {index.code}, 0, {count}))"
            elif isinstance(domain, ir.IrrepDomain):
                position = f"{index.code} + {int_literal(domain.max_degree)}"
            elif isinstance(domain, ir.XyzDomain):
                position = index.code
            else:
                raise Unsupported(f"parameter indexed by {domain}")
            # the runtime checks parameter shapes against their domains: an index variable of the
            # declared domain itself needs no bounds check
            proven = isinstance(index_expr, ir.Var) and self.domains.get(index_expr.name) == domain
            part = Value(position if proven else f"mt_check({position}, {size}, err)", INT, *index.place)
            part = self.hoist(part, "q")
            if offset is None:
                offset = part
            else:
                offset = self.hoist(Value(f"({offset.code}) * {size} + {part.code}", INT, *self.join(offset, part)), "q")
        if offset is None:
            offset = Value("INT64_C(0)", INT, 0)
        return self.hoist(Value(f"{array}[{offset.code}]", REAL, *offset.place), "w")

    def _render_BlockRef(self, expr: ir.BlockRef) -> Value:
        direct = self.direct_access(expr)
        if direct is not None:
            return direct
        ref = self.renderer.block_ref_key(expr)
        slots = expr.samples + expr.components + expr.properties
        note = f"{expr.tensor}"

        def meta(field_name, k=0):
            return self.scalar(("block", ref, field_name, k), f"{note}: {field_name} {k}")

        def table(field_name):
            return self.array(("block", ref, field_name), "int64_t", f"{note}: {field_name}")

        def dense(values: list[Value], group: str) -> Value:
            acc = Value("INT64_C(0)", INT, 0)
            for k, v in enumerate(values):
                place = max(acc.place, v.place)
                acc = self.hoist(Value(f"mt_dense({acc.code}, {v.code}, {meta(group + '_min', k)}, {meta(group + '_size', k)})",
                                       INT, *place), "k")
            return acc

        keys = [self.index(e) for _, e in expr.keys]
        key_index = dense(keys, "key")
        block = self.hoist(Value(f"mt_at({table('key_table')}, 0, 0, {key_index.code})", INT, *key_index.place), "blk")

        def lookup(values, group, field_name):
            index = dense(values, group)
            place = max(index.place, block.place)
            return self.hoist(Value(f"mt_at({table(field_name)}, {block.code}, {meta(group + '_stride')}, {index.code})",
                                    INT, *place), "r")

        samples = [self.index(s.expr) for s in expr.samples]
        row = lookup(samples, "sample", "sample_table")
        components = []
        for k, slot in enumerate(expr.components):
            value = self.index(slot.expr)
            components.append(lookup([value], f"component{k}", f"component{k}_table"))
        column = self.column_table(expr, block, table, meta)
        if column is None:
            properties = [self.index(s.expr) for s in expr.properties]
            column = lookup(properties, "property", "property_table")

        shape = table("shape")
        width = len(expr.components) + 2
        parts = [row] + components + [column]
        missing = " || ".join(f"{p.code} < 0" for p in [block] + parts)
        offset_code = row.code
        for k, c in enumerate(components):
            offset_code = f"({offset_code}) * {shape}[{block.code} * {width} + {k + 1}] + {c.code}"
        offset_code = f"({offset_code}) * {shape}[{block.code} * {width} + {width - 1}] + {column.code}"
        base = table("base")
        place = self.join(block, *parts)
        offset = self.hoist(Value(f"({missing}) ? INT64_C(-1) : {base}[{block.code}] + {offset_code}", INT, *place), "off")
        flat = self.array(("block", ref, "values"), "real", f"values of {note}")
        del slots
        return self.hoist(Value(f"mt_read({flat}, {offset.code}, err)", REAL, *offset.place), "x")

    def column_table(self, expr: ir.BlockRef, block: Value, table, meta) -> Optional[Value]:
        """The property column of a block access whose one property is a small range loop variable
        bound inside the block's level: looked up for every value of it once where the block is
        known (`C[q]`), not again for every element (the convolution's `h[j, l2, m2, q]`)."""
        if len(expr.properties) != 1 or not isinstance(expr.properties[0].expr, ir.Var):
            return None
        info = self.env.get(expr.properties[0].expr.name)
        domain = info.domain if info is not None else None
        if (not isinstance(domain, ir.RangeDomain) or info.level <= block.level
                or not 0 < domain.stop - domain.start <= planning.TABULATE_LIMIT):
            return None
        trip, start = domain.stop - domain.start, int_literal(domain.start)
        level = block.level if not block.body else None
        if level is None:
            return None
        fill = (f"mt_at({table('property_table')}, {block.code}, {meta('property_stride')}, "
                f"mt_dense(INT64_C(0), mt_c + {start}, {meta('property_min')}, {meta('property_size')}))")
        key = (id(self.stack[level]), False, "column:" + fill)
        if key not in self.memo:
            name = self.fresh("c")
            self.statement((level, False), f"int64_t {name}[{trip}];  // property columns of {comment(expr.tensor)}")
            self.statement((level, False), f"for (int64_t mt_c = 0; mt_c < {trip}; ++mt_c) {name}[mt_c] = {fill};")
            self.memo[key] = name
        return Value(f"{self.memo[key]}[{info.position}]", INT, info.level)

    def direct_access(self, expr: ir.BlockRef) -> Optional[Value]:
        """A block access to a tensor computed natively earlier in the module, read from its dense
        buffer (no TensorMap, no lookup tables) when `schedule.grid.solve_grid_access` names its point."""
        source = self.renderer.grids.get(expr.tensor)
        access = solve_grid_access(expr, source) if source is not None else None
        if access is None:
            return None
        indices, solved, checks = access.indices, access.solved, access.checks

        # values and positions of the solved coordinates, in the accessing kernel's scope
        try:
            values = {name: self.index(value_expr) for name, value_expr in solved.items()}
        except Unsupported:
            return None
        saved_env, saved_domains = dict(self.env), dict(self.domains)
        try:
            for name, value in values.items():
                self.env[name] = VarInfo(value.code, value.code, value.level, indices[name])
            self.domains = access.scope_domains(saved_domains)
            conditions, offset_terms = [], []
            grid = self.array(("grid", expr.tensor), "real", f"dense values of {expr.tensor}")
            for k, binder in enumerate(source.indices):
                size = self.scalar(("grid_size", expr.tensor, k), f"size {k} of {expr.tensor}")
                proven = proven_coordinate(binder.domain, solved[binder.name], solved, saved_env, saved_domains)
                if proven is not None:  # a loop variable ranging inside this domain: in the grid by construction
                    loop = saved_env[proven]
                    offset_terms.append((Value(loop.position, INT, loop.level), size))
                    continue
                position, condition = self.grid_position(binder.domain, values[binder.name])
                conditions.append(condition)
                offset_terms.append((position, size))
            for entry_expr, access_expr in checks:
                mine, theirs = self.index(entry_expr), self.index(access_expr)
                if mine.code != theirs.code:
                    conditions.append(self.hoist(Value(f"({mine.code} == {theirs.code})", BOOL, *self.join(mine, theirs)), "ok"))
        finally:
            self.env, self.domains = saved_env, saved_domains
        # offset = ((p0 * n1 + p1) * n2 + p2) ..., hoisted term by term
        offset = None
        for position, size in offset_terms:
            if offset is None:
                offset = position
            else:
                offset = self.hoist(Value(f"({offset.code}) * {size} + {position.code}", INT,
                                          *self.join(offset, position)), "g")
        # the conditions, and-ed innermost last
        ok = self.fold(conditions, "&&", BOOL, "ok") if conditions else Value("true", BOOL, 0)
        place = self.join(offset, ok)
        if not conditions:  # every coordinate is a loop variable of the tensor's own grid
            return self.hoist(Value(f"{grid}[{offset.code}]", REAL, *offset.place), "x")
        return self.hoist(Value(f"({ok.code} ? {grid}[{offset.code}] : mt_read({grid}, -1, err))", REAL, *place), "x")

    def grid_position(self, domain, value: Value) -> tuple[Value, Value]:
        """(position in the buffer, in-domain condition) of a coordinate of another kernel's grid."""
        v = value.code
        if isinstance(domain, ir.RangeDomain):
            position = f"({v} - {int_literal(domain.start)})"
            condition = f"({v} >= {int_literal(domain.start)} && {v} < {int_literal(domain.stop)})"
            places = [value]
        elif isinstance(domain, ir.SpeciesDomain):
            table = self.array(("species_rank", domain), "int64_t", f"rank of each atomic number in {domain}")
            size = self.scalar(("n_species_rank", domain), "size of that table")
            rank = self.hoist(Value(f"mt_at({table}, 0, 0, mt_dense(0, {v}, 0, {size}))", INT, *value.place), "rk")
            return rank, self.hoist(Value(f"({rank.code} >= 0)", BOOL, *rank.place), "ok")
        elif isinstance(domain, ir.IrrepDomain):
            degree = self.index(domain.degree)
            position = f"({v} + {int_literal(domain.max_degree)})"
            condition = f"(std::abs({v}) <= std::min<int64_t>({degree.code}, {int_literal(domain.max_degree)}))"
            places = [value, degree]
        elif isinstance(domain, ir.XyzDomain):
            position, condition, places = v, f"({v} >= 0 && {v} <= 2)", [value]
        else:
            count = self.domain_size(domain)
            position, condition, places = v, f"({v} >= 0 && {v} < {count})", [value]
        place = self.join(*places)
        return (self.hoist(Value(position, INT, *value.place), "gp"),
                self.hoist(Value(condition, BOOL, *place), "ok"))

    def _render_Unary(self, expr: ir.Unary) -> Value:
        operand = self.render(expr.operand)
        if expr.op == "neg":
            kind = INT if operand.type == BOOL else operand.type
            return Value(f"(-{operand.code})", kind, *operand.place)
        if expr.op == "not":
            return Value(f"(!{operand.code})", BOOL, *operand.place)
        raise Unsupported(f"unary {expr.op}")

    def _render_Binary(self, expr: ir.Binary) -> Value:
        result_type = expr_type(expr)
        if expr.op == "mul" and result_type == REAL:
            factors = [self.render(f) for f in self.factors(expr)]
            factors = [Value(f"(real)({f.code})", REAL, f.level, f.body) if f.type in (INT, BOOL) else f for f in factors]
            return self.fold(factors, "*", REAL, "p")
        left, right = self.render(expr.left), self.render(expr.right)
        place = self.join(left, right)
        a, b = left.code, right.code
        op = expr.op
        if op in ("add", "sub", "mul"):
            symbol = {"add": "+", "sub": "-", "mul": "*"}[op]
            if result_type == REAL:
                a, b = self.as_real(left), self.as_real(right)
            code = f"({a} {symbol} {b})"
        elif op == "div":
            if result_type == VEC:
                code = f"({self.as_real(left) if left.type != VEC else a} / {self.as_real(right) if right.type != VEC else b})"
            else:
                code = f"({self.as_real(left)} / {self.as_real(right)})"
        elif op == "mod":
            code = f"mt_imod({a}, {b})" if result_type == INT else f"mt_fmod({self.as_real(left)}, {self.as_real(right)})"
        elif op == "pow":
            code = f"mt_ipow({a}, {b})" if result_type == INT else f"std::pow({self.as_real(left)}, {self.as_real(right)})"
        elif op in ("eq", "ne", "lt", "le", "gt", "ge"):
            symbol = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[op]
            if REAL in (left.type, right.type):
                a, b = self.as_real(left), self.as_real(right)
            code = f"({a} {symbol} {b})"
        elif op in ("and", "or"):
            code = f"({self.as_bool(left)} {'&&' if op == 'and' else '||'} {self.as_bool(right)})"
        else:
            raise Unsupported(f"binary {op}")
        if result_type == VEC and op in ("add", "sub", "mul"):
            symbol = {"add": "+", "sub": "-", "mul": "*"}[op]
            code = f"({self.vec_operand(left)} {symbol} {self.vec_operand(right)})"
        return self.hoist(Value(code, result_type, *place), "t")

    @staticmethod
    def as_real(value: Value) -> str:
        return f"(real)({value.code})" if value.type in (INT, BOOL) else value.code

    @staticmethod
    def as_bool(value: Value) -> str:
        return f"({value.code} != 0)" if value.type != BOOL else value.code

    def vec_operand(self, value: Value) -> str:
        return value.code if value.type == VEC else self.as_real(value)

    def _render_Select(self, expr: ir.Select) -> Value:
        result_type = expr_type(expr)
        condition = self.render(expr.condition)
        yes, no = self.render(expr.if_true), self.render(expr.if_false)
        if result_type == REAL:
            a, b = self.as_real(yes), self.as_real(no)
        else:
            a, b = yes.code, no.code
        code = f"({self.as_bool(condition)} ? {a} : {b})"
        return self.hoist(Value(code, result_type, *self.join(condition, yes, no)), "t")

    # -- built-in functions -----------------------------------------------------------------------------
    def _render_Call(self, expr: ir.Call) -> Value:
        name = expr.function
        if name in CPP_FUNCTIONS:
            xs = [self.scalar_argument(expr, k) for k in range(len(expr.args))]
            code = f"{CPP_FUNCTIONS[name]}({', '.join(self.as_real(x) for x in xs)})"
            return self.hoist(Value(code, REAL, *self.join(*xs)), "f")
        if name == "cross":
            u, v = self.vector_argument(expr, 0), self.vector_argument(expr, 1)
            return self.hoist(Value(f"mt_cross({u.code}, {v.code})", VEC, *self.join(u, v)), "f")
        if name == "to_irrep":
            v = self.vector_argument(expr, 0)
            axis = self.render(ir.irrep1_axis(expr.args[1], self.module.convention))
            return self.hoist(Value(f"mt_component({v.code}, {axis.code})", REAL, *self.join(v, axis)), "f")
        if name == "abs":
            x = self.unary_argument(expr)
            if x.type in (INT, BOOL):
                return self.hoist(Value(f"std::abs((int64_t)({x.code}))", INT, *x.place), "f")
            return self.hoist(Value(f"std::abs({x.code})", REAL, *x.place), "f")
        if name == "norm":
            v = self.vector_argument(expr, 0)
            return self.hoist(Value(f"mt_norm({v.code})", REAL, *v.place), "f")
        if name == "dot":
            u, v = self.vector_argument(expr, 0), self.vector_argument(expr, 1)
            return self.hoist(Value(f"mt_dot({u.code}, {v.code})", REAL, *self.join(u, v)), "f")
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
            width = float(self.option(expr, "width"))
            r, n = self.scalar_argument(expr, 0), self.scalar_argument(expr, 1)
            return self.hoist(Value(f"mt_d_gto({self.as_real(r)}, {self.as_real(n)}, {real_literal(width)})",
                                    REAL, *self.join(r, n)), "g")
        raise Unsupported(f"function {name}")

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

    def option(self, expr, name) -> float:
        value = expr.option(name)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Unsupported(f"{expr.function} without a numeric option {name}")
        return value

    def scalar_argument(self, expr, k) -> Value:
        value = self.render(expr.args[k])
        if value.type == VEC:
            raise Unsupported(f"{expr.function}: argument {k} is a vector")
        return value

    def call_gto(self, expr) -> Value:
        width = float(self.option(expr, "width"))
        r, n = self.scalar_argument(expr, 0), self.scalar_argument(expr, 1)
        gaussian = self.hoist(Value(f"std::exp(-({self.as_real(r)} * {self.as_real(r)}) / {real_literal(2.0 * width * width)})",
                                    REAL, *r.place), "g")
        power = self.hoist(Value(f"std::pow({self.as_real(r)}, {self.as_real(n)})", REAL, *self.join(r, n)), "g")
        return self.hoist(Value(f"({power.code} * {gaussian.code})", REAL, *self.join(power, gaussian)), "g")

    def call_cosine_cutoff(self, expr, derivative: bool = False) -> Value:
        width = float(self.option(expr, "width"))
        r = self.scalar_argument(expr, 0)
        if len(expr.args) > 1:  # the cutoff as an argument (older IR)
            cutoff = self.scalar_argument(expr, 1)
        else:
            cutoff = Value(real_literal(float(self.option(expr, "cutoff"))), REAL, 0)
        function = "mt_d_cosine_cutoff" if derivative else "mt_cosine_cutoff"
        return self.hoist(Value(f"{function}({self.as_real(r)}, {self.as_real(cutoff)}, {real_literal(width)})",
                                REAL, *self.join(r, cutoff)), "fc")

    def bounded(self, expr, what: str) -> tuple[Value, tuple[int, int]]:
        value = self.index(expr)
        found = planning.bounds(expr, self.domains)
        if found is None:
            raise Unsupported(f"{what}: the bounds of {expr} are not known at compile time")
        return value, found

    def call_sph(self, expr) -> Value:
        """`sph(v, l, m)`, and `d_sph(v, l, m, c)` (component `c` of d sph(v, l, m) / d v): an entry of
        a table of every (l, m) (and c), filled once where `v` is known (`render_sph_function`)."""
        v, integers = harmonic_arguments(self, expr)
        (l, (l_lo, l_hi)), (m, (m_lo, m_hi)) = integers[:2]
        if l_hi < 0:
            return Value(real_literal(0.0), REAL, 0)
        gradient = len(integers) == 3
        top = l_hi
        width = 2 * top + 1
        function = self.renderer.sph_function(top, gradient=gradient)
        size = (top + 1) * width * (3 if gradient else 1)
        table = self.table(f"{function}({v.code}, %s);", size, v.place, "dY" if gradient else "Y")
        index = f"{l.code} * {width} + {m.code} + {top}"
        if gradient:
            index = f"({index}) * 3 + {integers[2][0].code}"
        code = f"{table}[{index}]"
        if l_lo < 0 or m_lo < -top or m_hi > top:
            code = f"(({l.code}) >= 0 && std::abs({m.code}) <= ({l.code}) ? {table}[{index}] : real(0))"
        place = self.join(Value(table, REAL, *v.place), *(value for value, _ in integers))
        return self.hoist(Value(code, REAL, *place), "dy" if gradient else "y")

    call_d_sph = call_sph

    def table(self, fill: str, size: int, place: tuple, hint: str) -> str:
        """A local array filled once where `place` says; the statement `fill` gets its name for %s."""
        level, body = place
        key = (id(self.stack[level]), body, "table", fill)
        if key in self.memo:
            return self.memo[key]
        name = self.fresh(hint)
        self.statement(place, f"real {name}[{size}];")
        self.statement(place, fill % name)
        self.memo[key] = name
        return name

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
        name, spline = self.renderer.spline(l_hi, n_radial, cutoff, width)
        # the derivative differences neighbouring knots: its tables stay in float64 (float32 loses 1e-3)
        kind, ctype = ("const64", "double") if derivative else ("const", "real")
        values = self.array((kind, name + "_values"), ctype, f"soap_radial spline values {name}")
        derivatives = self.array((kind, name + "_derivatives"), ctype, f"soap_radial spline derivatives {name}")
        function = "mt_spline_derivative" if derivative else "mt_spline"
        literal = (lambda x: repr(float(x))) if derivative else real_literal
        fill = (f"{function}<{l_hi + 1}, {n_radial}>({self.as_real(r)}, {values}, {derivatives}, "
                f"{literal(spline.step)}, {int_literal(spline.n_intervals)}, {literal(spline.cutoff)}, %s, err);")
        table = self.table(fill, (l_hi + 1) * n_radial, r.place, "dR" if derivative else "R")
        code = f"{table}[{l.code} * {n_radial} + {n.code}]"
        return self.hoist(Value(code, REAL, *self.join(Value(table, REAL, *r.place), n, l)), "rad")

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
        name = self.renderer.cg_table(top)
        array = self.array(("const", name), "real", f"dense Clebsch-Gordan table up to l = {top}")
        size, width = top + 1, 2 * top + 1
        (l1, _), (l2, _), (big_l, _) = degrees
        (m1, _), (m2, _), (big_m, _) = orders
        index = (f"(((({l1.code} * {size} + {l2.code}) * {size} + {big_l.code}) * {width} + {m1.code} + {top}) * {width}"
                 f" + {m2.code} + {top}) * {width} + {big_m.code} + {top}")
        values = [v for v, _ in parts]
        return self.hoist(Value(f"{array}[{index}]", REAL, *self.join(*values)), "cg")

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
        zero = "mt_vec{0, 0, 0}" if vector else "0"
        target.append(f"{CTYPES[VEC] if vector else 'real'} {accumulator} = {zero};  // {comment(expr)}")
        bound = {name for name, info in self.env.items() if info.level <= level}
        items = [(b, False) for b in expr.binders]
        loops, pre = planning.schedule_loops(items, planning.conjuncts(expr.where), bound)
        depth0 = len(self.stack)
        skip = None
        if pre:
            conditions = " && ".join(f"({self.as_bool(self.render(c))})" for c in pre)
            skip = self.open(f"if ({conditions})", target)
            target = self.stack[skip].body
        expanded = self.expand_tables(expr, level, bound)
        for loop in loops:
            self.open_loop(loop, target)
            target = self.stack[-1].body
        body = self.render(expr.body)
        for key in expanded:
            del self.expanded[key]
        if vector:
            self.statement(self.here(), f"{accumulator} = {accumulator} + {self.vec_operand(body)};")
        else:
            self.statement(self.here(), f"{accumulator} += {self.as_real(body)};")
        while len(self.stack) > depth0:
            self.close()
        self.stack, self.env, self.domains = saved_stack, saved_env, saved_domains
        return Value(accumulator, VEC if vector else REAL, level)

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
            self.stack[outer].prelude.append(f"real {table}[{trip}];  // {comment(node)} for every {comment(binder.name)}")
            var = self.fresh("v")
            start = int_literal(domain.start)
            depth = self.open(f"for (int64_t {var} = {start}; {var} < {int_literal(domain.stop)}; ++{var})  "
                              f"/* {comment(binder.name)} in {comment(domain)} */", self.stack[outer].prelude)
            self.env[binder.name] = VarInfo(var, f"({var} - {start})", depth, domain)
            self.domains[binder.name] = domain
            value = self.render(node)
            self.statement(self.here(), f"{table}[{var} - {start}] = {self.as_real(value)};")
            self.close()
            self.stack, self.env, self.domains = saved_stack, saved_env, saved_domains
            key = id(node)
            self.expanded[key] = (table, start, binder.name)
            keys.append(key)
        return keys


# ---- routines of the loop-nest IR (schedule/nest.py) ------------------------------------------------

_NEST_CTYPES = {nest.REAL: "real", nest.INT: "int64_t", nest.BOOL: "bool", nest.VEC: "mt_vec"}
_NEST_OPERATORS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "eq": "=="}
_NEST_FUNCTIONS = {"sqrt": "std::sqrt"}


def nest_expr(expr) -> str:
    """A nest expression as C++ (its names are the nest's own, generated by the lowering)."""
    if isinstance(expr, nest.Const):
        if expr.type == nest.BOOL:
            return "true" if expr.value else "false"
        return int_literal(expr.value) if expr.type == nest.INT else real_literal(expr.value)
    if isinstance(expr, nest.Ref):
        return expr.name
    if isinstance(expr, nest.Lane):
        return f"{nest_expr(expr.vector)}.{'xyz'[expr.lane]}"
    if isinstance(expr, nest.Load):
        return f"{expr.array}[{expr.index}]"
    if isinstance(expr, nest.Unary) and expr.op == "neg":
        return f"(-{nest_expr(expr.operand)})"
    if isinstance(expr, nest.Binary):
        return f"({nest_expr(expr.left)} {_NEST_OPERATORS[expr.op]} {nest_expr(expr.right)})"
    if isinstance(expr, nest.Select):
        return f"({nest_expr(expr.condition)} ? {nest_expr(expr.if_true)} : {nest_expr(expr.if_false)})"
    if isinstance(expr, nest.Intrinsic):
        return f"{_NEST_FUNCTIONS[expr.name]}({', '.join(nest_expr(a) for a in expr.args)})"
    raise Unsupported(f"nest expression {type(expr).__name__}")


def nest_routine(routine: nest.Routine) -> str:
    """A routine as a `static inline void name(params..., real* output)` C++ function."""
    params = [f"{_NEST_CTYPES[type_]} {name}" for name, type_ in routine.params]
    lines = [f"static inline void {routine.name}({', '.join(params + [f'real* {routine.output}'])}) {{"]
    for statement in routine.body:
        if isinstance(statement, nest.Let):
            lines.append(f"    const {_NEST_CTYPES[statement.value.type]} {statement.name} = {nest_expr(statement.value)};")
        elif isinstance(statement, nest.Store):
            lines.append(f"    {statement.array}[{statement.index}] = {nest_expr(statement.value)};")
        else:
            raise Unsupported(f"nest statement {type(statement).__name__}")
    lines.append("}")
    return "\n".join(lines)


def render_sph_function(name: str, top: int, convention: str) -> str:
    """Real spherical harmonics up to `top` (`schedule/sph.py`), padded layout `out[l * (2 top + 1) + m + top]`."""
    return nest_routine(sph_routine(name, top, convention))


def render_sph_gradient_function(name: str, top: int, convention: str) -> str:
    """d sph(v, l, m) / d v for every (l, m) up to `top` (`schedule/sph.py`): `out[(l * (2 top + 1) + m + top) * 3 + c]`."""
    return nest_routine(sph_routine(name, top, convention, gradient=True))


# ---- the module ---------------------------------------------------------------------------------


class ModuleRenderer(ModuleTables):
    """The module's tables (`schedule.tables.ModuleTables`) and its C++ `sph` functions."""

    def __init__(self, module: ir.Module, dtype: str = "float64"):
        super().__init__(module, dtype)
        self.sph_functions: "OrderedDict[int, tuple[str, str]]" = OrderedDict()

    def sph_function(self, top: int, gradient: bool = False) -> str:
        key = (top, gradient)
        if key not in self.sph_functions:
            if gradient:
                name = f"mt_dsph{top}"
                self.sph_functions[key] = (name, render_sph_gradient_function(name, top, self.module.convention))
            else:
                name = f"mt_sph{top}"
                self.sph_functions[key] = (name, render_sph_function(name, top, self.module.convention))
        return self.sph_functions[key][0]

    def render(self) -> RenderedModule:
        kernels, unsupported = render_kernels(self.module, self.grids, self.render_kernel, self.render_fused)
        sources = [kernel.source for kernel in kernels.values()]
        text = templates().get_template("module.cpp.j2").render(
            module_comment=comment(self.module.name),
            real="double" if self.dtype == "float64" else "float",
            pi=repr(math.pi),
            sph_functions=[source for _, source in self.sph_functions.values()],
            kernels=sources,
        )
        return RenderedModule(self.module, self.dtype, text, kernels, unsupported, dict(self.constants))

    def render_kernel(self, k: int, kernel: ir.TensorKernel) -> RenderedKernel:
        symbol = f"mt_kernel_{k}"
        renderer = KernelRenderer(self, kernel, symbol)
        source = renderer.render_kernel()
        return RenderedKernel(kernel.name, symbol, renderer.plan, [("buffer",)] + list(renderer.arrays),
                              list(renderer.scalars), source, renderer.driver_count, renderer.driver_var)

    def render_fused(self, k: int, fused: ir.FusedKernel, plan: planning.FusedPlan) -> RenderedKernel:
        symbol = f"mt_fused_{k}"
        renderer = KernelRenderer(self, fused.kernels[0], symbol)
        source = renderer.render_fused(plan)
        arrays = [("buffer", j) for j in range(len(plan.plans))] + list(renderer.arrays)
        return RenderedKernel(fused.name, symbol, plan, arrays, list(renderer.scalars), source,
                              renderer.driver_count, renderer.driver_var)


def render_module(module: ir.Module, dtype: str = "float64") -> RenderedModule:
    """Render every kernel of `module` (kernels without a compiled form are listed in `.unsupported`)."""
    return ModuleRenderer(module, dtype).render()


def render(module: ir.Module, dtype: str = "float64") -> str:
    """The C++ source of a module (`mtdsl compile --emit cpp`)."""
    return render_module(module, dtype).source
