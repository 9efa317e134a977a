"""`norm(v)`: the length of a vector; special (the printers compute it from the vector's parts,
its derivative `dot(v, dv) / norm(v)` is written in mtdsl/ir/passes/autodiff.py)."""

from .spec import Builtin, Param

BUILTIN = Builtin("norm", (Param("v", "vector"),), "norm(v): length of a vector", nonlinear=False, cost=4.0)
