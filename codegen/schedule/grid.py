"""Direct grid access: a block access read from the dense buffer of a tensor computed earlier.

`solve_grid_access(expr, source)` decides, from the IR alone, whether the access
`expr` names exactly one grid point of `source` (a kernel of the module with no
`where`, whose dense buffer the runtime passes as `("grid", tensor)`): the
tensor's entries must be plain index variables (samples, components,
properties, keys) or, for keys, expressions of other entries' indices
(`center_type = S.type[i]`); then the access solves each grid coordinate from
its keys and slots. The point exists when every coordinate is in its domain,
irreps satisfy `|m| <= l`, and the derived and constant keys the access binds
equal the tensor's at that point (`GridAccess.checks`); otherwise the read is
missing (error bit 1: the interpreter then reports it).

`proven_coordinate(...)` says when a solved coordinate is a loop variable of the
accessing kernel that ranges inside the tensor's domain: its buffer position is
then the loop's, and it needs no in-grid test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from mtdsl.ir import nodes as ir

from .plan import free_vars


@dataclass(frozen=True)
class GridAccess:
    indices: dict  # the tensor's index name -> its domain
    solved: dict  # the tensor's index name -> the access's expression for it
    checks: tuple  # (tensor's key expression, access's value) pairs that must be equal

    def scope_domains(self, domains: dict) -> dict:
        """The accessing kernel's `domains` with the tensor's indices bound to their solved values:
        what is known of each is what is known of the expression that gave it (a loop variable's
        domain), else nothing."""
        scope = {name: domain for name, domain in domains.items() if name not in self.solved}
        for name, given in self.solved.items():
            if isinstance(given, ir.Var) and given.name in domains:
                scope[name] = domains[given.name]
        return scope


def solve_grid_access(expr: ir.BlockRef, source: ir.TensorKernel) -> Optional[GridAccess]:
    """The grid point of `source` that `expr` reads, or None when the access cannot name one."""
    indices = {b.name: b.domain for b in source.indices}
    solved: dict = {}

    def solve(entry, slot) -> bool:
        same = (entry.kind, entry.source) == (slot.kind, slot.source) or (
            entry.kind == "value" and slot.kind == "systems")  # a systems index is a plain value label
        if not same:
            return False
        if not (isinstance(entry.expr, ir.Var) and entry.expr.name in indices) or entry.expr.name in solved:
            return False
        solved[entry.expr.name] = slot.expr
        return True

    if len(expr.samples) != len(source.samples) or len(expr.components) != len(source.components) \
            or len(expr.properties) != len(source.properties):
        return None
    for entries, slots in ((source.samples, expr.samples), (source.components, expr.components),
                           (source.properties, expr.properties)):
        for entry, slot in zip(entries, slots):
            if not solve(entry, slot):
                return None
    bound = dict(expr.keys)
    if len(bound) != len(expr.keys) or any(label not in {e.label for e in source.keys} for label in bound):
        return None
    checks = []
    for entry in source.keys:
        if entry.kind != "value":
            return None
        if isinstance(entry.expr, ir.Var) and entry.expr.name in indices and entry.expr.name not in solved:
            if entry.label not in bound:
                return None
            solved[entry.expr.name] = bound[entry.label]
        elif entry.label in bound:
            checks.append((entry.expr, bound[entry.label]))
        elif free_vars(entry.expr) and not isinstance(entry.expr, ir.Var):
            return None  # a derived key the access leaves unbound: several blocks may match
    if set(solved) != set(indices):
        return None
    for entry_expr, _ in checks:
        if not free_vars(entry_expr) <= set(indices):
            return None
    return GridAccess(indices, solved, tuple(checks))


def proven_coordinate(domain, given, solved: dict, bound, domains: dict) -> Optional[str]:
    """The name of the loop variable `given` of the accessing kernel (bound in `bound`, of domain
    `domains[name]`) when it provably ranges inside the tensor's `domain`, else None."""
    if not (isinstance(given, ir.Var) and given.name in bound and given.name in domains):
        return None
    mine = domains[given.name]
    if isinstance(domain, ir.RangeDomain) and isinstance(mine, ir.RangeDomain):
        if domain.start == mine.start and mine.stop <= domain.stop:
            return given.name
    elif isinstance(domain, (ir.SpeciesDomain, ir.AtomsDomain, ir.SystemsDomain, ir.PairsDomain, ir.XyzDomain)):
        if domain == mine:  # a species: its rank in the same sorted list
            return given.name
    elif isinstance(domain, ir.IrrepDomain) and isinstance(mine, ir.IrrepDomain):
        # m of the tensor over irrep(d), d read at the solved point; ours over irrep(e) with d = e
        degree = domain.degree
        if (isinstance(degree, ir.Var) and solved.get(degree.name) == mine.degree
                and mine.max_degree == domain.max_degree):
            return given.name
    return None
