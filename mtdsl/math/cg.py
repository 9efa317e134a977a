"""Real Clebsch–Gordan coefficients ``cg(l1, m1, l2, m2, L, M)`` in the basis of ``sph``.

For real spherical harmonics ``A`` of degree ``l1`` and ``B`` of degree ``l2``
(both transforming with the real Wigner-D matrices of :mod:`mtdsl.math.wigner`),

    C_M = sum over m1, m2 of cg[m1, m2, M] A_m1 B_m2

transforms as degree ``L``: ``C(D_l1 A, D_l2 B) = D_L C(A, B)``. The
coefficients are orthogonal (``sum over m1, m2 of cg^2 = 1`` for every ``L, M``)
and are zero unless ``|l1 - l2| <= L <= l1 + l2`` (the triangle rule).

``"metatensor"`` convention: the standard complex Clebsch–Gordan coefficients
``<l1 m1; l2 m2 | L M>`` (Condon–Shortley, computed exactly with Racah's
formula in rational arithmetic) transformed to the real basis with the unitary
``U_l`` of the real spherical harmonics (Wikipedia's real form)::

    cg[m1, m2, M] = sum U_L[M, M'] <l1 m1'; l2 m2' | L M'> conj(U_l1[m1, m1']) conj(U_l2[m2, m2'])

which is real when ``l1 + l2 + L`` is even and purely imaginary otherwise, in
which case its imaginary part is kept. This is the same construction (and the
same signs) as ``featomic.clebsch_gordan.calculate_cg_coefficients``.

``"e3nn"`` convention: e3nn's harmonics are ``B_l Y_l`` with ``B_l =
D_l(P)`` the Wigner-D matrix of a rotation (:func:`mtdsl.math.wigner.e3nn_change_of_basis`),
and the coefficients above are invariant under any rotation applied to all
three indices, so the metatensor array is *also* a valid (orthogonal,
equivariant) coupling in e3nn's basis. e3nn picks a different phase per
``(l1, l2, L)``; we follow it, so that ``cg_e3nn = sqrt(2L + 1) *
e3nn.o3.wigner_3j(l1, l2, L)``::

    cg_e3nn[l1, l2, L] = s(l1, l2, L) cg_metatensor[l1, l2, L],   s = +1 or -1

where ``s`` is computed as e3nn does (complex coefficients turned real with
e3nn's ``(-i)^l``-phased real-to-complex matrices), see :func:`e3nn_phase`.

Coupling two harmonics of one vector gives a multiple of a harmonic:
``sum cg[m1, m2, M] Y_l1,m1(v) Y_l2,m2(v) = k(l1, l2, L) Y_L,M(v)`` with ``k``
non-zero for even ``l1 + l2 + L`` (in both conventions).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .sph import _check_degree_raise, check_convention_raise

# entries below this are rounding noise of the complex-to-real transformation
ZERO_THRESHOLD = 1e-13


def check_triangle(l1: int, l2: int, L: int) -> bool:
    """Whether ``(l1, l2, L)`` satisfies the triangle rule ``|l1 - l2| <= L <= l1 + l2``."""
    return min(l1, l2, L) >= 0 and abs(l1 - l2) <= L <= l1 + l2


def check_triangle_raise(l1: int, l2: int, L: int) -> None:
    """Raise ``ValueError`` when :func:`check_triangle` is false."""
    if not check_triangle(l1, l2, L):
        raise ValueError(
            f"cg: (l1, l2, L) = ({l1}, {l2}, {L}) violates the triangle rule |l1 - l2| <= L <= l1 + l2"
        )


def complex_cg(l1: int, m1: int, l2: int, m2: int, L: int, M: int) -> float:
    """Standard (complex basis, Condon–Shortley) ``<l1 m1; l2 m2 | L M>``.

    Racah's formula, with the sum evaluated exactly in rational arithmetic; only
    the final square root is rounded.
    """
    if M != m1 + m2 or not check_triangle(l1, l2, L):
        return 0.0
    if abs(m1) > l1 or abs(m2) > l2 or abs(M) > L:
        return 0.0
    f = math.factorial
    prefactor = Fraction(
        (2 * L + 1) * f(L + l1 - l2) * f(L - l1 + l2) * f(l1 + l2 - L),
        f(l1 + l2 + L + 1),
    ) * (f(L + M) * f(L - M) * f(l1 - m1) * f(l1 + m1) * f(l2 - m2) * f(l2 + m2))
    total = Fraction(0)
    k_min = max(0, l2 - L - m1, l1 - L + m2)
    k_max = min(l1 + l2 - L, l1 - m1, l2 + m2)
    for k in range(k_min, k_max + 1):
        denominator = (
            f(k) * f(l1 + l2 - L - k) * f(l1 - m1 - k) * f(l2 + m2 - k) * f(L - l2 + m1 + k) * f(L - l1 - m2 + k)
        )
        total += Fraction((-1) ** k, denominator)
    if total == 0:
        return 0.0
    return math.copysign(math.sqrt(prefactor * total * total), total)


@functools.lru_cache(maxsize=None)
def _real_to_complex(l: int) -> np.ndarray:
    """``U_l`` with ``Y_real = U_l Y_complex`` (rows ``m = -l..l``, columns ``m' = -l..l``)."""
    matrix = np.zeros((2 * l + 1, 2 * l + 1), dtype=np.complex128)
    s = 1.0 / math.sqrt(2.0)
    for m in range(-l, l + 1):
        if m < 0:
            matrix[l + m, l + m] = 1j * s
            matrix[l + m, l - m] = -1j * s * (-1) ** m
        elif m == 0:
            matrix[l, l] = 1.0
        else:
            matrix[l + m, l - m] = s
            matrix[l + m, l + m] = s * (-1) ** m
    return matrix


def _complex_cg_array(l1: int, l2: int, L: int) -> np.ndarray:
    array = np.zeros((2 * l1 + 1, 2 * l2 + 1, 2 * L + 1))
    for m1 in range(-l1, l1 + 1):
        for m2 in range(-l2, l2 + 1):
            M = m1 + m2
            if abs(M) <= L:
                array[l1 + m1, l2 + m2, L + M] = complex_cg(l1, m1, l2, m2, L, M)
    return array


def _metatensor_cg(l1: int, l2: int, L: int) -> np.ndarray:
    u1, u2, u3 = _real_to_complex(l1), _real_to_complex(l2), _real_to_complex(L)
    real = np.einsum("ia,jb,kc,abc->ijk", u1.conj(), u2.conj(), u3, _complex_cg_array(l1, l2, L))
    result = real.real if (l1 + l2 + L) % 2 == 0 else real.imag
    return np.ascontiguousarray(result)


def _e3nn_real_to_complex(l: int) -> np.ndarray:
    """e3nn's ``change_basis_real_to_complex(l)``, including its ``(-i)^l`` factor."""
    q = np.zeros((2 * l + 1, 2 * l + 1), dtype=np.complex128)
    s = 1.0 / math.sqrt(2.0)
    for m in range(-l, 0):
        q[l + m, l - m] = s
        q[l + m, l + m] = -1j * s
    q[l, l] = 1.0
    for m in range(1, l + 1):
        q[l + m, l + m] = (-1) ** m * s
        q[l + m, l - m] = 1j * (-1) ** m * s
    return (-1j) ** l * q


@functools.lru_cache(maxsize=None)
def e3nn_phase(l1: int, l2: int, L: int) -> int:
    """The sign ``s`` with ``cg(l1, l2, L, "e3nn") = s * cg(l1, l2, L, "metatensor")``.

    Follows e3nn's construction of ``wigner_3j`` (real part of the complex
    coefficients in its ``(-i)^l``-phased real basis). 1 when the triangle rule fails.
    """
    if not check_triangle(l1, l2, L):
        return 1
    q1, q2, q3 = _e3nn_real_to_complex(l1), _e3nn_real_to_complex(l2), _e3nn_real_to_complex(L)
    e3nn = np.einsum("ij,kl,mn,ikn->jlm", q1, q2, q3.T.conj(), _complex_cg_array(l1, l2, L)).real
    overlap = float(np.sum(e3nn * _cg_cached(l1, l2, L, "metatensor")))
    return 1 if overlap > 0 else -1


@functools.lru_cache(maxsize=None)
def _cg_cached(l1: int, l2: int, L: int, convention: str) -> np.ndarray:
    if not check_triangle(l1, l2, L):
        array = np.zeros((2 * l1 + 1, 2 * l2 + 1, 2 * L + 1))
    elif convention == "e3nn":
        array = e3nn_phase(l1, l2, L) * _cg_cached(l1, l2, L, "metatensor")
    else:
        array = _metatensor_cg(l1, l2, L)
        array[np.abs(array) < ZERO_THRESHOLD] = 0.0
    array.setflags(write=False)
    return array


def _check_degrees_raise(l1, l2, L) -> tuple[int, int, int]:
    for name, value in (("l1", l1), ("l2", l2), ("L", L)):
        _check_degree_raise(value, name)
    return int(l1), int(l2), int(L)


def cg(l1: int, l2: int, L: int, convention: str = "metatensor") -> np.ndarray:
    """Dense real CG coefficients ``[2 l1 + 1, 2 l2 + 1, 2 L + 1]``, indexed ``[l1 + m1, l2 + m2, L + M]``.

    All zeros when ``(l1, l2, L)`` violates the triangle rule (use
    :func:`check_triangle_raise` to reject those). Cached; read-only.
    """
    check_convention_raise(convention)
    l1, l2, L = _check_degrees_raise(l1, l2, L)
    return _cg_cached(l1, l2, L, convention)


def cg_coefficient(l1: int, m1: int, l2: int, m2: int, L: int, M: int, convention: str = "metatensor") -> float:
    """One coefficient ``cg(l1, m1, l2, m2, L, M)``, as written in the language."""
    array = cg(l1, l2, L, convention)
    for name, m, l in (("m1", m1, l1), ("m2", m2, l2), ("M", M, L)):
        if abs(m) > l:
            raise ValueError(f"cg: {name} = {m} is outside -{l}..{l}")
    return float(array[l1 + m1, l2 + m2, L + M])


@dataclass(frozen=True, slots=True)
class SparseCG:
    """The non-zero coefficients of one ``(l1, l2, L)`` block, for unrolled code.

    ``m1[k], m2[k], M[k]`` are the ``m`` values (``-l..l``, not offsets) of the
    ``k``-th non-zero ``values[k]``, in lexicographic ``(m1, m2, M)`` order.
    """

    l1: int
    l2: int
    L: int
    convention: str
    m1: np.ndarray
    m2: np.ndarray
    M: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def entries(self) -> list[tuple[int, int, int, float]]:
        """``[(m1, m2, M, value), ...]`` as Python scalars."""
        return [
            (int(a), int(b), int(c), float(v)) for a, b, c, v in zip(self.m1, self.m2, self.M, self.values)
        ]


@functools.lru_cache(maxsize=None)
def _sparse_cached(l1: int, l2: int, L: int, convention: str) -> SparseCG:
    dense = _cg_cached(l1, l2, L, convention)
    i, j, k = np.nonzero(dense)
    arrays = [i - l1, j - l2, k - L, dense[i, j, k]]
    for array in arrays:
        array.setflags(write=False)
    return SparseCG(l1, l2, L, convention, *arrays)


def cg_sparse(l1: int, l2: int, L: int, convention: str = "metatensor") -> SparseCG:
    """Non-zero coefficients of :func:`cg` as a :class:`SparseCG` (cached)."""
    check_convention_raise(convention)
    l1, l2, L = _check_degrees_raise(l1, l2, L)
    return _sparse_cached(l1, l2, L, convention)
