"""`sph(v, l, m)`: real spherical harmonics of the direction of `v` (mtdsl/math/sph.py); special: the
backends fill a table of every (l, m) once per vector, its derivative is the built-in `d_sph`."""

from .spec import Builtin, Param

BUILTIN = Builtin("sph", (Param("v", "vector"), Param("l", "int"), Param("m", "component")),
                  "sph(v, l, m): real spherical harmonics of the direction of v", nonlinear=False, cost=40.0)
