import math

import ase
import featomic
import mpmath
import numpy as np
import pytest
import scipy.integrate
from featomic.basis import Gto

from mtdsl.math.functions import cosine_cutoff
from mtdsl.math.radial import (
    gto_orthonormalization,
    gto_widths,
    scaled_hyp1f1,
    soap_radial,
    soap_radial_exact,
    soap_radial_spline,
)

N_RADIAL, CUTOFF, WIDTH, MAX_ANGULAR = 6, 5.0, 0.3, 4


def dimer_expansion(distances, density, spline_accuracy):
    """featomic's expansion of one H around another at each distance along z: values and d/dz."""
    hypers = {
        "cutoff": {"radius": CUTOFF, "smoothing": {"type": "ShiftedCosine", "width": 0.5}},
        "density": density,
        "basis": {
            "type": "TensorProduct",
            "max_angular": MAX_ANGULAR,
            "radial": {"type": "Gto", "max_radial": N_RADIAL - 1},
            "spline_accuracy": spline_accuracy,
        },
    }
    return _dimers(featomic.SphericalExpansion(**hypers), distances)


def _dimers(calculator, distances):
    systems = [ase.Atoms("H2", positions=[[0, 0, 0], [0, 0, d]]) for d in distances]
    tensor = calculator.compute(systems, gradients=["positions"])
    values = np.zeros((len(distances), MAX_ANGULAR + 1, N_RADIAL))
    grads = np.zeros_like(values)
    for l in range(MAX_ANGULAR + 1):
        block = tensor.block(o3_lambda=l, center_type=1, neighbor_type=1)
        for row, (system, atom) in enumerate(block.samples.values):
            if atom == 0:
                values[system, l] = block.values[row, l]  # m = 0
        gradient = block.gradient("positions")
        for row, (sample, system, atom) in enumerate(gradient.samples.values):
            if block.samples.values[sample][1] == 0 and atom == 1:
                grads[system, l] = gradient.values[row, 2, l]  # d/dz of the neighbour, m = 0
    return values, grads


def to_radial(distances, values, grads):
    """Divide out Y_l0(z) = sqrt((2l + 1) / 4 pi) and the cutoff function: soap_radial and d/dr."""
    y = np.sqrt((2 * np.arange(MAX_ANGULAR + 1) + 1) / (4 * np.pi))[None, :, None]
    fc, dfc = cosine_cutoff(distances, CUTOFF, 0.5, derivative=True)
    radial = values / y / fc[:, None, None]
    radial_grads = (grads / y - radial * dfc[:, None, None]) / fc[:, None, None]
    return radial, radial_grads


def all_l(distances, density_width, derivative=True):
    results = [soap_radial_exact(distances, l, N_RADIAL, CUTOFF, density_width, True) for l in range(MAX_ANGULAR + 1)]
    return np.stack([r[0] for r in results], 1), np.stack([r[1] for r in results], 1)


DISTANCES = np.linspace(0.05, 4.95, 50)


def test_gaussian_density_equals_featomic_exact_integral():
    density = {"type": "Gaussian", "width": WIDTH, "center_atom_weight": 0.0}
    expected, expected_grads = to_radial(DISTANCES, *dimer_expansion(DISTANCES, density, None))
    values, grads = all_l(DISTANCES, WIDTH)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(grads, expected_grads, rtol=0, atol=1e-11 * np.abs(expected_grads).max())


def test_dirac_density_equals_featomic_gto_basis():
    """With a Dirac density featomic's radial integral is its orthonormalized GTO basis.

    (``featomic.splines.SoapSpliner`` with ``DiracDelta`` splines exactly
    ``Gto.compute``, but fails at r = 0 where featomic's GTO derivative divides
    by r, so we compare with ``Gto.compute`` directly.)
    """
    basis = Gto(max_radial=N_RADIAL - 1, radius=CUTOFF)
    expected = basis.compute(DISTANCES, derivative=False)
    expected_grads = basis.compute(DISTANCES, derivative=True)
    values, grads = all_l(DISTANCES, 0.0)
    # featomic orthonormalizes numerically (quad up to 5 * cutoff), we analytically
    for l in range(MAX_ANGULAR + 1):
        np.testing.assert_allclose(values[:, l], expected, rtol=0, atol=1e-10 * np.abs(expected).max())
        np.testing.assert_allclose(grads[:, l], expected_grads, rtol=0, atol=1e-10 * np.abs(expected_grads).max())


