"""`min(a, b) = a <= b ? a : b` (ties take the first argument), defined by that select."""

from __future__ import annotations

from .spec import Builtin, Param, select


def definition(a, b):
    return select("le", a, b, a, b)


BUILTIN = Builtin("min", (Param("a"), Param("b")), "min(a, b)", definition=definition)
