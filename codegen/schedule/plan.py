"""The plan pass: backend-independent scheduling decisions for one `TensorKernel`.

A compiled kernel writes its body values into a dense buffer over the kernel's
index grid (irreps padded to `-max..max`, like the interpreter), which the
shared assembly (`runtime/assemble.py`) turns into blocks. The plan decides, per
kernel:

- the *schedule*: `accumulate` when the body is a sum (`Reduce`, nested sums
  flattened): its binders become loops of the kernel nest and the body value is
  added (`+=`) into the buffer, so a `sum(p in P.from(i))` is one pass over the
  pairs of `i` that scatters into every `(l, m, n, b)` position; `direct`
  otherwise (the body is evaluated once per grid point, inner sums as loops);
- the *loop order*: the parallel driver first (an `atoms`, `pairs` or
  `systems` kernel index, else the first index), then sparse drivers as soon as
  their atom is bound (`P.from(i)` is a CSR segment; `sum(p in P where
  P.first[p] == e)` and `sum(i in atoms(S) where S.system[i] == e)` become
  segments too), then variables *bound by an equality* (`where S.type[P.second[p]]
  == b` gives `b` from the pair instead of a loop over species), then the
  remaining indices in declaration order, the last declared kernel index
  innermost (it is the contiguous axis of the buffer);
- where each `where` conjunct is tested (the outermost loop where its variables
  are bound);
- the *static facts* the renderers need: the type of every expression (`int`,
  `bool`, `real`, `vec`), the variables it depends on, integer bounds of index
  expressions (tables of `sph`, `soap_radial` and `cg` are sized by them).

Hoisting of loop-invariant values (a `sph` table once per pair, a `soap_radial`
table for every `(l, n)` once per pair, block lookups once per block...) follows
from this order: a renderer places each value in the outermost loop where all
its variables are bound (see `codegen/schedule/kernel.py`).

A kernel the plan cannot handle raises `Unsupported`; the runtime then
evaluates that kernel with the reference interpreter (documented fallback).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from mtdsl import builtins
from mtdsl.errors import Unsupported
from mtdsl.ir import nodes as ir
from mtdsl.ir.roles import GradientRows, GradientValues, PresenceTable, RowMap
from mtdsl.ir.walk import union_free_vars, conjuncts, derivative_node, domain_vars, free_vars  # noqa: F401 (read as planning.free_vars ...)

from . import abi


# ---- types and bounds ------------------------------------------------------------------------

INT, BOOL, REAL, VEC = "int", "bool", "real", "vec"
_INT_FIELDS = {"type", "system", "first", "second"}


def expr_type(expr) -> str:
    """Static type of an expression: `int`, `bool`, `real` or `vec` (a 3-vector)."""
    if isinstance(expr, ir.Const):
        if isinstance(expr.value, bool):
            return BOOL
        return INT if isinstance(expr.value, int) else REAL
    if isinstance(expr, ir.Var):
        return INT
    if isinstance(expr, ir.Data):
        if isinstance(expr.source, (GradientRows, RowMap, PresenceTable)):  # row labels, row maps, presence
            return INT
        if isinstance(expr.source, GradientValues):  # a gradient's values as its scatter kernels wrote them
            return REAL
        if expr.field in _INT_FIELDS:
            return INT
        if expr.field in ("positions", "vector", "cell_shift"):
            return REAL if len(expr.index) == 2 else VEC
        if expr.field == "distance":
            return REAL
        raise Unsupported(f"data field {expr.source}.{expr.field}")
    if isinstance(expr, (ir.ParamRef, ir.BlockRef)):
        return REAL
    if isinstance(expr, ir.Unary):
        inner = expr_type(expr.operand)
        if expr.op == "not":
            return BOOL
        return INT if inner == BOOL else inner
    if isinstance(expr, ir.Binary):
        left, right = expr_type(expr.left), expr_type(expr.right)
        if expr.op in ("eq", "ne", "lt", "le", "gt", "ge", "and", "or"):
            if VEC in (left, right):
                raise Unsupported("comparison of vectors")
            return BOOL
        if VEC in (left, right):
            if expr.op not in ("add", "sub", "mul", "div"):
                raise Unsupported(f"vector {expr.op}")
            return VEC
        if expr.op == "div":
            return REAL
        if expr.op == "pow":
            if left in (INT, BOOL) and right in (INT, BOOL) and isinstance(expr.right, ir.Const) and expr.right.value >= 0:
                return INT
            return REAL
        if left in (INT, BOOL) and right in (INT, BOOL):
            return INT
        return REAL
    if isinstance(expr, ir.Select):
        a, b = expr_type(expr.if_true), expr_type(expr.if_false)
        if VEC in (a, b):
            if a != b:
                raise Unsupported("select between a vector and a scalar")
            return VEC
        return INT if a in (INT, BOOL) and b in (INT, BOOL) else REAL
    if isinstance(expr, ir.Call):
        if expr.function == "cross":
            return VEC
        if expr.function == "abs":
            inner = expr_type(expr.args[0])
            return INT if inner in (INT, BOOL) else REAL
        return REAL
    if isinstance(expr, ir.Reduce):
        body = expr_type(expr.body)
        return VEC if body == VEC else REAL  # the interpreter sums with float masks
    raise Unsupported(f"unknown expression {type(expr).__name__}")


def domain_bounds(domain) -> Optional[tuple[int, int]]:
    if isinstance(domain, ir.RangeDomain):
        return (domain.start, domain.stop - 1)
    if isinstance(domain, ir.IrrepDomain):
        return (-domain.max_degree, domain.max_degree)
    if isinstance(domain, ir.XyzDomain):
        return (0, 2)
    return None


def bounds(expr, env: dict) -> Optional[tuple[int, int]]:
    """Inclusive integer bounds of an index expression, None when unknown.

    `env` maps variable names to their domains.
    """
    if isinstance(expr, ir.Const):
        if isinstance(expr.value, (bool, int)):
            return (int(expr.value), int(expr.value))
        return None
    if isinstance(expr, ir.Var):
        domain = env.get(expr.name)
        return domain_bounds(domain) if domain is not None else None
    if isinstance(expr, ir.Unary) and expr.op == "neg":
        inner = bounds(expr.operand, env)
        return (-inner[1], -inner[0]) if inner else None
    if isinstance(expr, ir.Binary) and expr.op in ("add", "sub", "mul"):
        a, b = bounds(expr.left, env), bounds(expr.right, env)
        if a is None or b is None:
            return None
        if expr.op == "add":
            return (a[0] + b[0], a[1] + b[1])
        if expr.op == "sub":
            return (a[0] - b[1], a[1] - b[0])
        products = [x * y for x in a for y in b]
        return (min(products), max(products))
    if isinstance(expr, ir.Call) and expr.function == "abs":
        inner = bounds(expr.args[0], env)
        if inner is None:
            return None
        lo, hi = inner
        return (0 if lo <= 0 <= hi else min(abs(lo), abs(hi)), max(abs(lo), abs(hi)))
    return None


# ---- loops ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loop:
    """One level of a loop nest, binding `var`.

    kind:
    - "domain": every value of `domain` (irreps: `-d..d` with `d = min(degree, max)`);
    - "pairs_of": the CSR segment of `source` (a pairs name) whose first atom is `expr`;
    - "atoms_of": the atoms of system `expr` of `source` (a systems name);
    - "equal": the single value `expr` (skipped when it is outside `domain`).
    `is_index`: a kernel index (a coordinate of the output buffer).
    `guards`: `where` conjuncts tested as soon as this level is entered.
    """

    var: str
    domain: object
    kind: str = "domain"
    expr: object = None
    source: str = ""
    is_index: bool = False
    guards: tuple = ()


@dataclass(frozen=True)
class KernelPlan:
    kernel: ir.TensorKernel
    schedule: str  # "accumulate" or "direct"
    loops: tuple[Loop, ...]  # outermost first
    pre_guards: tuple  # conjuncts with no variable: tested once
    body: object  # the expression written (direct) or added (accumulate) innermost
    parallel: bool  # the outermost loop is a kernel index: iterations write disjoint buffer parts
    env: dict = field(default_factory=dict)  # variable -> domain, for every loop variable
    # accumulate schedule: the loops from `local` on (a sum's binder first) add into a local array over
    # their kernel indices, added into the buffer once after them (None: straight into the buffer)
    local: Optional[int] = None


def _equality_operands(conjunct):
    if isinstance(conjunct, ir.Binary) and conjunct.op == "eq":
        return conjunct.left, conjunct.right
    return None


def _var_side(conjunct, name):
    """`e` when the conjunct is `name == e` or `e == name` with `e` free of `name`."""
    operands = _equality_operands(conjunct)
    if operands is None:
        return None
    for mine, other in (operands, operands[::-1]):
        if isinstance(mine, ir.Var) and mine.name == name and name not in free_vars(other):
            if expr_type(other) in (INT, BOOL):
                return other
    return None


def _field_side(conjunct, source_field, name):
    """`e` when the conjunct is `X.field[name] == e` (either side), `e` free of `name`."""
    operands = _equality_operands(conjunct)
    if operands is None:
        return None
    for mine, other in (operands, operands[::-1]):
        if (isinstance(mine, ir.Data) and (mine.field, len(mine.index)) == (source_field[1], 1)
                and isinstance(mine.index[0], ir.Var) and mine.index[0].name == name
                and (source_field[0] is None or mine.source == source_field[0])
                and name not in free_vars(other) and expr_type(other) in (INT, BOOL)):
            return mine.source, other
    return None


_EQUAL_DOMAINS = (ir.RangeDomain, ir.SpeciesDomain, ir.IrrepDomain, ir.XyzDomain, ir.AtomsDomain, ir.SystemsDomain)


def _equal_domain(domain) -> bool:
    """Whether a variable of this domain may be bound by an equality (the rows of a scatter kernel may)."""
    return isinstance(domain, _EQUAL_DOMAINS) or (
        isinstance(domain, ir.PairsDomain) and isinstance(domain.pairs, RowMap))


# ---- a cost model for the loop order ------------------------------------------------------------

#: the weights of the derivative built-ins of the passes; a built-in's own is its `cost` (mtdsl/builtins/)
_CALL_WEIGHT = {"d_sph": 80.0, "d_soap_radial": 60.0, "d_gto": 12.0, "d_cosine_cutoff": 8.0}
SEGMENT_TRIPS = 30.0  # pairs of an atom, atoms of a system: a guess, only orders matter


def trip_estimate(domain) -> float:
    """A typical number of values of a domain (for ordering loops only)."""
    if isinstance(domain, ir.RangeDomain):
        return float(max(domain.stop - domain.start, 1))
    if isinstance(domain, ir.IrrepDomain):
        return float(domain.max_degree + 1)  # the mean of 2l + 1 over l = 0..max
    if isinstance(domain, ir.SpeciesDomain):
        return float(len(domain.fixed)) if domain.fixed else 2.0
    if isinstance(domain, ir.XyzDomain):
        return 3.0
    if isinstance(domain, ir.PairsFrom):
        return SEGMENT_TRIPS
    if isinstance(domain, ir.SystemsDomain):
        return 10.0
    if isinstance(domain, ir.AtomsDomain):
        return 1000.0
    if isinstance(domain, ir.PairsDomain):
        return 30000.0
    return 10.0


def work_units(expr, out: list) -> float:
    """Append (free variables, weight) of every sub-expression a renderer places on its own;
    returns the weight of `expr` itself. A sum's inner work that depends on its binders is
    charged to the sum (times its trip count); the rest is listed with its own variables."""
    if expr is None or isinstance(expr, (ir.Const, ir.Var)):
        return 0.0
    if isinstance(expr, ir.Reduce):
        names = {b.name for b in expr.binders}
        inner: list = []
        work_units(expr.body, inner)
        work_units(expr.where, inner)
        trips = 1.0
        for binder in expr.binders:
            trips *= trip_estimate(binder.domain)
        weight = 1.0
        for variables, w, *_ in inner:
            if variables & names:
                weight += w
            else:
                out.append((variables, w, True))
        weight *= trips
        out.append((free_vars(expr), weight, True))
        return weight
    if isinstance(expr, ir.Call):
        for a in expr.args:
            work_units(a, out)
        builtin = builtins.lookup(expr.function)
        weight = builtin.cost if builtin is not None else _CALL_WEIGHT.get(expr.function, 8.0)
        if expr.function in ("sph", "soap_radial", "d_sph", "d_soap_radial") and expr.args:
            # a table of every (l, m) / (l, n) filled once where the first argument is known, then a lookup
            out.append((free_vars(expr.args[0]), weight, False))
            weight = 1.0
        out.append((free_vars(expr), weight, expr.function not in ("cg", "sph", "soap_radial", "d_sph", "d_soap_radial")))
        return weight
    elif isinstance(expr, ir.Data):
        for a in expr.index:
            work_units(a, out)
        weight = 1.0
    elif isinstance(expr, ir.ParamRef):
        for a in expr.index:
            work_units(a, out)
        weight = 2.0
    elif isinstance(expr, ir.BlockRef):
        for _, e in expr.keys:
            work_units(e, out)
        for slot in expr.samples + expr.components + expr.properties:
            work_units(slot.expr, out)
        out.append((free_vars(expr), 4.0, True))
        return 4.0
    elif isinstance(expr, ir.Unary):
        work_units(expr.operand, out)
        weight = 1.0
    elif isinstance(expr, ir.Binary):
        work_units(expr.left, out)
        work_units(expr.right, out)
        weight = 1.0
    elif isinstance(expr, ir.Select):
        for e in (expr.condition, expr.if_true, expr.if_false):
            work_units(e, out)
        weight = 1.0
    else:
        return 0.0
    out.append((free_vars(expr), weight, False))
    return weight


CONTIGUITY = 1.25  # keep `prefer_last` (the buffer's contiguous axis) innermost unless this much slower


TABULATE_LIMIT = 64  # a value over one range index of at most this many values may be tabulated over it


def tabulated_variable(variables, domains: dict):
    """The index a worthwhile value is tabulated over, when it reads one of small range (the widest)."""
    small = [v for v in variables if isinstance(domains.get(v), ir.RangeDomain)
             and 1 < domains[v].stop - domains[v].start <= TABULATE_LIMIT]
    return max(small, key=lambda v: (domains[v].stop - domains[v].start, v)) if small else None


def tabulation_place(variables, over: str, outer: int, loops, position: dict) -> tuple:
    """(index, level, row index or None) of a value tabulated over `over` whose other variables
    are bound at loop `outer` at the latest. When the innermost of them is an unguarded irrep
    index `m` whose degree is bound further out, with loops between them (the convolution's
    `h[j, l2, m2, q]` below the `l1, L` loops), the table also spans `m` (a row per `m`,
    `2 max + 1` rows) and is filled once where the degree is bound, not for every loop between."""
    if outer >= 0:
        loop = loops[outer]
        if (loop.kind == "domain" and isinstance(loop.domain, ir.IrrepDomain) and not loop.guards
                and loop.var in variables and loop.var != over
                and 2 * loop.domain.max_degree + 1 <= TABULATE_LIMIT):
            rest = (set(variables) - {over, loop.var}) | set(free_vars(loop.domain.degree))
            if rest <= set(position):
                inner = max((position[v] for v in rest), default=-1)
                if any(lp.kind != "equal" for lp in loops[inner + 1: outer]):
                    return (over, inner + 1, loop.var)
    return (over, outer + 1, None)


def harmonic_arguments(lowering, expr):
    """The arguments of `sph(v, l, m)` or `d_sph(v, l, m, c)` as a renderer reads them: the vector
    argument, then `(value, (lo, hi))` for each integer one (`c` within 0..2), or `Unsupported`.
    `lowering` is a renderer's expression lowering (its `vector_argument` and `bounded`)."""
    gradient = expr.function == "d_sph"
    if len(expr.args) != (4 if gradient else 3):
        raise Unsupported("d_sph without a component" if gradient else "sph with a wrong number of arguments")
    vector = lowering.vector_argument(expr, 0)
    integers = [lowering.bounded(arg, expr.function) for arg in expr.args[1:]]
    if gradient:
        _, (c_lo, c_hi) = integers[2]
        if c_lo < 0 or c_hi > 2:
            raise Unsupported("d_sph component outside 0..2")
    return vector, integers


