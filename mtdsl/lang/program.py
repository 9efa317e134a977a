"""The resolved, typed program: what the front end hands to lowering.

:func:`mtdsl.lang.resolve.resolve` turns the syntax trees of a file and of the
files it `use`s into one :class:`Program`.  Every name is bound to its
definition object; every expression node carries its :class:`Type`; hypers are
values (overrides applied).  The checkers (:mod:`mtdsl.lang.check_dims`,
:mod:`mtdsl.lang.equivariance`) read it and never change it.

Overview (all frozen dataclasses; ``span`` locates the source)::

    Program
      name, path, files, convention ("metatensor" | "e3nn")
      hypers:     {name: Hyper(name, type, value)}
      systems:    {name: SystemsInput}
      tensormaps: {name: TensorMapInput(keys, sample_slots, component_slots, property_slots)}
      pairs:      {name: Pairs(systems, cutoff: Expr, full: bool)}
      dims:       {name: Dim}             named dimensions (`dim` statements)
      indices:    {name: Index(name, dim)}  declared index variables
      params:     {name: Param(indices, init: Init)}
      lets:       {name: Let(indices, body: Expr)}
      tensors:    {name: Tensor(keys, samples, components, properties, where, body)}
      outputs:    {name: Output(tensor, gradients)}

Dimensions (:class:`Dim` subclasses) are types: :class:`RangeDim` is nominal
(identified by ``uid``: two `range(6)` dims differ), the built-in ones
(:class:`SpeciesDim`, :class:`SystemsDim`, :class:`AtomsDim`, :class:`PairsDim`,
:class:`XyzDim`) compare by value, and :class:`IrrepDim` is dependent: its
``degree`` is an integer expression (usually an :class:`IndexRef` to the `l`
it depends on).

Expressions (:class:`Expr` subclasses) are resolved: :class:`IndexRef` points
at an :class:`Index` object (each `sum` binder has its own Index, a fresh copy
of the declared one, so two sums over `l1` are two variables), :class:`Const`
holds literals and hyper values, :class:`ParamRef`/:class:`LetRef` index a
param or let, :class:`BlockRef` reads a block of a tensor or a tensormap
input, :class:`SystemData`/:class:`PairData` read built-in data,
:class:`Call` is a built-in function with its arguments in signature order,
:class:`HyperItem` an item of a list hyper,
and :class:`Sum` carries its binders with their :class:`Domain`.
:class:`Invalid` stands for an expression that could not be resolved (an
error was reported); its type is unknown and fits everywhere.

Tensor signatures (:class:`Tensor`): ``keys`` are :class:`KeyEntry` (label,
value expression: an index, a constant or any integer expression: a
group-by), and ``samples``/``components``/``properties`` are :class:`Slot`\\ s
(the label columns, the dimension, the index or constant that fills it).  A
tensor without a keys section has ``keys == ()`` and one block under the key
``_ = 0``.  Block access fills a tensor's slots positionally, one argument
per slot (an atom index fills the two columns `system, atom`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Optional, Union

from . import ast
from .ast import NO_SPAN, Span

_uids = itertools.count(1)


def fresh_uid() -> int:
    return next(_uids)


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


# ---- value types -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Type:
    """The type of an expression: a ``kind`` (``int``, ``float``, ``bool``,
    ``vector`` — a Cartesian 3-vector, ``matrix`` — 3x3, ``string``, ``list``,
    ``unknown``) and, for integers that are values of a dimension (an index,
    ``S.type[i]``, ``P.second[p]``), that dimension."""

    kind: str
    dim: Optional["Dim"] = None

    def __str__(self) -> str:
        if self.dim is not None:
            return f"value of `{self.dim}`"
        return self.kind

    @property
    def is_number(self) -> bool:
        return self.kind in ("int", "float", "unknown")

    @property
    def is_unknown(self) -> bool:
        return self.kind == "unknown"


INT = Type("int")
FLOAT = Type("float")
BOOL = Type("bool")
VECTOR = Type("vector")
MATRIX = Type("matrix")
STRING = Type("string")
UNKNOWN = Type("unknown")


# ---- dimensions ---------------------------------------------------------------------------------


class Dim:
    """A dimension: the type of an index variable.  ``axes`` are the axes
    (key, sample, component, property) it may label."""

    __slots__ = ()
    axes: frozenset = frozenset()

    @property
    def labels(self) -> Optional[tuple[str, ...]]:
        """The standard label columns of a sample index of this dim, if fixed."""
        return None


@dataclass(frozen=True, slots=True)
class RangeDim(Dim):
    """A nominal integer dimension `range(start, stop)`; ``uid`` makes it unique."""

    name: str
    start: int
    stop: int
    uid: int
    axes = frozenset({"key", "property"})

    @property
    def size(self) -> int:
        return max(self.stop - self.start, 0)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class SpeciesDim(Dim):
    """`species(S)`: atomic numbers, known at run time (or fixed at compile time)."""

    systems: str
    axes = frozenset({"key", "property"})

    def __str__(self) -> str:
        return f"species({self.systems})"


@dataclass(frozen=True, slots=True)
class SystemsDim(Dim):
    """`systems(S)`: the index of a system in the batch; label `system`."""

    systems: str
    axes = frozenset({"sample"})

    @property
    def labels(self) -> tuple[str, ...]:
        return ("system",)

    def __str__(self) -> str:
        return f"systems({self.systems})"


@dataclass(frozen=True, slots=True)
class AtomsDim(Dim):
    """`atoms(S)`: atoms of the batch; labels `system, atom`."""

    systems: str
    axes = frozenset({"sample"})

    @property
    def labels(self) -> tuple[str, ...]:
        return ("system", "atom")

    def __str__(self) -> str:
        return f"atoms({self.systems})"


PAIR_LABELS = ("system", "first_atom", "second_atom", "cell_shift_a", "cell_shift_b", "cell_shift_c")


@dataclass(frozen=True, slots=True)
class PairsDim(Dim):
    """The pairs of a `pairs` set."""

    pairs: str
    systems: str
    axes = frozenset({"sample"})

    @property
    def labels(self) -> tuple[str, ...]:
        return PAIR_LABELS

    def __str__(self) -> str:
        return self.pairs


@dataclass(frozen=True, slots=True)
class XyzDim(Dim):
    """`xyz`: 0..2, a Cartesian vector component (irrep 1, odd)."""

    axes = frozenset({"component"})

    def __str__(self) -> str:
        return "xyz"


@dataclass(frozen=True, slots=True)
class IrrepDim(Dim):
    """`irrep(degree)`: -degree..degree, a real spherical-harmonics component.
    Dependent: ``degree`` is an integer :class:`Expr`."""

    degree: "Expr"
    axes = frozenset({"component"})

    def __str__(self) -> str:
        return f"irrep({describe(self.degree)})"


@dataclass(frozen=True, slots=True)
class OpaqueDim(Dim):
    """A component of a tensormap input that is neither `o3_mu` nor `xyz`:
    it may be indexed, but not contracted nor fed to non-linear functions."""

    label: str
    axes = frozenset({"component"})

    def __str__(self) -> str:
        return f"opaque component `{self.label}`"


COMPONENT_DIMS = (IrrepDim, XyzDim, OpaqueDim)


# ---- index variables ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Index:
    """An index variable.  Declared ones come from `index` statements; each
    `sum` binder makes a fresh one (``origin`` is the declared index it copies,
    or None for a name local to the sum).  Compared by identity."""

    name: str
    dim: Dim
    uid: int = field(default_factory=fresh_uid)
    origin: Optional["Index"] = None
    span: Span = _span()

    def __repr__(self) -> str:
        return f"Index({self.name!r}#{self.uid}, {self.dim})"

    @property
    def is_component(self) -> bool:
        return isinstance(self.dim, COMPONENT_DIMS)


# ---- expressions -------------------------------------------------------------------------------


class Expr:
    """A resolved expression; every subclass has ``type`` and ``span``."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Const(Expr):
    """A literal or a hyper's value (``hyper`` names it)."""

    value: object
    type: Type
    hyper: Optional[str] = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class IndexRef(Expr):
    index: Index
    span: Span = _span()

    @property
    def type(self) -> Type:
        return Type("int", self.index.dim)


