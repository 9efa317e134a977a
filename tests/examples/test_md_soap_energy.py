"""examples/md_soap_energy.py on a small alloy and a few steps: both runs conserve energy alike."""

import importlib.util
import pathlib

import numpy as np

import mtdsl

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def load_script():
    spec = importlib.util.spec_from_file_location("md_soap_energy", EXAMPLES / "md_soap_energy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_md_with_the_calculator_and_the_exported_model(tmp_path):
    model = mtdsl.compile(EXAMPLES / "soap_energy.mt", species=[29, 47, 79], n_radial=2, max_angular=1,
                          cutoff=4.0, threads=1)
    rng = np.random.default_rng(0)
    model.parameters = {name: 0.1 * rng.normal(size=value.shape) for name, value in model.parameters.items()}
    model.save_parameters(tmp_path / "w.npz")
    lines = []
    found = load_script().main(["--params", str(tmp_path / "w.npz"), "--output", str(tmp_path / "md"),
                                "--steps", "4", "--repeat", "1"], log=lines.append)
    assert (tmp_path / "md" / "soap_energy.pt").exists()
    assert 0 < found["drift"] < 1e-3 and abs(found["drift_exported"] - found["drift"]) < 1e-9
    assert "largest difference of the two runs' total energies" in lines[-1]