def test_basis_is_orthonormal():
    matrix = gto_orthonormalization(N_RADIAL, CUTOFF)
    widths = gto_widths(N_RADIAL, CUTOFF)

    def basis(r, n):
        return sum(matrix[n, k] * r**k * math.exp(-0.5 * r * r / widths[k] ** 2) for k in range(N_RADIAL))

    gram = np.array(
        [
            [scipy.integrate.quad(lambda r: r * r * basis(r, n1) * basis(r, n2), 0, np.inf, epsabs=1e-13)[0] for n2 in range(N_RADIAL)]
            for n1 in range(N_RADIAL)
        ]
    )
    np.testing.assert_allclose(gram, np.eye(N_RADIAL), rtol=0, atol=1e-10)


@pytest.mark.parametrize("cutoff, width", [(5.0, 0.3), (8.0, 0.1)])
def test_exact_integral_equals_high_precision_formula(cutoff, width):
    """The closed form evaluated with mpmath at 40 digits (cutoff / width = 80 would overflow a plain 1F1)."""
    mpmath.mp.dps = 40
    n_radial = 4
    matrix = gto_orthonormalization(n_radial, cutoff)
    widths = gto_widths(n_radial, cutoff)
    c = mpmath.mpf(1) / (2 * mpmath.mpf(width) ** 2)
    for l in (0, 1, 3):
        distances = np.array([0.0, 0.7, 2.5, cutoff - 0.1])
        ours = soap_radial_exact(distances, l, n_radial, cutoff, width)
        for row, r in enumerate(distances):
            r = mpmath.mpf(r)
            primitive = []
            for k in range(n_radial):
                g = 1 / (2 * mpmath.mpf(widths[k]) ** 2)
                a, b = mpmath.mpf(k + l + 3) / 2, l + mpmath.mpf(3) / 2
                value = (mpmath.pi / mpmath.mpf(width) ** 2) ** 0.75 * mpmath.gamma(a) / mpmath.gamma(b)
                value *= (c + g) ** (-a) * (c * r) ** l * mpmath.exp(-c * r * r) * mpmath.hyp1f1(a, b, c * c * r * r / (c + g))
                primitive.append(float(value))
            expected = matrix @ np.array(primitive)
            # exp(-c r^2) is rounded with a relative error of about c r^2 * 1e-16
            np.testing.assert_allclose(ours[row], expected, rtol=0, atol=1e-12 * np.abs(expected).max())


def test_scaled_hyp1f1_against_mpmath():
    z = np.array([0.0, 1e-3, 1.0, 30.0, 400.0, 2000.0])
    for a, b in [(1.5, 1.5), (4.0, 2.5), (7.5, 5.5)]:
        ours = scaled_hyp1f1(a, b, z, z)  # exp(-z) 1F1
        expected = [float(mpmath.exp(-x) * mpmath.hyp1f1(a, b, x)) for x in z]
        np.testing.assert_allclose(ours, expected, rtol=1e-12)


@pytest.mark.parametrize("density_width", [WIDTH, 0.0])
def test_derivative_matches_finite_differences(density_width):
    distances = np.array([1e-4, 0.3, 1.1, 2.9, 4.7, 6.0])
    delta = 1e-6
    for l in range(MAX_ANGULAR + 1):
        _, grads = soap_radial_exact(distances, l, N_RADIAL, CUTOFF, density_width, derivative=True)
        plus = soap_radial_exact(distances + delta, l, N_RADIAL, CUTOFF, density_width)
        minus = soap_radial_exact(distances - delta, l, N_RADIAL, CUTOFF, density_width)
        np.testing.assert_allclose(grads, (plus - minus) / (2 * delta), rtol=0, atol=1e-8)


