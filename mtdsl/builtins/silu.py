"""`silu(x) = x sigmoid(x)`; natively that expansion."""

from __future__ import annotations

from mtdsl.math.functions import ELEMENTARY

from . import sigmoid
from .spec import ONE, binary, unary


def _torch(x):
    return x * sigmoid.BUILTIN.torch(x)


def _partials(x):
    """silu' = sigmoid (1 + x (1 - sigmoid))."""
    s = sigmoid.BUILTIN.call
    return (binary("mul", s(x), binary("add", ONE, binary("mul", x, binary("sub", ONE, s(x))))),)


BUILTIN = unary("silu", numpy=ELEMENTARY["silu"][0], torch=_torch, partials=_partials,
                expansion=lambda x: binary("mul", x, sigmoid.BUILTIN.call(x)))