def best_order(names, trips, ready_after, units, bound, prefer_last=None, limit=12):
    """The order of `names` minimizing the work of `units` placed at the loop of their last variable.

    `trips(name, placed)` is the trip count of `name` entered after the set `placed`;
    `ready_after(name)` the variables it needs first. Dynamic programming over subsets
    (None when there are more than `limit` names). `prefer_last` stays innermost unless
    that costs more than `CONTIGUITY` times the best order.
    """
    free = _best_order(names, trips, ready_after, units, bound, None, limit)
    if prefer_last not in names or free is None or free[1][-1] == prefer_last:
        return free[1] if free else None
    others = set(names) - {prefer_last}
    last = _best_order(names, trips, lambda name: ready_after(name) | (others if name == prefer_last else set()),
                       units, bound, None, limit)
    if last is not None and last[0] <= CONTIGUITY * free[0]:
        return last[1]
    return free[1]


def _best_order(names, trips, ready_after, units, bound, prefer_last, limit):
    n = len(names)
    if n == 0 or n > limit:
        return None
    index = {name: k for k, name in enumerate(names)}
    unit_masks = []
    for variables, weight in units:
        mask = 0
        for v in variables:
            if v in index:
                mask |= 1 << index[v]
            elif v not in bound:
                mask = -1
                break
        if mask > 0:
            unit_masks.append((mask, weight))
    need = []
    for name in names:
        mask = 0
        for v in ready_after(name):
            if v in index:
                mask |= 1 << index[v]
        need.append(mask)
    best = {0: (0.0, 1.0, None, None)}  # subset -> (cost, product of trips, previous subset, last name)
    order_of_candidates = sorted(range(n), key=lambda k: names[k] != prefer_last)  # ties: it goes last
    for subset in range(1, 1 << n):
        choice = None
        for k in order_of_candidates:
            bit = 1 << k
            if not subset & bit:
                continue
            previous = subset ^ bit
            if previous not in best or need[k] & ~previous:
                continue
            cost, product, _, _ = best[previous]
            placed = {names[j] for j in range(n) if previous >> j & 1}
            product = product * trips(names[k], placed)
            added = sum(w for mask, w in unit_masks if mask & bit and not mask & ~subset)
            total = cost + product * (added + 1e-3)
            if choice is None or total < choice[0]:
                choice = (total, product, previous, names[k])
        if choice is not None:
            best[subset] = choice
    full = (1 << n) - 1
    if full not in best:
        return None
    order = []
    subset = full
    while subset:
        _, _, previous, name = best[subset]
        order.append(name)
        subset = previous
    return best[full][0], order[::-1]


