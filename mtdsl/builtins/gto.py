"""`gto(r, n, width = w) = r^n exp(-r^2 / (2 w^2))` (mtdsl/math/functions.py); special: `width` is a
compile-time option, its derivative the built-in `d_gto`."""

from .spec import Builtin, Param

BUILTIN = Builtin("gto", (Param("r"), Param("n", "int"), Param("width", option=True)),
                  "gto(r, n, width = w) = r^n exp(-r^2 / (2 w^2))", cost=10.0)
