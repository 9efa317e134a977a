"""Which kernels are computed in one pass: a tensor's values and the terms of its gradient.

The scatter kernels of a gradient (`mtdsl/ir/passes/terms.py`) loop over the same pairs as the values'
kernel and evaluate the same pair tables (`sph`, the radial splines, the cutoff) and their
derivatives; the terms of a product (`sum_m drho1 * rho2 + rho1 * drho2`) loop over the same
rows of the gradient they read. `fused_kernels` makes, for each tensor and each gradient:

- a *values* fused kernel: the values' kernel with the scatter kernels that can start with its
  loops up to its pass over pairs (terms that read another gradient cannot: it does not exist
  yet during the values' pass), one per gradient and one with the terms of all of them
  (positions and strain: forces and stress); the runtime runs the one of the most gradients
  asked instead of the values' kernel (`runtime/native/compiled.py: _run_fused`);
- *terms* fused kernels: the other scatter kernels of the gradient, grouped by the domain of
  their driver (the rows of `drho`), each member's driver renamed to the first's; the runtime
  runs one instead of its members (`runtime/gradients/forward.py`).

`plan.plan_fused` decides, member by member, whether a kernel can join; the members stay in the
module as kernels of their own, for the runs where the fused kernel does not apply.
"""

from __future__ import annotations

import dataclasses

from mtdsl.ir.passes import autodiff as ad
from mtdsl.ir.walk import children, free_vars
from mtdsl.ir import nodes as ir
from mtdsl.ir.roles import FusedName, GradientBlocks, GradientRows, GradientValues

from . import plan as planning
from .plan import Unsupported

def fused_name(kernel: str, wrt: str, group: str = "") -> FusedName:
    return FusedName(kernel, wrt, group)


_GRADIENT_SOURCES = (GradientRows, GradientValues)  # mtdsl/ir/passes/terms.py: another gradient's rows and values


def _reads_gradients(kernel: ir.TensorKernel) -> bool:
    """Whether a scatter kernel reads the rows or values of another gradient (their role types)."""

    def reads(expr) -> bool:
        if expr is None:
            return False
        if isinstance(expr, ir.Data) and isinstance(expr.source, _GRADIENT_SOURCES):
            return True
        if isinstance(expr, ir.BlockRef) and isinstance(expr.tensor, GradientBlocks):
            return True
        if isinstance(expr, ir.Reduce):
            return (any(_domain_reads(b.domain, reads) for b in expr.binders)
                    or reads(expr.body) or reads(expr.where))
        return any(reads(child) for child in children(expr))

    return (any(_domain_reads(b.domain, reads) for b in kernel.indices)
            or reads(kernel.body) or reads(kernel.where))


def _domain_reads(domain, reads) -> bool:
    if isinstance(domain, ir.PairsDomain):
        return isinstance(domain.pairs, _GRADIENT_SOURCES)
    if isinstance(domain, ir.PairsFrom):
        return reads(domain.atom)
    if isinstance(domain, ir.IrrepDomain):
        return reads(domain.degree)
    return False


def rename_driver(kernel: ir.TensorKernel, old: str, new: str) -> ir.TensorKernel:
    """`kernel` with the binder `old` of its sum named `new` (`Unsupported` when `new` is taken)."""
    body = kernel.body
    if old == new:
        return kernel
    names = {b.name for b in kernel.indices} | free_vars(body)
    if not isinstance(body, ir.Reduce) or old not in {b.name for b in body.binders}:
        raise Unsupported(f"{old} is not a binder of {kernel.name}'s sum")
    if new in names or new in {b.name for b in body.binders} or _binds(body.body, new):
        raise Unsupported(f"{new} is already a variable of {kernel.name}")
    mapping = {old: ir.Var(new)}
    binders = []
    for binder in body.binders:
        domain = binder.domain
        if isinstance(domain, ir.PairsFrom):
            domain = ir.PairsFrom(domain.pairs, ad.substitute(domain.atom, mapping))
        elif isinstance(domain, ir.IrrepDomain):
            domain = ir.IrrepDomain(ad.substitute(domain.degree, mapping), domain.max_degree)
        binders.append(ir.Binder(new if binder.name == old else binder.name, domain))
    renamed = ir.Reduce(tuple(binders), ad.substitute(body.body, mapping), ad.substitute(body.where, mapping))
    return dataclasses.replace(kernel, body=renamed)


def _binds(expr, name: str) -> bool:
    """Whether an inner sum of `expr` binds `name`."""
    if expr is None:
        return False
    if isinstance(expr, ir.Reduce):
        return name in {b.name for b in expr.binders} or _binds(expr.body, name) or _binds(expr.where, name)
    return any(_binds(child, name) for child in children(expr))


