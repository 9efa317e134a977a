import numpy as np
import pytest
import torch
from e3nn import o3
from scipy.spatial.transform import Rotation

from mtdsl.math.sph import sph
from mtdsl.math.wigner import E3NN_AXES, e3nn_change_of_basis, wigner_d, wigner_d_matrices

CONVENTIONS = ["metatensor", "e3nn"]


def rotations(count=3, seed=0):
    return Rotation.random(count, random_state=seed).as_matrix()


def vectors(n=20, seed=1):
    return np.random.default_rng(seed).normal(size=(n, 3))


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_rotating_vectors_rotates_harmonics(convention):
    v = vectors()
    for rotation in rotations():
        improper = -rotation
        for matrix in (rotation, improper):
            for l in range(11):
                d = wigner_d(l, matrix, convention)
                np.testing.assert_allclose(
                    sph(v @ matrix.T, l, convention), sph(v, l, convention) @ d.T, rtol=0, atol=1e-12
                )


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_orthogonal_and_a_representation(convention):
    r1, r2 = rotations(2, seed=5)
    for l in range(8):
        d1, d2, d12 = (wigner_d(l, r, convention) for r in (r1, r2, r1 @ r2))
        np.testing.assert_allclose(d1 @ d1.T, np.eye(2 * l + 1), rtol=0, atol=1e-13)
        np.testing.assert_allclose(d1 @ d2, d12, rtol=0, atol=1e-13)
        np.testing.assert_allclose(wigner_d(l, -r1, convention), (-1) ** l * d1, rtol=0, atol=1e-13)


@pytest.fixture
def float64_torch():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn builds its generators in the default dtype
    yield
    torch.set_default_dtype(previous)


def test_e3nn_convention_equals_e3nn_wigner_d(float64_torch):
    for rotation in rotations(seed=7):
        alpha, beta, gamma = o3.matrix_to_angles(torch.tensor(rotation))
        for l in range(9):
            expected = o3.wigner_D(l, alpha, beta, gamma).numpy()
            np.testing.assert_allclose(wigner_d(l, rotation, "e3nn"), expected, rtol=0, atol=1e-12)


def test_e3nn_change_of_basis():
    assert np.linalg.det(E3NN_AXES) == pytest.approx(1.0)
    # l = 1: metatensor orders (y, z, x), e3nn (x, y, z)
    np.testing.assert_allclose(e3nn_change_of_basis(1), [[0, 0, 1], [1, 0, 0], [0, 1, 0]], rtol=0, atol=1e-15)
    for l in range(13):
        basis = e3nn_change_of_basis(l)
        np.testing.assert_allclose(basis @ basis.T, np.eye(2 * l + 1), rtol=0, atol=1e-14)
        v = vectors()
        np.testing.assert_allclose(sph(v, l, "e3nn"), sph(v, l) @ basis.T, rtol=0, atol=1e-13)
    assert not e3nn_change_of_basis(2).flags.writeable


def test_matrices_list():
    rotation = rotations(1)[0]
    matrices = wigner_d_matrices(3, rotation, "e3nn")
    assert [m.shape for m in matrices] == [(1, 1), (3, 3), (5, 5), (7, 7)]
    np.testing.assert_array_equal(matrices[2], wigner_d(2, rotation, "e3nn"))


def test_errors():
    with pytest.raises(ValueError, match=r"expected a 3x3 rotation matrix, got shape \[2, 2\]"):
        wigner_d(1, np.eye(2))
    with pytest.raises(ValueError, match=r"expected an orthogonal 3x3 matrix \(R @ R.T == I\)"):
        wigner_d(1, 2 * np.eye(3))
    with pytest.raises(ValueError, match=r"unknown spherical harmonics convention 'x'"):
        wigner_d(1, np.eye(3), "x")
