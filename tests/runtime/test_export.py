"""`model.export()` / `mtdsl export` (runtime/export/atomistic.py): the exported AtomisticModel under
metatomic's own ASE calculator, in a fresh Python that never imported mtdsl, equals
`as_calculator()`; capabilities, neighbour lists, selected atoms, errors."""

import json
import pathlib
import subprocess
import sys

import ase
import ase.build
import numpy as np
import pytest
import torch

import mtdsl
from mtdsl._coexist import import_module_with_metatensor_torch
from mtdsl.runtime.export.atomistic import ExportError
from tests.runtime._helpers import run_without_mtdsl, sheared_alloy, spaced_cluster

# this process may have imported torch_geometric first (tests/interop): metatomic is imported
# the way mtdsl imports it, so the later plain imports find it loaded (docs/interop.md)
import_module_with_metatensor_torch("metatomic.torch")

HERE = pathlib.Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples"
SPECIES = [29, 47, 79]


def soap_model():
    model = mtdsl.compile(EXAMPLES / "soap_energy.mt", species=SPECIES, n_radial=4, max_angular=3, cutoff=4.0,
                          threads=1)  # small systems: one thread (the exported model keeps it)
    rng = np.random.default_rng(11)
    model.parameters = {name: 0.1 * rng.normal(size=value.shape) for name, value in model.parameters.items()}
    return model


def two_hop_model():
    return mtdsl.compile(HERE / "programs" / "two_hop_energy.mt", species=SPECIES, seed=3, threads=1)


MODELS = {"soap": soap_model, "two_hop": two_hop_model}


def cluster():
    return spaced_cluster(SPECIES, 8, half_width=3.5, min_distance=2.2)


def alloy():
    return sheared_alloy(a=3.7)


def slab():
    atoms = ase.build.fcc111("Cu", size=(2, 2, 2), a=3.7, vacuum=4.0)
    atoms.numbers[[1, 5]] = [47, 79]
    atoms.rattle(0.05, seed=7)
    return atoms


SYSTEMS = {"cluster": cluster, "alloy": alloy, "slab": slab}

# the engine (run_without_mtdsl: the models run their C++ operator)
ENGINE = """
import ase.io, numpy as np
from metatomic_ase import MetatomicCalculator
results = {}
for model, directory in json.loads(sys.argv[1]).items():
    for name in ("cluster", "alloy", "slab"):
        atoms = ase.io.read(f"{directory}/{name}.xyz")
        atoms.calc = MetatomicCalculator(f"{directory}/{model}.pt", extensions_directory=f"{directory}/extensions")
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        energies = atoms.get_potential_energies() if model == "two_hop" else []
        stress = atoms.get_stress() if atoms.pbc.all() else []
        results[f"{model}/{name}"] = [float(energy), np.asarray(forces).tolist(), np.asarray(stress).tolist(),
                                      np.asarray(energies).tolist()]
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    directory = tmp_path_factory.mktemp("exported")
    models = {}
    for name, make in MODELS.items():
        models[name] = make()
        models[name].export(directory / f"{name}.pt", extensions_directory=directory / "extensions", runtime="cpp")
    for name, make in SYSTEMS.items():
        make().write(directory / f"{name}.xyz")
    return directory, models


def test_metatomic_calculator_equals_as_calculator(exported):
    directory, models = exported
    results = run_without_mtdsl(ENGINE, json.dumps({name: str(directory) for name in models}), directory)
    for key, (energy, forces, stress, energies) in results.items():
        model, system = key.split("/")
        atoms = SYSTEMS[system]()
        atoms.calc = models[model].as_calculator()
        expected = atoms.get_potential_energy()
        assert abs(expected) > 1e-3
        assert abs(energy - expected) <= 1e-8 * max(1.0, abs(expected)), key
        np.testing.assert_allclose(forces, atoms.get_forces(), rtol=0, atol=1e-7, err_msg=key)
        assert np.abs(atoms.get_forces()).max() > 1e-3
        if stress:
            np.testing.assert_allclose(stress, atoms.get_stress(), rtol=0, atol=1e-7, err_msg=key)
        if energies:
            np.testing.assert_allclose(energies, atoms.get_potential_energies(), rtol=0, atol=1e-8, err_msg=key)


def test_a_cpp_engine_without_python_runs_both_models(exported):
    """A C++ program linked against libtorch and metatomic-torch (tests/runtime/engine), as LAMMPS's
    pair_style metatomic is, loads each exported model and its operator: energy and autograd forces
    equal `as_calculator()`'s on a molecule."""
    from .engine import run_engine

    directory, models = exported
    for name, model in models.items():
        atoms = cluster()
        energy, forces = run_engine(directory / f"{name}.pt", directory / "extensions", atoms)
        atoms.calc = model.as_calculator()
        expected = atoms.get_potential_energy()
        assert abs(energy - expected) <= 1e-8 * max(1.0, abs(expected)), name
        np.testing.assert_allclose(forces, atoms.get_forces(), rtol=0, atol=1e-7, err_msg=name)
        assert np.abs(atoms.get_forces()).max() > 1e-3