@dataclass(frozen=True, slots=True)
class HyperItem(Expr):
    """`widths[k]`: item ``index`` of the list hyper ``hyper`` (``values``,
    known at compile time; the index is checked against its length); for a table
    hyper (`radius[S.type[i]]`), ``keys`` are its sorted keys and ``values[k]`` the value of
    ``keys[k]``: the item is the value whose key equals the index."""

    hyper: str
    values: tuple
    index: Expr
    type: Type
    span: Span = _span()
    keys: Optional[tuple] = None


@dataclass(frozen=True, slots=True)
class KeyLabel(Expr):
    """Placeholder for "the value of key ``label`` of the block being read":
    the degree of a tensormap input's `o3_mu` component is `KeyLabel("o3_lambda")`."""

    label: str
    span: Span = _span()
    type: Type = INT


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    """``op`` is ``-`` or ``not``."""

    op: str
    operand: Expr
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    """Arithmetic (``+ - * / % ^``), comparison (``== != < <= > >=``) or logic (``and or``)."""

    op: str
    left: Expr
    right: Expr
    type: Type
    span: Span = _span()
    op_span: Span = _span()


@dataclass(frozen=True, slots=True)
class Ternary(Expr):
    cond: Expr
    then: Expr
    otherwise: Expr
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """A built-in function; ``args`` in the order of ``BUILTINS[function].params``
    (keyword arguments placed, defaults filled)."""

    function: str
    args: tuple[Expr, ...]
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ParamRef(Expr):
    param: "Param"
    indices: tuple[Expr, ...]
    span: Span = _span()
    type: Type = FLOAT


