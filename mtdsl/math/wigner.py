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

import functools

import numpy as np

from .sph import _check_degree_raise, check_convention_raise, sph

# the cyclic permutation with e3nn_sph(v) = metatensor_sph(E3NN_AXES @ v) =
# metatensor_sph((z, x, y)): e3nn's polynomials are the standard real harmonics
# with the roles of the axes rotated, so that e3nn's Y_1 is proportional to (x, y, z).
E3NN_AXES = np.array(
    [
        [0.0, 0.0, 1.0],
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
    ]
)


@functools.lru_cache(maxsize=None)
def _quadrature(l: int):
    """Nodes ``[k, 3]`` and weights ``[k]`` exact for polynomials of degree ``2l``."""
    cos_theta, weights_theta = np.polynomial.legendre.leggauss(l + 1)
    n_phi = 2 * l + 1
    phi = 2.0 * np.pi * np.arange(n_phi) / n_phi
    sin_theta = np.sqrt(1.0 - cos_theta**2)
    nodes = np.stack(
        [
            np.outer(sin_theta, np.cos(phi)).ravel(),
            np.outer(sin_theta, np.sin(phi)).ravel(),
            np.repeat(cos_theta, n_phi),
        ],
        axis=1,
    )
    weights = np.repeat(weights_theta, n_phi) * (2.0 * np.pi / n_phi)
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return nodes, weights


def _check_rotation_raise(rotation) -> np.ndarray:
    rotation = np.asarray(rotation, dtype=np.float64)
    if rotation.shape != (3, 3):
        raise ValueError(f"expected a 3x3 rotation matrix, got shape {list(rotation.shape)}")
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-10):
        raise ValueError("expected an orthogonal 3x3 matrix (R @ R.T == I)")
    return rotation


def _wigner_d_metatensor(l: int, rotation: np.ndarray) -> np.ndarray:
    nodes, weights = _quadrature(l)
    original = sph(nodes, l)
    rotated = sph(nodes @ rotation.T, l)
    return (rotated * weights[:, None]).T @ original


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


@functools.lru_cache(maxsize=None)
def e3nn_change_of_basis(l: int) -> np.ndarray:
    """Orthogonal ``B_l`` with ``Y_e3nn_l(v) = B_l Y_metatensor_l(v)``.

    e3nn's ``spherical_harmonics`` are the standard real harmonics evaluated on
    the permuted vector ``(y, z, x)``, so ``B_l = D_l(E3NN_AXES)`` in the
    metatensor convention. For ``l = 0`` and ``l = 1`` it is a permutation
    (``Y_1 ∝ (y, z, x)`` becomes ``(x, y, z)``); for ``l >= 2`` a dense change
    of basis. The result is read-only and cached.
    """
    _check_degree_raise(l, "l")
    basis = _wigner_d_metatensor(int(l), E3NN_AXES)
    # clean the rounding noise of the quadrature: entries are algebraic numbers
    # of order 1, anything below 1e-14 is an exact zero
    basis[np.abs(basis) < 1e-14] = 0.0
    basis.setflags(write=False)
    return basis
