"""Product kernels: gradient terms contracted with a cotangent (VJP) or a tangent (JVP), as IR kernels.

The reverse and tangent products of `runtime/gradients/native_products.py` (docs/gradients.md, "Reverse
products"), lowered like the gradient terms of `mtdsl/ir/passes/terms.py` (whose `_Lowering` they use):
`vjp_kernel` contracts a term with a cotangent read at the kernel's own entry (from the grid of
the stand-in `cotangent_kernel`) into atoms x 3 / systems x 3 x 3 rows bound by
`·target == target`; `jvp_kernel` contracts it with a tangent (the stand-in `tangent_kernel`)
into the kernel's own layout; `tensor_vjp_kernel` and `tensor_jvp_kernel` do the same through
computed tensors (a term of `autodiff.differentiate_tensor`).
"""

from __future__ import annotations

from mtdsl.errors import Unsupported
from mtdsl.ir import nodes as ir

from . import autodiff as ad
from ..derivative_nodes import GradRows, GradientKernel, Term
from ..walk import conjuncts, domain_vars, free_vars
from ..roles import Cotangent, JvpKernel, PresenceTable, RowMap, Tangent, TensorTangent, VjpKernel
from .terms import STORED_ORDER, _into_sums, _Lowering, _substituted_domain, conjunction


# ---- product kernels: a term contracted with a cotangent (VJP) ------------------------------------

def cotangent_tensor(kernel: str) -> Cotangent:
    """The stand-in kernel whose dense buffer holds `kernel`'s cotangent."""
    return Cotangent(kernel)


def cotangent_kernel(kernel: ir.TensorKernel) -> ir.TensorKernel:
    """A stand-in for the cotangent of `kernel`: its indices and labels, no `where`, a zero body.
    Rendered before the VJP kernels, it makes the renderers read the cotangent as a dense grid
    of `kernel`'s layout (`codegen/schedule/reads.py: direct_access`), which the runtime fills from the cotangent's
    blocks (`runtime/gradients/native_products.py`) instead of running this kernel."""
    return stand_in_kernel(kernel, cotangent_tensor(kernel.name))


TARGET = "·target"


def vjp_kernel(module: ir.Module, kernel: ir.TensorKernel, gradient: GradientKernel, k: int,
               term: Term) -> ir.TensorKernel:
    """Term `k` contracted with the cotangent `C` of the kernel's values: a kernel over
    `(target, directions in stored order)` — atoms x 3 for positions, systems x 3 x 3 for the cell
    (`[s, a, x]`, as the gradient blocks store it) — whose body sums, over the term's binders and
    every kernel index no alias fixes (the columns included),

        coefficient(directions) * C{keys}[samples, components, properties]

    the cotangent read at the kernel's own entry (with the aliases substituted) from the dense
    grid of `cotangent_kernel(kernel)`. The target is bound by `·target == target` like the rows
    of a scatter kernel (`·target`'s domain is a reserved `·out·` range), so the pass over pairs
    (or over the rows of a gradient it reads) adds each contribution into its atom's (or
    system's) entry: the tensor's own gradient is never materialized. Several points add into
    one entry, so the runtime runs it on ranges of its driver with per-thread buffers."""
    lowering = _Lowering(module)
    resolved: dict = {}
    for name, expr in term.aliases:
        resolved[name] = ad.substitute(expr, resolved)
    binders = [ir.Binder(b.name, lowering.domain(b.domain)) for b in term.binders]
    for binder in kernel.indices:
        if binder.name not in resolved:
            binders.append(ir.Binder(binder.name, _substituted_domain(lowering, binder.domain, resolved)))
    names = {b.name for b in binders} | set(gradient.directions)
    if TARGET in names:
        raise Unsupported(f"a variable named {TARGET}")
    # the rows the kernel adds into (atoms or systems: the targets), a run-time range
    indices = [ir.Binder(TARGET, ir.PairsDomain(RowMap(kernel.name, gradient.wrt, k, "vjp")))]
    order = STORED_ORDER[gradient.wrt]
    for stored in range(len(gradient.directions)):
        indices.append(ir.Binder(gradient.directions[order.index(stored)], ir.XyzDomain()))

    def lowered(expr):
        return lowering.lower(ad.substitute(expr, resolved))

    conditions = []
    for condition in (kernel.where, term.where):
        if condition is not None:
            conditions += conjuncts(lowered(condition))
    target = lowered(term.target)
    if set(gradient.directions) & free_vars(target):
        raise Unsupported("a target that depends on a direction")
    conditions.append(ir.Binary("eq", ir.Var(TARGET), target))
    conditions += presence_guard(kernel, lowered, {b.name: b.domain for b in binders})

    def slot(entry: ir.Entry) -> ir.Slot:
        return ir.Slot(entry.kind, lowered(entry.expr), entry.source)

    cotangent = ir.BlockRef(cotangent_tensor(kernel.name), tuple((e.label, lowered(e.expr)) for e in kernel.keys),
                            tuple(map(slot, kernel.samples)), tuple(map(slot, kernel.components)),
                            tuple(map(slot, kernel.properties)))
    coefficient = lowered(term.coefficient)
    if lowering.is_vector(coefficient):
        raise Unsupported("a vector-valued gradient coefficient")
    body = _into_sums(ir.Binary("mul", coefficient, cotangent))
    binders, conditions, body = _factor_sums(binders, conditions, body, set(gradient.directions), {TARGET})
    where = conjunction(conditions)
    name = VjpKernel(kernel.name, gradient.wrt, k)
    return ir.TensorKernel(name, tuple(indices), (), (), (), (), ir.Reduce(tuple(binders), body, where), None)


