"""`clamp(x, lo, hi) = min(max(x, lo), hi)`, defined by those selects."""

from __future__ import annotations

from . import maximum, minimum
from .spec import Builtin, Param


def definition(x, lo, hi):
    return minimum.definition(maximum.definition(x, lo), hi)


BUILTIN = Builtin("clamp", (Param("x"), Param("lo"), Param("hi")), "clamp(x, lo, hi) = min(max(x, lo), hi)",
                  definition=definition)
