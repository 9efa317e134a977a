"""The typing rules of name resolution, shared by the resolver and the checks after it.

Operator dispatch and the types of arithmetic and of `?:` branches, unknown dimensions and
when two fit, the field types of systems and pairs, the types of hypers, the largest
dimension a program may declare, and the resolver's small records (`_Definition`, `_Ctx`).
`resolve.py` (statements) and `resolve_expr.py` (expressions) resolve with them;
`check_dims.py` and `equivariance.py` check with them. Importable from `resolve.py` as before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from . import ast
from . import program as P
from .ast import Span
from .evaluate import UNKNOWN, evaluate


CONVENTIONS = ("metatensor", "e3nn")

_METHODS: dict = {}  # (class, prefix, node type) -> the method `dispatch` found


def dispatch(owner, prefix: str, node_type: type):
    """The bound method ``prefix + node_type.__name__`` of ``owner`` (looked up once per class)."""
    key = (type(owner), prefix, node_type)
    function = _METHODS.get(key, _METHODS)
    if function is _METHODS:
        function = getattr(type(owner), prefix + node_type.__name__, None)
        _METHODS[key] = function
    return function.__get__(owner) if function is not None else None


def arith_type(op: str, left: P.Type, right: P.Type) -> Optional[P.Type]:
    """The type of ``left op right`` for `+ - * / % ^`, or None when ill-typed."""
    lk, rk = left.kind, right.kind
    if lk == "unknown" or rk == "unknown":
        return P.UNKNOWN
    if lk == "vector" or rk == "vector":
        if op in ("+", "-") and lk == rk == "vector":
            return P.VECTOR
        if op == "*" and {lk, rk} <= {"vector", "int", "float"} and not (lk == rk == "vector"):
            return P.VECTOR
        if op == "/" and lk == "vector" and rk in ("int", "float"):
            return P.VECTOR
        return None
    if lk not in ("int", "float") or rk not in ("int", "float"):
        return None
    if op == "/":
        return P.FLOAT
    if lk == rk == "int":
        return P.INT
    return P.FLOAT


def join_type(a: P.Type, b: P.Type) -> P.Type:
    """The type of `c ? a : b`."""
    if a.kind == "unknown":
        return b
    if b.kind == "unknown":
        return a
    if a == b:
        return a
    if {a.kind, b.kind} <= {"int", "float"}:
        return P.FLOAT if "float" in (a.kind, b.kind) else P.INT
    return a


@dataclass
class _Definition:
    kind: str  # hyper systems tensormap pairs dim index param let tensor
    value: object
    span: Span


@dataclass
class _Ctx:
    """Index names bound where an expression is resolved."""

    local: dict = field(default_factory=dict)  # name -> Index (sum binders)
    bound: dict = field(default_factory=dict)  # name -> description of what binds it
    allow_pairs_from: bool = False

    def child(self) -> "_Ctx":
        return _Ctx(dict(self.local), dict(self.bound))


class _UnknownDim(P.Dim):
    """The dimension of an index whose domain had an error: fits everywhere."""

    __slots__ = ()
    axes = frozenset({"key", "sample", "component", "property"})

    def __str__(self) -> str:
        return "?"


_UNKNOWN_DIM = _UnknownDim()


def is_unknown_dim(dim: Optional[P.Dim]) -> bool:
    return dim is None or isinstance(dim, _UnknownDim)


def dims_fit(slot: Optional[P.Dim], value: Optional[P.Dim]) -> bool:
    """Whether a value of dimension ``value`` may fill a slot of dimension ``slot``."""
    if is_unknown_dim(slot) or is_unknown_dim(value):
        return True
    if isinstance(slot, P.IrrepDim) and isinstance(value, P.IrrepDim):
        if slot.degree == value.degree:
            return True
        a, b = evaluate(slot.degree), evaluate(value.degree)
        return a is not UNKNOWN and a == b
    return slot == value


def _hyper_type(hyper: P.Hyper) -> P.Type:
    if hyper.type in ("int", "float", "bool"):
        return P.Type(hyper.type)
    if hyper.type == "string":
        return P.STRING
    return P.Type("list")


def _system_field_type(systems: str, field_name: str, count: int) -> P.Type:
    if field_name == "type":
        return P.Type("int", P.SpeciesDim(systems))
    if field_name == "system":
        return P.Type("int", P.SystemsDim(systems))
    if field_name == "positions":
        return P.VECTOR if count <= 1 else P.FLOAT
    if field_name == "cell":
        return P.MATRIX if count <= 1 else P.FLOAT
    return P.BOOL  # pbc


def _pair_field_type(systems: str, field_name: str, count: int) -> P.Type:
    if field_name in ("first", "second"):
        return P.Type("int", P.AtomsDim(systems))
    if field_name == "vector":
        return P.VECTOR if count <= 1 else P.FLOAT
    return P.FLOAT


#: the most entries a dimension (a `range`, an `irrep`) may have, unless $MTDSL_MAX_DIMENSION says
DEFAULT_MAX_DIMENSION = 100_000


def max_dimension() -> int:
    text = os.environ.get("MTDSL_MAX_DIMENSION", "").strip()
    return int(text) if text.isdigit() and len(text) < 19 else DEFAULT_MAX_DIMENSION


def _hyper_names(node: ast.Node) -> list:
    """The names read in a domain's arguments, in order (the hypers among them set its size)."""
    return [n.name for n, _ in ast.walk(node) if isinstance(n, ast.Name)]
