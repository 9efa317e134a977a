"""featomic's SOAP radial integral ``soap_radial(r, n, l, n_radial, cutoff, density_width)``.

This is the radial part of featomic's ``SphericalExpansion`` with the ``Gto``
radial basis of ``n_radial`` functions (featomic's ``max_radial = n_radial -
1``) of radius ``cutoff``, for a Gaussian atomic density of width
``density_width`` (``0``: a Dirac delta), so that

    rho[i, l, m, n] = sum over neighbours j of
        soap_radial(r_ij, n, l) * cosine_cutoff(r_ij) * sph(r_ij_vector, l, m)

is featomic's spherical expansion (``center_atom_weight = 0``).

Basis (featomic ``GtoRadialBasis``): primitive ``R_k(r) = r^k exp(-r^2 / (2
s_k^2))`` with ``s_k = cutoff * max(sqrt(k), 1) / n_radial``; normalized by
``N_k = sqrt(2 / (s_k^(2k + 3) Gamma(k + 3/2)))`` and orthonormalized on
``[0, inf)`` with the ``r^2`` weight by the symmetric (Löwdin) ``S^(-1/2)``,
``S`` the overlap of the normalized primitives: ``R_n = sum_k M[n, k] R_k``
with ``M = S^(-1/2) diag(N)`` (:func:`gto_orthonormalization`).

Gaussian density of width ``w`` (featomic ``SoapRadialIntegralGto``), with
``c = 1 / (2 w^2)``, ``g_k = 1 / (2 s_k^2)``, ``a = (k + l + 3) / 2``, ``b = l
+ 3/2``, ``z = c^2 r^2 / (c + g_k)``:

    I_k(r) = (pi / w^2)^(3/4) Gamma(a) / Gamma(b) (c + g_k)^(-a) (c r)^l exp(-c r^2) 1F1(a; b; z)
    soap_radial(r, n, l) = sum_k M[n, k] I_k(r)

(the ``(pi / w^2)^(3/4)`` gathers the ``4 pi`` of the angular integral, the
``sqrt(pi) / 4`` of the Gaussian integral and the L2 normalization
``(pi w^2)^(-3/4)`` of the atomic density). ``exp(-c r^2) 1F1(a; b; z)`` is
evaluated as a series of positive terms with rescaling (:func:`scaled_hyp1f1`),
so large ``cutoff / width`` does not overflow. ``d/dr`` uses ``d 1F1 / dz =
a / b 1F1(a + 1; b + 1; z)`` and has no ``1 / r`` singularity.

Dirac density (``density_width = 0``): ``soap_radial(r, n, l) = R_n(r)`` for
every ``l``, as featomic's ``SoapSpliner`` with a ``DiracDelta`` density.

Splines (:class:`RadialSpline`): cubic Hermite on a uniform grid over ``[0,
cutoff]`` (``10 * 2^k`` intervals, like featomic's spliner, whose refinement
also halves every interval), refined until the maximal absolute error at the
midpoints of all intervals, for every ``l`` and ``n``, is below ``accuracy``
(default ``1e-10``). The table is three plain arrays (positions, values and
derivatives), meant to be embedded by code generators; evaluation at ``r``:
``k = min(floor(r / h), n_intervals - 1)``, ``t = r / h - k`` and the Hermite
basis polynomials (:meth:`RadialSpline.evaluate`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

DEFAULT_ACCURACY = 1e-10
# refine the spline at most this many times (10 * 2^14 = 163840 intervals)
MAX_REFINEMENTS = 14


def _check_hypers_raise(n_radial, cutoff, density_width) -> None:
    if isinstance(n_radial, bool) or not isinstance(n_radial, (int, np.integer)) or n_radial < 1:
        raise ValueError(f"soap_radial: n_radial must be a positive integer, got {n_radial!r}")
    if not (np.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"soap_radial: cutoff must be a positive number, got {cutoff!r}")
    if not (np.isfinite(density_width) and density_width >= 0):
        raise ValueError(
            f"soap_radial: density_width must be a non-negative number (0 for a Dirac density), got {density_width!r}"
        )


def _check_index_raise(name: str, value, upper: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"soap_radial: {name} must be a non-negative integer, got {value!r}")
    if upper is not None and value >= upper:
        raise ValueError(f"soap_radial: {name} = {value} is outside 0..{upper - 1}")


def gto_widths(n_radial: int, cutoff: float) -> np.ndarray:
    """featomic's GTO widths ``s_k = cutoff * max(sqrt(k), 1) / n_radial``, ``[n_radial]``."""
    k = np.arange(n_radial, dtype=np.float64)
    return cutoff * np.maximum(np.sqrt(k), 1.0) / n_radial