def presence_variables(kernel: ir.TensorKernel) -> tuple[str, ...]:
    """The kernel indices its keys and samples depend on, in index order: the axes of its presence
    table (`codegen/schedule/presence.py`, `runtime/presence.py: presence_table`)."""
    used: set = set()
    for entry in kernel.keys + kernel.samples:
        used |= free_vars(entry.expr)
    return tuple(b.name for b in kernel.indices if b.name in used)


def presence_guard(kernel: ir.TensorKernel, expression, bound: dict) -> list:
    """`[present[v...] >= 0]`: the read of `kernel`'s presence table (codegen/schedule/presence.py,
    -1 at a structurally absent point) over its presence variables as a product kernel names them
    (`expression(Var(v))`), when each is a variable that kernel binds over the same domain (`bound`:
    name -> domain); else no condition. An absent point of `kernel` is a structural zero: its
    contributions to a cotangent or to the positions vanish (those into an absent entry of a
    tensor read have no derivative behind them), so skipping them changes no result; a run that
    passes no table (size 0) computes every point."""
    domains = {b.name: b.domain for b in kernel.indices}
    index = []
    for name in presence_variables(kernel):
        value = expression(ir.Var(name))
        if not isinstance(value, ir.Var) or bound.get(value.name) != domains[name]:
            return []
        index.append(value)
    if not index:
        return []
    return [ir.Binary("ge", ir.Data(PresenceTable(str(kernel.name)), "present", tuple(index)), ir.Const(0))]


_SMALL_DOMAINS = (ir.RangeDomain, ir.SpeciesDomain, ir.IrrepDomain)


def _mul_factors(expr) -> list:
    if isinstance(expr, ir.Binary) and expr.op == "mul":
        return _mul_factors(expr.left) + _mul_factors(expr.right)
    return [expr]


