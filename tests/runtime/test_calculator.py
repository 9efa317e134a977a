"""`model.as_calculator()` (runtime/bridges/calculator.py) against the model itself, finite differences,
ASE's own Lennard-Jones calculator and an NVE run."""

import pathlib

import ase
import ase.build
import numpy as np
import pytest
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.lj import LennardJones
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet
from ase.stress import voigt_6_to_full_3x3_stress

import mtdsl
from mtdsl.runtime.bridges.calculator import CalculatorError
from tests.runtime._helpers import spaced_positions

HERE = pathlib.Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples"
LJ = {"sigma": 2.0, "epsilon": 0.5, "cutoff": 5.0}
SPACING = 2 ** (1 / 6) * LJ["sigma"] * np.sqrt(2)  # fcc lattice constant at the pair minimum


ONSET = 3.3  # ASE's `ro` for smooth=True


@pytest.fixture(scope="module")
def lennard_jones():
    # one thread: small systems on a loaded machine (OpenMP's barriers wait for descheduled threads)
    return mtdsl.compile(HERE / "programs" / "lennard_jones_shifted.mt", threads=1, **LJ)


@pytest.fixture(scope="module")
def smooth_lennard_jones():
    return mtdsl.compile(HERE / "programs" / "lennard_jones_smooth.mt", onset=ONSET, threads=1, **LJ)


def molecule():
    positions = spaced_positions(np.random.default_rng(3), 7, half_width=3.0, min_distance=1.9)
    return ase.Atoms("Ar7", positions=positions)


def crystal():
    atoms = ase.build.bulk("Ar", "fcc", a=SPACING, cubic=True).repeat((2, 1, 1))
    atoms.set_cell(atoms.cell @ [[1.0, 0.02, 0.0], [0.0, 1.0, 0.03], [0.01, 0.0, 1.0]], scale_atoms=True)
    atoms.rattle(0.05, seed=2)
    return atoms


def slab():
    atoms = ase.build.fcc111("Ar", size=(2, 2, 3), a=SPACING, vacuum=4.0)
    atoms.rattle(0.05, seed=4)
    assert list(atoms.pbc) == [True, True, False]
    return atoms


SYSTEMS = {"molecule": molecule, "crystal": crystal, "slab": slab}


def energy(calculator, atoms):
    atoms = atoms.copy()
    atoms.calc = calculator
    return atoms.get_potential_energy()


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_equals_the_model_and_finite_differences(lennard_jones, name):
    atoms = SYSTEMS[name]()
    calculator = lennard_jones.as_calculator()
    atoms.calc = calculator
    e, forces = atoms.get_potential_energy(), atoms.get_forces()
    periodic = atoms.cell.rank == 3
    stress = atoms.get_stress() if periodic else None
    assert calculator.calls == 1  # energy, forces and stress from one call
    gradients = ["positions", "strain"] if periodic else ["positions"]
    block = lennard_jones(atoms, gradients=gradients)["energy"].block()
    assert e == block.values[0, 0]
    np.testing.assert_array_equal(forces, -block.gradient("positions").values[:, :, 0])
    # forces = -dE/dr
    h = 1e-5
    for atom in (0, len(atoms) - 1):
        for x in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[atom, x] += h
            minus.positions[atom, x] -= h
            numeric = -(energy(calculator, plus) - energy(calculator, minus)) / (2 * h)
            assert abs(numeric - forces[atom, x]) < 1e-6 * max(1.0, abs(forces).max())
    if not periodic:
        with pytest.raises(PropertyNotImplementedError, match="stress"):
            atoms.get_stress()
        return
    np.testing.assert_array_equal(voigt_6_to_full_3x3_stress(stress),
                                  block.gradient("strain").values.reshape(3, 3) / atoms.get_volume())
    # stress = dE/d(strain) / volume
    numeric = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            values = []
            for sign in (1, -1):
                strained = atoms.copy()
                deformation = np.eye(3)
                deformation[a, b] += sign * h
                strained.set_cell(atoms.cell @ deformation, scale_atoms=True)
                values.append(energy(calculator, strained))
            numeric[a, b] = (values[0] - values[1]) / (2 * h) / atoms.get_volume()
    np.testing.assert_allclose(voigt_6_to_full_3x3_stress(stress), numeric, atol=1e-7)
    assert calculator.calls == 1 + 6 * 2 + 18  # one call per geometry: energy, forces and stress together


