"""`to_irrep(v, m)`: component `m` of irrep 1 of a Cartesian vector in the program's sph convention
(`mtdsl.ir.nodes.IRREP1_AXES`); special, linear in `v`."""

from .spec import Builtin, Param

BUILTIN = Builtin("to_irrep", (Param("v", "vector"), Param("m", "component")),
                  "to_irrep(v, m): component m of irrep 1 of a vector (metatensor: m = -1, 0, 1 are y, z, x), "
                  "unnormalized", nonlinear=False)
