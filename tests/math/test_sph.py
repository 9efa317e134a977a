import numpy as np
import pytest
import sphericart
import torch
from e3nn import o3

from mtdsl.math.sph import sph, sph_index, spherical_harmonics
from mtdsl.math.wigner import _quadrature

L_MAX = 12  # e3nn implements l <= 12


def random_vectors(n=64, seed=0):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, 3)) * rng.uniform(0.3, 4.0, size=(n, 1))
    # include the axes and a few special directions
    special = np.array([[0, 0, 1], [0, 0, -2], [1, 0, 0], [0, 3, 0], [1, 1, 1], [-1e-3, 2e-3, 5.0]], float)
    return np.concatenate([vectors, special])


def finite_differences(function, vectors, delta=1e-6):
    columns = []
    for axis in range(3):
        shift = np.zeros(3)
        shift[axis] = delta
        columns.append((function(vectors + shift) - function(vectors - shift)) / (2 * delta))
    return np.stack(columns, axis=1)


def test_metatensor_equals_sphericart():
    vectors = random_vectors()
    expected, expected_grads = sphericart.SphericalHarmonics(L_MAX).compute_with_gradients(vectors)
    values, grads = spherical_harmonics(vectors, L_MAX, gradients=True)
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(grads, expected_grads, rtol=0, atol=1e-12)


def test_e3nn_equals_e3nn():
    vectors = random_vectors()
    values = spherical_harmonics(vectors, L_MAX, convention="e3nn")
    for l in range(L_MAX + 1):
        expected = o3.spherical_harmonics(l, torch.tensor(vectors), normalize=True, normalization="integral")
        np.testing.assert_allclose(values[:, l * l : (l + 1) ** 2], expected.numpy(), rtol=0, atol=1e-12)


def test_e3nn_gradients_equal_autograd():
    vectors = random_vectors(16)
    _, grads = spherical_harmonics(vectors, 6, convention="e3nn", gradients=True)
    np.testing.assert_array_equal(grads[:, :, 0], 0.0)
    for l in range(1, 7):
        for m in range(2 * l + 1):
            x = torch.tensor(vectors, requires_grad=True)
            y = o3.spherical_harmonics(l, x, normalize=True, normalization="integral")[:, m]
            (expected,) = torch.autograd.grad(y.sum(), x)
            np.testing.assert_allclose(grads[:, :, sph_index(l, m - l)], expected.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("convention", ["metatensor", "e3nn"])
def test_gradients_match_finite_differences(convention):
    vectors = random_vectors(32, seed=3)
    _, grads = spherical_harmonics(vectors, 10, convention=convention, gradients=True)
    expected = finite_differences(lambda v: spherical_harmonics(v, 10, convention=convention), vectors)
    np.testing.assert_allclose(grads, expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("convention", ["metatensor", "e3nn"])
def test_orthonormal_on_the_sphere(convention):
    l_max = 10
    nodes, weights = _quadrature(l_max)  # exact for degree 2 l_max
    values = spherical_harmonics(nodes, l_max, convention=convention)
    gram = (values * weights[:, None]).T @ values
    np.testing.assert_allclose(gram, np.eye((l_max + 1) ** 2), rtol=0, atol=1e-12)


@pytest.mark.parametrize("convention", ["metatensor", "e3nn"])
def test_parity(convention):
    vectors = random_vectors()
    values = spherical_harmonics(vectors, 8, convention=convention)
    inverted = spherical_harmonics(-vectors, 8, convention=convention)
    signs = np.concatenate([np.full(2 * l + 1, (-1.0) ** l) for l in range(9)])
    np.testing.assert_allclose(inverted, values * signs, rtol=0, atol=1e-12)


def test_independent_of_length():
    vectors = random_vectors()
    np.testing.assert_allclose(spherical_harmonics(3.7 * vectors, 6), spherical_harmonics(vectors, 6), atol=1e-13)


def test_single_degree_is_a_block_of_all_degrees():
    vectors = random_vectors()
    values, grads = spherical_harmonics(vectors, 5, convention="e3nn", gradients=True)
    one, one_grads = sph(vectors, 3, convention="e3nn", gradients=True)
    np.testing.assert_array_equal(one, values[:, 9:16])
    np.testing.assert_array_equal(one_grads, grads[:, :, 9:16])
    assert sph_index(3, -3) == 9 and sph_index(3, 3) == 15


def test_zero_vector():
    values, grads = spherical_harmonics(np.zeros((2, 3)), 3, gradients=True)
    expected = np.zeros((2, 16))
    expected[:, 0] = 1.0 / np.sqrt(4.0 * np.pi)
    np.testing.assert_allclose(values, expected, atol=1e-15)
    np.testing.assert_array_equal(grads, 0.0)


def test_errors():
    with pytest.raises(ValueError, match=r"unknown spherical harmonics convention 'e3NN', expected one of 'metatensor', 'e3nn'"):
        spherical_harmonics(np.ones((1, 3)), 2, convention="e3NN")
    with pytest.raises(ValueError, match=r"expected vectors of shape \[n, 3\], got \[4\]"):
        spherical_harmonics(np.ones(4), 2)
    with pytest.raises(ValueError, match=r"l_max must be a non-negative integer, got -1"):
        spherical_harmonics(np.ones((1, 3)), -1)
    with pytest.raises(ValueError, match=r"l must be a non-negative integer, got 1.5"):
        sph(np.ones((1, 3)), 1.5)


def test_high_degrees_stay_accurate():
    vectors = random_vectors(20, seed=9)
    expected, expected_grads = sphericart.SphericalHarmonics(30).compute_with_gradients(vectors)
    values, grads = spherical_harmonics(vectors, 30, gradients=True)
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(grads, expected_grads, rtol=0, atol=1e-12 * np.abs(expected_grads).max())
