"""`dot(u, v)`: the scalar product of two vectors; special, bilinear (d dot(u, v) = dot(du, v) + dot(u, dv))."""

from .spec import Builtin, Param

BUILTIN = Builtin("dot", (Param("u", "vector"), Param("v", "vector")), "dot(u, v): scalar product of two vectors",
                  nonlinear=False, bilinear=True, cost=3.0)