def _factor_sums(binders, conditions, body, directions: set, keep: set, domains=_SMALL_DOMAINS):
    """Sums pushed into the factors that depend on them: in `sum(B where c) f1 * f2 * ...`, a
    binder `x` of a small domain (range, species, irrep) that only some factors read, none of
    which depends on a direction, becomes an inner sum of those factors (`sum(x where cx) f...`,
    with the conditions that read it), evaluated once per value of the outer loops instead of
    once per direction. In the power spectrum's VJP, `drho[α, m, n1] * sum(b2) c(b2) sum(n2)
    rho[m, n2] C[n1, n2]`: the cotangent is contracted with `rho` before `drho`'s directions.
    A binder that another binder's domain, an equality binding another variable, or a condition
    on `keep` (the target) reads stays where it is."""
    binders, conditions = list(binders), list(conditions)
    names = {b.name for b in binders}
    while isinstance(body, ir.Reduce) and not ({b.name for b in body.binders} & names):
        binders += list(body.binders)
        names |= {b.name for b in body.binders}
        conditions += conjuncts(body.where)
        body = body.body
    factors = _mul_factors(body)
    for binder in reversed(list(binders)):
        x = binder.name
        if not isinstance(binder.domain, domains):
            continue
        if any(x in domain_vars(b.domain) for b in binders if b.name != x):
            continue
        depends = [f for f in factors if x in free_vars(f)]
        if not depends or len(depends) == len(factors):
            continue
        if any(directions & free_vars(f) for f in depends):
            continue
        reading = [c for c in conditions if x in free_vars(c)]
        if any(keep & free_vars(c) for c in reading):
            continue
        if any(_equality_binding(c) for c in reading):
            continue
        where = conjunction(reading)
        product = depends[0]
        for factor in depends[1:]:
            product = ir.Binary("mul", product, factor)
        inner = ir.Reduce((binder,), product, where)
        position = factors.index(depends[0])
        factors = [f for f in factors if not any(f is d for d in depends)]
        factors.insert(min(position, len(factors)), inner)
        binders = [b for b in binders if b.name != x]
        conditions = [c for c in conditions if not any(c is r for r in reading)]
    body = factors[0]
    for factor in factors[1:]:
        body = ir.Binary("mul", body, factor)
    return binders, conditions, body


def _equality_binding(condition) -> bool:
    """Whether a condition is `v == e` with a variable side (the plans bind `v` by it)."""
    return isinstance(condition, ir.Binary) and condition.op == "eq" and (
        isinstance(condition.left, ir.Var) or isinstance(condition.right, ir.Var))


# ---- product kernels: a term contracted with a tangent (JVP) --------------------------------------

def tangent_tensor(wrt: str) -> Tangent:
    """The stand-in kernel whose dense buffer holds the tangent of `wrt`."""
    return Tangent(wrt)


def tangent_kernel(module: ir.Module, wrt: str) -> ir.TensorKernel:
    """A stand-in for the tangent of the positions (`[atom, x]`) or of the cell (`[system, a, x]`,
    the layout of the cell gradient's directions), read by the JVP kernels as a dense grid that
    the runtime fills with the tangent itself (`runtime/gradients/native_products.py`)."""
    systems = module.systems[0].name
    if wrt == "positions":
        indices = (ir.Binder("·ta", ir.AtomsDomain(systems)), ir.Binder("·tx", ir.XyzDomain()))
        samples = (ir.Entry("atom", "atoms", ir.Var("·ta"), systems),)
        components = (ir.Entry("xyz", "value", ir.Var("·tx")),)
    elif wrt == "cell":
        indices = (ir.Binder("·ts", ir.SystemsDomain(systems)), ir.Binder("·ta", ir.XyzDomain()),
                   ir.Binder("·tx", ir.XyzDomain()))
        samples = (ir.Entry("system", "value", ir.Var("·ts")),)
        components = (ir.Entry("abc", "value", ir.Var("·ta")), ir.Entry("xyz", "value", ir.Var("·tx")))
    else:
        raise Unsupported(f"tangents of {wrt}")
    return ir.TensorKernel(tangent_tensor(wrt), indices, (), samples, components, (), ir.Const(0.0), None)


ONE = "·one"