def test_capabilities_and_neighbor_lists(exported):
    from metatomic.torch import load_atomistic_model

    directory, models = exported
    for name, model in models.items():
        loaded = load_atomistic_model(str(directory / f"{name}.pt"), str(directory / "extensions"))
        capabilities = loaded.capabilities()
        assert capabilities.atomic_types == SPECIES
        assert capabilities.interaction_range == model.interaction_range
        assert capabilities.length_unit == "angstrom" and capabilities.outputs["energy"].unit == "eV"
        assert capabilities.dtype == "float64" and capabilities.supported_devices == ["cpu"]
        requests = loaded.requested_neighbor_lists()
        assert [(r.cutoff, r.full_list) for r in requests] == [(p.cutoff, True) for p in model.module.pairs]
    assert models["two_hop"].interaction_range == 7.0  # two hops of 3.5


def test_selected_atoms_energy_is_theirs_alone(exported):
    """Domain decomposition: the energy of the selected atoms is the sum of their per-atom energies."""
    from metatensor.torch import Labels
    from metatomic.torch import ModelEvaluationOptions, ModelOutput, load_atomistic_model, systems_to_torch
    from vesin.metatomic import compute_requested_neighbors  # deprecated name, still the one-call form

    directory, models = exported
    loaded = load_atomistic_model(str(directory / "two_hop.pt"), str(directory / "extensions"))
    atoms = alloy()
    system = systems_to_torch(atoms, dtype=torch.float64, positions_requires_grad=True)
    compute_requested_neighbors(system, "angstrom", loaded)
    chosen = [0, 3, 5]
    options = ModelEvaluationOptions(length_unit="angstrom", outputs={"energy": ModelOutput(unit="eV")},
                                     selected_atoms=Labels(["system", "atom"],
                                                           torch.tensor([[0, a] for a in chosen], dtype=torch.int32)))
    energy = loaded([system], options, check_consistency=True)["energy"].block().values
    atoms.calc = models["two_hop"].as_calculator()
    per_atom = atoms.get_potential_energies()
    assert abs(energy.item() - per_atom[chosen].sum()) < 1e-10
    energy.sum().backward()
    assert torch.isfinite(system.positions.grad).all() and system.positions.grad.abs().max() > 0


def test_refuses_what_it_cannot_export(tmp_path, capsys):
    from mtdsl.cli import main

    model = mtdsl.compile(HERE / "programs" / "two_hop_energy.mt", species=SPECIES, backend="interpreter")
    with pytest.raises(ExportError, match="not a per-system scalar"):
        model.export(tmp_path / "x.pt", extensions_directory=tmp_path / "ext", output="energy_per_atom")
    unspecied = mtdsl.compile(HERE / "programs" / "lennard_jones_shifted.mt", backend="interpreter")
    with pytest.raises(ExportError, match="compile with species"):
        unspecied.export(tmp_path / "x.pt", extensions_directory=tmp_path / "ext")
    assert main(["export", str(EXAMPLES / "spherical_expansion.mt"), "-o", str(tmp_path / "x.pt")]) == 1
    stderr = capsys.readouterr().err
    assert len(stderr.strip().splitlines()) == 1 and "no output 'energy'" in stderr
    assert not (tmp_path / "x.pt").exists()


