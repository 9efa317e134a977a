"""The loop IR: the one contract between the front end and every backend.

A `Module` is a list of `TensorKernel`s in dependency order. Each kernel says:
for every assignment of its index variables (each ranging over a `Domain`) that
satisfies `where`, evaluate `body`; the `keys` entries pick the block, the
`samples`, `components` and `properties` entries the position. Expressions are
plain trees; reductions (`Reduce`) carry their own binders, and a binder over
`PairsFrom(pairs, atom)` is the sparse CSR driver: the pairs whose first atom is
`atom`, a segment of the sorted neighbour list, never a scan.

Everything is a frozen, slotted dataclass of Python scalars and tuples: no Lark
object, no array, no backend type. Hypers are already folded into constants.
`print(module)` gives the text form (`mtdsl compile --emit ir`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

# ---- domains ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RangeDomain:
    """Integers `start .. stop - 1` of the nominal dimension `dim`."""

    dim: str
    start: int
    stop: int

    def __str__(self):
        return f"range[{self.dim}]({self.start}, {self.stop})"


@dataclass(frozen=True, slots=True)
class SpeciesDomain:
    """Atomic numbers: `fixed` when given at compile time, else those present at run time."""

    systems: str
    fixed: Optional[tuple[int, ...]] = None

    def __str__(self):
        return f"species({self.systems}{', fixed=' + str(list(self.fixed)) if self.fixed else ''})"


@dataclass(frozen=True, slots=True)
class AtomsDomain:
    """Atoms of the batch (global index); labelled `system, atom`."""

    systems: str

    def __str__(self):
        return f"atoms({self.systems})"


@dataclass(frozen=True, slots=True)
class SystemsDomain:
    systems: str

    def __str__(self):
        return f"systems({self.systems})"


@dataclass(frozen=True, slots=True)
class PairsDomain:
    """All pairs of a neighbour list; labelled `system, first_atom, second_atom, cell_shift_a/b/c`."""

    pairs: str

    def __str__(self):
        return f"pairs({self.pairs})"


@dataclass(frozen=True, slots=True)
class PairsFrom:
    """The pairs of `pairs` whose first atom is `atom` (only as a reduction binder)."""

    pairs: str
    atom: "Expr"

    def __str__(self):
        return f"{self.pairs}.from({self.atom})"


@dataclass(frozen=True, slots=True)
class IrrepDomain:
    """`-degree .. degree`; `degree` is an expression of other indices, at most `max_degree`."""

    degree: "Expr"
    max_degree: int

    def __str__(self):
        return f"irrep({self.degree}; max {self.max_degree})"


@dataclass(frozen=True, slots=True)
class XyzDomain:
    def __str__(self):
        return "xyz"


Domain = Union[RangeDomain, SpeciesDomain, AtomsDomain, SystemsDomain, PairsDomain, PairsFrom, IrrepDomain, XyzDomain]


# ---- expressions ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Const:
    value: Union[int, float, bool]

    def __str__(self):
        return repr(self.value)


@dataclass(frozen=True, slots=True)
class Var:
    """The value of an index variable (an atomic number for species, `m` for irreps...)."""

    name: str

    def __str__(self):
        return self.name


@dataclass(frozen=True, slots=True)
class Data:
    """Built-in data of systems (`S.type[i]`) or pairs (`P.vector[p]`).

    Fields: systems `positions` (vector), `type`, `system`, `cell` (3x3), `pbc`;
    pairs `first`, `second` (atoms), `vector` (vector), `distance`.
    A vector field read without an xyz index is vector-valued.
    """

    source: str
    field: str
    index: tuple["Expr", ...]

    def __str__(self):
        return f"{self.source}.{self.field}[{', '.join(map(str, self.index))}]"


@dataclass(frozen=True, slots=True)
class ParamRef:
    """A learnable parameter; `index[k]` is a value of the k-th slot's domain."""

    name: str
    index: tuple["Expr", ...]

    def __str__(self):
        return f"param {self.name}[{', '.join(map(str, self.index))}]"


