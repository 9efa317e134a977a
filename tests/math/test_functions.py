import numpy as np
import pytest

from mtdsl.math.functions import BINARY, ELEMENTARY, cosine_cutoff, gto


def central_difference(function, x, delta=1e-6):
    return (function(x + delta) - function(x - delta)) / (2 * delta)


def test_gto():
    r = np.linspace(0.0, 6.0, 61)
    for n in range(5):
        value, grad = gto(r, n, 1.3, derivative=True)
        np.testing.assert_allclose(value, r**n * np.exp(-(r**2) / (2 * 1.3**2)), rtol=1e-15, atol=0)
        inner = r[1:]
        np.testing.assert_allclose(grad[1:], central_difference(lambda x: gto(x, n, 1.3), inner), rtol=0, atol=1e-8)
        assert np.isfinite(grad[0])
    assert gto(0.0, 1, 1.0, derivative=True)[1] == 1.0


def test_cosine_cutoff_pieces():
    cutoff, width = 4.0, 0.5
    r = np.array([0.0, 2.0, 3.5, 3.75, 3.8, 4.0, 5.0])
    value, grad = cosine_cutoff(r, cutoff, width, derivative=True)
    expected = np.where(r <= 3.5, 1.0, np.where(r < 4.0, 0.5 * (1 + np.cos(np.pi * (r - 3.5) / 0.5)), 0.0))
    np.testing.assert_allclose(value, expected, rtol=0, atol=1e-15)
    assert value[3] == pytest.approx(0.5)
    np.testing.assert_array_equal(grad[[0, 1, 2, 5, 6]], 0.0)


def test_cosine_cutoff_derivative_and_continuity():
    cutoff, width = 5.0, 0.5
    r = np.linspace(4.5 + 1e-4, 5.0 - 1e-4, 101)
    _, grad = cosine_cutoff(r, cutoff, width, derivative=True)
    np.testing.assert_allclose(grad, central_difference(lambda x: cosine_cutoff(x, cutoff, width), r), rtol=0, atol=1e-8)
    # continuous with a continuous derivative at both ends of the switching region
    for edge in (cutoff - width, cutoff):
        values, grads = cosine_cutoff(np.array([edge - 1e-9, edge + 1e-9]), cutoff, width, derivative=True)
        assert abs(values[0] - values[1]) < 1e-8 and abs(grads[0] - grads[1]) < 1e-7


def test_elementary_derivatives():
    x = np.array([0.3, 0.55, 0.9])  # inside the domains of acos and asin, away from round's jumps
    for name, (function, derivative) in ELEMENTARY.items():
        np.testing.assert_allclose(derivative(x), central_difference(function, x), rtol=1e-7, atol=1e-12,
                                   err_msg=name)
    np.testing.assert_allclose(ELEMENTARY["abs"][1](np.array([-2.0, 0.0, 2.0])), [-1.0, 0.0, 1.0])
    assert set(ELEMENTARY) == {"sqrt", "exp", "log", "sin", "cos", "tanh", "sigmoid", "silu", "abs",
                               "erf", "erfc", "acos", "asin", "floor", "round", "softplus"}


def test_new_elementary_functions_equal_scipy_and_numpy():
    import scipy.special

    x = np.linspace(-4.0, 4.0, 41)
    np.testing.assert_allclose(ELEMENTARY["erf"][0](x), scipy.special.erf(x), rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(ELEMENTARY["erfc"][0](x), scipy.special.erfc(x), rtol=1e-14, atol=0)
    np.testing.assert_allclose(ELEMENTARY["softplus"][0](x), np.log1p(np.exp(x)), rtol=1e-14)
    assert ELEMENTARY["softplus"][0](np.array([800.0]))[0] == 800.0  # no overflow
    assert list(ELEMENTARY["round"][0](np.array([0.5, 1.5, 2.5, -0.5]))) == [0.0, 2.0, 2.0, -0.0]  # half to even
    atan2, (d_dy, d_dx) = BINARY["atan2"]
    y, xx = np.array([0.3, -1.2, 2.0]), np.array([-0.7, 0.4, 1.5])
    np.testing.assert_allclose(atan2(y, xx), np.arctan2(y, xx))
    np.testing.assert_allclose(d_dy(y, xx), central_difference(lambda t: atan2(t, xx), y), rtol=1e-7)
    np.testing.assert_allclose(d_dx(y, xx), central_difference(lambda t: atan2(y, t), xx), rtol=1e-7)


def test_errors():
    with pytest.raises(ValueError, match=r"gto: n must be a non-negative integer, got -1"):
        gto(1.0, -1, 1.0)
    with pytest.raises(ValueError, match=r"gto: width must be a positive number, got 0.0"):
        gto(1.0, 1, 0.0)
    with pytest.raises(ValueError, match=r"cosine_cutoff: width must be a positive number, got -0.5"):
        cosine_cutoff(1.0, 5.0, -0.5)