def schedule_loops(items, condition_parts, bound, driver: Optional[str] = None, innermost: Optional[str] = None,
                   body=None, prefix: tuple = (), pair_systems: Optional[dict] = None):
    """Order the binders `items` ([(Binder, is_index)]) into loops.

    `condition_parts`: `where` conjuncts over these binders (and outer variables);
    `bound`: variables bound outside. Returns `(loops, pre_guards)`; every
    conjunct is either consumed by a segment or equality binding, or attached as
    a guard to the first loop where its variables are bound.

    `prefix`: loops of another kernel that this one must start with (`plan_fused`),
    each enumerating one of `items` (see `_take_prefix`); `pair_systems` maps a pairs
    name to its systems.
    """
    remaining = list(items)
    pending = list(condition_parts)
    bound = set(bound)
    loops: list[Loop] = []
    pre = [c for c in pending if free_vars(c) <= bound]
    pending = [c for c in pending if not free_vars(c) <= bound]
    if prefix:
        if pre:
            raise Unsupported("a condition without variables in a fused kernel")
        pending = _take_prefix(prefix, remaining, pending, bound, loops, pair_systems or {}, body)

    def ready(binder):
        return domain_vars(binder.domain) <= bound

    def take(k, loop):
        nonlocal pending
        remaining.pop(k)
        bound.add(loop.var)
        guards = tuple(c for c in pending if free_vars(c) <= bound)
        pending = [c for c in pending if not free_vars(c) <= bound]
        loops.append(Loop(loop.var, loop.domain, loop.kind, loop.expr, loop.source, loop.is_index, guards))

    def sparse_or_equal():
        """A segment or an equality binding that is possible now, as (position, loop, consumed conjunct)."""
        for k, (binder, is_index) in enumerate(remaining):
            domain = binder.domain
            if isinstance(domain, ir.PairsFrom):
                if domain_vars(domain) <= bound:
                    return k, Loop(binder.name, domain, "pairs_of", domain.atom, domain.pairs, is_index), None
                continue
            for c in pending:
                if isinstance(domain, ir.PairsDomain):
                    found = _field_side(c, (domain.pairs, "first"), binder.name)
                    if found and free_vars(found[1]) <= bound:
                        return k, Loop(binder.name, domain, "pairs_of", found[1], domain.pairs, is_index), c
                if isinstance(domain, ir.AtomsDomain):
                    found = _field_side(c, (domain.systems, "system"), binder.name)
                    if found and free_vars(found[1]) <= bound:
                        return k, Loop(binder.name, domain, "atoms_of", found[1], domain.systems, is_index), c
                if _equal_domain(domain) and ready(binder):
                    other = _var_side(c, binder.name)
                    if other is not None and free_vars(other) <= bound:
                        return k, Loop(binder.name, domain, "equal", other, "", is_index), c
        return None

    if driver is not None:
        for k, (binder, is_index) in enumerate(remaining):
            if binder.name == driver and ready(binder) and not isinstance(binder.domain, ir.PairsFrom):
                take(k, Loop(binder.name, binder.domain, "domain", None, "", is_index))
                break

    preferred = _preferred_order(remaining, pending, bound, body, innermost) if body is not None else None
    while remaining:
        found = sparse_or_equal()
        if found is not None:
            k, loop, consumed = found
            if consumed is not None:
                pending.remove(consumed)
            take(k, loop)
            continue
        candidates = [k for k, (b, _) in enumerate(remaining) if ready(b) and not isinstance(b.domain, ir.PairsFrom)]
        if not candidates:
            raise Unsupported("no loop order satisfies the dependencies of the indices")
        if preferred is not None:
            candidates.sort(key=lambda k: preferred.index(remaining[k][0].name))
        elif innermost is not None and len(candidates) > 1:
            candidates = [k for k in candidates if remaining[k][0].name != innermost] or candidates
        k = candidates[0]
        binder, is_index = remaining[k]
        take(k, Loop(binder.name, binder.domain, "domain", None, "", is_index))
    if pending:
        raise Unsupported("a where condition reads variables that are never bound")
    return tuple(loops), tuple(pre)