def test_cli_export_with_params(tmp_path, capsys):
    from metatomic.torch import load_atomistic_model

    from mtdsl.cli import main

    model = two_hop_model()
    model.parameters["w"] = model.parameters["w"] + 1.0
    model.save_parameters(tmp_path / "w.npz")
    status = main(["export", str(HERE / "programs" / "two_hop_energy.mt"), "-o", str(tmp_path / "m.pt"),
                   "--params", str(tmp_path / "w.npz"), "--extensions-directory", str(tmp_path / "ext")])
    assert status == 0, capsys.readouterr().err
    assert "interaction range 7" in capsys.readouterr().out
    loaded = load_atomistic_model(str(tmp_path / "m.pt"), str(tmp_path / "ext"))
    assert loaded.capabilities().atomic_types == SPECIES
    # the file's parameters, not the program's initial ones
    atoms = alloy()
    from metatomic.torch import ModelEvaluationOptions, ModelOutput, systems_to_torch
    from vesin.metatomic import compute_requested_neighbors

    system = systems_to_torch(atoms, dtype=torch.float64)
    compute_requested_neighbors(system, "angstrom", loaded)
    options = ModelEvaluationOptions(length_unit="angstrom", outputs={"energy": ModelOutput(unit="eV")})
    energy = loaded([system], options, check_consistency=True)["energy"].block().values.item()
    assert abs(energy - model(atoms)["energy"].block().values[0, 0]) < 1e-10


def test_several_systems_and_per_atom_energies_in_one_call(exported):
    """As torch-sim batches: one forward over several systems, energies per system or per atom."""
    from metatomic.torch import ModelEvaluationOptions, ModelOutput, load_atomistic_model, systems_to_torch
    from vesin.metatomic import compute_requested_neighbors

    directory, models = exported
    loaded = load_atomistic_model(str(directory / "two_hop.pt"), str(directory / "extensions"))
    frames = [cluster(), alloy()]
    systems = [systems_to_torch(atoms, dtype=torch.float64, positions_requires_grad=True) for atoms in frames]
    compute_requested_neighbors(systems, "angstrom", loaded)
    for kind in ("system", "atom"):
        options = ModelEvaluationOptions(length_unit="angstrom",
                                         outputs={"energy": ModelOutput(unit="eV", sample_kind=kind)})
        block = loaded(systems, options, check_consistency=True)["energy"].block()
        expected = []
        for atoms in frames:
            atoms.calc = models["two_hop"].as_calculator()
            expected.append([atoms.get_potential_energy()] if kind == "system" else atoms.get_potential_energies())
        np.testing.assert_allclose(block.values.detach().reshape(-1), np.concatenate(expected), rtol=0, atol=1e-10)
    block.values.sum().backward()
    for atoms, system in zip(frames, systems):
        np.testing.assert_allclose(-system.positions.grad.numpy(), atoms.get_forces(), rtol=0, atol=1e-10)


def test_mtdsl_imports_metatomic_only_to_export(tmp_path):
    """Compiling, running, the calculator and parameter files never import metatomic."""
    script = f"""
import sys, ase.build, mtdsl
model = mtdsl.compile({str(HERE / "programs" / "two_hop_energy.mt")!r}, species=[29], backend="interpreter")
atoms = ase.build.bulk("Cu", "fcc", a=3.7, cubic=True)
atoms.calc = model.as_calculator()
atoms.get_forces()
model.save_parameters({str(tmp_path / "w.npz")!r})
found = sorted(name for name in sys.modules if name.split(".")[0] in ("metatomic", "metatomic_ase"))
print(found)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
