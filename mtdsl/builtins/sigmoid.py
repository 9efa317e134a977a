"""`sigmoid(x) = 1 / (1 + exp(-x))`, computed as `(1 + tanh(x / 2)) / 2` (no overflow); natively
that expansion, so the printers need no function of their own."""

from __future__ import annotations

from mtdsl.ir import nodes as ir
from mtdsl.math.functions import ELEMENTARY

from .spec import ONE, binary, unary

HALF = ir.Const(0.5)


def _torch(x):
    import torch

    return 0.5 * (1.0 + torch.tanh(0.5 * x))


def expansion(x):
    return binary("mul", HALF, binary("add", ONE, ir.Call("tanh", (binary("mul", HALF, x),))))


def _partials(x):
    """sigmoid' = sigmoid (1 - sigmoid)."""
    return (binary("mul", BUILTIN.call(x), binary("sub", ONE, BUILTIN.call(x))),)


BUILTIN = unary("sigmoid", numpy=ELEMENTARY["sigmoid"][0], torch=_torch, partials=_partials, expansion=expansion)