def jvp_kernel(module: ir.Module, kernel: ir.TensorKernel, gradient: GradientKernel, k: int,
               term: Term) -> ir.TensorKernel:
    """Term `k` contracted with the tangent `t` of the positions or the cell: a kernel over the
    kernel's own indices (its dense layout, behind a one-row `·out·` index that makes it a scatter
    kernel: several points of the term add into one entry) whose body sums, over the term's
    binders and the directions,

        coefficient(directions) * t[target, directions]

    the aliased kernel indices bound by their alias (`i == P.first[p]`), the tangent read from
    the dense grid of `tangent_kernel(module, wrt)`; the sum over the directions is pushed into
    the factors that read them (`sum(α) drho[α, m, n1] t[j, α]` once per `(g, m, n1)`). Its
    driver is the term's first pair or atom binder (or gradient row), run on ranges with
    per-thread buffers, like the VJP kernels."""
    lowering = _Lowering(module)
    resolved: dict = {}
    for name, expr in term.aliases:
        resolved[name] = ad.substitute(expr, resolved)
    index_names = {b.name for b in kernel.indices}
    outer = {n: e for n, e in resolved.items() if n not in index_names}
    if ONE in index_names or ONE in {b.name for b in term.binders}:
        raise Unsupported(f"a variable named {ONE}")

    def lowered(expr):
        return lowering.lower(ad.substitute(expr, outer))

    binders = [ir.Binder(b.name, lowering.domain(b.domain)) for b in term.binders]
    binders += [ir.Binder(d, ir.XyzDomain()) for d in gradient.directions]
    # a one-row range in front of the kernel's indices makes it a scatter kernel
    indices = [ir.Binder(ONE, ir.PairsDomain(RowMap(kernel.name, gradient.wrt, k, "jvp")))]
    indices += [ir.Binder(b.name, _substituted_domain(lowering, b.domain, outer)) for b in kernel.indices]
    conditions = [ir.Binary("eq", ir.Var(ONE), ir.Const(0))]
    for condition in (kernel.where, term.where):
        if condition is not None:
            conditions += conjuncts(lowered(condition))
    for b in kernel.indices:  # an aliased index is bound by its alias
        if b.name in resolved:
            conditions.append(ir.Binary("eq", ir.Var(b.name), lowered(resolved[b.name])))
    target = lowered(term.target)
    if set(gradient.directions) & free_vars(target):
        raise Unsupported("a target that depends on a direction")
    order = STORED_ORDER[gradient.wrt]
    stored = [gradient.directions[order.index(axis)] for axis in range(len(gradient.directions))]
    sample = ir.Slot("atoms", target, module.systems[0].name) if gradient.wrt == "positions" else ir.Slot("value", target)
    tangent = ir.BlockRef(tangent_tensor(gradient.wrt), (), (sample,),
                          tuple(ir.Slot("value", ir.Var(d)) for d in stored), ())
    coefficient = lowered(term.coefficient)
    if lowering.is_vector(coefficient):
        raise Unsupported("a vector-valued gradient coefficient")
    body = _into_sums(ir.Binary("mul", coefficient, tangent))
    binders, conditions, body = _factor_sums(binders, conditions, body, set(), {ONE} | index_names,
                                             domains=(ir.XyzDomain,))
    where = conjunction(conditions)
    name = JvpKernel(kernel.name, gradient.wrt, k)
    return ir.TensorKernel(name, tuple(indices), (), (), (), (), ir.Reduce(tuple(binders), body, where), None)


# ---- product kernels through computed tensors (reverse and tangent sweeps) ----------------------

def stand_in_kernel(kernel: ir.TensorKernel, name: str) -> ir.TensorKernel:
    """A stand-in named `name` with `kernel`'s indices and labels, no `where` and a zero body: the
    renderers read it as a dense grid of `kernel`'s layout, which the runtime fills (see
    `cotangent_kernel`)."""
    import dataclasses

    return dataclasses.replace(kernel, name=name, body=ir.Const(0.0), where=None)


def tensor_tangent(kernel: str) -> TensorTangent:
    """The stand-in kernel whose grid holds the tangent of tensor `kernel`."""
    return TensorTangent(kernel)


def _tensor_product_kernel(name, indices, binders, conditions, body, gathered: bool, nothing: str):
    """The product kernel through a computed tensor and whether it gathers: ``body`` summed over
    ``binders`` where every condition holds; with nothing left to sum, a gather kernel of
    ``body`` itself (a scatter with nothing to sum is refused with ``nothing``)."""
    where = conjunction(conditions)
    if not binders:
        if not gathered:
            raise Unsupported(nothing)
        return ir.TensorKernel(name, tuple(indices), (), (), (), (), body, where), True
    return ir.TensorKernel(name, tuple(indices), (), (), (), (), ir.Reduce(tuple(binders), body, where), None), gathered


def _resolved_aliases(term: Term) -> dict:
    resolved: dict = {}
    for name, expr in term.aliases:
        resolved[name] = ad.substitute(expr, resolved)
    return resolved


