"""`max(a, b) = a >= b ? a : b` (ties take the first argument), defined by that select."""

from __future__ import annotations

from .spec import Builtin, Param, select


def definition(a, b):
    return select("ge", a, b, a, b)


BUILTIN = Builtin("max", (Param("a"), Param("b")), "max(a, b)", definition=definition)
