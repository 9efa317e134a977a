"""`softplus(x) = log(1 + exp(x))`, without overflow.

The evaluators compute numpy's / torch's `logaddexp(0, x)`; its derivative is `sigmoid(x)`; the
native backends print its expansion `relu(x) + log1p(exp(-|x|))` (exact in both tails: no
overflow for large x, no cancellation for very negative x).
"""

from __future__ import annotations

from mtdsl.ir import nodes as ir
from mtdsl.math.functions import ELEMENTARY

from . import relu, sigmoid
from .elementary import LOG1P
from .spec import neg, unary


def _torch(x):
    import torch

    return torch.logaddexp(x, torch.zeros_like(x))


def expansion(x):
    return ir.Binary("add", relu.definition(x), LOG1P.call(ir.Call("exp", (neg(ir.Call("abs", (x,))),))))


BUILTIN = unary("softplus", numpy=ELEMENTARY["softplus"][0], torch=_torch,
                partials=lambda x: (sigmoid.BUILTIN.call(x),), expansion=expansion)