def _entry_pairs(read: ir.TensorKernel, target: ir.BlockRef, rename: dict) -> list:
    """`(entry of read, in its renamed indices; the accessed value)` for every label the access gives."""
    if not isinstance(target, ir.BlockRef) or target.tensor != read.name:
        raise Unsupported(f"a target that is not an entry of {read.name}")
    keys = {e.label: e for e in read.keys}
    pairs = []
    for label, value in target.keys:
        if label not in keys:
            raise Unsupported(f"a key {label} that {read.name} does not have")
        pairs.append((ad.substitute(keys[label].expr, rename), value))
    for entries, slots in ((read.samples, target.samples), (read.components, target.components),
                           (read.properties, target.properties)):
        if len(entries) != len(slots):
            raise Unsupported(f"an access of {read.name} with {len(slots)} entries where it has {len(entries)}")
        for entry, slot in zip(entries, slots):
            if entry.kind != slot.kind or (entry.kind != "value" and entry.source != slot.source):
                raise Unsupported(f"an access of {read.name} by another kind of label")
            pairs.append((ad.substitute(entry.expr, rename), slot.expr))
    return pairs


def tensor_vjp_kernel(module: ir.Module, kernel: ir.TensorKernel, read: ir.TensorKernel,
                      gradient: GradientKernel, k: int, term: Term) -> tuple[ir.TensorKernel, bool]:
    """Term `k` of `d kernel / d read` (`ad.differentiate_tensor`: its target is the entry of `read`
    the kernel reads) contracted with the cotangent `C` of `kernel`, into the cotangent of `read`:
    a kernel of `read`'s own dense layout (its indices renamed `·u<name>`) whose body sums, over
    the term's binders and the kernel's indices that the target does not fix,

        coefficient * C{kernel's keys}[kernel's samples, components, properties]

    `C` read from the grid of `cotangent_kernel(kernel)`. Each variable that the access names
    plainly where `read` has a plain index (`rho{..., neighbor_type = b1}[i, m, n1]` for the
    indices `b, i, m, n` of rho) *becomes* that index: when every index of `read` is so named, the
    kernel gathers (`rhobar[i, l, b, m, n] = sum(b2, n2) c * rho[i, m, n2] C[i, l, n, n2]`; no
    two points write one entry: returns `(kernel, True)`). Otherwise the other indices are bound
    by equality (`·u == P.second[p]`) behind a one-row `·out·` index, a scatter kernel run with
    per-thread buffers (`(kernel, False)`). The other labels of the access are conditions
    (`S.type[·ui] == S.type[·ui]`), as are the domains of the renamed variables where they differ
    from the index they become."""
    lowering = _Lowering(module)
    resolved = _resolved_aliases(term)
    rename = {b.name: ir.Var(f"·u{b.name}") for b in read.indices}
    target = ad.substitute(term.target, resolved)
    pairs = _entry_pairs(read, target, rename)
    variables = {b.name: b.domain for b in term.binders}
    for binder in kernel.indices:
        if binder.name not in resolved:
            domain = binder.domain
            if isinstance(domain, ir.IrrepDomain):
                domain = ir.IrrepDomain(ad.substitute(domain.degree, resolved), domain.max_degree)
            variables[binder.name] = domain
    if set(variables) & {v.name for v in rename.values()} or ONE in variables:
        raise Unsupported("a variable with a reserved name")
    mapping, bound = {}, set()
    for entry, value in pairs:
        if (isinstance(entry, ir.Var) and isinstance(value, ir.Var) and value.name in variables
                and value.name not in mapping and entry.name not in bound):
            mapping[value.name] = entry
            bound.add(entry.name)
    gathered = bound == {v.name for v in rename.values()}
    u_domains = {rename[b.name].name: ir.IrrepDomain(ad.substitute(b.domain.degree, rename), b.domain.max_degree)
                 if isinstance(b.domain, ir.IrrepDomain) else b.domain for b in read.indices}

    def full(expr):
        return ad.substitute(ad.substitute(expr, resolved), mapping)

    conditions = []
    for entry, value in pairs:
        if isinstance(value, ir.Var) and mapping.get(value.name) == entry:
            continue
        value = lowering.lower(ad.substitute(value, mapping))
        if value != entry:  # `S.type[·ui] == S.type[·ui]` holds
            conditions.append(ir.Binary("eq", entry, value))
    for name, variable in mapping.items():  # the renamed variables' domains
        domain = variables[name]
        if isinstance(domain, ir.IrrepDomain):
            domain = ir.IrrepDomain(ad.substitute(domain.degree, mapping), domain.max_degree)
        if domain == u_domains[variable.name]:
            continue
        condition = ad._domain_condition(ir.Binder(name, domain), ())
        if condition is None:
            raise Unsupported(f"{name} follows an index of {read.name} of another domain")
        conditions += conjuncts(lowering.lower(ad.substitute(condition, mapping)))
    for condition in (kernel.where, term.where):
        if condition is not None:
            conditions += conjuncts(lowering.lower(full(condition)))
    binders = []
    for name, domain in variables.items():
        if name in mapping:
            continue
        binders.append(ir.Binder(name, _substituted_domain(lowering, lowering.domain(domain), mapping)))

    def slot(entry: ir.Entry) -> ir.Slot:
        return ir.Slot(entry.kind, lowering.lower(full(entry.expr)), entry.source)

    cotangent = ir.BlockRef(cotangent_tensor(kernel.name),
                            tuple((e.label, lowering.lower(full(e.expr))) for e in kernel.keys),
                            tuple(map(slot, kernel.samples)), tuple(map(slot, kernel.components)),
                            tuple(map(slot, kernel.properties)))
    coefficient = lowering.lower(ad.substitute(term.coefficient, resolved))
    coefficient = ad.substitute(coefficient, mapping)
    if lowering.is_vector(coefficient):
        raise Unsupported("a vector-valued coefficient")
    indices = [ir.Binder(rename[b.name].name, u_domains[rename[b.name].name]) for b in read.indices]
    conditions += presence_guard(kernel, lambda e: lowering.lower(full(e)),
                                 {**{b.name: b.domain for b in binders}, **u_domains})
    keep = set(u_domains)
    if not gathered:
        indices.insert(0, ir.Binder(ONE, ir.PairsDomain(RowMap(kernel.name, read.name, k, "vjp"))))
        conditions.insert(0, ir.Binary("eq", ir.Var(ONE), ir.Const(0)))
        keep.add(ONE)
    body = _into_sums(ir.Binary("mul", coefficient, cotangent))
    binders, conditions, body = _factor_sums(binders, conditions, body, set(), keep)
    name = VjpKernel(kernel.name, read.name, k)
    return _tensor_product_kernel(name, indices, binders, conditions, body, gathered,
                                  "a scatter into a computed tensor with nothing to sum")


