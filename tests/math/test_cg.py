import numpy as np
import pytest
import torch
from e3nn import o3
from featomic.clebsch_gordan import calculate_cg_coefficients
from scipy.spatial.transform import Rotation
from sympy import S
from sympy.physics.quantum.cg import CG

from mtdsl.math.cg import cg, cg_coefficient, cg_sparse, check_triangle, check_triangle_raise, complex_cg, e3nn_phase
from mtdsl.math.sph import sph
from mtdsl.math.wigner import wigner_d

CONVENTIONS = ["metatensor", "e3nn"]
L_MAX = 5


def triples(l_max=L_MAX):
    for l1 in range(l_max + 1):
        for l2 in range(l_max + 1):
            for L in range(abs(l1 - l2), l1 + l2 + 1):
                yield l1, l2, L


def test_complex_coefficients_equal_sympy():
    for l1, l2, L in triples(3):
        for m1 in range(-l1, l1 + 1):
            for m2 in range(-l2, l2 + 1):
                M = m1 + m2
                if abs(M) <= L:
                    expected = float(CG(S(l1), S(m1), S(l2), S(m2), S(L), S(M)).doit())
                    assert complex_cg(l1, m1, l2, m2, L, M) == pytest.approx(expected, abs=1e-15)


def test_metatensor_equals_featomic():
    coefficients = calculate_cg_coefficients(L_MAX, "python-dense", "numpy", np.float64, "cpu")
    assert len(coefficients.keys) > 0
    for key, block in coefficients.items():
        l1, l2, L = (int(x) for x in key.values)
        np.testing.assert_allclose(cg(l1, l2, L), block.values[0, ..., 0], rtol=0, atol=1e-14)


