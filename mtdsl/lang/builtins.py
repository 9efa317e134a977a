"""The built-in functions of the language and their signatures.

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


def _p(name: str, kind: str = "number") -> BuiltinParam:
    return BuiltinParam(name, kind)


_UNARY = ("sqrt", "exp", "log", "sin", "cos", "tanh", "sigmoid", "silu", "abs",
          "erf", "erfc", "acos", "asin", "floor", "round", "softplus", "relu")

BUILTINS: dict[str, Builtin] = {name: Builtin(name, (_p("x"),), doc=f"{name}(x)") for name in _UNARY}
BUILTINS.update({
    "min": Builtin("min", (_p("a"), _p("b")), doc="min(a, b)"),
    "max": Builtin("max", (_p("a"), _p("b")), doc="max(a, b)"),
    "clamp": Builtin("clamp", (_p("x"), _p("lo"), _p("hi")), doc="clamp(x, lo, hi) = min(max(x, lo), hi)"),
    "atan2": Builtin("atan2", (_p("y"), _p("x")), doc="atan2(y, x): the angle of (x, y), in (-pi, pi]"),
    "cross": Builtin("cross", (_p("u", "vector"), _p("v", "vector")), result=VECTOR, nonlinear=False,
                     doc="cross(u, v): the cross product, an axial vector"),
    "to_irrep": Builtin("to_irrep", (_p("v", "vector"), _p("m", "component")), nonlinear=False,
                        doc="to_irrep(v, m): component m of irrep 1 of a vector (metatensor: m = -1, 0, 1 "
                            "are y, z, x), unnormalized"),

    "norm": Builtin("norm", (_p("v", "vector"),), nonlinear=False, doc="norm(v): length of a vector"),
    "dot": Builtin("dot", (_p("u", "vector"), _p("v", "vector")), nonlinear=False,
                   doc="dot(u, v): scalar product of two vectors"),
    "sph": Builtin("sph", (_p("v", "vector"), _p("l", "int"), _p("m", "component")), nonlinear=False,
                   doc="sph(v, l, m): real spherical harmonics of the direction of v"),
    "cg": Builtin("cg", (_p("l1", "int"), _p("m1", "component"), _p("l2", "int"), _p("m2", "component"),
                         _p("L", "int"), _p("M", "component")), nonlinear=False,
                  doc="cg(l1, m1, l2, m2, L, M): real Clebsch-Gordan coefficients"),
    "gto": Builtin("gto", (_p("r"), _p("n", "int"), _p("width")),
                   doc="gto(r, n, width = w) = r^n exp(-r^2 / (2 w^2))"),
    "cosine_cutoff": Builtin("cosine_cutoff", (_p("r"), _p("cutoff"), _p("width")),
                             doc="cosine_cutoff(r, cutoff, width = w): featomic's shifted cosine"),
    "soap_radial": Builtin(
        "soap_radial",
        (_p("r"), _p("n", "int"), _p("l", "int"), _p("n_radial", "int"), _p("cutoff"),
         _p("density_width")),
        doc="soap_radial(r, n, l, n_radial = N, cutoff = rc, density_width = w)",
    ),
})

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
