"""Real Wigner-D matrices in the basis of :mod:`mtdsl.math.sph`.

``D_l(R)`` is the ``[2l + 1, 2l + 1]`` orthogonal matrix with
``Y_l(R v) = D_l(R) Y_l(v)`` for every vector ``v``, where ``Y_l`` are the real
spherical harmonics of degree ``l`` in one convention. ``R`` may be any
orthogonal 3x3 matrix: for an improper one (``det R = -1``), ``D_l(R) =
(-1)^l D_l(-R)``, so that a tensor of ``o3_sigma = 1`` transforms with
``D_l(R)`` and one of ``o3_sigma = -1`` with ``det(R) D_l(R)``.

The matrix is computed by exact quadrature: ``Y_l(R v) Y_l(v)^T`` is a
polynomial of degree ``2l`` on the sphere and the harmonics are orthonormal, so

    D_l(R) = integral over the sphere of Y_l(R v) Y_l(v)^T dv

and a product Gauss–Legendre (``l + 1`` nodes in ``cos(theta)``) times
trapezoidal (``2l + 1`` nodes in ``phi``) rule integrates it exactly, up to
rounding (about ``1e-15``).
"""

from __future__ import annotations

import numpy as np

# the e3nn change of basis (and the quadrature it is computed by) is defined with the harmonics,
# whose e3nn convention needs it; importable from here as before
from .sph import E3NN_AXES, e3nn_change_of_basis  # noqa: F401
from .sph import _check_degree_raise, _quadrature, _wigner_d_metatensor, check_convention_raise  # noqa: F401



def _check_rotation_raise(rotation) -> np.ndarray:
    rotation = np.asarray(rotation, dtype=np.float64)
    if rotation.shape != (3, 3):
        raise ValueError(f"expected a 3x3 rotation matrix, got shape {list(rotation.shape)}")
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-10):
        raise ValueError("expected an orthogonal 3x3 matrix (R @ R.T == I)")
    return rotation


def wigner_d(l: int, rotation, convention: str = "metatensor") -> np.ndarray:
    """Real Wigner-D matrix ``D_l(R)``, ``[2l + 1, 2l + 1]``, with ``Y_l(R v) = D_l(R) Y_l(v)``.

    :param l: degree
    :param rotation: orthogonal 3x3 matrix (proper or improper)
    :param convention: the :mod:`~mtdsl.math.sph` convention of ``Y_l``
    """
    check_convention_raise(convention)
    _check_degree_raise(l, "l")
    rotation = _check_rotation_raise(rotation)
    matrix = _wigner_d_metatensor(int(l), rotation)
    if convention == "e3nn":
        basis = e3nn_change_of_basis(l)
        matrix = basis @ matrix @ basis.T
    return matrix


def wigner_d_matrices(l_max: int, rotation, convention: str = "metatensor") -> list[np.ndarray]:
    """``[wigner_d(l, rotation, convention) for l in 0..l_max]``."""
    return [wigner_d(l, rotation, convention) for l in range(l_max + 1)]
