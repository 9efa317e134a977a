"""Trained parameters as files (runtime/parameters.py): save, load, refusals, the CLI, to_torch()."""

import pathlib

import ase.io
import numpy as np
import pytest
import torch

import mtdsl
from mtdsl.runtime.parameters import ParametersError

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
SPECIES = [1, 8]
SMALL = {"n_radial": 3, "max_angular": 2, "cutoff": 3.5}


def trained(**hypers):
    model = mtdsl.compile(EXAMPLES / "soap_energy.mt", backend="interpreter", species=SPECIES, **(hypers or SMALL))
    rng = np.random.default_rng(7)
    model.parameters = {name: rng.normal(size=value.shape) for name, value in model.parameters.items()}
    return model


def water():
    return ase.io.read(EXAMPLES / "data" / "water.xyz", "0")


def test_round_trip_gives_the_same_energies(tmp_path):
    model = trained()
    path = tmp_path / "w.npz"
    model.save_parameters(path)
    loaded = mtdsl.compile(EXAMPLES / "soap_energy.mt", backend="interpreter", species=SPECIES,
                           parameters=path, **SMALL)
    for name, value in model.parameters.items():
        np.testing.assert_array_equal(loaded.parameters[name], value)
    assert np.abs(model(water())["energy"].block().values).max() > 0
    np.testing.assert_array_equal(loaded(water())["energy"].block().values, model(water())["energy"].block().values)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".params-")]  # no temporary left


def test_refused_for_another_program(tmp_path):
    path = tmp_path / "w.npz"
    trained().save_parameters(path)
    other = tmp_path / "other.mt"
    other.write_text((EXAMPLES / "soap_energy.mt").read_text().replace("~ zeros", "~ ones", 1))
    for name in ("soap_power_spectrum.mt", "spherical_expansion.mt"):
        (tmp_path / name).write_text((EXAMPLES / name).read_text())
    with pytest.raises(ParametersError, match="another program.*soap_energy.*sha256"):
        mtdsl.compile(other, backend="interpreter", species=SPECIES, parameters=path, **SMALL)


def test_refused_for_other_hypers_or_species(tmp_path):
    path = tmp_path / "w.npz"
    trained().save_parameters(path)
    with pytest.raises(ParametersError, match=r"other hypers: cutoff = 3.5 in the file, 4.0 here"):
        mtdsl.compile(EXAMPLES / "soap_energy.mt", backend="interpreter", species=SPECIES, parameters=path,
                      **dict(SMALL, cutoff=4.0))
    with pytest.raises(ParametersError, match=r"species \[1, 8\].*\[1, 6, 8\]"):
        mtdsl.compile(EXAMPLES / "soap_energy.mt", backend="interpreter", species=[1, 6, 8], parameters=path,
                      **SMALL)


def test_refused_when_not_a_parameter_file(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, w=np.zeros(3))
    with pytest.raises(ParametersError, match="not an mtdsl parameter file"):
        trained().load_parameters(bad)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(ParametersError, match="not a readable"):
        trained().load_parameters(garbage)


def test_torch_module_saves_and_loads_the_same_files(tmp_path):
    model = trained()
    path = tmp_path / "w.npz"
    model.save_parameters(path)
    module = mtdsl.compile(EXAMPLES / "soap_energy.mt", backend="interpreter", species=SPECIES, **SMALL).to_torch()
    module.load_parameters(path)
    np.testing.assert_array_equal(module.w.detach().numpy(), model.parameters["w"])
    with torch.no_grad():
        module.e0 += 1.0
    again = tmp_path / "again.npz"
    module.save_parameters(again)
    model.load_parameters(again)
    np.testing.assert_array_equal(model.parameters["e0"], module.e0.detach().numpy())


def test_cli_run_with_params(tmp_path, capsys):
    from mtdsl.cli import main

    model = trained()
    path = tmp_path / "w.npz"
    model.save_parameters(path)
    out = tmp_path / "e.mts"
    sets = [arg for name, value in SMALL.items() for arg in ("--set", f"{name}={value}")]
    command = ["run", str(EXAMPLES / "soap_energy.mt"), str(EXAMPLES / "data" / "water.xyz"), "-o", str(out),
               "--params", str(path), "--backend", "interpreter", *sets]  # species from the file
    assert main(command) == 0, capsys.readouterr().err
    energies = mtdsl.load(out).block().values
    expected = model(ase.io.read(EXAMPLES / "data" / "water.xyz", ":"))["energy"].block().values
    np.testing.assert_allclose(energies, expected, rtol=1e-12)
    capsys.readouterr()
    # another hyper: one line on stderr, exit 1
    command[command.index("cutoff=3.5")] = "cutoff=4.0"
    assert main(command) == 1
    stderr = capsys.readouterr().err
    assert "other hypers" in stderr and len(stderr.strip().splitlines()) == 1