@functools.lru_cache(maxsize=None)
def _orthonormalization_cached(n_radial: int, cutoff: float) -> np.ndarray:
    widths = gto_widths(n_radial, cutoff)
    k = np.arange(n_radial)
    gamma_k = np.array([math.gamma(i + 1.5) for i in k])
    normalization = np.sqrt(2.0 / (widths ** (2 * k + 3) * gamma_k))

    # overlap of the normalized primitives: N1 N2 Gamma(p) / (2 alpha^p), p = (k1 + k2 + 3) / 2
    overlap = np.empty((n_radial, n_radial))
    for k1 in range(n_radial):
        for k2 in range(n_radial):
            alpha = 0.5 / widths[k1] ** 2 + 0.5 / widths[k2] ** 2
            p = 0.5 * (k1 + k2 + 3)
            overlap[k1, k2] = normalization[k1] * normalization[k2] * math.gamma(p) / (2.0 * alpha**p)

    eigenvalues, eigenvectors = np.linalg.eigh(overlap)
    if np.any(eigenvalues <= np.finfo(np.float64).eps):
        raise ValueError(
            f"soap_radial: the GTO overlap matrix is singular, try a lower n_radial (got {n_radial})"
        )
    inverse_sqrt = (eigenvectors / np.sqrt(eigenvalues)) @ eigenvectors.T
    matrix = inverse_sqrt * normalization[None, :]
    matrix.setflags(write=False)
    return matrix


def gto_orthonormalization(n_radial: int, cutoff: float) -> np.ndarray:
    """``M[n, k]`` with orthonormal ``R_n(r) = sum_k M[n, k] r^k exp(-r^2 / (2 s_k^2))`` (read-only)."""
    _check_hypers_raise(n_radial, cutoff, 0.0)
    return _orthonormalization_cached(int(n_radial), float(cutoff))


def scaled_hyp1f1(a: float, b: float, z, log_scale) -> np.ndarray:
    """``exp(-log_scale) 1F1(a; b; z)`` for ``a, b > 0`` and ``z >= 0`` (arrays of the same shape).

    Sums the series ``sum_j (a)_j / (b)_j z^j / j!`` of positive terms (no
    cancellation), rescaling partial sums by ``1e-250`` when they grow large;
    the returned value is ``exp(log(sum) + log_shift - log_scale)``. Stops
    when the term falls below ``1e-17`` of the sum after the terms peaked
    (``j > z``).
    """
    z = np.asarray(z, dtype=np.float64)
    rows = _scaled_hyp1f1_rows(np.array([a], dtype=np.float64), np.array([b], dtype=np.float64),
                               z.reshape(1, -1), np.broadcast_to(log_scale, z.shape).reshape(1, -1))
    return rows.reshape(z.shape)


def _scaled_hyp1f1_rows(a: np.ndarray, b: np.ndarray, z: np.ndarray, log_scale: np.ndarray) -> np.ndarray:
    """`scaled_hyp1f1(a[k], b[k], z[k], log_scale[k])` for each row `k` of `z` at once, each row's
    sum taken at the term where that row alone would have stopped: the same values, bit for bit,
    as one call per row, for a tenth of the numpy calls (building the radial spline of the power
    spectrum made 600 calls of ~250 terms each: most of a cold compile)."""
    ratio_a, ratio_b = a[:, None], b[:, None]
    total = np.ones_like(z)
    term = np.ones_like(z)
    shift = np.zeros_like(z)
    z_max = np.max(z, axis=1, initial=0.0)
    first_done = float(np.min(z_max, initial=0.0))
    result_total, result_shift = np.ones_like(z), np.zeros_like(z)
    active = np.ones(len(z), dtype=bool)
    j = 0
    while True:
        np.multiply(term, (ratio_a + j) / (ratio_b + j), out=term)
        np.multiply(term, z, out=term)
        np.divide(term, j + 1, out=term)
        np.add(total, term, out=total)
        j += 1
        if z.size and total.max() > 1e250:
            big = total > 1e250
            total = np.where(big, total * 1e-250, total)
            term = np.where(big, term * 1e-250, term)
            shift = np.where(big, shift + 250.0 * math.log(10.0), shift)
        if j > first_done:
            done = active & (j > z_max) & np.all(term <= 1e-17 * total, axis=1)
            if done.any():
                result_total[done], result_shift[done] = total[done], shift[done]
                active &= ~done
                if not active.any():
                    break
        if j > 100000:
            raise RuntimeError("scaled_hyp1f1: series did not converge")
    return np.exp(np.log(result_total) + result_shift - log_scale)


