"""The elementary functions: each is one function of the C library (a *primitive* of the printers),
with a one-line derivative. They share this table because a file each would repeat the same five
lines fourteen times; a built-in with anything of its own (an expansion, several arguments, a
definition) has its own module.

Their numpy forms are `mtdsl.math.functions.ELEMENTARY` (the numpy mathematics, tested there);
their torch forms the torch function of the same name.
"""

from __future__ import annotations

import math

import numpy as np

from mtdsl.ir import nodes as ir
from mtdsl.math.functions import ELEMENTARY as NUMPY

from .spec import ONE, ZERO, Builtin, binary, mul, neg, unary


def _torch_form(name: str):
    def form(*values):
        import torch

        return getattr(torch, name)(*values)

    form.__name__ = f"torch_{name}"
    return form


def _one_minus_square(x):
    return binary("sub", ONE, binary("mul", x, x))


def _gaussian(scale: float):
    """`scale exp(-x^2)`: the derivative of erf (2 / sqrt(pi)) and of erfc (its negative)."""
    return lambda x: (mul(ir.Const(scale), ir.Call("exp", (neg(binary("mul", x, x)),))),)


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

#: name -> (its derivative's IR builder: one partial, or None when piecewise constant; extra fields)
_TABLE = {
    "sqrt": (lambda x: (binary("div", ir.Const(0.5), ir.Call("sqrt", (x,))),), {"fold": math.sqrt}),
    "exp": (lambda x: (ir.Call("exp", (x,)),), {}),
    "log": (lambda x: (binary("div", ONE, x),), {}),
    "sin": (lambda x: (ir.Call("cos", (x,)),), {}),
    "cos": (lambda x: (neg(ir.Call("sin", (x,))),), {}),
    "tanh": (lambda x: (binary("sub", ONE, binary("mul", ir.Call("tanh", (x,)), ir.Call("tanh", (x,)))),), {}),
    # abs' = sign (0 at 0), branchwise
    "abs": (lambda x: (ir.Select(binary("gt", x, ZERO), ONE,
                                 ir.Select(binary("lt", x, ZERO), ir.Const(-1.0), ZERO)),),
            {"fold": abs}),
    "erf": (_gaussian(_TWO_OVER_SQRT_PI), {}),
    "erfc": (_gaussian(-_TWO_OVER_SQRT_PI), {}),
    "asin": (lambda x: (binary("div", ONE, ir.Call("sqrt", (_one_minus_square(x),))),), {}),
    "acos": (lambda x: (neg(binary("div", ONE, ir.Call("sqrt", (_one_minus_square(x),)))),), {}),
    # piecewise constant: derivative 0 almost everywhere; round is half to even, as numpy and torch
    "floor": (None, {"integer_valued": True}),
    "round": (None, {"integer_valued": True}),
}


def _builtin(name: str, partials, fields: dict) -> Builtin:
    return unary(name, numpy=NUMPY[name][0], torch=_torch_form(name), partials=partials,
                 piecewise_constant=partials is None, **fields)


BUILTINS: tuple[Builtin, ...] = tuple(_builtin(name, partials, fields) for name, (partials, fields) in _TABLE.items())

#: log(1 + x), accurate for small x: not a function of the language, but the primitive the
#: expansion of softplus needs (mtdsl/builtins/softplus.py)
LOG1P = unary("log1p", "log1p(x) = log(1 + x)", public=False, numpy=np.log1p, torch=_torch_form("log1p"),
              partials=lambda x: (binary("div", ONE, binary("add", ONE, x)),))
BUILTINS += (LOG1P,)
