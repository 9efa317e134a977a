"""`relu(x) = x > 0 ? x : 0`, defined by that select: lowering substitutes it, so every backend
has it and its derivative is branchwise (`x > 0 ? dx : 0`)."""

from __future__ import annotations

from .spec import ZERO, select, unary


def definition(x):
    return select("gt", x, ZERO, x, ZERO)


BUILTIN = unary("relu", definition=definition)
