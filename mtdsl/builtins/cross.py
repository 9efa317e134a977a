"""`cross(u, v)`: the cross product, an *axial* vector (o3_sigma = -1 as irrep 1, which the equivariance
checker knows); special, bilinear."""

from .spec import Builtin, Param

BUILTIN = Builtin("cross", (Param("u", "vector"), Param("v", "vector")),
                  "cross(u, v): the cross product, an axial vector", result="vector", nonlinear=False, bilinear=True)
