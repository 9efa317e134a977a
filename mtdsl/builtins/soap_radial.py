"""`soap_radial(r, n, l, n_radial = N, cutoff = rc, density_width = w)`: featomic's SOAP radial basis as a
spline (mtdsl/math/radial.py); special: the backends fill a table of every (l, n) once per distance, its
derivative is the built-in `d_soap_radial`."""

from .spec import Builtin, Param

BUILTIN = Builtin(
    "soap_radial",
    (Param("r"), Param("n", "int"), Param("l", "int"), Param("n_radial", "int", option=True),
     Param("cutoff", option=True), Param("density_width", option=True)),
    "soap_radial(r, n, l, n_radial = N, cutoff = rc, density_width = w)",
    cost=60.0,
)
