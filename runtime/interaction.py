"""How far an output can depend on other atoms: `interaction_range(module)`.

A short-range model's energy is a sum of per-atom terms, each a function of the atoms within
some distance of its atom: that distance is the model's interaction range, what an engine needs
to know how many ghost atoms a domain of a decomposed system must carry (metatomic's
`ModelCapabilities.interaction_range`, the distributed runner's halo).

It is derived from the IR, kernel by kernel in dependency order. Every atom or pair an
expression names is at a known distance from the kernel's *anchor* (its atom, the first atom of
its pair, or for a kernel over systems the atom of the per-atom term being summed):

- a kernel index over atoms or pairs is the anchor (distance 0);
- `p in P.from(x)` is a pair whose first atom is `x`: `P.second[p]`, `P.vector[p]` and
  `P.distance[p]` reach `distance(x) + cutoff(P)`;
- reading a computed tensor at an atom (or pair) at distance d reaches d plus that tensor's own
  range: chains of pair hops add their cutoffs (a model reading its neighbours' neighbourhoods
  has twice the cutoff);
- a sum over all the atoms (or pairs) of a system starts the per-atom terms of a kernel over
  systems (the anchor of each term); anywhere else, and reading a per-system tensor from a
  kernel over atoms or pairs, it reaches the whole system: the range is infinite (`math.inf`);
- an atom named by a constant or a range / species variable is anywhere: infinite;
- `j in atoms(S) where j == x` is the atom `x` itself (featomic's central-atom term).

Input tensormaps are given data (range 0); params and cell reach no atom. The model's range is
the largest of its outputs'.
"""

from __future__ import annotations

import math

from mtdsl.ir import nodes as ir
from mtdsl.ir.walk import children

#: the data fields of a pairs source that reach its second atom
_SECOND_ATOM_FIELDS = ("second", "vector", "distance")


def interaction_range(module: ir.Module) -> float:
    """The furthest distance (length unit of the positions) from which an atom can change the
    contribution of one atom to the module's outputs: cutoffs summed along the longest chain of
    pair hops; `math.inf` when an output depends on a whole system (module docstring)."""
    ranges = kernel_ranges(module)
    return max((ranges.get(output.name, 0.0) for output in module.outputs), default=0.0)


def kernel_ranges(module: ir.Module) -> dict[str, float]:
    """`{tensor: range}` of every kernel of `module` (input tensormaps: 0)."""
    cutoffs = {pairs.name: float(pairs.cutoff) for pairs in module.pairs}
    ranges: dict[str, float] = {tensor.name: 0.0 for tensor in module.tensormaps}
    per_system: set[str] = set()
    for kernel in module.kernels:
        walk = _Reach(cutoffs, ranges, per_system)
        ranges[kernel.name] = walk.kernel(kernel)
        if walk.system_anchored:
            per_system.add(kernel.name)
    return ranges