@dataclass(frozen=True, slots=True)
class Slot:
    """One position of a block access: `kind` is "atoms", "pairs", "systems" or "value".

    An atoms slot covers the `system, atom` sample labels of the atom `expr`
    (a batch index of the systems input `source`), a pairs slot the six pair
    labels of the pair `expr` of the neighbour list `source`.
    """

    kind: str
    expr: "Expr"
    source: str = ""

    def __str__(self):
        return str(self.expr) if self.kind == "value" else f"{self.kind}({self.source}):{self.expr}"


@dataclass(frozen=True, slots=True)
class BlockRef:
    """`T{label = expr, ...}[samples..., components..., properties...]`.

    `keys` binds every key label (constants included); each slot is matched by
    value against the block's labels, so a missing key or sample is an error.
    """

    tensor: str
    keys: tuple[tuple[str, "Expr"], ...]
    samples: tuple[Slot, ...]
    components: tuple[Slot, ...]
    properties: tuple[Slot, ...]

    def __str__(self):
        keys = ", ".join(f"{k} = {v}" for k, v in self.keys)
        slots = ", ".join(map(str, self.samples + self.components + self.properties))
        return f"{self.tensor}{{{keys}}}[{slots}]"


UNARY_OPS = ("neg", "not")
BINARY_OPS = ("add", "sub", "mul", "div", "mod", "pow", "eq", "ne", "lt", "le", "gt", "ge", "and", "or")
#: the Cartesian axis (0, 1, 2 = x, y, z) of each `m = -1, 0, 1` of irrep 1, per `sph` convention
IRREP1_AXES = {"metatensor": (1, 2, 0), "e3nn": (0, 1, 2)}


def irrep1_axis(m: "Expr", convention: str) -> "Expr":
    """The Cartesian axis of component `m` of irrep 1, as an integer expression of `m`
    (metatensor: `m = -1, 0, 1` are `y, z, x`; e3nn: `x, y, z`)."""
    if convention == "e3nn":
        return Binary("add", m, Const(1))
    return Binary("mod", Binary("add", m, Const(2)), Const(3))


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: "Expr"

    def __str__(self):
        return f"(-{self.operand})" if self.op == "neg" else f"(not {self.operand})"


_SYMBOLS = {
    "add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%", "pow": "^",
    "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "and": "and", "or": "or",
}


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: "Expr"
    right: "Expr"

    def __str__(self):
        return f"({self.left} {_SYMBOLS[self.op]} {self.right})"


@dataclass(frozen=True, slots=True)
class Select:
    condition: "Expr"
    if_true: "Expr"
    if_false: "Expr"

    def __str__(self):
        return f"({self.condition} ? {self.if_true} : {self.if_false})"


@dataclass(frozen=True, slots=True)
class Call:
    """A built-in function; `options` are its compile-time keyword arguments (floats, ints)."""

    function: str
    args: tuple["Expr", ...]
    options: tuple[tuple[str, Union[int, float]], ...] = ()

    def option(self, name: str, default=None):
        return dict(self.options).get(name, default)

    def __str__(self):
        args = [str(a) for a in self.args] + [f"{k} = {v!r}" for k, v in self.options]
        return f"{self.function}({', '.join(args)})"


@dataclass(frozen=True, slots=True)
class Binder:
    """An index variable and the domain it ranges over."""

    name: str
    domain: Domain

    def __str__(self):
        return f"{self.name} in {self.domain}"


@dataclass(frozen=True, slots=True)
class Reduce:
    """Sum of `body` over every assignment of `binders` satisfying `where`."""

    binders: tuple[Binder, ...]
    body: "Expr"
    where: Optional["Expr"] = None

    def __str__(self):
        where = f" where {self.where}" if self.where is not None else ""
        return f"sum({', '.join(map(str, self.binders))}{where}) {self.body}"


Expr = Union[Const, Var, Data, ParamRef, BlockRef, Unary, Binary, Select, Call, Reduce]