def test_derivative_at_zero_is_the_limit():
    for l in range(3):
        _, at_zero = soap_radial_exact([0.0], l, N_RADIAL, CUTOFF, WIDTH, derivative=True)
        _, near_zero = soap_radial_exact([1e-9], l, N_RADIAL, CUTOFF, WIDTH, derivative=True)
        np.testing.assert_allclose(at_zero, near_zero, rtol=1e-6, atol=1e-7)
        assert (np.abs(at_zero).max() > 1e-3) == (l == 1)


@pytest.mark.parametrize("density_width", [WIDTH, 0.0])
def test_spline_accuracy(density_width):
    spline = soap_radial_spline(MAX_ANGULAR, N_RADIAL, CUTOFF, density_width)
    assert spline.max_error < 1e-10
    # plain arrays on a uniform grid over [0, cutoff]
    assert spline.positions[0] == 0.0 and spline.positions[-1] == CUTOFF
    np.testing.assert_allclose(np.diff(spline.positions), spline.step, rtol=1e-12)
    assert spline.values.shape == spline.derivatives.shape == (len(spline.positions), MAX_ANGULAR + 1, N_RADIAL)

    distances = np.concatenate([np.random.default_rng(0).uniform(1e-3, CUTOFF - 1e-3, 2000), [0.0, CUTOFF]])
    values, grads = spline.evaluate(distances, derivative=True)
    exact_values, exact_grads = all_l(distances, density_width)
    assert np.abs(values - exact_values).max() < 1e-10
    assert np.abs(grads - exact_grads).max() < 1e-6 * np.abs(exact_grads).max()

    # the derivative is the derivative of the spline itself
    delta = 1e-6
    inner = distances[:-2]
    finite = (spline.evaluate(inner + delta) - spline.evaluate(inner - delta)) / (2 * delta)
    np.testing.assert_allclose(grads[:-2], finite, rtol=0, atol=1e-7)


def test_spline_beyond_cutoff_is_exact():
    spline = soap_radial_spline(MAX_ANGULAR, N_RADIAL, CUTOFF, WIDTH)
    distances = np.array([4.0, 5.5, 7.0])
    values, grads = spline.evaluate(distances, l=2, derivative=True)
    exact, exact_grads = soap_radial_exact(distances[1:], 2, N_RADIAL, CUTOFF, WIDTH, derivative=True)
    np.testing.assert_array_equal(values[1:], exact)
    np.testing.assert_array_equal(grads[1:], exact_grads)


def test_single_function():
    distances = np.array([0.5, 2.0, 4.5])
    values, grads = soap_radial(distances, 3, 2, n_radial=N_RADIAL, cutoff=CUTOFF, density_width=WIDTH, derivative=True)
    exact, exact_grads = soap_radial_exact(distances, 2, N_RADIAL, CUTOFF, WIDTH, derivative=True)
    np.testing.assert_allclose(values, exact[:, 3], rtol=0, atol=1e-10)
    np.testing.assert_allclose(grads, exact_grads[:, 3], rtol=0, atol=1e-6)
    exact_only = soap_radial(distances, 3, 2, n_radial=N_RADIAL, cutoff=CUTOFF, density_width=WIDTH, exact=True)
    np.testing.assert_array_equal(exact_only, exact[:, 3])


def test_errors():
    with pytest.raises(ValueError, match=r"soap_radial: n = 6 is outside 0..5"):
        soap_radial([1.0], 6, 0, n_radial=6, cutoff=5.0, density_width=0.3)
    with pytest.raises(ValueError, match=r"soap_radial: n_radial must be a positive integer, got 0"):
        soap_radial_exact([1.0], 0, 0, 5.0, 0.3)
    with pytest.raises(ValueError, match=r"soap_radial: density_width must be a non-negative number \(0 for a Dirac density\), got -0.1"):
        soap_radial_exact([1.0], 0, 3, 5.0, -0.1)
    with pytest.raises(ValueError, match=r"soap_radial: distances must be finite and non-negative"):
        soap_radial_exact([-1.0], 0, 3, 5.0, 0.3)
    with pytest.raises(ValueError, match=r"soap_radial: the GTO overlap matrix is singular, try a lower n_radial \(got 40\)"):
        gto_orthonormalization(40, 5.0)
