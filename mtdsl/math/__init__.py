"""Numerical built-in functions of the language, in pure numpy.

Shared by the reference interpreter and the code generators; see
``docs/builtins.md`` for the conventions and formulas.

- :mod:`.sph`: real spherical harmonics ``sph(v, l, m)`` and their gradients
  (``"metatensor"`` and ``"e3nn"`` conventions)
- :mod:`.cg`: real Clebsch–Gordan coefficients in the basis of ``sph``
- :mod:`.wigner`: real Wigner-D matrices in the basis of ``sph``
- :mod:`.radial`: featomic's GTO radial integral ``soap_radial``, exact and splined
- :mod:`.functions`: ``gto``, ``cosine_cutoff`` and the elementary functions
"""

from .cg import SparseCG, cg, cg_coefficient, cg_sparse, check_triangle, check_triangle_raise
from .functions import ELEMENTARY, cosine_cutoff, gto
from .radial import RadialSpline, soap_radial, soap_radial_exact, soap_radial_spline
from .sph import CONVENTIONS, check_convention, check_convention_raise, sph, sph_index, spherical_harmonics
from .wigner import e3nn_change_of_basis, wigner_d, wigner_d_matrices

__all__ = [
    "CONVENTIONS",
    "ELEMENTARY",
    "RadialSpline",
    "SparseCG",
    "cg",
    "cg_coefficient",
    "cg_sparse",
    "check_convention",
    "check_convention_raise",
    "check_triangle",
    "check_triangle_raise",
    "cosine_cutoff",
    "e3nn_change_of_basis",
    "gto",
    "soap_radial",
    "soap_radial_exact",
    "soap_radial_spline",
    "sph",
    "sph_index",
    "spherical_harmonics",
    "wigner_d",
    "wigner_d_matrices",
]