def _take_prefix(prefix, remaining: list, pending: list, bound: set, loops: list, pair_systems: dict, body) -> list:
    """Open the loops `prefix` (another kernel's) for the binders `remaining` of this kernel.

    A prefix loop enumerates the binder of its name when both iterate the same domain the same
    way, or when the prefix loop is the segment `p in P.from(i)` and the binder `p in pairs(P)`:
    the segments of every atom `i` of P's systems are all its pairs, in storage order, so the
    atom loop `i` (absent from this kernel) partitions them. Every other prefix loop is
    `Unsupported`. The prefix's guards must be conditions of this kernel (they are tested once,
    for all); this kernel's other conditions over the prefix go to its first own loop. Returns
    the conjuncts left pending."""
    names = {b.name for b, _ in remaining}
    used = free_vars(body) | union_free_vars(pending)
    for at, loop in enumerate(prefix):
        if loop.kind not in ("domain", "pairs_of"):
            raise Unsupported(f"a shared loop of kind {loop.kind}")
        found = [k for k, (b, _) in enumerate(remaining) if b.name == loop.var]
        centre = _centre_of(loop, remaining, pair_systems, names, used) if found else None
        if centre is not None:
            # `p in pairs(P)` shared, the member's `i in atoms(S), p in P.from(i)`: the pairs of every
            # atom, each once; `i` follows from the pair (`P.first[p]`)
            remaining.pop(found[0])
            k = next(k for k, (b, _) in enumerate(remaining) if b.name == centre)
            _, centre_index = remaining.pop(k)
            bound |= {loop.var, centre}
            loops.append(Loop(loop.var, loop.domain, loop.kind, loop.expr, loop.source, False, ()))
            first = ir.Data(loop.domain.pairs, "first", (ir.Var(loop.var),))
            loops.append(Loop(centre, ir.AtomsDomain(pair_systems[loop.domain.pairs]), "equal", first, "",
                              centre_index, ()))
            continue
        if found:
            binder, is_index = remaining.pop(found[0])
            segment = isinstance(binder.domain, ir.PairsFrom)
            same = binder.domain == loop.domain and (loop.kind == "pairs_of") == segment
            pairs = loop.kind == "pairs_of" and binder.domain == ir.PairsDomain(loop.source)
            whole = (pairs and isinstance(loop.expr, ir.Var) and loop.expr.name not in names
                     and loop.expr.name not in used)
            restricted = pairs and any(
                (_field_side(c, (loop.source, "first"), loop.var) or (None, None))[1] == loop.expr for c in pending)
            if not (same or whole or restricted):
                raise Unsupported(f"{loop.var} is not enumerated by the shared loop {loop.var} in {loop.domain}")
        else:
            partition = (loop.kind == "domain" and isinstance(loop.domain, ir.AtomsDomain)
                         and loop.var not in used
                         and any(later.kind == "pairs_of" and later.expr == ir.Var(loop.var)
                                 and pair_systems.get(later.source) == loop.domain.systems
                                 and any(b.name == later.var and b.domain == ir.PairsDomain(later.source)
                                         for b, _ in remaining)
                                 for later in prefix[at + 1:]))
            if not partition:
                raise Unsupported(f"the shared loop {loop.var} in {loop.domain} has no binder here")
            is_index = False
        bound.add(loop.var)
        loops.append(Loop(loop.var, loop.domain, loop.kind, loop.expr, loop.source, is_index, ()))
    for loop in prefix:
        for guard in loop.guards:
            if guard not in pending:
                raise Unsupported(f"the shared loops test {guard}, a condition this kernel does not have")
            pending.remove(guard)
    return pending