def tensor_jvp_kernel(module: ir.Module, kernel: ir.TensorKernel, gradient: GradientKernel, k: int,
                      term: Term) -> tuple[ir.TensorKernel, bool]:
    """Term `k` of `d kernel / d read` (`ad.differentiate_tensor`) contracted with the tangent of
    `read` (the grid of the stand-in `tensor_tangent(read)`, read at the term's target): a
    kernel of `kernel`'s own layout summing `coefficient * read_dot[target]` over the term's
    binders. When no alias fixes a kernel index it gathers (`(kernel, True)`); else the aliased
    indices are bound by their alias behind a one-row `·out·` index, like `jvp_kernel`."""
    lowering = _Lowering(module)
    resolved = _resolved_aliases(term)
    target = ad.substitute(term.target, resolved)
    if not isinstance(target, ir.BlockRef):
        raise Unsupported("a target that is not an entry of a computed tensor")
    index_names = {b.name for b in kernel.indices}
    outer = {n: e for n, e in resolved.items() if n not in index_names}
    if ONE in index_names or ONE in {b.name for b in term.binders}:
        raise Unsupported(f"a variable named {ONE}")
    gathered = not (set(resolved) & index_names)

    def lowered(expr):
        return lowering.lower(ad.substitute(expr, outer))

    def slot(s: ir.Slot) -> ir.Slot:
        return ir.Slot(s.kind, lowered(s.expr), s.source)

    tangent = ir.BlockRef(tensor_tangent(target.tensor), tuple((label, lowered(v)) for label, v in term.target.keys),
                          tuple(map(slot, term.target.samples)), tuple(map(slot, term.target.components)),
                          tuple(map(slot, term.target.properties)))
    binders = [ir.Binder(b.name, lowering.domain(b.domain)) for b in term.binders]
    indices = [ir.Binder(b.name, _substituted_domain(lowering, b.domain, outer)) for b in kernel.indices]
    conditions = []
    if not gathered:
        indices.insert(0, ir.Binder(ONE, ir.PairsDomain(RowMap(kernel.name, target.tensor, k, "jvp"))))
        conditions.append(ir.Binary("eq", ir.Var(ONE), ir.Const(0)))
        for b in kernel.indices:
            if b.name in resolved:
                conditions.append(ir.Binary("eq", ir.Var(b.name), lowered(resolved[b.name])))
    for condition in (kernel.where, term.where):
        if condition is not None:
            conditions += conjuncts(lowered(condition))
    coefficient = lowered(term.coefficient)
    if lowering.is_vector(coefficient):
        raise Unsupported("a vector-valued coefficient")
    body = _into_sums(ir.Binary("mul", coefficient, tangent))
    binders, conditions, body = _factor_sums(binders, conditions, body, set(), {ONE} | index_names)
    name = JvpKernel(kernel.name, target.tensor, k)
    return _tensor_product_kernel(name, indices, binders, conditions, body, gathered, "a scatter with nothing to sum")