def fused_kernels(module: ir.Module, scatters: dict) -> tuple[tuple[ir.FusedKernel, ...], dict, dict]:
    """The fused kernels of `module` (which holds the scatter kernels `scatters`:
    `{(kernel, wrt, k): ScatterTerm}`), then the values' fused kernels of each kernel, for one
    gradient and for all the gradients that have one: `{(kernel, (wrt, ...)): (fused name,
    term keys)}`, and the terms' fused kernels of each gradient:
    `{(kernel, wrt): [(fused name, term keys, each term's own name of the driver), ...]}`."""
    kernels = {k.name: k for k in module.kernels}
    pair_systems = {p.name: p.systems for p in module.pairs}
    by_gradient: dict = {}
    for key in scatters:
        by_gradient.setdefault(key[:2], []).append(key)
    fused, with_values, terms = [], {}, {}
    joined: dict = {}  # tensor -> {wrt: the terms that join its values' pass}
    for (name, wrt), keys in by_gradient.items():
        values = kernels.get(name)
        if values is None:
            continue
        chosen = _joining(values, sorted(keys), scatters, kernels, pair_systems)
        if chosen:
            kernel = ir.FusedKernel(fused_name(name, wrt), (values,) + tuple(kernels[scatters[k].name] for k in chosen))
            fused.append(kernel)
            with_values[(name, (wrt,))] = (kernel.name, tuple(chosen))
            joined.setdefault(name, {})[wrt] = chosen
        groups = _term_groups([k for k in sorted(keys) if k not in chosen], scatters, kernels, pair_systems)
        for number, group in enumerate(groups):
            kernel = ir.FusedKernel(fused_name(name, wrt, f"terms{number}"), tuple(member for _, member, _ in group))
            fused.append(kernel)
            terms.setdefault((name, wrt), []).append(
                (kernel.name, tuple(key for key, _, _ in group), tuple(var for _, _, var in group)))
    # the values with the terms of every declared gradient (forces and stress in one pass)
    for name, by_wrt in joined.items():
        if len(by_wrt) > 1:
            wrts = tuple(sorted(by_wrt))
            chosen = tuple(key for wrt in wrts for key in by_wrt[wrt])
            kernel = ir.FusedKernel(fused_name(name, "+".join(wrts)),
                                    (kernels[name],) + tuple(kernels[scatters[k].name] for k in chosen))
            fused.append(kernel)
            with_values[(name, wrts)] = (kernel.name, chosen)
    return tuple(fused), with_values, terms


def _joining(values: ir.TensorKernel, keys, scatters: dict, kernels: dict, pair_systems: dict) -> list:
    """The terms among `keys` whose scatter kernels can join the pass over pairs of `values`."""
    chosen = []
    for key in keys:
        scatter = kernels[scatters[key].name]
        if _reads_gradients(scatter):
            continue
        try:
            planning.plan_fused(ir.FusedKernel("trial", (values, scatter)), pair_systems)
        except Unsupported:
            continue
        chosen.append(key)
    return chosen


def _term_groups(keys, scatters: dict, kernels: dict, pair_systems: dict) -> list:
    """Groups of two or more scatter kernels whose drivers run over one domain, as
    `[(key, member kernel, the kernel's own name of its driver)]`, each member's driver named as
    the first's."""
    by_driver: dict = {}
    for key in keys:
        kernel = kernels[scatters[key].name]
        try:
            plan = planning.plan_kernel(kernel)
        except Unsupported:
            continue
        if not plan.loops or plan.loops[0].kind != "domain" or not plan.parallel or plan.loops[0].is_index:
            continue
        by_driver.setdefault(plan.loops[0].domain, []).append((key, kernel, plan.loops[0].var))
    groups = []
    for found in by_driver.values():
        if len(found) < 2:
            continue
        driver = found[0][2]
        group = [found[0]]
        for key, kernel, var in found[1:]:
            try:
                member = rename_driver(kernel, var, driver)
                planning.plan_fused(ir.FusedKernel("trial", (group[0][1], member)), pair_systems)
            except Unsupported:
                continue
            group.append((key, member, var))
        if len(group) > 1:
            groups.append(group)
    return groups


def fused_group(name: str, kernels, pair_systems: dict):
    """`kernels` (two or more) as one fused kernel named `name`, the first that can lead them
    (`plan.plan_fused`) first; None when no order fuses them all (the product kernels of
    `runtime/gradients/native_products.py`: the expansion's two VJP terms over the same pairs)."""
    kernels = list(kernels)
    if len(kernels) < 2:
        return None
    for k, first in enumerate(kernels):
        fused = ir.FusedKernel(name, (first,) + tuple(kernels[:k] + kernels[k + 1:]))
        try:
            planning.plan_fused(fused, pair_systems)
        except Unsupported:
            continue
        return fused
    return None