def _centre_of(loop: Loop, remaining: list, pair_systems: dict, names: set, used: frozenset):
    """The atom binder `i` when the shared `loop` is `p in pairs(P)` and this kernel's binder of its
    name is `p in P.from(i)`, `i` a binder over the atoms of P's systems; else None."""
    if loop.kind != "domain" or not isinstance(loop.domain, ir.PairsDomain):
        return None
    binder = next(b for b, _ in remaining if b.name == loop.var)
    domain = binder.domain
    if not (isinstance(domain, ir.PairsFrom) and domain.pairs == loop.domain.pairs and isinstance(domain.atom, ir.Var)):
        return None
    systems = pair_systems.get(domain.pairs)
    centre = domain.atom.name
    if not any(b.name == centre and b.domain == ir.AtomsDomain(systems) for b, _ in remaining):
        return None
    return centre


def _preferred_order(remaining, pending, bound, body, innermost):
    """The cost model's order of the remaining binders (segments and equality bindings included)."""
    names = [b.name for b, _ in remaining]
    binders = {b.name: b for b, _ in remaining}

    def special_needs(name):
        """Variables after which `name` is bound without a loop (None: never)."""
        domain = binders[name].domain
        if isinstance(domain, ir.PairsFrom):
            return free_vars(domain.atom)
        options = []
        for c in pending:
            if isinstance(domain, ir.PairsDomain):
                found = _field_side(c, (domain.pairs, "first"), name)
                if found:
                    options.append(free_vars(found[1]))
            if isinstance(domain, ir.AtomsDomain):
                found = _field_side(c, (domain.systems, "system"), name)
                if found:
                    options.append(free_vars(found[1]))
            if _equal_domain(domain):
                other = _var_side(c, name)
                if other is not None:
                    options.append(free_vars(other))
        return min(options, key=len) if options else None

    specials = {name: special_needs(name) for name in names}

    def trips(name, placed):
        needs = specials[name]
        domain = binders[name].domain
        if needs is not None and needs <= placed | bound:
            if isinstance(domain, (ir.PairsFrom, ir.PairsDomain, ir.AtomsDomain)):
                return SEGMENT_TRIPS
            return 1.0
        return trip_estimate(domain)

    def ready_after(name):
        domain = binders[name].domain
        needs = set(domain_vars(domain))
        if isinstance(domain, ir.PairsFrom):
            needs |= free_vars(domain.atom)
        return needs

    raw: list = []
    work_units(body, raw)
    for c in pending:
        work_units(c, raw)
    domains = {name: binders[name].domain for name in names}
    units = []
    for variables, weight, worth in raw:
        # a renderer tabulates such a value over its small range index where its other variables are bound
        over = tabulated_variable(variables & set(names), domains) if worth else None
        if over is not None:
            units.append((variables - {over}, weight * trip_estimate(domains[over])))
        else:
            units.append((variables, weight))
    units.append((frozenset(names), 1.0))  # the innermost statement
    return best_order(names, trips, ready_after, units, bound, prefer_last=innermost)