# ---- the sweep of one tensor: its own terms' products and the products through the tensors it reads --


def gradient_reads(gradient: GradientKernel) -> list[str]:
    """The tensors whose gradient rows the terms of `gradient` sum over (`GradRows` binders)."""
    found = []
    for term in gradient.terms:
        for binder in term.binders:
            if isinstance(binder.domain, GradRows) and binder.domain.tensor not in found:
                found.append(binder.domain.tensor)
    return found


def sweep_kernels(module: ir.Module, kernels: dict, tensor: str, gradients: dict):
    """The product kernels of `tensor` in a sweep through the computed tensors it reads
    (`runtime/gradients/native_products.py`, which chooses the sweeps), for its gradients `{wrt:
    GradientKernel}`: `(kernels, stand-ins, {"direct_vjp", "direct_jvp", "read_vjp", "read_jvp"})`,
    the VJP / JVP kernels of its terms that read no gradient rows (by `(tensor, wrt)`), and for
    each tensor read, the kernels turning `tensor`'s cotangent into the read tensor's and the read
    tensor's tangent into `tensor`'s (`(read, kernel name, gathered)`). Raises `Unsupported` when
    a kernel does not lower."""
    made, stand_ins = [], [cotangent_kernel(kernels[tensor])]
    found = {"direct_vjp": {}, "direct_jvp": {}, "read_vjp": [], "read_jvp": []}
    reads = []
    for wrt, gradient in gradients.items():
        reads += [t for t in gradient_reads(gradient) if t not in reads]
        vjps, jvps = [], []
        for k, term in enumerate(gradient.terms):
            if any(isinstance(b.domain, GradRows) for b in term.binders):
                continue  # through the cotangent / tangent of the tensor read
            vjps.append(vjp_kernel(module, kernels[tensor], gradient, k, term))
            jvps.append(jvp_kernel(module, kernels[tensor], gradient, k, term))
        made += vjps + jvps
        found["direct_vjp"][(tensor, wrt)] = [k.name for k in vjps]
        found["direct_jvp"][(tensor, wrt)] = [k.name for k in jvps]
    for read in reads:
        partial = ad.differentiate_tensor(module, tensor, read)
        if partial is None:
            raise Unsupported(f"{tensor} reads the gradient of {read} but not its entries")
        stand_ins.append(stand_in_kernel(kernels[read], tensor_tangent(read)))
        for k, term in enumerate(partial.terms):
            kernel, gathered = tensor_vjp_kernel(module, kernels[tensor], kernels[read], partial, k, term)
            found["read_vjp"].append((read, kernel.name, gathered))
            made.append(kernel)
            kernel, gathered = tensor_jvp_kernel(module, kernels[tensor], partial, k, term)
            found["read_jvp"].append((read, kernel.name, gathered))
            made.append(kernel)
    return made, stand_ins, found
