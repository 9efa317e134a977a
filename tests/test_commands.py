"""The model commands of the CLI: compile --emit ir, run, inspect; one-line errors."""

import pathlib

import numpy as np
import pytest

import mtdsl
from mtdsl.cli import main
from mtdsl.provenance import history

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
DATA = EXAMPLES / "data"


def test_compile_emits_ir(capsys):
    assert main(["compile", str(EXAMPLES / "spherical_expansion.mt"), "--set", "n_radial=3"]) == 0
    text = capsys.readouterr().out
    assert "tensor rho" in text and "range[radial](0, 3)" in text and "P.from(i)" in text


@pytest.mark.parametrize("emit", ["cpp", "llvm"])
def test_compile_emits_the_gradient_kernels(emit, capsys):
    path = str(EXAMPLES / "soap_power_spectrum.mt")
    # by default: the kernels of every declared gradient (positions and strain), after the values'
    assert main(["compile", path, "--emit", emit, "--set", "n_radial=3"]) == 0
    text = capsys.readouterr().out
    assert "tensor ps" in text and "tensor ·scatter·dps/dpositions#0" in text and "·scatter·dps/dstrain#0" in text
    if emit == "llvm":
        from mtdsl.codegen.llvm import optimize

        optimize(text)
    assert main(["compile", path, "--emit", emit, "--set", "n_radial=3", "--gradients", "positions"]) == 0
    text = capsys.readouterr().out
    assert "·scatter·dps/dpositions#1" in text and "dstrain" not in text
    assert main(["compile", path, "--emit", emit, "--set", "n_radial=3", "--no-gradients"]) == 0
    text = capsys.readouterr().out
    assert "tensor ps" in text and "·scatter·" not in text


def test_compile_gradients_must_be_declared(capsys):
    assert main(["compile", str(EXAMPLES / "soap_power_spectrum.mt"), "--gradients", "cell"]) == 2
    assert "--gradients cell: no output of" in capsys.readouterr().err


def test_run_writes_outputs_with_provenance(tmp_path, capsys):
    output = tmp_path / "ps.mts"
    status = main(["run", str(EXAMPLES / "soap_power_spectrum.mt"), str(DATA / "water.xyz"), str(DATA / "mixed.xyz"),
                   "-o", str(output), "--batch", "2", "--set", "n_radial=4"])
    assert status == 0
    assert "ps:" in capsys.readouterr().out
    batched = mtdsl.load(output)
    # species of all the structures, as `run` fixes them for every batch
    whole = mtdsl.compile(EXAMPLES / "soap_power_spectrum.mt", n_radial=4, species=[1, 8, 22, 38])(
        mtdsl.read_structures(DATA / "water.xyz") + mtdsl.read_structures(DATA / "mixed.xyz"))["ps"]
    assert batched.keys == whole.keys
    for ours, reference in zip(batched.blocks(), whole.blocks()):
        assert ours.samples == reference.samples
        np.testing.assert_allclose(ours.values, reference.values, atol=1e-12)
    inputs = history(batched)[-1]["inputs"]
    assert len(inputs) == 3 and inputs[-1].endswith("mixed.xyz:0")


def test_inspect_shows_blocks_and_provenance(tmp_path, capsys):
    output = tmp_path / "rho.mts"
    assert main(["run", str(EXAMPLES / "spherical_expansion.mt"), str(DATA / "water.xyz"), "-o", str(output)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(output), "--blocks"]) == 0
    text = capsys.readouterr().out
    assert "o3_lambda=4" in text and "provenance:" in text and "spherical_expansion.mt" in text


@pytest.mark.parametrize("arguments, message", [
    (["run", "{examples}/soap_power_spectrum.mt", "missing.xyz", "-o", "{tmp}/x.mts"], "missing.xyz: no such file"),
    (["run", "{examples}/soap_power_spectrum.mt", "{examples}/soap_energy.mt", "--format", "xyz", "-o", "{tmp}/x.mts"],
     "soap_energy.mt: cannot read as extxyz"),
    (["compile", "{examples}/soap_energy.mt"], "soap_energy.mt: 2 error(s)"),
    (["run", "{examples}/soap_energy.mt", "{data}/water.xyz", "--species", "1", "-o", "{tmp}/x.mts"],
     "species [8] are not among the species [1]"),
    (["inspect", "{examples}/soap_energy.mt"], "soap_energy.mt: not a ZIP archive"),
    (["run", "{examples}/spherical_expansion.mt", "{data}/water.xyz", "-o", "{tmp}/x.mts", "--set", "nope=1"], "error"),
])
def test_bad_input_is_one_line(arguments, message, tmp_path, capsys):
    arguments = [a.format(examples=EXAMPLES, data=DATA, tmp=tmp_path) for a in arguments]
    assert main(arguments) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(error)
    assert message in error[-1]


def test_run_with_gradients(tmp_path):
    output = tmp_path / "rho.mts"
    assert main(["run", str(EXAMPLES / "spherical_expansion.mt"), str(DATA / "water.xyz"), "-o", str(output),
                 "--gradients", "positions", "--set", "n_radial=3", "--batch", "1"]) == 0
    rho = mtdsl.load(output)
    gradient = rho.block(0).gradient("positions")
    assert gradient.samples.names == ["sample", "system", "atom"]
    assert set(gradient.samples.array[:, 1].tolist()) == {0, 1}  # both frames, system labels shifted


def test_run_on_lammps_data_needs_its_type_map(tmp_path, capsys):
    import ase.build
    import ase.io

    data = tmp_path / "silicon.data"
    ase.io.write(data, ase.build.bulk("Si"), format="lammps-data")
    arguments = ["run", str(EXAMPLES / "spherical_expansion.mt"), str(data), "--format", "lammps-data",
                 "-o", str(tmp_path / "rho.mts"), "--set", "n_radial=2"]
    assert main(arguments) == 1
    assert "silicon.data: LAMMPS data files need atom_style and type_map" in capsys.readouterr().err
    assert main(arguments + ["--atom-style", "atomic", "--type-map", "1=Si"]) == 0
    assert set(mtdsl.load(tmp_path / "rho.mts").keys.column("center_type").tolist()) == {14}