@dataclass(frozen=True, slots=True)
class LetRef(Expr):
    let: "Let"
    indices: tuple[Expr, ...]
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class BlockRef(Expr):
    """`T{label = value, ...}[args...]` of a :class:`Tensor` or :class:`TensorMapInput`;
    ``keys`` as written, ``indices`` one per sample, component and property slot."""

    source: Union["Tensor", "TensorMapInput"]
    keys: tuple[tuple[str, Expr], ...]
    indices: tuple[Expr, ...]
    span: Span = _span()
    type: Type = FLOAT
    key_spans: tuple[Span, ...] = field(default=(), compare=False, repr=False)  # of the key labels


SYSTEM_FIELDS = ("positions", "type", "system", "cell", "pbc")
PAIR_FIELDS = ("first", "second", "vector", "distance")


@dataclass(frozen=True, slots=True)
class SystemData(Expr):
    """`S.positions[i]` (vector; `S.positions[i, x]` a float), `S.type[i]`
    (a value of `species(S)`), `S.system[i]` (of `systems(S)`), `S.cell[s]`
    (3x3; `S.cell[s, a, x]` a float: Cartesian component `x` of cell vector
    `a`), `S.pbc[s]` (`S.pbc[s, a]` a bool)."""

    systems: str
    field: str
    indices: tuple[Expr, ...]
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class PairData(Expr):
    """`P.first[p]`, `P.second[p]` (values of `atoms(S)`), `P.vector[p]`
    (vector from first to second atom; `P.vector[p, x]` a float), `P.distance[p]`."""

    pairs: str
    field: str
    indices: tuple[Expr, ...]
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class DimDomain:
    """A binder ranging over a whole dimension."""

    dim: Dim


@dataclass(frozen=True, slots=True)
class PairsFrom:
    """`P.from(atom)`: the pairs of ``pairs`` whose first atom is ``atom`` (a CSR segment)."""

    pairs: str
    atom: Expr


Domain = Union[DimDomain, PairsFrom]


@dataclass(frozen=True, slots=True)
class SumBinder:
    index: Index
    domain: Domain
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Sum(Expr):
    binders: tuple[SumBinder, ...]
    where: Optional[Expr]
    body: Expr
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Invalid(Expr):
    """An expression that could not be resolved (its error is reported)."""

    span: Span = _span()
    type: Type = UNKNOWN


# ---- definitions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hyper:
    """A compile-time constant; ``type`` is ``int float bool string`` or
    ``list[...]`` of those; ``value`` already includes an override."""

    name: str
    type: str
    value: object
    default: object
    overridden: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class SystemsInput:
    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Slot:
    """One positional slot of a block: its label columns, its dimension (None:
    any integer), and what fills it in the defining signature (an index, a
    constant, or None for a tensormap input)."""

    labels: tuple[str, ...]
    dim: Optional[Dim]
    value: Optional[Expr] = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TensorMapInput:
    """`input NAME : tensormap ...`: label names; `system, atom` samples form
    one atom slot, `o3_mu` components are `irrep(o3_lambda)`, `xyz` a vector."""

    name: str
    keys: tuple[str, ...]
    samples: tuple[Slot, ...]
    components: tuple[Slot, ...]
    properties: tuple[Slot, ...]
    span: Span = _span()

    @property
    def slots(self) -> tuple[Slot, ...]:
        return self.samples + self.components + self.properties


