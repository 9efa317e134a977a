"""The built-in functions of the language and their signatures, as the checker sees them (each
built-in is defined once, in its module of mtdsl/builtins/).

Each parameter has a ``kind``: ``number`` (an int or float scalar), ``int``
(an integer, e.g. a degree `l` or a radial order `n`), ``vector`` (a Cartesian
3-vector such as `P.vector[p]`) or ``component`` (an index of a component
dimension, such as the `m` of `sph(v, l, m)`).  Every parameter may be given
positionally, in order, or by keyword; a parameter without default is required.

Names of built-ins are not reserved: a name followed by `(` is looked up among
them first, so `dim species = species(S)` defines a dim named `species`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from mtdsl import builtins as registry

from .program import FLOAT, VECTOR, Const, Type


@dataclass(frozen=True, slots=True)
class BuiltinParam:
    name: str
    kind: str
    default: Optional[Const] = None


@dataclass(frozen=True, slots=True)
class Builtin:
    """``nonlinear``: the result is equivariant only for invariant arguments."""

    name: str
    params: tuple[BuiltinParam, ...]
    result: Type = FLOAT
    nonlinear: bool = True
    doc: str = ""


def _from_registry(builtin: registry.Builtin) -> Builtin:
    params = tuple(BuiltinParam(p.name, p.kind) for p in builtin.params)
    return Builtin(builtin.name, params, VECTOR if builtin.result == "vector" else FLOAT, builtin.nonlinear,
                   builtin.doc)


#: the functions programs may call, from the registry of built-ins (mtdsl/builtins/)
BUILTINS: dict[str, Builtin] = {b.name: _from_registry(b) for b in registry.registered(public=True)}

#: named constants: a name that no definition of the program takes is looked up here
CONSTANTS: dict[str, float] = {"pi": math.pi}

#: domain constructors, valid after `dim X =`, `index i :` and `in`
DOMAIN_CONSTRUCTORS = ("range", "species", "atoms", "systems", "irrep")

#: parameter initializers and the number of numeric arguments they take
INITIALIZERS: dict[str, tuple[int, int]] = {
    "zeros": (0, 0),
    "ones": (0, 0),
    "normal": (0, 2),
    "uniform": (0, 2),
    "constant": (1, 1),
}
INITIALIZER_DEFAULTS: dict[str, tuple[float, ...]] = {
    "normal": (0.0, 1.0),
    "uniform": (0.0, 1.0),
}
