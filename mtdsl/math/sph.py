"""Real spherical harmonics ``sph(v, l, m)``, values and gradients.

Two conventions are supported (see ``docs/builtins.md``):

``"metatensor"``
    The real spherical harmonics of metatensor, featomic and sphericart:
    orthonormal on the unit sphere, ``m = -l..l``, no Condon–Shortley phase,
    ``Y_1 = sqrt(3 / 4 pi) (y, z, x)``. Equal to
    ``sphericart.SphericalHarmonics(l_max).compute(v)``.

``"e3nn"``
    Equal to ``e3nn.o3.spherical_harmonics(l, v, normalize=True,
    normalization="integral")``. For each ``l`` this is the metatensor
    harmonics transformed by a fixed orthogonal matrix,
    ``Y_e3nn(v) = B_l Y_metatensor(v)``, with ``B_l`` the Wigner-D matrix of
    the cyclic permutation of the axes ``(x, y, z) -> (y, z, x)`` that e3nn
    applies (see :func:`e3nn_change_of_basis`).

Both are evaluated on the direction ``v / |v|``. The gradient is with respect to
the unnormalized vector ``v``: for a homogeneous polynomial ``P`` of degree
``l`` with ``Y(v) = P(v / r)``, ``dY/dv = (grad P(u) - l P(u) u) / r`` with
``u = v / r``. The zero vector gives ``Y_0 = 1 / sqrt(4 pi)``, ``Y_l = 0`` for
``l > 0`` and zero gradients (this never happens for pairs of distinct atoms).

Layout: all ``l`` together are stored as ``[..., (l_max + 1)^2]`` with ``l``
blocks in increasing order and ``m = -l..l`` inside a block, i.e. ``(l, m)`` at
:func:`sph_index` ``= l^2 + l + m``; gradients are ``[n, 3, (l_max + 1)^2]``
(the Cartesian derivative on axis 1), as in sphericart.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np

CONVENTIONS = ("metatensor", "e3nn")


def check_convention(convention: str) -> bool:
    """Whether ``convention`` names a supported spherical-harmonics convention."""
    return convention in CONVENTIONS


def check_convention_raise(convention: str) -> None:
    """Raise ``ValueError`` naming the supported conventions if ``convention`` is unknown."""
    if not check_convention(convention):
        raise ValueError(
            f"unknown spherical harmonics convention '{convention}', "
            f"expected one of {', '.join(repr(c) for c in CONVENTIONS)}"
        )


def sph_index(l: int, m: int) -> int:
    """Column of ``(l, m)`` in the packed ``[(l_max + 1)^2]`` layout."""
    return l * l + l + m


def _check_degree_raise(l_max: int, name: str = "l_max") -> None:
    if isinstance(l_max, bool) or not isinstance(l_max, (int, np.integer)) or l_max < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {l_max!r}")


def _as_vectors(vectors) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[1] != 3:
        raise ValueError(f"expected vectors of shape [n, 3], got {list(vectors.shape)}")
    return vectors


@functools.lru_cache(maxsize=None)
def _normalization(l: int, m: int) -> float:
    """``sqrt((2l+1)/(4 pi) (l-m)!/(l+m)!)``, times ``sqrt(2)`` when ``m > 0``."""
    ratio = Fraction(2 * l + 1) * Fraction(math.factorial(l - m), math.factorial(l + m))
    if m > 0:
        ratio *= 2
    return math.sqrt(float(ratio) / (4.0 * math.pi))


def recurrences(x, y, z, l_max: int, ones, zeros):
    """`c[m] + i s[m] = (x + i y)^m` for `m <= l_max` and the scaled Legendre `q[l][m] = Q_l^m(z)`
    for `0 <= m <= l <= l_max`, as lists of arrays (numpy or torch: only arithmetic is used;
    `ones` and `zeros` are arrays like `x`)."""
    c, s = [ones], [zeros]
    for m in range(1, l_max + 1):
        c.append(x * c[m - 1] - y * s[m - 1])
        s.append(x * s[m - 1] + y * c[m - 1])
    q = [[None] * (l + 1) for l in range(l_max + 1)]
    q[0][0] = ones
    for m in range(1, l_max + 1):
        q[m][m] = (2 * m - 1) * q[m - 1][m - 1]
    for m in range(0, l_max):
        q[m + 1][m] = (2 * m + 1) * z * q[m][m]
    for m in range(0, l_max + 1):
        for l in range(m + 2, l_max + 1):
            q[l][m] = ((2 * l - 1) * z * q[l - 1][m] - (l + m - 1) * q[l - 2][m]) / (l - m)
    return c, s, q


def _metatensor(vectors: np.ndarray, l_max: int, gradients: bool):
    """Metatensor-convention harmonics on ``vectors`` (see the module docstring).

    With ``u = (x, y, z)`` the unit vector, ``Y_l^m = N_lm Q_l^m(z) c_m`` for
    ``m > 0``, ``N_l0 Q_l^0(z)`` for ``m = 0``, ``N_l|m| Q_l^|m|(z) s_|m|`` for
    ``m < 0``, where ``c_m + i s_m = (x + i y)^m`` and ``Q_l^m`` are the
    associated Legendre functions without Condon–Shortley phase divided by
    ``sin(theta)^m`` (polynomials in ``z`` and ``r^2 = 1``):

        Q_m^m = (2m - 1)!!,  Q_{m+1}^m = (2m + 1) z Q_m^m,
        Q_l^m = ((2l - 1) z Q_{l-1}^m - (l + m - 1) Q_{l-2}^m) / (l - m).

    Their Cartesian derivatives as homogeneous polynomials are
    ``dQ_l^m/dx = -x Q_{l-1}^{m+1}``, ``dQ_l^m/dy = -y Q_{l-1}^{m+1}``,
    ``dQ_l^m/dz = (l + m) Q_{l-1}^m``; and ``d(c_m)/dx = m c_{m-1}``,
    ``d(c_m)/dy = -m s_{m-1}``, ``d(s_m)/dx = m s_{m-1}``, ``d(s_m)/dy = m c_{m-1}``.
    """
    n = vectors.shape[0]
    r = np.linalg.norm(vectors, axis=1)
    nonzero = r > 0.0
    safe_r = np.where(nonzero, r, 1.0)
    u = vectors / safe_r[:, None]
    x, y, z = u[:, 0], u[:, 1], u[:, 2]

    c, s, q = recurrences(x, y, z, l_max, np.ones(n), np.zeros(n))

    size = (l_max + 1) ** 2
    values = np.empty((n, size))
    grads = np.zeros((n, 3, size)) if gradients else None
    zero = np.zeros(n)

    for l in range(l_max + 1):
        for m in range(0, l + 1):
            norm = _normalization(l, m)
            poly_q = q[l][m]
            if m == 0:
                values[:, sph_index(l, 0)] = norm * poly_q
            else:
                values[:, sph_index(l, m)] = norm * poly_q * c[m]
                values[:, sph_index(l, -m)] = norm * poly_q * s[m]
            if not gradients:
                continue

            # gradient of the homogeneous polynomial Q_l^m * (c_m or s_m) at u
            q_up = q[l - 1][m + 1] if m + 1 <= l - 1 else zero
            q_down = q[l - 1][m] if m <= l - 1 else zero
            dq = (-x * q_up, -y * q_up, (l + m) * q_down)
            if m == 0:
                components = [(0, (dq[0], dq[1], dq[2]))]
            else:
                dc = (m * c[m - 1], -m * s[m - 1], zero)
                ds = (m * s[m - 1], m * c[m - 1], zero)
                components = [
                    (m, tuple(dq[a] * c[m] + poly_q * dc[a] for a in range(3))),
                    (-m, tuple(dq[a] * s[m] + poly_q * ds[a] for a in range(3))),
                ]
            for mm, grad_poly in components:
                column = sph_index(l, mm)
                value = values[:, column]
                for a in range(3):
                    grads[:, a, column] = (norm * grad_poly[a] - l * value * u[:, a]) / safe_r

    if not np.all(nonzero):
        values[~nonzero, 1:] = 0.0
        if gradients:
            grads[~nonzero] = 0.0
    if gradients:
        return values, grads
    return values


def spherical_harmonics(vectors, l_max: int, convention: str = "metatensor", gradients: bool = False):
    """Real spherical harmonics of every degree ``0..l_max`` of ``vectors``.

    :param vectors: ``[n, 3]`` array (need not be normalized)
    :param l_max: maximal degree (inclusive)
    :param convention: ``"metatensor"`` or ``"e3nn"``
    :param gradients: also return ``d Y / d v``
    :returns: ``values[n, (l_max + 1)^2]`` in the layout of :func:`sph_index`,
        and with ``gradients=True`` also ``grads[n, 3, (l_max + 1)^2]``.
    """
    check_convention_raise(convention)
    _check_degree_raise(l_max)
    vectors = _as_vectors(vectors)
    result = _metatensor(vectors, int(l_max), gradients)
    if convention == "metatensor":
        return result

    values, grads = result if gradients else (result, None)
    for l in range(l_max + 1):
        block = slice(l * l, (l + 1) ** 2)
        basis = e3nn_change_of_basis(l)
        values[:, block] = values[:, block] @ basis.T
        if gradients:
            grads[:, :, block] = grads[:, :, block] @ basis.T
    if gradients:
        return values, grads
    return values


def sph(vectors, l: int, convention: str = "metatensor", gradients: bool = False):
    """Real spherical harmonics of the single degree ``l``: ``[n, 2l + 1]``.

    With ``gradients=True`` also returns ``[n, 3, 2l + 1]``. See
    :func:`spherical_harmonics` for the conventions.
    """
    _check_degree_raise(l, "l")
    result = spherical_harmonics(vectors, l, convention=convention, gradients=gradients)
    block = slice(l * l, (l + 1) ** 2)
    if gradients:
        values, grads = result
        return values[:, block], grads[:, :, block]
    return result[:, block]


# ---- the e3nn convention: a change of basis (the Wigner-D matrix of an axis permutation, mtdsl.math.wigner) ----

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


def _wigner_d_metatensor(l: int, rotation: np.ndarray) -> np.ndarray:
    nodes, weights = _quadrature(l)
    original = sph(nodes, l)
    rotated = sph(nodes @ rotation.T, l)
    return (rotated * weights[:, None]).T @ original


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