# ---- statements -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """A label column group of a signature: kind "atoms" (labels `system, atom` of the
    atoms of systems `source`) and "pairs" (the six pair labels of the neighbour list
    `source`) expand to their standard labels; "value" is one column named `label`."""

    label: str
    kind: str
    expr: Expr
    source: str = ""

    def __str__(self):
        return f"{self.label} = {self.expr}" if self.kind == "value" else f"{self.kind}({self.source}):{self.expr}"


@dataclass(frozen=True, slots=True)
class TensorKernel:
    name: str
    indices: tuple[Binder, ...]
    keys: tuple[Entry, ...]
    samples: tuple[Entry, ...]
    components: tuple[Entry, ...]
    properties: tuple[Entry, ...]
    body: Expr
    where: Optional[Expr] = None

    def __str__(self):
        def entries(name, group):
            return f"    {name} ({', '.join(map(str, group))})"

        lines = [f"tensor {self.name}"]
        lines += [f"    index {b}" for b in self.indices]
        lines += [entries("keys", self.keys), entries("samples", self.samples),
                  entries("components", self.components), entries("properties", self.properties)]
        if self.where is not None:
            lines.append(f"    where {self.where}")
        lines.append(f"  = {self.body}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class SystemsInput:
    name: str


@dataclass(frozen=True, slots=True)
class TensorMapInput:
    """An input TensorMap: the label names its blocks must have."""

    name: str
    keys: tuple[str, ...]
    samples: tuple[str, ...]
    components: tuple[str, ...]
    properties: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PairsDecl:
    name: str
    systems: str
    cutoff: float
    full: bool = True


@dataclass(frozen=True, slots=True)
class ParamDecl:
    """A learnable parameter of shape given by its slots' domains; `init` e.g. ("normal", (0.0, 1.0))."""

    name: str
    domains: tuple[Domain, ...]
    init: tuple[str, tuple[float, ...]]


@dataclass(frozen=True, slots=True)
class Output:
    name: str
    gradients: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FusedKernel:
    """Kernels computed in one loop nest (`codegen/schedule/plan.py: plan_fused`): the first kernel's outer
    loops (up to its pass over pairs, else its driver) are entered once, and every kernel adds
    into its own buffer inside them (the values of a tensor and the terms of its gradient: one
    evaluation of the pair's tables for all). The members are kernels of the module, their
    driver binder possibly renamed to the first one's."""

    name: str
    kernels: tuple[TensorKernel, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.kernels)

    def __str__(self):
        return f"fused {self.name} = ({', '.join(self.names)})"


@dataclass(frozen=True, slots=True)
class SpeciesTable:
    """A table hyper read at a species value (`radius[S.type[i]]`): every species of the systems
    `systems` must be one of its `keys` (checked when the model is called)."""

    hyper: str
    systems: str
    keys: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    systems: tuple[SystemsInput, ...]
    tensormaps: tuple[TensorMapInput, ...]
    pairs: tuple[PairsDecl, ...]
    params: tuple[ParamDecl, ...]
    kernels: tuple[TensorKernel, ...]
    outputs: tuple[Output, ...]
    convention: str = "metatensor"
    fused: tuple[FusedKernel, ...] = ()
    tables: tuple[SpeciesTable, ...] = ()

    def kernel(self, name: str) -> TensorKernel:
        for kernel in self.kernels:
            if kernel.name == name:
                return kernel
        raise KeyError(name)

    def __str__(self):
        lines = [f"module {self.name}  # sph convention {self.convention}"]
        lines += [f"input {s.name} : systems" for s in self.systems]
        for t in self.tensormaps:
            lines.append(f"input {t.name} : tensormap keys{t.keys} samples{t.samples} "
                         f"components{t.components} properties{t.properties}")
        lines += [f"pairs {p.name} = neighbors({p.systems}, cutoff = {p.cutoff!r}, full = {p.full})" for p in self.pairs]
        for p in self.params:
            lines.append(f"param {p.name}[{', '.join(map(str, p.domains))}] ~ {p.init[0]}{p.init[1]}")
        lines += ["", *(str(k) + "\n" for k in self.kernels)]
        lines += [str(f) + "\n" for f in self.fused]
        for o in self.outputs:
            lines.append(f"output {o.name}" + (f" with gradients({', '.join(o.gradients)})" if o.gradients else ""))
        return "\n".join(lines)
