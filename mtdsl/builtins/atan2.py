"""`atan2(y, x)`: the angle of the point (x, y), in (-pi, pi]; a primitive (libm's atan2)."""

from __future__ import annotations

import numpy as np

from .spec import Builtin, Param, binary, neg


def _torch(y, x):
    import torch

    return torch.atan2(y, x)


def _partials(y, x):
    """d/dy = x / (x^2 + y^2), d/dx = -y / (x^2 + y^2)."""
    square = binary("add", binary("mul", x, x), binary("mul", y, y))
    return binary("div", x, square), neg(binary("div", y, square))


BUILTIN = Builtin("atan2", (Param("y"), Param("x")), "atan2(y, x): the angle of (x, y), in (-pi, pi]",
                  elementwise=True, numpy=np.arctan2, torch=_torch, partials=_partials)
