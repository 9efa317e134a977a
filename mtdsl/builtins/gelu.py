"""`gelu(x) = x Phi(x) = x (1 + erf(x / sqrt(2))) / 2`, the Gaussian error linear unit in its exact
form (`torch.nn.functional.gelu`'s default); natively that expansion, so the printers need
nothing new: this file is the whole built-in (docs/builtins.md, "Adding a built-in")."""

from __future__ import annotations

import math

from mtdsl.ir import nodes as ir
from mtdsl.math.functions import ELEMENTARY

from .spec import ONE, binary, unary

HALF = ir.Const(0.5)
INV_SQRT_2 = ir.Const(1.0 / math.sqrt(2.0))
INV_SQRT_2PI = ir.Const(1.0 / math.sqrt(2.0 * math.pi))


def normal_cdf(x):
    """`Phi(x) = (1 + erf(x / sqrt(2))) / 2`."""
    return binary("mul", HALF, binary("add", ONE, ir.Call("erf", (binary("mul", x, INV_SQRT_2),))))


def _numpy(x):
    erf = ELEMENTARY["erf"][0]
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _torch(x):
    import torch

    return torch.nn.functional.gelu(x)


def _partials(x):
    """gelu' = Phi(x) + x phi(x), phi the standard normal density."""
    density = binary("mul", INV_SQRT_2PI, ir.Call("exp", (binary("mul", ir.Const(-0.5), binary("mul", x, x)),)))
    return (binary("add", normal_cdf(x), binary("mul", x, density)),)


BUILTIN = unary("gelu", numpy=_numpy, torch=_torch, partials=_partials,
                expansion=lambda x: binary("mul", x, normal_cdf(x)))
