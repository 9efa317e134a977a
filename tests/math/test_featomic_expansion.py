"""The language's spherical expansion, built from the math built-ins, equals featomic's.

    rho[i, l, m, n, b] = sum over neighbours j of type b of
        soap_radial(r_ij, n, l) * cosine_cutoff(r_ij, 5, 0.5) * sph(r_ij_vector, l, m)

with the hypers of issue #6 (cutoff 5, max_radial 5, max_angular 4, Gaussian
density of width 0.3, shifted cosine of width 0.5, spline_accuracy 1e-12,
center_atom_weight 0); values and gradients with respect to positions.
"""

import ase
import ase.build
import featomic
import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from mtdsl.math.functions import cosine_cutoff
from mtdsl.math.radial import soap_radial_exact, soap_radial_spline
from mtdsl.math.sph import spherical_harmonics

CUTOFF, SMOOTHING, N_RADIAL, MAX_ANGULAR, WIDTH = 5.0, 0.5, 6, 4, 0.3

HYPERS = {
    "cutoff": {"radius": CUTOFF, "smoothing": {"type": "ShiftedCosine", "width": SMOOTHING}},
    "density": {"type": "Gaussian", "width": WIDTH, "center_atom_weight": 0.0},
    "basis": {
        "type": "TensorProduct",
        "max_angular": MAX_ANGULAR,
        "radial": {"type": "Gto", "max_radial": N_RADIAL - 1},
        "spline_accuracy": 1e-12,
    },
}


def water():
    return ase.Atoms(
        "OH2OH2",
        positions=[
            [0.0, 0.0, 0.0],
            [0.757, 0.586, 0.1],
            [-0.757, 0.586, -0.05],
            [2.9, 0.3, 0.2],
            [3.4, -0.5, 0.4],
            [3.5, 1.0, -0.1],
        ],
    )


def silicon():
    atoms = ase.build.bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.05, seed=1)
    return atoms


def silicon_primitive():
    # two atoms: every atom sees many periodic images of itself
    atoms = ase.build.bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.02, seed=2)
    return atoms


def mixed():
    # rock salt with a C substituted: three species, periodic, pairs in the switching region
    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    atoms.numbers[3] = 6
    atoms.rattle(0.1, seed=3)
    return atoms


STRUCTURES = {"water": water, "silicon": silicon, "silicon-primitive": silicon_primitive, "mixed": mixed}


def spline_radial(distances):
    spline = soap_radial_spline(MAX_ANGULAR, N_RADIAL, CUTOFF, WIDTH)
    return spline.evaluate(distances, derivative=True)


def exact_radial(distances):
    results = [soap_radial_exact(distances, l, N_RADIAL, CUTOFF, WIDTH, True) for l in range(MAX_ANGULAR + 1)]
    return np.stack([r[0] for r in results], axis=1), np.stack([r[1] for r in results], axis=1)


def our_expansion(atoms, radial):
    """Dense ``{(l, neighbor_type): (values[atom, m, n], grads[center, moved atom, xyz, m, n])}``."""
    first, second, vectors, distances = neighbor_list("ijDd", atoms, CUTOFF)
    n_atoms = len(atoms)
    sph, sph_grads = spherical_harmonics(vectors, MAX_ANGULAR, gradients=True)
    fc, fc_grads = cosine_cutoff(distances, CUTOFF, SMOOTHING, derivative=True)
    r, r_grads = radial(distances)
    directions = vectors / distances[:, None]
    result = {}
    for neighbor_type in np.unique(atoms.numbers):
        pairs = atoms.numbers[second] == neighbor_type
        i, j = first[pairs], second[pairs]
        for l in range(MAX_ANGULAR + 1):
            y = sph[pairs, l * l : (l + 1) ** 2]
            dy = sph_grads[pairs, :, l * l : (l + 1) ** 2]
            radial_part = fc[pairs, None] * r[pairs, l]  # [p, n]
            radial_grad = fc_grads[pairs, None] * r[pairs, l] + fc[pairs, None] * r_grads[pairs, l]
            values = np.zeros((n_atoms, 2 * l + 1, N_RADIAL))
            np.add.at(values, i, np.einsum("pm,pn->pmn", y, radial_part))
            # d/d(vector) of the pair contribution; the vector goes from atom i to atom j
            d_vector = np.einsum("pa,pm,pn->pamn", directions[pairs], y, radial_grad)
            d_vector += np.einsum("pam,pn->pamn", dy, radial_part)
            grads = np.zeros((n_atoms, n_atoms, 3, 2 * l + 1, N_RADIAL))
            np.add.at(grads, (i, j), d_vector)
            np.add.at(grads, (i, i), -d_vector)
            result[(l, int(neighbor_type))] = (values, grads)
    return result, distances


@pytest.fixture(scope="module")
def featomic_results():
    calculator = featomic.SphericalExpansion(**HYPERS)
    return {name: calculator.compute(make(), gradients=["positions"]) for name, make in STRUCTURES.items()}


@pytest.mark.parametrize("radial", [spline_radial, exact_radial], ids=["spline", "exact"])
@pytest.mark.parametrize("name", list(STRUCTURES))
def test_spherical_expansion_equals_featomic(name, radial, featomic_results):
    atoms = STRUCTURES[name]()
    tensor = featomic_results[name]
    ours, distances = our_expansion(atoms, radial)

    largest = max(np.abs(block.values).max() for block in tensor.blocks())
    largest_grad = max(np.abs(block.gradient("positions").values).max() for block in tensor.blocks())
    seen = set()
    for key, block in tensor.items():
        l, sigma, center_type, neighbor_type = (int(v) for v in key.values)
        assert sigma == 1
        values, grads = ours[(l, neighbor_type)]
        assert block.components[0].names == ["o3_mu"]
        np.testing.assert_array_equal(block.components[0].values[:, 0], np.arange(-l, l + 1))
        np.testing.assert_array_equal(block.properties.values[:, 0], np.arange(N_RADIAL))

        atoms_of_block = block.samples.values[:, 1]
        assert np.all(atoms.numbers[atoms_of_block] == center_type)
        np.testing.assert_allclose(values[atoms_of_block], block.values, rtol=0, atol=1e-8 * largest)

        # dense gradients of featomic's block, compared with ours (zeros where featomic has no sample)
        gradient = block.gradient("positions")
        expected = np.zeros((len(atoms), len(atoms), 3, 2 * l + 1, N_RADIAL))
        for row, (sample, _, moved) in enumerate(gradient.samples.values):
            expected[atoms_of_block[sample], moved] = gradient.values[row]
        np.testing.assert_allclose(grads[atoms_of_block], expected[atoms_of_block], rtol=0, atol=1e-8 * largest_grad)

        # centres of this type that featomic leaves out have no neighbour of this type: zeros
        missing = np.setdiff1d(np.nonzero(atoms.numbers == center_type)[0], atoms_of_block)
        np.testing.assert_array_equal(values[missing], 0.0)
        seen.add((l, neighbor_type, center_type))

    # every (l, centre type, neighbour type) with a contribution is one of featomic's blocks
    for (l, neighbor_type), (values, _) in ours.items():
        for center_type in np.unique(atoms.numbers):
            if np.any(values[atoms.numbers == center_type] != 0):
                assert (l, neighbor_type, center_type) in seen

    if name != "water":
        # the cutoff function is exercised, not only its flat part
        assert np.any((distances > CUTOFF - SMOOTHING) & (distances < CUTOFF))