@dataclass(frozen=True, slots=True)
class Pairs:
    """`pairs NAME = neighbors(S, cutoff = E, full = B)`."""

    name: str
    systems: str
    cutoff: Expr
    full: bool
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Init:
    """A parameter initializer: ``zeros``, ``ones``, ``normal(mean, std)``,
    ``uniform(low, high)`` or ``constant(value)``, with numeric arguments."""

    name: str
    args: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class Param:
    name: str
    indices: tuple[Index, ...]
    init: Init
    span: Span = _span()
    index_spans: tuple[Span, ...] = field(default=(), compare=False, repr=False)  # where each is written


@dataclass(frozen=True, slots=True, eq=False)
class Let:
    name: str
    indices: tuple[Index, ...]
    body: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class KeyEntry:
    label: str
    value: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True, eq=False)
class Tensor:
    """A `tensor` definition.  ``indices`` are the signature's index variables
    (the iteration domain, in order of first appearance), ``where`` filters it."""

    name: str
    keys: tuple[KeyEntry, ...]
    samples: tuple[Slot, ...]
    components: tuple[Slot, ...]
    properties: tuple[Slot, ...]
    where: Optional[Expr]
    body: Expr
    indices: tuple[Index, ...]
    span: Span = _span()

    @property
    def slots(self) -> tuple[Slot, ...]:
        return self.samples + self.components + self.properties

    @property
    def key_labels(self) -> tuple[str, ...]:
        return tuple(entry.label for entry in self.keys) if self.keys else ("_",)


@dataclass(frozen=True, slots=True)
class Output:
    name: str
    tensor: Tensor
    gradients: tuple[str, ...]
    span: Span = _span()


GRADIENTS = ("positions", "strain", "cell")


@dataclass(frozen=True, slots=True, eq=False)
class Program:
    """A resolved, typed program (see the module docstring)."""

    name: str
    path: str
    files: tuple[str, ...]
    convention: str
    hypers: dict
    systems: dict
    tensormaps: dict
    pairs: dict
    dims: dict
    indices: dict
    params: dict
    lets: dict
    tensors: dict
    outputs: dict


# ---- helpers ------------------------------------------------------------------------------------------


def describe(expr: Expr) -> str:
    """A source-like rendering of a resolved expression, for messages: the AST's `deparse()` of
    the expression rebuilt as AST nodes, so parentheses are printed where the source needs them."""
    return _as_ast(expr).deparse()


def _as_ast(expr: Expr):
    if isinstance(expr, Const):
        if expr.hyper is not None:
            return ast.Name(expr.hyper)
        if isinstance(expr.value, bool):
            return ast.BoolLit(expr.value)
        if isinstance(expr.value, int):
            return ast.IntLit(expr.value) if expr.value >= 0 else ast.Neg(ast.IntLit(-expr.value))
        if isinstance(expr.value, float):
            return ast.FloatLit(expr.value) if expr.value >= 0 else ast.Neg(ast.FloatLit(-expr.value))
        return ast.Name(str(expr.value))
    if isinstance(expr, IndexRef):
        return ast.Name(expr.index.name)
    if isinstance(expr, KeyLabel):
        return ast.Name(expr.label)
    if isinstance(expr, Unary):
        return ast.Neg(_as_ast(expr.operand)) if expr.op == "-" else ast.Not(_as_ast(expr.operand))
    if isinstance(expr, Binary):
        left, right = _as_ast(expr.left), _as_ast(expr.right)
        if expr.op in ("and", "or"):
            return ast.Logical(expr.op, left, right)
        if expr.op in ("==", "!=", "<", "<=", ">", ">="):
            return ast.Compare(expr.op, left, right)
        return ast.BinOp(expr.op, left, right)
    if isinstance(expr, Ternary):
        return ast.Ternary(_as_ast(expr.cond), _as_ast(expr.then), _as_ast(expr.otherwise))
    if isinstance(expr, Call):
        return ast.Call(ast.Name(expr.function), tuple(_as_ast(arg) for arg in expr.args), ())
    if isinstance(expr, (SystemData, PairData)):
        owner = expr.systems if isinstance(expr, SystemData) else expr.pairs
        return ast.Subscript(ast.Name(f"{owner}.{expr.field}"), tuple(_as_ast(index) for index in expr.indices))
    if isinstance(expr, HyperItem):
        return ast.Subscript(ast.Name(expr.hyper), (_as_ast(expr.index),))
    if isinstance(expr, ParamRef):
        return ast.Subscript(ast.Name(expr.param.name), tuple(_as_ast(index) for index in expr.indices))
    if isinstance(expr, LetRef):
        return ast.Subscript(ast.Name(expr.let.name), tuple(_as_ast(index) for index in expr.indices))
    if isinstance(expr, BlockRef):
        return ast.Name(f"{expr.source.name}{{...}}[...]")
    return ast.Name("...")


