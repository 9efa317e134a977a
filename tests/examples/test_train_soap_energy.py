"""examples/train_soap_energy.py on a tiny configuration: it trains, and the saved model reloads."""

import importlib.util
import json
import pathlib

import pytest

pytest.importorskip("matplotlib")

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "train_soap_energy.py"


def load_script():
    spec = importlib.util.spec_from_file_location("train_soap_energy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_decreases_the_loss_and_the_model_reloads(tmp_path):
    script = load_script()
    metrics = script.main(["--structures", "12", "--epochs", "3", "--batch-size", "5", "--lr", "0.05",
                           "--final-lr", "0.01", "--n-radial", "2", "--max-angular", "1", "--cutoff", "5.0",
                           "--output", str(tmp_path)], log=lambda message: None)
    losses = [entry["loss"] for entry in metrics["history"]]
    assert losses[-1] < losses[0]
    assert metrics["reload_max_difference"] == 0.0
    assert (metrics["training"], metrics["validation"]) == (10, 2)
    for name in ("soap_energy.pt", "parity.png", "metrics.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"] == 3


def test_structures_are_labelled_and_reproducible():
    script = load_script()
    first, second = script.make_structures(6, seed=3), script.make_structures(6, seed=3)
    assert [len(atoms) for atoms in first] == [8, 8, 8, 12, 12, 12]
    for a, b in zip(first, second):
        assert (a.positions == b.positions).all() and a.info["energy"] == b.info["energy"]
        assert a.arrays["forces"].shape == (len(a), 3)
    train, validation = script.split(10, seed=0)
    assert sorted([*train, *validation]) == list(range(10)) and len(validation) == 2