class _Reach:
    """One kernel's walk: `distances` of the atom / pair variables in scope, `reach` the furthest
    atom read so far."""

    def __init__(self, cutoffs: dict, ranges: dict, per_system: set):
        self.cutoffs = cutoffs
        self.ranges = ranges
        self.per_system = per_system
        self.distances: dict[str, float] = {}
        self.reach = 0.0
        self.system_anchored = False
        self.anchor_free = False  # a sum over a system's atoms may still start the per-atom terms

    def kernel(self, kernel: ir.TensorKernel) -> float:
        entities = [b for b in kernel.indices if isinstance(b.domain, (ir.AtomsDomain, ir.PairsDomain))]
        self.system_anchored = not entities
        self.anchor_free = self.system_anchored
        anchor = _anchor(kernel, entities)
        for binder in kernel.indices:
            if isinstance(binder.domain, (ir.AtomsDomain, ir.PairsDomain)):
                # the sample's atom or pair is the anchor; another free atom index is anywhere
                self.distances[binder.name] = 0.0 if binder.name == anchor else math.inf
            else:
                self._domain(binder.domain)
        for entry in kernel.keys + kernel.samples + kernel.components + kernel.properties:
            self._expression(entry.expr)
        self._expression(kernel.where)
        self._expression(kernel.body)
        return self.reach

    def _read(self, distance: float) -> None:
        self.reach = max(self.reach, distance)

    def _domain(self, domain) -> None:
        if isinstance(domain, ir.PairsFrom):
            self._expression(domain.atom)
        elif isinstance(domain, ir.IrrepDomain):
            self._expression(domain.degree)

    def _bind(self, binder: ir.Binder) -> None:
        domain = binder.domain
        if isinstance(domain, ir.PairsFrom):
            self._expression(domain.atom)
            self.distances[binder.name] = self._atom(domain.atom)
        elif isinstance(domain, (ir.AtomsDomain, ir.PairsDomain)):
            # all the atoms / pairs of a system: the per-atom terms of a kernel over systems,
            # else (or nested in such a sum) the whole system
            distance = 0.0 if self.anchor_free else math.inf
            self.anchor_free = False
            self.distances[binder.name] = distance
            self._read(distance)
        else:
            self._domain(domain)

    def _atom(self, expr) -> float:
        """The distance from the anchor of the atom (or a pair's first atom) `expr` names."""
        if isinstance(expr, ir.Var):
            return self.distances.get(expr.name, math.inf)
        if isinstance(expr, ir.Data) and expr.source in self.cutoffs and expr.index:
            pair = self._atom(expr.index[0])
            if expr.field == "first":
                return pair
            if expr.field == "second":
                return pair + self.cutoffs[expr.source]
        return math.inf

    def _expression(self, expr) -> None:
        if expr is None or isinstance(expr, (ir.Const, ir.Var)):
            return
        if isinstance(expr, ir.Reduce):
            saved = (dict(self.distances), self.anchor_free)
            equal = _equalities(expr.where)
            for binder in expr.binders:
                if isinstance(binder.domain, ir.AtomsDomain) and binder.name in equal:
                    # `j in atoms(S) where j == x`: the atom x itself, not a sum over the system
                    self.distances[binder.name] = self._atom(equal[binder.name])
                    continue
                self._bind(binder)
            self._expression(expr.where)
            self._expression(expr.body)
            self.distances, self.anchor_free = saved
            return
        if isinstance(expr, ir.Data):
            self._data(expr)
        elif isinstance(expr, ir.BlockRef):
            self._block(expr)
        for child in children(expr):
            self._expression(child)

    def _data(self, expr: ir.Data) -> None:
        if not expr.index:
            return
        if expr.source in self.cutoffs:
            pair = self._atom(expr.index[0])
            self._read(pair + self.cutoffs[expr.source] if expr.field in _SECOND_ATOM_FIELDS else pair)
        elif expr.field in ("positions", "type", "system"):
            self._read(self._atom(expr.index[0]))
        # cell, pbc: properties of the system, no atom

    def _block(self, expr: ir.BlockRef) -> None:
        own = self.ranges.get(expr.tensor, math.inf)
        entities = [slot for slot in expr.samples if slot.kind in ("atoms", "pairs")]
        if entities:
            self._read(self._atom(entities[0].expr) + own)
            for slot in entities[1:]:
                self._read(self._atom(slot.expr))
        elif expr.tensor in self.per_system:
            # a per-system value: its per-atom terms' range within a kernel over systems,
            # the whole system seen from one atom
            self._read(own if self.system_anchored else math.inf)
        else:
            self._read(own)


def _equalities(where) -> dict:
    """`{variable: expression}` of the conjuncts `variable == expression` of a `where`."""
    found: dict = {}
    if isinstance(where, ir.Binary) and where.op == "and":
        found.update(_equalities(where.left))
        found.update(_equalities(where.right))
    elif isinstance(where, ir.Binary) and where.op == "eq":
        for this, other in ((where.left, where.right), (where.right, where.left)):
            if isinstance(this, ir.Var) and not (isinstance(other, ir.Var) and other.name == this.name):
                found.setdefault(this.name, other)
    return found


def _anchor(kernel: ir.TensorKernel, entities: list) -> str | None:
    """The index variable of the kernel's first atom / pair sample entry, else its first atom or
    pair index."""
    names = {b.name for b in entities}
    for entry in kernel.samples:
        if entry.kind in ("atoms", "pairs") and isinstance(entry.expr, ir.Var) and entry.expr.name in names:
            return entry.expr.name
    return entities[0].name if entities else None