@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("name", list(SYSTEMS))
def test_pair_potential_equals_ase_lennard_jones(lennard_jones, smooth_lennard_jones, name, smooth):
    atoms = SYSTEMS[name]()
    ours, theirs = atoms.copy(), atoms.copy()
    ours.calc = (smooth_lennard_jones if smooth else lennard_jones).as_calculator()
    theirs.calc = LennardJones(sigma=LJ["sigma"], epsilon=LJ["epsilon"], rc=LJ["cutoff"], ro=ONSET, smooth=smooth)
    reference = theirs.get_potential_energy()
    assert abs(ours.get_potential_energy() - reference) <= 1e-10 * abs(reference)
    scale = np.abs(theirs.get_forces()).max()
    np.testing.assert_allclose(ours.get_forces(), theirs.get_forces(), rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(ours.get_potential_energies(), theirs.get_potential_energies(),
                               rtol=0, atol=1e-10 * np.abs(theirs.get_potential_energies()).max())
    if atoms.cell.rank == 3:
        scale = np.abs(theirs.get_stress()).max()
        np.testing.assert_allclose(ours.get_stress(), theirs.get_stress(), rtol=0, atol=1e-10 * scale)


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_the_lennard_jones_example_equals_ase_smooth(name):
    """examples/lennard_jones.mt (a `?:` switching function) through the calculator."""
    model = mtdsl.compile(EXAMPLES / "lennard_jones.mt", onset=ONSET, threads=1, **LJ)
    atoms = SYSTEMS[name]()
    ours, theirs = atoms.copy(), atoms.copy()
    ours.calc = model.as_calculator()
    theirs.calc = LennardJones(sigma=LJ["sigma"], epsilon=LJ["epsilon"], rc=LJ["cutoff"], ro=ONSET, smooth=True)
    reference = theirs.get_potential_energy()
    assert abs(ours.get_potential_energy() - reference) <= 1e-10 * abs(reference)
    np.testing.assert_allclose(ours.get_forces(), theirs.get_forces(), rtol=0,
                               atol=1e-10 * np.abs(theirs.get_forces()).max())
    if atoms.cell.rank == 3:
        np.testing.assert_allclose(ours.get_stress(), theirs.get_stress(), rtol=0,
                                   atol=1e-10 * np.abs(theirs.get_stress()).max())
    assert ours.calc.calls == 1


def test_uses_the_parameters_at_call_time():
    model = mtdsl.compile(EXAMPLES / "soap_energy.mt", species=[18], n_radial=3, max_angular=2, cutoff=4.0,
                          threads=1)
    atoms = crystal()
    atoms.calc = model.as_calculator()
    assert atoms.get_potential_energy() == 0.0  # the initial parameters are zeros
    rng = np.random.default_rng(0)
    model.parameters = {name: rng.normal(size=value.shape) for name, value in model.parameters.items()}
    trained = atoms.get_potential_energy()
    assert trained != 0.0
    assert trained == model(atoms)["energy"].block().values[0, 0]
    assert atoms.calc.calls == 2


def test_clear_errors(tmp_path, lennard_jones):
    with pytest.raises(CalculatorError, match="no output 'energies'"):
        lennard_jones.as_calculator("energies")
    with pytest.raises(CalculatorError, match="not a per-system scalar"):
        lennard_jones.as_calculator("energy_per_atom")
    program = (HERE / "programs" / "lennard_jones_shifted.mt").read_text()
    path = tmp_path / "no_gradients.mt"
    path.write_text(program.replace("output energy with gradients(positions, strain)", "output energy"))
    with pytest.raises(CalculatorError, match=r"forces need `output energy with gradients\(positions\)`"):
        mtdsl.compile(path, backend="interpreter", **LJ).as_calculator()
    path.write_text(program.replace("gradients(positions, strain)", "gradients(positions)"))
    atoms = crystal()
    atoms.calc = mtdsl.compile(path, backend="interpreter", **LJ).as_calculator()
    assert "stress" not in atoms.calc.implemented_properties
    with pytest.raises(PropertyNotImplementedError, match="stress"):
        atoms.get_stress()


def nve_drift(calculator, steps=150):
    """max |E_total(t) - E_total(0)| per atom over an NVE run of a warm argon-like crystal."""
    atoms = ase.build.bulk("Ar", "fcc", a=SPACING, cubic=True).repeat((2, 2, 2))
    thermalize_momenta(atoms, temperature_K=60, rng=np.random.default_rng(5))
    atoms.calc = calculator
    totals = []
    dynamics = VelocityVerlet(atoms, timestep=2.0 * ase.units.fs)
    dynamics.attach(lambda: totals.append(atoms.get_total_energy()), interval=1)
    dynamics.run(steps)
    return np.abs(np.asarray(totals) - totals[0]).max() / len(atoms)


def test_nve_conserves_energy_as_well_as_ase(smooth_lennard_jones):
    """The smooth Lennard-Jones in `.mt` and ASE's own, same crystal, velocities and steps: the
    drift of the total energy per atom is ASE's (forces inconsistent with the energy would not be)."""
    ours = nve_drift(smooth_lennard_jones.as_calculator())
    theirs = nve_drift(LennardJones(sigma=LJ["sigma"], epsilon=LJ["epsilon"], rc=LJ["cutoff"], ro=ONSET,
                                    smooth=True))
    assert 0 < theirs < 1e-3
    assert ours <= 1.05 * theirs, (ours, theirs)