def _gaussian_series_rows(r: np.ndarray, l: int, n_radial: int, cutoff: float, width: float, derivative: bool):
    """The `(a, b, z)` rows of the series `1F1(a_k; b; z_k)` that ``I_k(r)`` of this ``l`` needs (and
    `1F1(a_k + 1; b + 1; z_k)` for the derivative): `_scaled_hyp1f1_rows` sums rows of several ``l`` at once."""
    c = 0.5 / (width * width)
    gto_constants = 0.5 / gto_widths(n_radial, cutoff) ** 2
    b = l + 1.5
    a_all = [0.5 * (k + l + 3) for k in range(n_radial)]
    kappas = [c * c / (c + gto_constants[k]) for k in range(n_radial)]
    zs = [kappa * r * r for kappa in kappas]
    rows_a = a_all + ([a + 1.0 for a in a_all] if derivative else [])
    rows_b = [b] * n_radial + ([b + 1.0] * n_radial if derivative else [])
    rows_z = np.array(zs + (zs if derivative else []), dtype=np.float64).reshape(len(rows_a), len(r))
    return rows_a, rows_b, rows_z


def _gaussian_from_series(series: np.ndarray, r: np.ndarray, l: int, n_radial: int, cutoff: float, width: float,
                          derivative: bool):
    """``I_k(r)`` (and ``d I_k / dr``) from the summed rows of `_gaussian_series_rows`."""
    c = 0.5 / (width * width)
    gto_constants = 0.5 / gto_widths(n_radial, cutoff) ** 2
    global_factor = (math.pi / (width * width)) ** 0.75
    c_r = c * r
    values = np.empty((len(r), n_radial))
    grads = np.empty((len(r), n_radial)) if derivative else None
    b = l + 1.5
    for k in range(n_radial):
        g = gto_constants[k]
        a = 0.5 * (k + l + 3)
        kappa = c * c / (c + g)
        prefactor = global_factor * math.exp(math.lgamma(a) - math.lgamma(b)) * (c + g) ** (-a)
        hyp = series[k]  # exp(-c r^2) 1F1(a; b; z)
        values[:, k] = prefactor * c_r**l * hyp
        if derivative:
            hyp_prime = (a / b) * series[n_radial + k]
            # d/dr [(c r)^l exp(-c r^2) F(kappa r^2)]
            lower = l * c * c_r ** (l - 1) * hyp if l > 0 else 0.0
            grads[:, k] = prefactor * (lower + c_r**l * (-2.0 * c * r * hyp + 2.0 * kappa * r * hyp_prime))
    return values, grads


def _gaussian_primitive_integrals_all(r: np.ndarray, ls, n_radial: int, cutoff: float, width: float,
                                      derivative: bool) -> list:
    """`[(I_k(r), d I_k / dr)]` for each ``l`` of `ls`, their series summed in one `_scaled_hyp1f1_rows`
    (the same values, bit for bit, as one call per ``l``: each row stops where it alone would; a
    cold compile of the power spectrum spent most of its spline build in the per-``l`` loop)."""
    c = 0.5 / (width * width)
    exponent = c * r * r
    rows = [_gaussian_series_rows(r, l, n_radial, cutoff, width, derivative) for l in ls]
    series = _scaled_hyp1f1_rows(np.array([a for row in rows for a in row[0]]),
                                 np.array([b for row in rows for b in row[1]]),
                                 np.concatenate([row[2] for row in rows]), exponent[None, :])
    results, start = [], 0
    for l, row in zip(ls, rows):
        count = len(row[0])
        results.append(_gaussian_from_series(series[start: start + count], r, l, n_radial, cutoff, width,
                                             derivative))
        start += count
    return results


def _gaussian_primitive_integrals(r: np.ndarray, l: int, n_radial: int, cutoff: float, width: float, derivative: bool):
    """``I_k(r)`` (and ``d I_k / dr``), ``[len(r), n_radial]``, before orthonormalization."""
    return _gaussian_primitive_integrals_all(r, [l], n_radial, cutoff, width, derivative)[0]


def _dirac_primitive_integrals(r: np.ndarray, n_radial: int, cutoff: float, derivative: bool):
    widths = gto_widths(n_radial, cutoff)
    values = np.empty((len(r), n_radial))
    grads = np.empty((len(r), n_radial)) if derivative else None
    for k in range(n_radial):
        gaussian = np.exp(-0.5 * r * r / widths[k] ** 2)
        values[:, k] = r**k * gaussian
        if derivative:
            lower = k * r ** (k - 1) if k > 0 else 0.0
            grads[:, k] = (lower - r ** (k + 1) / widths[k] ** 2) * gaussian
    return values, grads


