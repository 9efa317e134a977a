"""`examples/lennard_jones.mt` (a `?:` switching function, differentiated branch by branch)
against ASE's `LennardJones(smooth=True)`: energy, forces and stress, every backend.

ASE's forces are `-dE/dr`; its stress is `(1 / V) dE/d(strain)` (Voigt order xx yy zz yz xz xy),
so forces are minus our positions gradient summed per atom, and the stress is our strain
gradient over the cell volume."""

import pathlib

import ase
import ase.build
import numpy as np
import pytest
from ase.calculators.lj import LennardJones
from ase.stress import full_3x3_to_voigt_6_stress

import mtdsl

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "lennard_jones.mt"
SIGMA, EPSILON, CUTOFF, ONSET = 1.1, 0.7, 3.0, 2.1


def crystal():
    # nearest neighbours at 1.13 sigma; the cutoff (2.7 sigma) reaches the switching region
    atoms = ase.build.bulk("Ar", "fcc", a=1.8, cubic=True) * (2, 1, 1)
    atoms.rattle(0.05, seed=3)
    return atoms


def molecule():
    rng = np.random.default_rng(7)
    positions = rng.uniform(0.0, 3.5, size=(7, 3))
    return ase.Atoms("Ar7", positions=positions)


def reference(atoms):
    atoms = atoms.copy()
    atoms.calc = LennardJones(sigma=SIGMA, epsilon=EPSILON, rc=CUTOFF, ro=ONSET, smooth=True)
    stress = atoms.get_stress() if atoms.cell.rank == 3 else None
    return atoms.get_potential_energy(), atoms.get_forces(), stress


def ours(model, atoms):
    periodic = atoms.cell.rank == 3
    energy = model([atoms], gradients=["positions", "strain"] if periodic else ["positions"])["energy"].block()
    positions = energy.gradient("positions")
    forces = np.zeros((len(atoms), 3))
    np.add.at(forces, positions.samples.column("atom"), -positions.values[:, :, 0])
    stress = None
    if periodic:
        strain = energy.gradient("strain").values[0, :, :, 0]
        stress = full_3x3_to_voigt_6_stress(strain) / atoms.get_volume()
    return energy.values[0, 0], forces, stress


@pytest.fixture(scope="module", params=["interpreter", "cpp", "llvm"])
def model(request):
    return mtdsl.compile(EXAMPLE, backend=request.param, sigma=SIGMA, epsilon=EPSILON, cutoff=CUTOFF, onset=ONSET)


@pytest.mark.parametrize("structure", [crystal, molecule])
def test_matches_ase_smooth_lennard_jones(model, structure):
    atoms = structure()
    energy, forces, stress = reference(atoms)
    mine_energy, mine_forces, mine_stress = ours(model, atoms)
    # the switching region is visited: the test would fail with the switch's derivative dropped
    distances = atoms.get_all_distances(mic=atoms.cell.rank == 3)
    assert ((distances > ONSET) & (distances < CUTOFF)).any()
    np.testing.assert_allclose(mine_energy, energy, rtol=1e-10)
    np.testing.assert_allclose(mine_forces, forces, rtol=0, atol=1e-10 * np.abs(forces).max())
    if stress is not None:
        np.testing.assert_allclose(mine_stress, stress, rtol=0, atol=1e-10 * np.abs(stress).max())


@pytest.mark.parametrize("backend", ["cpp", "llvm"])
@pytest.mark.parametrize("path", ["always", False])
def test_reverse_and_forward_gradient_paths_agree_with_ase(backend, path):
    # energies are per system: large batches take the reverse products, small ones forward mode
    model = mtdsl.compile(EXAMPLE, backend=backend, sigma=SIGMA, epsilon=EPSILON, cutoff=CUTOFF, onset=ONSET)
    model.reverse_gradients = path
    atoms = crystal()
    energy, forces, stress = reference(atoms)
    mine_energy, mine_forces, mine_stress = ours(model, atoms)
    assert model.last_gradient_path["energy"] == ("reverse" if path else "forward")
    np.testing.assert_allclose(mine_energy, energy, rtol=1e-10)
    np.testing.assert_allclose(mine_forces, forces, rtol=0, atol=1e-10 * np.abs(forces).max())
    np.testing.assert_allclose(mine_stress, stress, rtol=0, atol=1e-10 * np.abs(stress).max())


@pytest.mark.parametrize("backend", ["interpreter", "cpp"])
def test_torch_autograd_forces_and_stress_equal_ase(backend):
    # the path of a torch calculator (metatomic): forces and stress by autograd of the energy
    import torch

    model = mtdsl.compile(EXAMPLE, backend=backend, sigma=SIGMA, epsilon=EPSILON, cutoff=CUTOFF, onset=ONSET)
    module = model.to_torch()
    atoms = crystal()
    energy, forces, stress = reference(atoms)
    strain = torch.zeros((3, 3), dtype=torch.float64, requires_grad=True)
    deformation = torch.eye(3, dtype=torch.float64) + strain
    positions = torch.tensor(atoms.positions) @ deformation
    cell = torch.tensor(atoms.cell.array) @ deformation
    system = mtdsl.System(torch.tensor(atoms.numbers), positions, cell, torch.tensor(atoms.pbc))
    value = module([system])["energy"].block().values.sum()
    d_positions, d_strain = torch.autograd.grad(value, [positions, strain])
    np.testing.assert_allclose(value.item(), energy, rtol=1e-10)
    np.testing.assert_allclose(-d_positions.numpy(), forces, rtol=0, atol=1e-10 * np.abs(forces).max())
    mine_stress = full_3x3_to_voigt_6_stress(d_strain.numpy()) / atoms.get_volume()
    np.testing.assert_allclose(mine_stress, stress, rtol=0, atol=1e-10 * np.abs(stress).max())