def _flatten_sum(expr, taken: set):
    """A top-level chain of sums as (binders, conjuncts, innermost body); stops at shadowing."""
    binders, parts = [], []
    while isinstance(expr, ir.Reduce) and not any(b.name in taken for b in expr.binders):
        names = [b.name for b in expr.binders]
        if len(set(names)) != len(names):
            break
        binders += list(expr.binders)
        parts += conjuncts(expr.where)
        taken |= set(names)
        expr = expr.body
    return binders, parts, expr


def is_scatter(kernel) -> bool:
    """Whether `kernel` is a scatter kernel of mtdsl/ir/passes/terms.py (its rows: a range of a `RowMap`)."""
    return any(isinstance(b.domain, ir.PairsDomain) and isinstance(b.domain.pairs, RowMap) for b in kernel.indices)


def driver_size(domain):
    """The size of a parallel driver's domain: a scalar argument (`schedule/abi.py`), an int, or None."""
    if isinstance(domain, ir.AtomsDomain):
        return abi.AtomCount(domain.systems)
    if isinstance(domain, ir.SystemsDomain):
        return abi.SystemCount(domain.systems)
    if isinstance(domain, ir.PairsDomain):
        return abi.PairCount(domain.pairs)
    if isinstance(domain, ir.SpeciesDomain):
        return abi.SpeciesCount(domain)
    if isinstance(domain, ir.XyzDomain):
        return 3
    if isinstance(domain, ir.RangeDomain):
        return max(domain.stop - domain.start, 0)
    return None


def _driver(kernel) -> Optional[str]:
    if is_scatter(kernel):
        return _scatter_driver(kernel)
    for kind in (ir.AtomsDomain, ir.PairsDomain, ir.SystemsDomain):
        for binder in kernel.indices:
            if isinstance(binder.domain, kind):
                return binder.name
    return kernel.indices[0].name if kernel.indices else None