def soap_radial_exact(r, l: int, n_radial: int, cutoff: float, density_width: float, derivative: bool = False):
    """Exact radial integral for all ``n``: ``[len(r), n_radial]`` (and ``d/dr`` with ``derivative=True``).

    ``r`` is a 1-d array of distances ``>= 0`` (any distance, not only below the cutoff).
    """
    _check_hypers_raise(n_radial, cutoff, density_width)
    _check_index_raise("l", l)
    r = np.atleast_1d(np.asarray(r, dtype=np.float64))
    if r.ndim != 1:
        raise ValueError(f"soap_radial: expected a 1-d array of distances, got shape {list(r.shape)}")
    if np.any(r < 0) or not np.all(np.isfinite(r)):
        raise ValueError("soap_radial: distances must be finite and non-negative")
    if density_width == 0:
        values, grads = _dirac_primitive_integrals(r, int(n_radial), float(cutoff), derivative)
    else:
        values, grads = _gaussian_primitive_integrals(
            r, int(l), int(n_radial), float(cutoff), float(density_width), derivative
        )
    matrix = gto_orthonormalization(n_radial, cutoff)
    values = values @ matrix.T
    if derivative:
        return values, grads @ matrix.T
    return values


@dataclass(frozen=True, slots=True, eq=False)
class RadialSpline:
    """A cubic Hermite spline table of ``soap_radial`` for ``l = 0..max_angular``.

    ``positions[k] = k * step`` for ``k = 0..n_intervals`` covers ``[0,
    cutoff]``; ``values[k, l, n]`` and ``derivatives[k, l, n]`` are the exact
    radial integral and its ``d/dr`` there. ``max_error`` is the largest
    absolute error found at the interval midpoints when the table was built.
    """

    n_radial: int
    max_angular: int
    cutoff: float
    density_width: float
    step: float
    positions: np.ndarray
    values: np.ndarray
    derivatives: np.ndarray
    max_error: float

    @property
    def n_intervals(self) -> int:
        return len(self.positions) - 1

    def evaluate(self, r, l: int | None = None, derivative: bool = False):
        """Spline values ``[len(r), max_angular + 1, n_radial]`` (or ``[len(r), n_radial]`` for one ``l``).

        Distances beyond ``cutoff`` are computed exactly instead (they do not
        occur for pairs from a neighbour list with this cutoff).
        """
        r = np.atleast_1d(np.asarray(r, dtype=np.float64))
        if np.any(r < 0) or not np.all(np.isfinite(r)):
            raise ValueError("soap_radial: distances must be finite and non-negative")
        table_values = self.values if l is None else self.values[:, l]
        table_derivatives = self.derivatives if l is None else self.derivatives[:, l]

        x = r / self.step
        k = np.minimum(np.floor(x).astype(np.int64), self.n_intervals - 1)
        t = (x - k)[(...,) + (None,) * (table_values.ndim - 1)]
        t2 = t * t
        t3 = t2 * t
        inside = r <= self.cutoff
        k = np.where(inside, k, 0)
        p0, p1 = table_values[k], table_values[k + 1]
        m0, m1 = table_derivatives[k] * self.step, table_derivatives[k + 1] * self.step
        values = (2 * t3 - 3 * t2 + 1) * p0 + (t3 - 2 * t2 + t) * m0 + (-2 * t3 + 3 * t2) * p1 + (t3 - t2) * m1
        if derivative:
            grads = (6 * (t2 - t) * (p0 - p1) + (3 * t2 - 4 * t + 1) * m0 + (3 * t2 - 2 * t) * m1) / self.step

        if not np.all(inside):
            outside = ~inside
            ls = range(self.max_angular + 1) if l is None else [l]
            exact = [
                soap_radial_exact(r[outside], ll, self.n_radial, self.cutoff, self.density_width, derivative)
                for ll in ls
            ]
            if derivative:
                exact_values = np.stack([e[0] for e in exact], axis=1)
                exact_grads = np.stack([e[1] for e in exact], axis=1)
            else:
                exact_values = np.stack(exact, axis=1)
            if l is not None:
                exact_values = exact_values[:, 0]
                exact_grads = exact_grads[:, 0] if derivative else None
            values[outside] = exact_values
            if derivative:
                grads[outside] = exact_grads

        if derivative:
            return values, grads
        return values