def children(expr: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of ``expr`` (not those inside binder domains)."""
    if isinstance(expr, Unary):
        return (expr.operand,)
    if isinstance(expr, Binary):
        return (expr.left, expr.right)
    if isinstance(expr, Ternary):
        return (expr.cond, expr.then, expr.otherwise)
    if isinstance(expr, Call):
        return expr.args
    if isinstance(expr, (ParamRef, LetRef, SystemData, PairData)):
        return expr.indices
    if isinstance(expr, HyperItem):
        return (expr.index,)
    if isinstance(expr, BlockRef):
        return tuple(value for _, value in expr.keys) + expr.indices
    if isinstance(expr, Sum):
        atoms = tuple(b.domain.atom for b in expr.binders if isinstance(b.domain, PairsFrom))
        return atoms + ((expr.where,) if expr.where is not None else ()) + (expr.body,)
    return ()


def index_refs(expr: Expr) -> list[Index]:
    """Every index referenced in ``expr`` (bound or free), without recursion."""
    found: list[Index] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, IndexRef):
            found.append(node.index)
        stack.extend(children(node))
    return found


def substitute(expr: Expr, mapping: dict) -> Expr:
    """``expr`` with every :class:`IndexRef` to a key of ``mapping`` (an
    :class:`Index`) and every :class:`KeyLabel` whose label is a key replaced
    by the mapped expression."""
    if not mapping:
        return expr
    if isinstance(expr, IndexRef):
        return mapping.get(expr.index, expr)
    if isinstance(expr, KeyLabel):
        return mapping.get(expr.label, expr)
    if isinstance(expr, Unary):
        return Unary(expr.op, substitute(expr.operand, mapping), expr.type, expr.span)
    if isinstance(expr, Binary):
        return Binary(expr.op, substitute(expr.left, mapping), substitute(expr.right, mapping),
                      expr.type, expr.span, expr.op_span)
    if isinstance(expr, Ternary):
        return Ternary(substitute(expr.cond, mapping), substitute(expr.then, mapping),
                       substitute(expr.otherwise, mapping), expr.type, expr.span)
    if isinstance(expr, Call):
        return Call(expr.function, tuple(substitute(a, mapping) for a in expr.args), expr.type, expr.span)
    if isinstance(expr, HyperItem):
        return HyperItem(expr.hyper, expr.values, substitute(expr.index, mapping), expr.type, expr.span,
                         expr.keys)
    if isinstance(expr, ParamRef):
        return ParamRef(expr.param, tuple(substitute(a, mapping) for a in expr.indices), expr.span)
    if isinstance(expr, LetRef):
        return LetRef(expr.let, tuple(substitute(a, mapping) for a in expr.indices), expr.type, expr.span)
    if isinstance(expr, BlockRef):
        return BlockRef(expr.source, tuple((k, substitute(v, mapping)) for k, v in expr.keys),
                        tuple(substitute(a, mapping) for a in expr.indices), expr.span,
                        key_spans=expr.key_spans)
    if isinstance(expr, SystemData):
        return SystemData(expr.systems, expr.field, tuple(substitute(a, mapping) for a in expr.indices),
                          expr.type, expr.span)
    if isinstance(expr, PairData):
        return PairData(expr.pairs, expr.field, tuple(substitute(a, mapping) for a in expr.indices),
                        expr.type, expr.span)
    if isinstance(expr, Sum):
        binders = tuple(
            SumBinder(b.index, PairsFrom(b.domain.pairs, substitute(b.domain.atom, mapping))
                      if isinstance(b.domain, PairsFrom) else b.domain, b.span)
            for b in expr.binders
        )
        where = substitute(expr.where, mapping) if expr.where is not None else None
        return Sum(binders, where, substitute(expr.body, mapping), expr.type, expr.span)
    return expr


def substitute_dim(dim: Dim, mapping: dict) -> Dim:
    if isinstance(dim, IrrepDim):
        return IrrepDim(substitute(dim.degree, mapping))
    return dim