def test_e3nn_equals_scaled_wigner_3j():
    for l1, l2, L in triples():
        expected = np.sqrt(2 * L + 1) * o3.wigner_3j(l1, l2, L, dtype=torch.float64).numpy()
        np.testing.assert_allclose(cg(l1, l2, L, "e3nn"), expected, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(cg(l1, l2, L, "e3nn"), e3nn_phase(l1, l2, L) * cg(l1, l2, L))


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_orthogonal(convention):
    for l1, l2, L in triples():
        c = cg(l1, l2, L, convention).reshape(-1, 2 * L + 1)
        np.testing.assert_allclose(c.T @ c, np.eye(2 * L + 1), rtol=0, atol=1e-13)
    # the full change of basis l1 x l2 -> sum of L is orthogonal
    full = np.concatenate([cg(3, 2, L, convention).reshape(35, -1) for L in range(1, 6)], axis=1)
    np.testing.assert_allclose(full @ full.T, np.eye(35), rtol=0, atol=1e-13)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_equivariant(convention):
    rng = np.random.default_rng(0)
    for rotation in Rotation.random(2, random_state=3).as_matrix():
        for l1, l2, L in triples(4):
            a, b = rng.normal(size=2 * l1 + 1), rng.normal(size=2 * l2 + 1)
            c = cg(l1, l2, L, convention)
            d1, d2, d3 = (wigner_d(l, rotation, convention) for l in (l1, l2, L))
            coupled = np.einsum("ijk,i,j->k", c, a, b)
            rotated = np.einsum("ijk,i,j->k", c, d1 @ a, d2 @ b)
            np.testing.assert_allclose(rotated, d3 @ coupled, rtol=0, atol=1e-12)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_coupling_harmonics_of_one_vector(convention):
    v = np.random.default_rng(2).normal(size=(10, 3))
    for l1, l2, L in triples(4):
        coupled = np.einsum("ijk,ni,nj->nk", cg(l1, l2, L, convention), sph(v, l1, convention), sph(v, l2, convention))
        if (l1 + l2 + L) % 2 == 1:
            np.testing.assert_allclose(coupled, 0.0, atol=1e-13)
            continue
        target = sph(v, L, convention)
        factor = np.sum(coupled * target) / np.sum(target * target)
        assert abs(factor) > 0.01
        np.testing.assert_allclose(coupled, factor * target, rtol=0, atol=1e-13)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_sparse_matches_dense(convention):
    for l1, l2, L in triples(3):
        dense = cg(l1, l2, L, convention)
        sparse = cg_sparse(l1, l2, L, convention)
        rebuilt = np.zeros_like(dense)
        rebuilt[sparse.m1 + l1, sparse.m2 + l2, sparse.M + L] = sparse.values
        np.testing.assert_array_equal(rebuilt, dense)
        assert len(sparse) == np.count_nonzero(dense)
        assert np.all(sparse.m1 + sparse.m2 != 100)
        for m1, m2, M, value in sparse.entries():
            assert cg_coefficient(l1, m1, l2, m2, L, M, convention) == value
    # real coefficients keep the complex sparsity |M| in {|m1 + m2|, |m1 - m2|}
    sparse = cg_sparse(2, 2, 2)
    assert np.all((np.abs(sparse.M) == np.abs(sparse.m1 + sparse.m2)) | (np.abs(sparse.M) == np.abs(sparse.m1 - sparse.m2)))


def test_triangle_rule():
    assert check_triangle(1, 2, 3) and check_triangle(2, 2, 0)
    assert not check_triangle(1, 1, 3)
    np.testing.assert_array_equal(cg(1, 1, 3), np.zeros((3, 3, 7)))
    assert len(cg_sparse(1, 1, 3)) == 0
    with pytest.raises(ValueError, match=r"cg: \(l1, l2, L\) = \(1, 1, 3\) violates the triangle rule"):
        check_triangle_raise(1, 1, 3)


def test_cached_and_read_only():
    assert cg(2, 3, 4) is cg(2, 3, 4)
    assert cg_sparse(2, 3, 4, "e3nn") is cg_sparse(2, 3, 4, "e3nn")
    assert not cg(2, 3, 4).flags.writeable


def test_errors():
    with pytest.raises(ValueError, match=r"cg: m2 = 3 is outside -2..2"):
        cg_coefficient(1, 0, 2, 3, 2, 0)
    with pytest.raises(ValueError, match=r"L must be a non-negative integer, got -1"):
        cg(1, 1, -1)
    with pytest.raises(ValueError, match=r"unknown spherical harmonics convention 'cartesian'"):
        cg(1, 1, 1, "cartesian")


def test_sign_convention_against_featomic_equivariant_power_spectrum():
    """featomic's EquivariantPowerSpectrum is our CG product times (-1)^(l1 + l2 + lambda)
    (docs/language.md, "Sign convention of CG products")."""
    import ase.build
    import featomic
    from featomic.clebsch_gordan import EquivariantPowerSpectrum

    hypers = {"cutoff": {"radius": 4.0, "smoothing": {"type": "ShiftedCosine", "width": 0.5}},
              "density": {"type": "Gaussian", "width": 0.3},
              "basis": {"type": "TensorProduct", "max_angular": 2, "radial": {"type": "Gto", "max_radial": 1}}}
    atoms = ase.build.molecule("CH4")
    atoms.rattle(0.1, seed=1)
    expansion = featomic.SphericalExpansion(**hypers)
    rho = expansion.compute(atoms)
    products = EquivariantPowerSpectrum(expansion).compute(atoms, neighbors_to_properties=False)
    checked = set()
    for key, block in products.items():
        big_l, _, centre, b1, b2 = (int(v) for v in key.values)
        for column, (l1, l2, n1, n2) in enumerate(np.asarray(block.properties.values)):
            first = np.asarray(rho.block(o3_lambda=int(l1), center_type=centre, neighbor_type=b1).values)
            second = np.asarray(rho.block(o3_lambda=int(l2), center_type=centre, neighbor_type=b2).values)
            ours = np.einsum("abM,sa,sb->sM", cg(int(l1), int(l2), big_l, "metatensor"),
                             first[:, :, n1], second[:, :, n2])
            np.testing.assert_allclose(np.asarray(block.values)[:, :, column],
                                       (-1) ** int(l1 + l2 + big_l) * ours, atol=1e-10)
            checked.add((-1) ** int(l1 + l2 + big_l))
    assert checked == {1, -1}