def _tabulate(positions, max_angular, n_radial, cutoff, density_width):
    """`soap_radial_exact(positions, l, ..., derivative=True)` for every ``l``, the series of all ``l``
    summed together (`_gaussian_primitive_integrals_all`)."""
    values = np.empty((len(positions), max_angular + 1, n_radial))
    derivatives = np.empty_like(values)
    if density_width == 0:
        for l in range(max_angular + 1):
            values[:, l], derivatives[:, l] = soap_radial_exact(positions, l, n_radial, cutoff, density_width, True)
        return values, derivatives
    r = np.atleast_1d(np.asarray(positions, dtype=np.float64))
    matrix = gto_orthonormalization(n_radial, cutoff)
    primitives = _gaussian_primitive_integrals_all(r, range(max_angular + 1), int(n_radial), float(cutoff),
                                                   float(density_width), True)
    for l, (primitive, grads) in enumerate(primitives):
        values[:, l], derivatives[:, l] = primitive @ matrix.T, grads @ matrix.T
    return values, derivatives


@functools.lru_cache(maxsize=32)
def _spline_cached(max_angular, n_radial, cutoff, density_width, accuracy) -> RadialSpline:
    n_intervals = 10
    positions = np.linspace(0.0, cutoff, n_intervals + 1)
    values, derivatives = _tabulate(positions, max_angular, n_radial, cutoff, density_width)
    for _ in range(MAX_REFINEMENTS + 1):
        step = cutoff / n_intervals
        spline = RadialSpline(
            n_radial, max_angular, cutoff, density_width, step, positions, values, derivatives, math.inf
        )
        midpoints = 0.5 * (positions[:-1] + positions[1:])
        mid_values, mid_derivatives = _tabulate(midpoints, max_angular, n_radial, cutoff, density_width)
        error = float(np.max(np.abs(spline.evaluate(midpoints) - mid_values)))
        if error < accuracy:
            for array in (positions, values, derivatives):
                array.setflags(write=False)
            return RadialSpline(
                n_radial, max_angular, cutoff, density_width, step, positions, values, derivatives, error
            )
        # halve every interval: interleave the old points and the midpoints
        n_intervals *= 2
        positions = np.linspace(0.0, cutoff, n_intervals + 1)
        new_values = np.empty((n_intervals + 1,) + values.shape[1:])
        new_derivatives = np.empty_like(new_values)
        new_values[0::2], new_values[1::2] = values, mid_values
        new_derivatives[0::2], new_derivatives[1::2] = derivatives, mid_derivatives
        values, derivatives = new_values, new_derivatives
    raise ValueError(
        f"soap_radial: could not reach a spline accuracy of {accuracy:g} with "
        f"{10 * 2**MAX_REFINEMENTS} intervals (error {error:.3g})"
    )


def soap_radial_spline(
    max_angular: int, n_radial: int, cutoff: float, density_width: float, accuracy: float = DEFAULT_ACCURACY
) -> RadialSpline:
    """Build (or reuse, cached) the :class:`RadialSpline` of ``l = 0..max_angular``."""
    _check_hypers_raise(n_radial, cutoff, density_width)
    _check_index_raise("max_angular", max_angular)
    if not (np.isfinite(accuracy) and accuracy > 0):
        raise ValueError(f"soap_radial: accuracy must be a positive number, got {accuracy!r}")
    return _spline_cached(int(max_angular), int(n_radial), float(cutoff), float(density_width), float(accuracy))


def soap_radial(
    r,
    n: int,
    l: int,
    n_radial: int,
    cutoff: float,
    density_width: float,
    derivative: bool = False,
    exact: bool = False,
):
    """The built-in ``soap_radial(r, n, l, n_radial = ..., cutoff = ..., density_width = ...)``.

    :param r: distances, 1-d array (or a scalar)
    :param n: radial index ``0..n_radial - 1``
    :param l: angular channel
    :param exact: evaluate the closed form instead of the spline
    :returns: ``[len(r)]`` values, and ``d/dr`` with ``derivative=True``
    """
    _check_hypers_raise(n_radial, cutoff, density_width)
    _check_index_raise("n", n, n_radial)
    _check_index_raise("l", l)
    if exact:
        result = soap_radial_exact(r, l, n_radial, cutoff, density_width, derivative)
    else:
        result = soap_radial_spline(l, n_radial, cutoff, density_width).evaluate(r, l, derivative)
    if derivative:
        return result[0][:, n], result[1][:, n]
    return result[:, n]