def _scatter_driver(kernel) -> Optional[str]:
    """The parallel loop of a scatter kernel (mtdsl/ir/passes/terms.py): it never loops over its rows (they
    are bound by equality), and two points of its sum may add into the same row; so it is parallel
    over a variable of its row map (atoms, pairs, rows of another gradient), and the runtime runs
    it on every thread when that map sends distinct points to distinct entries (checked per run),
    else on ranges of the driver, cut by owner or into per-thread buffers (`runtime/native/compiled.py:
    CompiledModule._scatter_shared`)."""
    body = kernel.body
    if not isinstance(body, ir.Reduce):
        return None
    row_vars = []
    for conjunct in conjuncts(body.where):
        for side in _equality_operands(conjunct) or ():
            if isinstance(side, ir.Data) and isinstance(side.source, RowMap):
                row_vars = [v.name for v in side.index if isinstance(v, ir.Var)]
    if not row_vars:
        # no row map: a product kernel (mtdsl/ir/passes/terms.py: `vjp_kernel`, `jvp_kernel`), whose row is bound by
        # `·target == X` (a term's target): its driver is a variable X reads, else any sum binder
        # (the runtime runs it on ranges of the driver, into per-thread buffers)
        rows = {b.name for b in kernel.indices if isinstance(b.domain, ir.PairsDomain)
                and isinstance(b.domain.pairs, RowMap)}
        for conjunct in conjuncts(body.where):
            operands = _equality_operands(conjunct)
            for mine, other in (operands, operands[::-1]) if operands else ():
                if isinstance(mine, ir.Var) and mine.name in rows and mine.name not in free_vars(other):
                    row_vars += sorted(free_vars(other))
        binders = {b.name: b for b in body.binders}
        for name in row_vars + list(binders):
            if name in binders and isinstance(binders[name].domain, (ir.AtomsDomain, ir.PairsDomain)):
                return name
        # else an atoms index of the kernel (`mtdsl/ir/passes/terms.py: jvp_kernel`, a term at the centre):
        # each of its iterations writes entries of its own, so it runs on every thread
        for binder in kernel.indices:
            if isinstance(binder.domain, ir.AtomsDomain):
                return binder.name
        return None
    for binder in body.binders:
        if binder.name in row_vars and isinstance(binder.domain, (ir.AtomsDomain, ir.PairsDomain)):
            return binder.name
    return None


LOCAL_LIMIT = 1024  # entries of a local accumulator (reals on the stack)


def static_size(domain) -> Optional[int]:
    """The number of buffer positions of a kernel index's domain when it is known at compile time."""
    if isinstance(domain, ir.RangeDomain):
        return domain.stop - domain.start
    if isinstance(domain, ir.XyzDomain):
        return 3
    if isinstance(domain, ir.IrrepDomain):
        return 2 * domain.max_degree + 1
    return None


def local_accumulator(schedule: str, loops) -> Optional[int]:
    """Where an accumulate schedule's local accumulator starts: the outermost loop of a sum's binder
    (not the parallel driver) below which every loop is a sum's binder or a kernel index of static
    size (at most `LOCAL_LIMIT` entries in all). The sum over those binders is added into a local
    array over those indices (`acc[n1, α, n2] += ...` for each `m`), then once into the buffer:
    one store per entry instead of one per binder value, and the accumulation cannot alias the
    arrays it reads (the power spectrum's gradient: `sum(m)` of `drho[α, m, n1] * rho[m, n2]`)."""
    if schedule != "accumulate":
        return None
    found, size = None, 1
    for k in range(len(loops) - 1, 0, -1):
        loop = loops[k]
        if loop.is_index:
            extent = static_size(loop.domain) if loop.kind == "domain" else None
            if extent is None:
                break
            size *= extent
            if size > LOCAL_LIMIT:
                break
        else:
            found = k
    return found


#: plans by (kernel, prefix, pair systems) while one module renders (`remembered_plans`): its kernels
#: are planned by the fusion pass, the lowering and every fused kernel they start (a third of the
#: planning of a cold compile, issue #15). Scoped to one rendering, never process-wide: a remembered
#: plan holds the IR objects of the module it was made for, and the rendering (stored by the kernel
#: cache, objects shared by identity) must not depend on what this process rendered before.
_PLANS: contextvars.ContextVar = contextvars.ContextVar("mtdsl_plans", default=None)


@contextlib.contextmanager
def remembered_plans():
    """Within this block, `plan_kernel` plans each (kernel, prefix, pair systems) once."""
    token = _PLANS.set({})
    try:
        yield
    finally:
        _PLANS.reset(token)


def plan_kernel(kernel: ir.TensorKernel, prefix: tuple = (), pair_systems: Optional[dict] = None) -> KernelPlan:
    """The plan of one kernel; with `prefix`, its nest starts with those loops (`plan_fused`).
    A function of its arguments (frozen IR): inside `remembered_plans`, planned once."""
    plans = _PLANS.get()
    if plans is None:
        return _plan_kernel(kernel, prefix, pair_systems)
    try:
        key = (kernel, prefix, tuple(sorted(pair_systems.items())) if pair_systems else None)
        hash(key)
    except TypeError:  # an unhashable argument: planned every time
        return _plan_kernel(kernel, prefix, pair_systems)
    if key not in plans:
        plans[key] = _plan_kernel(kernel, prefix, pair_systems)
    return plans[key]


