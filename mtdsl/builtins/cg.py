"""`cg(l1, m1, l2, m2, L, M)`: real Clebsch-Gordan coefficients (mtdsl/math/cg.py); special: a constant
table of the backends."""

from .spec import Builtin, Param

BUILTIN = Builtin("cg", (Param("l1", "int"), Param("m1", "component"), Param("l2", "int"), Param("m2", "component"),
                         Param("L", "int"), Param("M", "component")),
                  "cg(l1, m1, l2, m2, L, M): real Clebsch-Gordan coefficients", nonlinear=False, cost=1.0)