def _plan_kernel(kernel: ir.TensorKernel, prefix: tuple, pair_systems: Optional[dict]) -> KernelPlan:
    # the plan takes lowered IR: a gradient's terms are planned once `mtdsl/ir/passes/terms.py` lowered them
    found = derivative_node(kernel)
    if found is not None:
        raise Unsupported(f"the derivative node {found} (a gradient's terms are lowered first)")
    names = [b.name for b in kernel.indices]
    if len(set(names)) != len(names):
        raise Unsupported("a kernel index is declared twice")
    for binder in kernel.indices:
        if isinstance(binder.domain, ir.PairsFrom):
            raise Unsupported("P.from() as a kernel index")
    body_type = expr_type(kernel.body)
    if body_type == VEC:
        raise Unsupported("a vector-valued body")
    items = [(b, True) for b in kernel.indices]
    parts = conjuncts(kernel.where)
    binders, inner_parts, inner = _flatten_sum(kernel.body, set(names))
    schedule = "accumulate" if binders else "direct"
    if binders:
        items += [(b, False) for b in binders]
        parts += inner_parts
        body = inner
        expr_type(body)
    else:
        body = kernel.body
    driver = _driver(kernel)
    innermost = kernel.indices[-1].name if kernel.indices else None
    loops, pre = schedule_loops(items, parts, set(), driver=None if prefix else driver, innermost=innermost,
                                body=body, prefix=prefix, pair_systems=pair_systems)
    parallel = bool(loops) and loops[0].kind == "domain" and (loops[0].is_index or loops[0].var == driver)
    env = {loop.var: loop.domain for loop in loops}
    local = local_accumulator(schedule, loops)
    if local is not None and local < len(prefix):
        local = None
    return KernelPlan(kernel, schedule, loops, pre, body, parallel, env, local)


@dataclass(frozen=True)
class FusedPlan:
    """The plan of an `ir.FusedKernel`: every member's plan starts with the same `shared` loops (the
    first member's, up to and including its first loop over pairs), which a renderer opens once;
    inside the innermost of them each member's remaining loops and statement follow in turn,
    adding into the member's own buffer. Values placed at the shared levels (the `sph` and radial
    tables of a pair) are computed once for all members. `parallel`: the first shared loop may
    run on several threads (the runtime decides whether the members' entries allow it)."""

    fused: ir.FusedKernel
    plans: tuple[KernelPlan, ...]
    shared: int
    parallel: bool


def plan_fused(fused: ir.FusedKernel, pair_systems: dict) -> FusedPlan:
    """Plan the members of `fused` around the first one's outer loops: up to and including its
    first pass over pairs, else its driver alone (terms over the rows of another gradient);
    `Unsupported` when a member cannot start with those loops."""
    first = plan_kernel(fused.kernels[0])
    if first.pre_guards:
        raise Unsupported("a condition without variables in a fused kernel")
    shared = next((k + 1 for k, loop in enumerate(first.loops) if loop.kind == "pairs_of"), None)
    if shared is None:
        if not (first.loops and first.loops[0].kind == "domain" and first.parallel):
            raise Unsupported(f"{first.kernel.name} has no pass over pairs or driver to share")
        shared = 1
    if first.local is not None and first.local < shared:
        raise Unsupported("a local accumulator around the shared loops")
    # a shared loop tests the conditions every member has; the first member's others move to its
    # first own loop (the neighbour term's `S.type[P.second[p]] == S.type[P.second[p]]`)
    others = [_conditions(kernel) for kernel in fused.kernels[1:]]
    moved = [g for loop in first.loops[:shared] for g in loop.guards if not all(g in c for c in others)]
    if moved:
        if len(first.loops) == shared:
            raise Unsupported("a condition of the shared loops that the other members do not have")
        loops = [dataclasses.replace(loop, guards=tuple(g for g in loop.guards if g not in moved))
                 for loop in first.loops[:shared]]
        own = first.loops[shared]
        loops.append(dataclasses.replace(own, guards=tuple(moved) + own.guards))
        first = dataclasses.replace(first, loops=tuple(loops) + first.loops[shared + 1:])
    prefix = first.loops[:shared]
    plans = [first] + [plan_kernel(kernel, prefix, pair_systems) for kernel in fused.kernels[1:]]
    return FusedPlan(fused, tuple(plans), shared, first.parallel)


def _conditions(kernel: ir.TensorKernel) -> list:
    """The `where` conjuncts of a kernel and of its (flattened) sum, as its plan tests them."""
    binders, inner, _ = _flatten_sum(kernel.body, {b.name for b in kernel.indices})
    return conjuncts(kernel.where) + inner


def fused_plans(module: ir.Module, unsupported: dict, planner=None):
    """`(k, fused kernel, its plan)` for each fused kernel of `module` that a renderer can try:
    the others (a member in `unsupported`, the kernels that did not render, or no plan) are
    added to `unsupported` with the reason. `planner(fused, pair_systems)`: the plan (default
    `plan_fused`; `schedule/presence.py: guarded_plan` adds the values member's presence guard)."""
    pair_systems = {p.name: p.systems for p in module.pairs}
    for k, fused in enumerate(module.fused):
        try:
            if any(name in unsupported for name in fused.names):
                raise Unsupported("a member kernel has no compiled form")
            plan = (planner or plan_fused)(fused, pair_systems)
        except Unsupported as error:
            unsupported[fused.name] = str(error)
            continue
        yield k, plan.fused, plan


def member_domains(plan: KernelPlan, shared: dict) -> dict:
    """The domains of the variables bound so far (`shared`: after a fused kernel's shared loops),
    as member `plan` declares them: its `p in pairs(P)` that a segment loop enumerates reads as
    pairs (its row maps are over all pairs)."""
    binders, _, _ = _flatten_sum(plan.kernel.body, {b.name for b in plan.kernel.indices})
    domains = dict(shared)
    for binder in list(plan.kernel.indices) + list(binders):
        if binder.name in shared:
            domains[binder.name] = binder.domain
    return domains
